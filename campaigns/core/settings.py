"""Settings from environment variables, over an optional TOML config file, over defaults.

Every variable is ``EDM_<NAME>``; the config file (``EDM_CONFIG``, else ``./edm.toml`` when present)
uses the same names in lower case without the prefix.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from campaigns.core.errors import ConfigError
from campaigns.core.private_files import create_private_file, make_private_directory
from campaigns.core.templates_location import default_templates_dir

PROJECT_ROOT = Path(__file__).resolve().parents[2]
UNKNOWN_POLICIES = ("hold", "retry")
OPTIONAL_PATH_SETTINGS = frozenset({"templates_dir"})


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("edm-data")
    database_url: str = ""
    """SQLAlchemy URL; empty means a SQLite file in ``data_dir``."""
    redis_url: str = ""
    """Empty means a private Redis that ``edm worker`` and ``edm demo`` start themselves."""
    smtp_url: str = "smtp://localhost:25"
    base_url: str = "http://localhost:8000"
    """Public URL of the tracking and unsubscribe endpoints; use https in production."""
    secret_key: str = ""
    """Signs return-path and unsubscribe tokens; empty means one generated into ``data_dir``."""
    bounce_domain: str = ""
    """Domain of the per-job return path; empty means the sender's domain."""
    complaints_address: str = ""
    """A feedback-loop address (ARF reports) that ``edm bounces serve`` accepts besides
    ``bounces+*@``; empty means none."""
    complaint_reporter_domains: str = ""
    """Comma-separated domains (and their subdomains) whose DKIM-signed ARF reports count even
    when they return no Message-ID of ours (a redacted report): the mailbox providers whose
    feedback loops you joined. Empty: a complaint counts only with our signed Message-ID."""
    bounce_mailbox_url: str = ""
    """``imaps://user:pass@host/INBOX`` (or imap, pop3, pop3s) that ``edm bounces poll`` reads
    when given no ``--url-file``; kept out of the command line, which ``ps`` shows to everyone."""
    soft_bounce_limit: int = 3
    """Soft bounces of one address within ``soft_bounce_days`` that suppress it."""
    soft_bounce_days: float = 7.0
    ses_topic_arns: str = ""
    """Comma-separated SNS topic ARNs whose SES notifications are accepted; empty turns the SES
    webhook off."""
    sendgrid_webhook_public_key: str = ""
    """Base64 ECDSA public key of SendGrid's signed Event Webhook; empty turns the SendGrid
    webhook off."""
    mailgun_signing_key: str = ""
    """Mailgun's webhook signing key; empty turns the Mailgun webhook off."""
    postmark_webhook_auth: str = ""
    """``user:password`` Postmark sends as basic auth."""
    postmark_webhook_token: str = ""
    """A secret Postmark sends as ``?token=``; with neither, the Postmark webhook is off."""
    webhook_max_bytes: int = 1024 * 1024
    """Largest webhook body accepted; a larger one is answered 413 before it is read whole."""
    dkim_domain: str = ""
    """``d=`` of the DKIM signature; with a selector and a key file every message is signed."""
    dkim_selector: str = ""
    dkim_key_file: str = ""
    """PEM private key (RSA or Ed25519), as ``edm dkim keygen`` writes it."""
    sender_domains: str = ""
    """Comma-separated domains a dashboard test message may be sent From; empty means
    ``dkim_domain`` alone, and with neither, test messages are refused."""
    blocked_domains: str = ""
    """Comma-separated domains (and their subdomains) never imported into a list and never
    mailed; see ``campaigns.lists.blocked_domains``."""
    event_retention_days: float = 0.0
    """``edm maintenance prune`` drops events and relay reply texts older than this; 0 keeps
    them for ever."""
    templates_dir: Path | None = None
    """The email templates folder; none means the checkout's ``templates/``, or in an installed
    copy ``data_dir/templates`` filled with the examples on first use (see
    ``resolved_templates_dir``)."""
    template_render_cpu_s: float = 2.0
    """CPU time a preview, test send or scheduling check may spend rendering one message."""
    batch_size: int = 500
    smtp_connections: int = 16
    """Connections each worker process keeps open to the relay. Each send waits for its
    transmit mark to be committed before the data goes; with many connections those waits
    overlap and share transactions (bench 1x2 on SQLite: 4 connections 1,150 msg/s, 8 1,400,
    16 1,550). A relay's ``max_connections`` caps it."""
    send_rate: float = 0.0
    """Messages per second across every worker and relay together; 0 means no limit."""
    relay_cooloff_s: float = 30.0
    """A relay that refused a connection is left out this long, its share going to the others."""
    smtp_timeout_s: float = 60.0
    smtp_data_timeout_s: float = 600.0
    """How long to wait for the reply to the final '.', as RFC 5321 suggests."""
    lease_s: float = 120.0
    """How long a claimed job stays with its worker without a renewal before others may take it."""
    redispatch_after_s: float = 60.0
    """A job published this long ago and still unclaimed is published again (a lost message)."""
    dispatch_interval_s: float = 0.5
    max_queued_batches: int = 8
    """Backpressure: the dispatcher keeps at most this many batches waiting in the broker."""
    retry_first_delay_s: float = 300.0
    retry_max_delay_s: float = 4 * 3600.0
    retry_lifetime_s: float = 3 * 86400.0
    """A job still deferred this long after its first attempt ends as ``expired``."""
    unknown_policy: str = "hold"
    """A message with no reply to its final '.': ``hold`` it as ``unknown`` for a person to
    decide, or ``retry`` it like a 4xx (never lost, but the recipient may get it twice)."""
    login_failure_limit: int = 10
    """Failed dashboard sign-ins per client address within ``login_failure_window_s``; further
    attempts from that address are refused until the window ends."""
    login_failure_window_s: float = 900.0
    """Also how long an account's count of failures is kept after its last failure."""
    login_delay_after_failures: int = 5
    """Failures of one account after which each further attempt must wait (any address)."""
    login_delay_first_s: float = 2.0
    """The first wait; each further failure doubles it, up to ``login_delay_max_s``."""
    login_delay_max_s: float = 60.0
    max_upload_bytes: int = 200_000_000
    """The largest request body the dashboard accepts, a CSV upload above all (multipart framing
    included). A million-row CSV of an address and a few merge fields is about 100 MB; twice
    that leaves room for wide rows. Bigger lists: ``edm lists import`` reads a file in place."""
    tracking_max_in_flight: int = 256
    """Requests one tracking process handles at once before open pixels are answered 503 (a
    mail client fetches the image again later); clicks and unsubscribes are never refused."""
    tracking_claim_after_s: float = 30.0
    """A queued tracking event handed to a writer that has not acknowledged it this long (its
    process died) is taken over by another writer."""
    tx_from_address: str = ""
    """Sender of one-to-one mail (``POST /api/tx``, ``edm send``) whose request names none."""
    tx_max_attachment_bytes: int = 10_000_000
    """Attachments of one transactional message, decoded, in all."""
    tx_processes: int = 1
    """Worker processes of ``edm worker`` that take only transactional mail, so it never waits
    behind campaign batches; 0 leaves it to the campaign processes (which take it first)."""
    submit_tls_cert: str = ""
    """PEM certificate (chain) ``edm submit serve`` offers with STARTTLS; with its key, AUTH is
    possible from anywhere, else only from loopback (when ``submit_auth_on_loopback``)."""
    submit_tls_key: str = ""
    submit_auth_on_loopback: bool = True
    """Accept AUTH without TLS from 127.0.0.1/::1 (an application on the same host)."""
    submit_max_message_bytes: int = 10_000_000
    """The largest message ``edm submit serve`` accepts (SIZE, and counted while reading)."""
    submit_max_recipients: int = 20
    """Per SMTP transaction: each recipient is a message of its own, stored with its copy."""
    outgoing_webhook_allow_private: bool = False
    """Let webhook endpoints be on loopback or private addresses (a receiver on the same host or
    network); off, events go only to public addresses (``campaigns.webhooks.destinations``)."""
    outgoing_webhook_timeout_s: float = 10.0
    """Connecting to and hearing from a webhook receiver, each."""
    outgoing_webhook_batch_size: int = 100
    """Events in one POST at most, when that many are waiting for an endpoint."""
    outgoing_webhook_retry_first_s: float = 5.0
    """The wait after an endpoint's first failure; it doubles with each further one."""
    outgoing_webhook_retry_max_s: float = 3600.0
    outgoing_webhook_pause_after_s: float = 86400.0
    """An endpoint whose every attempt failed for this long is paused (its events are kept)."""
    outgoing_webhook_interval_s: float = 0.5
    """How often an idle deliverer looks for events."""
    queue_name: str = "edm-delivery"
    """Celery queue; also the installation's ``redis_namespace``."""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.unknown_policy not in UNKNOWN_POLICIES:
            raise ConfigError(
                f"EDM_UNKNOWN_POLICY: expected hold or retry, got {self.unknown_policy!r}"
            )
        if self.login_failure_limit < 1:
            raise ConfigError(
                f"EDM_LOGIN_FAILURE_LIMIT: at least 1, got {self.login_failure_limit!r}"
            )
        if self.login_delay_after_failures < 1:
            raise ConfigError(
                "EDM_LOGIN_DELAY_AFTER_FAILURES: at least 1, got "
                f"{self.login_delay_after_failures!r}"
            )
        if not 0 < self.login_delay_first_s <= self.login_delay_max_s:
            raise ConfigError(
                f"EDM_LOGIN_DELAY_FIRST_S: greater than 0 and at most EDM_LOGIN_DELAY_MAX_S "
                f"({self.login_delay_max_s!r}), got {self.login_delay_first_s!r}"
            )
        if self.webhook_max_bytes < 1:
            raise ConfigError(f"EDM_WEBHOOK_MAX_BYTES: at least 1, got {self.webhook_max_bytes!r}")
        if self.login_failure_window_s <= 0:
            raise ConfigError(
                f"EDM_LOGIN_FAILURE_WINDOW_S: must be greater than 0, got "
                f"{self.login_failure_window_s!r}"
            )
        if self.template_render_cpu_s <= 0:
            raise ConfigError(
                f"EDM_TEMPLATE_RENDER_CPU_S: must be greater than 0, got "
                f"{self.template_render_cpu_s!r}"
            )

        if self.tx_processes < 0:
            raise ConfigError(f"EDM_TX_PROCESSES: 0 or more, got {self.tx_processes!r}")
        if self.submit_max_message_bytes < 1 or self.submit_max_recipients < 1:
            raise ConfigError(
                "EDM_SUBMIT_MAX_MESSAGE_BYTES and EDM_SUBMIT_MAX_RECIPIENTS: at least 1, got "
                f"{self.submit_max_message_bytes!r} and {self.submit_max_recipients!r}"
            )
        if bool(self.submit_tls_cert) != bool(self.submit_tls_key):
            raise ConfigError("EDM_SUBMIT_TLS_CERT and EDM_SUBMIT_TLS_KEY: set both or neither")
        self._check_outgoing_webhooks()
        if self.max_upload_bytes < 1:
            raise ConfigError(f"EDM_MAX_UPLOAD_BYTES: at least 1, got {self.max_upload_bytes!r}")
        self._check_audience_settings()

    def _check_audience_settings(self) -> None:
        if self.event_retention_days < 0:
            raise ConfigError(
                f"EDM_EVENT_RETENTION_DAYS: 0 or more, got {self.event_retention_days!r}"
            )
        self.blocked_domain_set()

    def _check_outgoing_webhooks(self) -> None:
        if self.outgoing_webhook_batch_size < 1 or self.outgoing_webhook_timeout_s <= 0:
            raise ConfigError(
                "EDM_OUTGOING_WEBHOOK_BATCH_SIZE and EDM_OUTGOING_WEBHOOK_TIMEOUT_S: more than 0, "
                f"got {self.outgoing_webhook_batch_size!r} and {self.outgoing_webhook_timeout_s!r}"
            )
        if not 0 < self.outgoing_webhook_retry_first_s <= self.outgoing_webhook_retry_max_s:
            raise ConfigError(
                "EDM_OUTGOING_WEBHOOK_RETRY_FIRST_S: more than 0 and at most "
                f"EDM_OUTGOING_WEBHOOK_RETRY_MAX_S ({self.outgoing_webhook_retry_max_s!r}), got "
                f"{self.outgoing_webhook_retry_first_s!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config_path = environ.get("EDM_CONFIG", "")
        if not config_path and Path("edm.toml").is_file():
            config_path = "edm.toml"
        if config_path:
            values.update(_read_config_file(Path(config_path)))
        known = {f.name for f in fields(cls)} - {"extra"}
        for name in known:
            env_value = environ.get(f"EDM_{name.upper()}")
            if env_value is not None and env_value != "":
                values[name] = env_value
        unknown = set(values) - known
        settings = cls(**{k: _coerce(k, v) for k, v in values.items() if k in known})
        return replace(settings, extra={k: values[k] for k in unknown})

    @property
    def redis_namespace(self) -> str:
        """Prefix of every Redis key the installation keeps (see ``workers.redis_keys``): the
        queue name, so installations that share a Redis keep apart by choosing queues apart."""
        return self.queue_name

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'edm.sqlite3').resolve()}"

    def blocked_domain_set(self) -> frozenset[str]:
        """``blocked_domains`` as lower-case domains; raises ConfigError naming a bad one."""
        domains = set()
        for raw in self.blocked_domains.split(","):
            domain = raw.strip().lower().strip(".")
            if not raw.strip():
                continue
            if not domain or "@" in domain or any(ch.isspace() for ch in domain):
                raise ConfigError(f"EDM_BLOCKED_DOMAINS: {raw.strip()!r} is not a domain")
            domains.add(domain)
        return frozenset(domains)

    @property
    def complaint_reporter_domain_list(self) -> tuple[str, ...]:
        return tuple(
            domain.strip().lower().rstrip(".")
            for domain in self.complaint_reporter_domains.split(",")
            if domain.strip()
        )

    @functools.cached_property
    def resolved_templates_dir(self) -> Path:
        """The templates folder read and written; never inside the installed package."""
        if self.templates_dir is not None:
            return self.templates_dir
        return default_templates_dir(self.data_dir, PROJECT_ROOT)

    @functools.cached_property
    def secret(self) -> bytes:
        # Cached: every message signs tokens with it, and without EDM_SECRET_KEY it is a file.
        if self.secret_key:
            return self.secret_key.encode()
        return _data_dir_secret(self.data_dir)


def normalise_database_url(url: str) -> str:
    """Point plain ``postgresql://`` URLs at psycopg 3, the driver this project installs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _coerce(name: str, value: Any) -> Any:
    default = Settings.__dataclass_fields__[name].default
    try:
        if isinstance(default, bool):
            return str(value).lower() in {"1", "true", "yes", "on"}
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, Path) or name in OPTIONAL_PATH_SETTINGS:
            return Path(value).expanduser()
    except ValueError:
        raise ConfigError(f"EDM_{name.upper()}: expected a number, got {value!r}") from None
    return str(value)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as config_file:
            return tomllib.load(config_file)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from None


def _data_dir_secret(data_dir: Path) -> bytes:
    path = data_dir / "secret.key"
    if not path.exists():
        make_private_directory(data_dir)
        candidate = data_dir / f".secret.key.{os.getpid()}"
        # Left behind by a crashed process that had this pid; the file must be new to be private.
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
        with create_private_file(candidate) as key_file:
            key_file.write(secrets.token_hex(32).encode())
        # link() fails if the key exists: two processes starting at once end up sharing one key.
        with contextlib.suppress(FileExistsError):
            os.link(candidate, path)
        candidate.unlink()
    return path.read_text().strip().encode()
