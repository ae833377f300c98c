"""account roles: a role per dashboard user; a name and an expiry per API token

Revision ID: 0008_account_roles
Revises: 0007_campaign_relays
Create Date: 2026-12-03 12:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_account_roles"
down_revision = "0007_campaign_relays"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every account made before roles could do everything: it stays able to, as an admin.
    # SQLite adds a NOT NULL column only with a default, and dropping that default would copy
    # the table; elsewhere it is dropped so that a new account always names its role.
    with op.batch_alter_table("dashboard_users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("role", sa.String(length=16), nullable=False, server_default="admin")
        )
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("dashboard_users", "role", server_default=None)
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("name", sa.String(length=100), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("name")
    with op.batch_alter_table("dashboard_users", schema=None) as batch_op:
        batch_op.drop_column("role")
