"""``edm demo`` on embedded defaults: a private Redis, SQLite, a local capture server."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from campaigns.lists.sample_lists import DEMO_LIST as SAMPLE_LIST
from campaigns.lists.sample_lists import write_demo_list


def test_demo_delivers_every_valid_sample_recipient_exactly_once(tmp_path: Path) -> None:
    facts = write_demo_list(tmp_path / "expected.csv")
    assert facts.path.read_bytes() == SAMPLE_LIST.read_bytes(), "shipped sample list drifted"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("EDM_")}
    result = subprocess.run(
        [sys.executable, "-m", "edm", "demo"],
        cwd=tmp_path,
        env={**environment, "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    mail_folder = tmp_path / "edm-data" / "demo" / "mail"
    assert str(mail_folder) in result.stdout.replace("\n", "")
    recipients = Counter()
    for path in mail_folder.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        recipients[message["To"].addresses[0].addr_spec.lower()] += 1
    assert recipients == Counter(facts.valid_unique_emails)
    assert f"sent {len(facts.valid_unique_emails)}, failed 0" in result.stdout
    # The private Redis the worker started is gone with it.
    assert not (tmp_path / "edm-data" / "demo" / "redis.url").exists()
