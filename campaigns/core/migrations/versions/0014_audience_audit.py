"""The audit log of actions on people's data (export, erase)

Revision ID: 0014_audience_audit
Revises: 0013_tx_hash_and_shared_mime
Create Date: 2026-12-03 17:00:00.000000

A new table only: nothing is rebuilt.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_audience_audit"
down_revision = "0013_tx_hash_and_shared_mime"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column("id", BigId, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(400), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_entries"),
    )
    op.create_index("ix_audit_entries_occurred_at", "audit_entries", ["occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_entries_occurred_at", table_name="audit_entries")
    op.drop_table("audit_entries")
