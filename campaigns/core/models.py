"""Database tables. The job table is the truth about every recipient of every campaign."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Integer primary keys autoincrement on SQLite only as INTEGER; BIGINT elsewhere.
BigId = BigInteger().with_variant(Integer, "sqlite")


def utc_now() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every engine (SQLite keeps no zone, so store naive UTC there)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class CampaignState(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class JobState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    TRANSMITTING = "transmitting"
    """The message's data is going to the relay: if its worker dies now, the relay may have it."""
    SENT = "sent"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    FAILED = "failed"
    UNKNOWN = "unknown"
    """The relay may or may not have accepted the message (no reply to the final '.')."""
    EXPIRED = "expired"
    """Deferred until its retry lifetime ran out."""
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"


IN_FLIGHT_JOB_STATES = (JobState.SENDING, JobState.TRANSMITTING)
PENDING_JOB_STATES = (JobState.QUEUED, *IN_FLIGHT_JOB_STATES, JobState.DEFERRED)
CLAIMABLE_JOB_STATES = (JobState.QUEUED, JobState.DEFERRED)


class RecipientList(Base):
    __tablename__ = "recipient_lists"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    field_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class Recipient(Base):
    __tablename__ = "recipients"
    __table_args__ = (
        UniqueConstraint("list_id", "email_key"),
        # Suppression checks and webhook lookups find recipients by address across lists.
        Index("ix_recipients_email_key", "email_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("recipient_lists.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))
    """Lower-cased address: the identity used for de-duplication and suppression."""
    fields: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class Suppression(Base):
    __tablename__ = "suppressions"

    email_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(200))
    list_id: Mapped[int] = mapped_column(ForeignKey("recipient_lists.id"))
    state: Mapped[str] = mapped_column(String(16), default=CampaignState.DRAFT)
    from_address: Mapped[str] = mapped_column(String(400))
    template_name: Mapped[str] = mapped_column(String(400))
    tracking: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    """Open pixel and click redirects in the HTML part; the unsubscribe link is there regardless."""
    relays: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    """Names of the configured relays the campaign may send through; None means every relay."""
    # The template is copied in: editing the files later never changes a campaign already made.
    subject_template: Mapped[str] = mapped_column(Text)
    html_template: Mapped[str] = mapped_column(Text)
    text_template: Mapped[str | None] = mapped_column(Text)
    send_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """Set when a campaign that has sent is archived: hidden from the default list, its jobs,
    events and counters kept."""


class Job(Base):
    """One recipient of one campaign: the per-recipient job."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("campaign_id", "recipient_id"),
        Index("ix_jobs_campaign_state", "campaign_id", "state"),
        Index("ix_jobs_state_next_attempt", "state", "next_attempt_at"),
        Index("ix_jobs_recipient", "recipient_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    recipient_id: Mapped[int] = mapped_column(ForeignKey("recipients.id"))
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_code: Mapped[int | None] = mapped_column(Integer)
    last_status: Mapped[str | None] = mapped_column(String(16))
    """Enhanced status code (RFC 3463), such as 5.1.1."""
    last_reply: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    first_opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_clicked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """Set by the recipient's first unsubscribe from this message: later ones are not counted."""


class EventKind(enum.StrEnum):
    """What happened to a message after the relay took it."""

    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class JobEvent(Base):
    """One thing that happened to one recipient's message: the history a person can read."""

    __tablename__ = "job_events"
    __table_args__ = (
        Index("ix_job_events_campaign_kind_time", "campaign_id", "kind", "occurred_at"),
        Index("uq_job_events_event_key", "event_key", unique=True),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    event_key: Mapped[str | None] = mapped_column(String(40), default=None)
    """Set on events written from the tracking stream (the entry's id), so one written twice
    is kept once; None on events written as they happen."""


class CampaignCounter(Base):
    """Counters kept as events arrive, so a million-recipient campaign reads them at once."""

    __tablename__ = "campaign_counters"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class JobStateCount(Base):
    """How many jobs of a campaign are in a state: kept by database triggers on the job table
    (``campaigns.jobs.state_counts`` reads and folds them), so a campaign of any size is counted
    by reading a few rows."""

    __tablename__ = "job_state_counts"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    jobs: Mapped[int] = mapped_column(BigInteger)


class JobStateDelta(Base):
    """A change to ``JobStateCount`` not folded in yet (PostgreSQL only; see
    ``campaigns.jobs.state_counts``). Insert-only, so concurrent writers never wait on each other.

    No foreign key: a campaign deleted with its jobs leaves deltas that folding drops.
    """

    __tablename__ = "job_state_deltas"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    jobs: Mapped[int] = mapped_column(BigInteger)


class CampaignLink(Base):
    """A link of a campaign's HTML part, behind its click-tracking redirect.

    The id is derived from the URL (``campaigns.tracking.links.link_id_for``), so every worker
    names a link the same way without asking the database; a link whose URL holds merge fields
    has one row per distinct URL sent.
    """

    __tablename__ = "campaign_links"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class DashboardUser(Base):
    """A person who may sign in to the dashboard (``edm users create``)."""

    __tablename__ = "dashboard_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    """argon2id, in the PHC string format (parameters and salt included)."""
    role: Mapped[str] = mapped_column(String(16))
    """admin, editor or viewer (``dashboard.roles``)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class DashboardSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a
    leaked database does not sign anyone in."""

    __tablename__ = "dashboard_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("dashboard_users.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiToken(Base):
    """A bearer token for scripts (``edm users token``); only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("dashboard_users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    """What the token is for, as its maker put it (``--name``)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """Written at most once an hour per token: a write per request would be a write per poll."""
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """None: until revoked."""


class SmtpCredential(Base):
    """A login for SMTP submission (``edm users smtp-credentials``); only the SHA-256 of its
    generated password is stored."""

    __tablename__ = "smtp_credentials"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    """The login name an application gives with AUTH."""
    password_hash: Mapped[str] = mapped_column(String(64), unique=True)
    allowed_domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Domains MAIL FROM and the From header may use (the login's own when none was given)."""
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    """Recipients accepted per minute, whatever the connection; None: no limit of its own."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ImportTask(Base):
    """A CSV uploaded to the dashboard and imported in the background, with its report."""

    __tablename__ = "import_tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    list_name: Mapped[str] = mapped_column(String(200))
    file_name: Mapped[str] = mapped_column(String(400))
    state: Mapped[str] = mapped_column(String(16))
    """``queued``, ``running``, ``done`` or ``failed`` (nothing imported; ``error`` says why)."""
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    encoding: Mapped[str | None] = mapped_column(String(40))
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("dashboard_users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SubmittedMime(Base):
    """The bytes of a message an application submitted by SMTP, kept once however many
    recipients it had (each recipient's message points here), found again by their hash."""

    __tablename__ = "submitted_mime"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class TransactionalStream(Base):
    """A category of one-to-one mail (``transactional`` and any other) and the system campaign
    whose jobs carry its messages, so they share the campaigns' claims, transmit marks, retries,
    relays, limits and bounce handling (see ``campaigns.transactional``)."""

    __tablename__ = "transactional_streams"

    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class TransactionalMessage(Base):
    """What one transactional message says, beside the job that sends it.

    Each message has a recipient list of its own, holding its one recipient (whose fields are the
    message's merge data): a recipient is unique per list and a job per campaign and recipient,
    while a stream mails the same address many times.
    """

    __tablename__ = "transactional_messages"
    __table_args__ = (UniqueConstraint("idempotency_scope", "idempotency_key"),)

    job_id: Mapped[int] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    """The message id callers see: job ids are sequential and would let one guess others."""
    list_id: Mapped[int] = mapped_column(
        ForeignKey("recipient_lists.id", ondelete="CASCADE"), index=True
    )
    category: Mapped[str] = mapped_column(String(32))
    idempotency_scope: Mapped[str] = mapped_column(String(64))
    """Whose keys these are: ``user:<id>`` for an API token's owner, ``cli`` for ``edm send``."""
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    """Cleared once older than a day, when the same key comes again (so it can be used anew)."""
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    """Of the request as recorded (``request_fingerprint``): the same key with another request
    is refused instead of answered with this message's id. None for messages older than it."""
    from_address: Mapped[str] = mapped_column(String(400))
    reply_to: Mapped[str | None] = mapped_column(String(400))
    to_name: Mapped[str | None] = mapped_column(String(200))
    template_name: Mapped[str | None] = mapped_column(String(64))
    subject_template: Mapped[str] = mapped_column(Text)
    html_template: Mapped[str] = mapped_column(Text)
    text_template: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    track: Mapped[bool] = mapped_column(Boolean, default=False)
    attachments: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    """``filename``, ``content_type`` and ``content`` (base64) of each attachment."""
    raw_mime: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The whole message as an application submitted it by SMTP, kept byte for byte; the
    template columns are empty then. None for a message made from a template or inline parts,
    and for one submitted since ``mime_id`` (its bytes are there, shared by its recipients)."""
    mime_id: Mapped[int | None] = mapped_column(ForeignKey("submitted_mime.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class WebhookEndpoint(Base):
    """A URL that delivery events are POSTed to (``edm webhooks add``), signed with its secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(100))
    """Kept as is: signing needs it. Shown to a person once, when the endpoint is made."""
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    """Only this campaign's (or stream's) events; None with no ``category``: every event."""
    category: Mapped[str | None] = mapped_column(String(32))
    """Only this transactional category's events."""
    state: Mapped[str] = mapped_column(String(16), default="active")
    """``active`` or ``paused`` (failed every attempt for ``outgoing_webhook_pause_after_s``)."""
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When the next POST may go, after a failure; None: at once."""
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """One deliverer at a time per endpoint, which keeps its events in order."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class WebhookOutboxEvent(Base):
    """An event still to be delivered to one endpoint, written in the transaction that records
    the event, so a process that dies afterwards loses nothing. Deleted once delivered."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (Index("ix_webhook_outbox_endpoint_id", "endpoint_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    """Also the delivery order: an endpoint gets its events in the order they were written."""
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36))
    """The ``id`` the receiver sees: the same on every retry, and for every endpoint."""
    kind: Mapped[str] = mapped_column(String(16))
    job_id: Mapped[int] = mapped_column(BigInteger)
    campaign_id: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class WebhookAttempt(Base):
    """One POST to an endpoint, for its delivery log (the newest ``ATTEMPTS_KEPT`` are kept)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_endpoint_id", "endpoint_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    attempted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    events: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    """The receiver's HTTP status; None when no answer came (``error`` says why)."""
    response_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(300))


class AuditEntry(Base):
    """Who did what to people's data, and when (``edm recipients erase``, exports): never the
    address itself, so the log of an erasure does not undo it."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(400))
    """``user:<id> <email>`` for a dashboard account, ``cli:<login>`` for the command line."""
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Counts of what the action touched."""
