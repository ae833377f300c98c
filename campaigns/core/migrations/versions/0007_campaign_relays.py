"""campaign relays: the relays a campaign may send through, chosen when it is created

Revision ID: 0007_campaign_relays
Revises: 0006_job_state_counts
Create Date: 2026-11-28 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_campaign_relays"
down_revision = "0006_job_state_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        # NULL: every configured relay, by weight (what campaigns made before this column did).
        batch_op.add_column(sa.Column("relays", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaigns", schema=None) as batch_op:
        batch_op.drop_column("relays")
