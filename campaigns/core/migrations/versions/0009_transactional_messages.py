"""transactional messages: streams of one-to-one mail carried by jobs of a system campaign

Revision ID: 0009_transactional_messages
Revises: 0008_account_roles
Create Date: 2026-11-29 12:00:00.000000

New tables only: nothing existing is rebuilt (on SQLite a rebuilt ``jobs`` would lose its
triggers, and a rebuilt parent table would cascade its deletes).
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_transactional_messages"
down_revision = "0008_account_roles"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "transactional_streams",
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("campaign_id", BigId, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name="fk_transactional_streams_campaign_id_campaigns",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("category", name="pk_transactional_streams"),
        sa.UniqueConstraint("campaign_id", name="uq_transactional_streams_campaign_id"),
    )
    op.create_table(
        "transactional_messages",
        sa.Column("job_id", BigId, nullable=False, autoincrement=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("list_id", BigId, nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("idempotency_scope", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("from_address", sa.String(400), nullable=False),
        sa.Column("reply_to", sa.String(400), nullable=True),
        sa.Column("to_name", sa.String(200), nullable=True),
        sa.Column("template_name", sa.String(64), nullable=True),
        sa.Column("subject_template", sa.Text(), nullable=False),
        sa.Column("html_template", sa.Text(), nullable=False),
        sa.Column("text_template", sa.Text(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("track", sa.Boolean(), nullable=False),
        sa.Column("attachments", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name="fk_transactional_messages_job_id_jobs",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["recipient_lists.id"],
            name="fk_transactional_messages_list_id_recipient_lists",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", name="pk_transactional_messages"),
        sa.UniqueConstraint("uuid", name="uq_transactional_messages_uuid"),
        sa.UniqueConstraint(
            "idempotency_scope",
            "idempotency_key",
            name="uq_transactional_messages_idempotency_scope_idempotency_key",
        ),
    )
    op.create_index("ix_transactional_messages_list_id", "transactional_messages", ["list_id"])


def downgrade() -> None:
    op.drop_index("ix_transactional_messages_list_id", table_name="transactional_messages")
    op.drop_table("transactional_messages")
    op.drop_table("transactional_streams")
