"""campaign archive: a campaign that has sent can leave the default list, its history kept

Revision ID: 0012_campaign_archive
Revises: 0011_webhooks
Create Date: 2026-12-03 17:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_campaign_archive"
down_revision = "0011_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        # NULL: shown in the campaign list (every campaign made before this column is).
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("archived_at")
