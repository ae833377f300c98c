"""Job events: a unique key for events written from the tracking stream

Revision ID: 0015_job_event_keys
Revises: 0014_audience_audit
Create Date: 2026-12-03 17:00:00.000000

A tracked open or click is answered first and written later, in batches, from a Redis stream; a
batch written and then delivered again (the writer died before acknowledging it) must not count
twice. The key names the stream entry; a second insert of it does nothing. Events written
directly (bounces, complaints, unsubscribes) leave it empty, and NULLs never collide.

A nullable column and an index: nothing is rebuilt.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_job_event_keys"
down_revision = "0014_audience_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("job_events", sa.Column("event_key", sa.String(40), nullable=True))
    op.create_index("uq_job_events_event_key", "job_events", ["event_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_job_events_event_key", table_name="job_events")
    with op.batch_alter_table("job_events") as batch:
        batch.drop_column("event_key")
