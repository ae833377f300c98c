"""DKIM signatures checked by an independent verifier (dkimpy), against the DNS record that
``edm dkim keygen`` prints.

Here: the CLI, worker start-up and delivery to a real SMTP server; signing alone is in
tests/unit/test_dkim.py."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from campaigns.content.dkim_keys import load_private_key, signer_from_settings
from campaigns.core.errors import ConfigError
from campaigns.core.models import utc_now
from campaigns.core.settings import Settings
from campaigns.core.storage import Database
from campaigns.lifecycle.campaign_service import create_campaign, schedule_campaign
from campaigns.lists.importer import import_recipients
from tests.conftest import run_edm
from tests.delivery_helpers import deliver, delivery_context, publish_due_jobs
from tests.dkim_helpers import DOMAIN, SELECTOR, PublishedKey, keygen, plain_env
from tests.smtp_server import RecordingSmtpServer


@pytest.fixture(scope="module", params=["rsa", "ed25519"])
def published(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    return keygen(tmp_path_factory.mktemp("keys"), request.param)


def test_keygen_writes_an_owner_only_key_and_never_overwrites(tmp_path: Path) -> None:
    key = keygen(tmp_path, "ed25519")
    assert stat.S_IMODE(key.key_file.stat().st_mode) == 0o600
    assert key.name == f"{SELECTOR}._domainkey.{DOMAIN}"
    assert key.txt.startswith(b"v=DKIM1; k=ed25519; p=")
    before = key.key_file.read_bytes()

    again = run_edm(
        ["dkim", "keygen", "--selector", SELECTOR, "--domain", DOMAIN, "--out", str(key.key_file)],
        plain_env(tmp_path),
    )
    assert again.returncode != 0
    assert again.stderr.strip().count("\n") == 0
    assert "already exists" in again.stderr
    assert key.key_file.read_bytes() == before
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_file()) == ["ed25519.pem"]


def test_rsa_record_is_split_into_dns_strings(tmp_path: Path) -> None:
    key = keygen(tmp_path, "rsa")
    assert key.txt.startswith(b"v=DKIM1; k=rsa; p=MII")
    assert len(key.txt) > 255  # so the printed value had to be split into several strings


def _ec_key_file(path: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "no such file"),
        (b"not a key", "not a PEM private key"),
        ("ec", "not an RSA or Ed25519 key"),
        ("encrypted", "encrypted"),
    ],
)
def test_an_unusable_key_file_is_a_one_line_config_error(
    tmp_path: Path, content: bytes | str | None, needle: str
) -> None:
    path = tmp_path / "key.pem"
    if content == "ec":
        _ec_key_file(path)
    elif content == "encrypted":
        key = load_private_key(keygen(tmp_path, "ed25519").key_file)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
    elif isinstance(content, bytes):
        path.write_bytes(content)
    settings = Settings(dkim_domain=DOMAIN, dkim_selector=SELECTOR, dkim_key_file=str(path))
    with pytest.raises(ConfigError) as raised:
        signer_from_settings(settings)
    assert needle in str(raised.value)
    assert str(path) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_worker_with_a_missing_key_file_stops_at_start_with_one_line(
    edm_env: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.pem"
    environment = {
        **edm_env,
        "EDM_DKIM_DOMAIN": DOMAIN,
        "EDM_DKIM_SELECTOR": SELECTOR,
        "EDM_DKIM_KEY_FILE": str(missing),
    }
    result = run_edm(["worker", "--concurrency=1"], environment, timeout_s=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(missing) in lines[0]


def _campaign_job_ids(database: Database, tmp_path: Path) -> list[int]:
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("email,first_name\nana@example.org,Ana\nbo@example.org,Bö\n")
    import_recipients(database, csv_path, "people")
    template = tmp_path / "template"
    template.mkdir()
    (template / "subject.txt").write_text("Grüße, {{ first_name }}")
    (template / "body.html").write_text("<p>Hallo {{ first_name }}</p>")
    campaign = create_campaign(
        database,
        name="Signed",
        list_name="people",
        template=str(template),
        from_address="Zoë <news@example.com>",
        templates_dir=tmp_path,
    )
    schedule_campaign(database, campaign.id, send_at=utc_now())
    return publish_due_jobs(database)


def test_a_delivered_message_arrives_signed_and_verifies(
    published: PublishedKey, database: Database, redis_url: str, tmp_path: Path
) -> None:
    job_ids = _campaign_job_ids(database, tmp_path)
    with RecordingSmtpServer() as server:
        context = delivery_context(
            database,
            server,
            redis_url,
            dkim_domain=DOMAIN,
            dkim_selector=SELECTOR,
            dkim_key_file=str(published.key_file),
        )
        deliver(context, job_ids)
        messages = list(server.messages)
    assert sorted(rcpt for message in messages for rcpt in message.rcpt_tos) == [
        "ana@example.org",
        "bo@example.org",
    ]
    for message in messages:
        assert message.data.startswith(b"DKIM-Signature: v=1; a=")
        assert published.verifies(message.data)
