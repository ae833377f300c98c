"""``edm dkim``: signing keys and their DNS records."""

from __future__ import annotations

import argparse

from campaigns.content.dkim import checked_dns_name
from campaigns.content.dkim_keys import dns_record, generate_private_key, write_private_key
from campaigns.core.errors import InputError
from campaigns.core.settings import Settings
from edm.command_helpers import print_json


def keygen(args: argparse.Namespace, settings: Settings) -> None:
    selector = checked_dns_name(args.selector, "--selector", InputError)
    domain = checked_dns_name(args.domain, "--domain", InputError)
    path = args.out or settings.data_dir / "dkim" / f"{selector}._domainkey.{domain}.pem"
    path = path.expanduser().resolve()
    key = generate_private_key(args.key_type)
    record = dns_record(key, selector=selector, domain=domain)
    write_private_key(key, path)
    if args.json:
        print_json(
            {
                "key_file": str(path),
                "type": args.key_type,
                "name": record.name,
                "value": record.value,
                "strings": record.strings,
            }
        )
        return
    print(f"private key written to {path} (readable by its owner only; keep it secret)")
    print("publish this DNS TXT record:")
    print(f"  name:  {record.name}")
    print(f"  value: {record.zone_value()}")
    print(
        f"then set EDM_DKIM_DOMAIN={domain} EDM_DKIM_SELECTOR={selector} EDM_DKIM_KEY_FILE={path}"
    )
