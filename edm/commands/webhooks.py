"""``edm webhooks``: endpoints that delivery events are POSTed to."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from campaigns.core.errors import ServiceUnavailable
from campaigns.core.settings import Settings
from campaigns.webhooks.endpoints import (
    EndpointListing,
    add_endpoint,
    list_endpoints,
    remove_endpoint,
    resume_endpoint,
)
from edm.command_helpers import database, print_json
from workers.webhook_delivery import send_test_event


def add(args: argparse.Namespace, settings: Settings) -> None:
    endpoint, secret = add_endpoint(
        database(settings),
        args.url,
        events=args.events.split(","),
        campaign_id=args.campaign,
        category=args.category,
        allow_private=settings.outgoing_webhook_allow_private,
    )
    if args.json:
        print_json({**asdict(endpoint), "secret": secret})
        return
    print(f"webhook endpoint {endpoint.id}: {endpoint.url} ({','.join(endpoint.events)})")
    print(f"secret (shown this once; it signs every request): {secret}")


def list_command(args: argparse.Namespace, settings: Settings) -> None:
    endpoints = list_endpoints(database(settings))
    if args.json:
        print_json({"webhooks": [asdict(endpoint) for endpoint in endpoints]})
        return
    for endpoint in endpoints:
        print(_describe(endpoint))


def _describe(endpoint: EndpointListing) -> str:
    scope = "all"
    if endpoint.campaign_id is not None:
        scope = f"campaign {endpoint.campaign_id}"
    elif endpoint.category is not None:
        scope = f"category {endpoint.category}"
    state = endpoint.state
    if endpoint.consecutive_failures:
        state += f", {endpoint.consecutive_failures} failures in a row"
    return (
        f"{endpoint.id}\t{endpoint.url}\t{','.join(endpoint.events)}\t{scope}\t{state}"
        f"\t{endpoint.pending_events} waiting"
    )


def remove(args: argparse.Namespace, settings: Settings) -> None:
    remove_endpoint(database(settings), args.id)
    print(f"webhook endpoint {args.id} removed")


def resume(args: argparse.Namespace, settings: Settings) -> None:
    endpoint = resume_endpoint(database(settings), args.id)
    print(f"webhook endpoint {endpoint.id} resumed; {endpoint.pending_events} events waiting")


def test(args: argparse.Namespace, settings: Settings) -> None:
    result = send_test_event(database(settings), settings, args.id)
    if result.status_code is None:
        raise ServiceUnavailable(f"webhook endpoint {args.id}: {result.error}")
    print(f"webhook endpoint {args.id}: HTTP {result.status_code} in {result.response_ms} ms")
    if not result.delivered:
        raise ServiceUnavailable(f"webhook endpoint {args.id}: answered HTTP {result.status_code}")
