"""SMTP submission: credentials for applications, and messages kept as raw MIME

Revision ID: 0010_smtp_submission
Revises: 0009_transactional_messages
Create Date: 2026-12-03 15:00:00.000000

A new table and a nullable column: SQLite adds the column in place, nothing is rebuilt.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_smtp_submission"
down_revision = "0009_transactional_messages"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "smtp_credentials",
        sa.Column("id", BigId, nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(64), nullable=False),
        sa.Column("allowed_domains", sa.JSON(), nullable=False),
        sa.Column("rate_per_minute", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_smtp_credentials"),
        sa.UniqueConstraint("password_hash", name="uq_smtp_credentials_password_hash"),
    )
    op.create_index("ix_smtp_credentials_email", "smtp_credentials", ["email"])
    op.add_column("transactional_messages", sa.Column("raw_mime", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transactional_messages") as batch:
        batch.drop_column("raw_mime")
    op.drop_index("ix_smtp_credentials_email", table_name="smtp_credentials")
    op.drop_table("smtp_credentials")
