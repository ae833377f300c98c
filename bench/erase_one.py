"""How long erasing one person takes beside a large list and campaign.

``python -m bench.erase_one [--database-url postgresql://...] [--rows N] [--people P]``

Fills a fresh database (a SQLite file, or a scratch PostgreSQL database beside the one named)
with one list of N recipients and one scheduled campaign of N jobs, then erases P people one by
one (each a separate ``erase_person``, as ``edm recipients erase`` runs it) and prints the
median and worst time in ms, and the time of showing a person (``person_record``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

from bench.services import fresh_database, scratch_dir
from campaigns.audience.erasure import erase_person
from campaigns.audience.people import person_record
from campaigns.core.models import utc_now
from campaigns.core.settings import PROJECT_ROOT, Settings
from campaigns.core.storage import open_database
from campaigns.lifecycle.campaign_service import create_campaign, schedule_campaign
from campaigns.lists.importer import import_recipients

SECRET = b"bench-secret"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.erase_one")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=20)
    args = parser.parse_args()
    with ExitStack() as stack:
        folder = stack.enter_context(scratch_dir("edm-erase-bench-"))
        url = stack.enter_context(fresh_database(args.database_url, folder))
        settings = Settings(data_dir=folder, database_url=url, secret_key="bench")
        database = open_database(settings.resolved_database_url)
        csv_path = folder / "people.csv"
        with csv_path.open("w", encoding="utf-8") as out:
            out.write("email,first_name,city,plan\n")
            out.writelines(f"person{n}@example.com,P{n},Oslo,pro\n" for n in range(args.rows))
        started = time.perf_counter()
        import_recipients(database, csv_path, "everyone")
        campaign = create_campaign(
            database,
            name="Big",
            list_name="everyone",
            template="newsletter",
            from_address="news@example.com",
            templates_dir=PROJECT_ROOT / "templates",
            subject="Hello {{ first_name }}",
        )
        _fill(folder)
        schedule_campaign(database, campaign.id, send_at=utc_now())
        filled_s = time.perf_counter() - started
        step = max(1, args.rows // args.people)
        shows, erases = [], []
        for n in range(0, step * args.people, step):
            address = f"person{n}@example.com"
            begun = time.perf_counter()
            person_record(database, address)
            shows.append((time.perf_counter() - begun) * 1000)
            begun = time.perf_counter()
            erase_person(database, address, secret=SECRET, data_dir=folder, actor="bench")
            erases.append((time.perf_counter() - begun) * 1000)
        result = {
            "engine": database.engine.dialect.name,
            "rows": args.rows,
            "fill_s": round(filled_s, 1),
            "show_ms_median": round(statistics.median(shows), 1),
            "show_ms_max": round(max(shows), 1),
            "erase_ms_median": round(statistics.median(erases), 1),
            "erase_ms_max": round(max(erases), 1),
        }
        print(json.dumps(result))
        database.dispose()


def _fill(folder: Path) -> None:
    """Nothing kept in the uploads folder: the erase still looks there."""
    (folder / "uploads").mkdir(exist_ok=True)


if __name__ == "__main__":
    main()
