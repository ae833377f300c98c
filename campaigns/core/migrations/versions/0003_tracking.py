"""tracking: per-campaign switch, tracked links, unsubscribe time per job

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_links",
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_links_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "id", name=op.f("pk_campaign_links")),
    )
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        # Campaigns made before tracking existed keep the behaviour new ones get by default.
        batch_op.add_column(
            sa.Column("tracking", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("unsubscribed_at")
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("tracking")
    op.drop_table("campaign_links")
