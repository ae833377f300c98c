"""transactional messages keep a hash of their request, and share a submitted message's bytes

Revision ID: 0013_tx_hash_and_shared_mime
Revises: 0012_campaign_archive
Create Date: 2026-12-03 17:00:00.000000

``request_sha256``: messages recorded before it have none, and a key of theirs reused within
the day answers their id whatever the body. ``submitted_mime``: the bytes of a message
submitted by SMTP, once for all its recipients (``transactional_messages.mime_id``); messages
recorded before it keep theirs in ``raw_mime``.
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_tx_hash_and_shared_mime"
down_revision = "0012_campaign_archive"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "submitted_mime",
        sa.Column("id", BigId, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_submitted_mime"),
        sa.UniqueConstraint("sha256", name="uq_submitted_mime_sha256"),
    )
    with op.batch_alter_table("transactional_messages") as batch:
        batch.add_column(sa.Column("request_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("mime_id", sa.BigInteger(), nullable=True))
        batch.create_foreign_key(
            "fk_transactional_messages_mime_id_submitted_mime",
            "submitted_mime",
            ["mime_id"],
            ["id"],
        )
        batch.create_index("ix_transactional_messages_mime_id", ["mime_id"])


def downgrade() -> None:
    with op.batch_alter_table("transactional_messages") as batch:
        batch.drop_index("ix_transactional_messages_mime_id")
        batch.drop_constraint(
            "fk_transactional_messages_mime_id_submitted_mime", type_="foreignkey"
        )
        batch.drop_column("mime_id")
        batch.drop_column("request_sha256")
    op.drop_table("submitted_mime")
