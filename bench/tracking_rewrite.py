"""What click and open tracking adds to each message, beside rendering and building it.

Run: ``.venv/bin/python -m bench.tracking_rewrite``. Uses the ``newsletter`` template (about
9 KB of HTML once rendered, five tracked links); links are taken as registered already, as they
are for every message after a campaign's first in a worker process.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from campaigns.content.message import MessageSkeleton
from campaigns.content.templating import CompiledTemplate, load_template
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.tracking.links import LinkTracker
from campaigns.tracking.message_pipeline import render_context
from campaigns.tracking.routes import unsubscribe_url

BASE_URL = "https://mail.bench.example"
SECRET = b"bench-secret"
FIELDS = {"first_name": "Ana", "city": "Lisbon", "plan": "Pro"}


def per_call_us(function: Callable[[int], object], calls: int) -> float:
    """Best of five runs, in microseconds per call."""
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for index in range(calls):
            function(index)
        runs.append((time.perf_counter() - started) / calls)
    return min(runs) * 1e6


def main() -> None:
    compiled = CompiledTemplate(load_template("newsletter", Settings().resolved_templates_dir))
    link = unsubscribe_url(BASE_URL, SECRET, 1)
    context = render_context(
        campaign_name="News", email="ana@example.com", fields=FIELDS, unsubscribe_url=link
    )
    rendered = compiled.render(context)
    # rewrite() never touches the database; an in-memory one is only there to be handed over.
    tracker = LinkTracker(
        database=Database("sqlite://"), campaign_id=1, base_url=BASE_URL, secret=SECRET
    )
    _, links = tracker.rewrite(rendered.html, job_id=1)
    tracker._registered.update(links)
    skeleton = MessageSkeleton(from_address="News <news@example.com>", campaign_uuid="bench")
    print(f"rendered HTML: {len(rendered.html.encode())} bytes, {len(links)} tracked links")
    rewrite = per_call_us(lambda i: tracker.rewrite(rendered.html, job_id=i), 2000)
    render = per_call_us(lambda i: compiled.render(context), 300)
    build = per_call_us(
        lambda i: skeleton.build(
            job_id=i, to_address="ana@example.com", rendered=rendered, unsubscribe_url=link
        ),
        2000,
    )
    print(f"tracking (pixel + links): {rewrite:6.1f} us/message")
    print(f"render (Jinja + CSS):     {render:6.1f} us/message")
    print(f"build message bytes:      {build:6.1f} us/message")


if __name__ == "__main__":
    main()
