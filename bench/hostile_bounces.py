"""How long the worst messages we know take to read at the bounce address, before and after.

    python -m bench.hostile_bounces                          # this checkout only
    python -m bench.hostile_bounces --before ../main         # and another checkout's parser
    python -m bench.hostile_bounces --scale 4 --budget-s 120

Each message (``tests/hostile_mail.py``) is read by ``read_mail`` in a process of its own, killed
after ``--budget-s`` of wall time: the slow paths run inside single regex calls in C, which no
alarm interrupts. ``--before`` reads with that checkout's ``campaigns`` package first on the path
(same interpreter and libraries). "isolated" is this checkout's read in its CPU-limited child,
fork included (the fork server already started), as ``edm bounces serve`` and ``poll`` do it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from campaigns.bounces.isolated_reading import read_mail_isolated
from campaigns.bounces.reading_limits import MailTooCostly
from tests.hostile_mail import HOSTILE_MESSAGES

PROJECT_ROOT = Path(__file__).resolve().parents[1]
_READ_ONE = """
import sys, time
sys.path.insert(0, sys.argv[1])
from campaigns.bounces.reading import read_mail
raw = open(sys.argv[2], "rb").read()
started = time.perf_counter()
try:
    outcome = str(read_mail(raw).kind)
except Exception as error:
    outcome = type(error).__name__
print(f"{time.perf_counter() - started:.3f} {outcome}")
"""


def read_in_process_of_its_own(checkout: Path, message: Path, budget_s: float) -> str:
    try:
        result = subprocess.run(
            [sys.executable, "-c", _READ_ONE, str(checkout), str(message)],
            capture_output=True,
            text=True,
            timeout=budget_s,
        )
    except subprocess.TimeoutExpired:
        return f"> {budget_s:g} s (stopped)"
    if result.returncode != 0:
        return f"crashed: {(result.stderr.strip().splitlines() or ['?'])[-1]}"
    seconds, outcome = result.stdout.split(maxsplit=1)
    return f"{float(seconds):.2f} s {outcome.strip()}"


def read_isolated(raw: bytes) -> str:
    started = time.perf_counter()
    try:
        outcome = str(read_mail_isolated(raw).kind)
    except MailTooCostly:
        outcome = "MailTooCostly"
    return f"{time.perf_counter() - started:.2f} s {outcome}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile_bounces")
    parser.add_argument("--before", type=Path, help="a checkout whose parser to time too")
    parser.add_argument("--scale", type=int, default=1, help="size factor of the messages")
    parser.add_argument("--budget-s", type=float, default=60.0, help="wall time per read")
    args = parser.parse_args(argv)
    columns = ["message", "MB", *(["before"] if args.before else []), "after", "isolated"]
    print(" | ".join(columns))
    read_isolated(b"Subject: warm-up\r\n\r\n")  # starts the fork server, once per process
    with tempfile.TemporaryDirectory() as folder:
        for hostile in HOSTILE_MESSAGES:
            raw = hostile.build(args.scale)
            path = Path(folder) / "message.eml"
            path.write_bytes(raw)
            row = [hostile.name, f"{len(raw) / 1e6:.1f}"]
            if args.before:
                row.append(read_in_process_of_its_own(args.before, path, args.budget_s))
            row.append(read_in_process_of_its_own(PROJECT_ROOT, path, args.budget_s))
            row.append(read_isolated(raw))
            print(" | ".join(row), flush=True)


if __name__ == "__main__":
    main()
