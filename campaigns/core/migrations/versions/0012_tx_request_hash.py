"""transactional messages keep a hash of the request their idempotency key came with

Revision ID: 0012_tx_request_hash
Revises: 0010_smtp_submission
Create Date: 2026-12-03 17:00:00.000000

A nullable column: SQLite adds it in place, nothing is rebuilt. Messages recorded before it
have none, and a key of theirs reused within the day answers their id whatever the body.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_tx_request_hash"
down_revision = "0010_smtp_submission"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "transactional_messages", sa.Column("request_sha256", sa.String(64), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("transactional_messages") as batch:
        batch.drop_column("request_sha256")
