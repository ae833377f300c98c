"""jobs by state per campaign, kept by triggers

Revision ID: 0006_job_state_counts
Revises: 0005_dashboard
Create Date: 2026-11-27 18:00:00.000000

Triggers on ``jobs``, so no code path that changes a job's state can forget to count it:

- SQLite has row triggers only, and one writer at a time: each changed row adjusts
  ``job_state_counts`` directly.
- PostgreSQL: statement triggers read the statement's transition tables and insert one
  aggregated row per (campaign, state) into ``job_state_deltas``. Insert-only, so concurrent
  transactions never wait on (or deadlock over) a shared counter row; the dispatcher folds the
  deltas into ``job_state_counts`` (``campaigns.jobs.state_counts``).

Existing jobs are counted here, in the same transaction that creates the triggers (on
PostgreSQL, creating a trigger blocks writes to ``jobs`` until commit, so none is missed).

A later migration that rebuilds ``jobs`` on SQLite (``batch_alter_table`` copies the table)
drops these triggers with the old table and must create them again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_job_state_counts"
down_revision = "0005_dashboard"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER jobs_count_states_on_insert AFTER INSERT ON jobs
    BEGIN
        INSERT INTO job_state_counts (campaign_id, state, jobs)
        VALUES (NEW.campaign_id, NEW.state, 1)
        ON CONFLICT (campaign_id, state) DO UPDATE SET jobs = job_state_counts.jobs + 1;
    END
    """,
    """
    CREATE TRIGGER jobs_count_states_on_update AFTER UPDATE OF state, campaign_id ON jobs
    WHEN OLD.state IS NOT NEW.state OR OLD.campaign_id IS NOT NEW.campaign_id
    BEGIN
        UPDATE job_state_counts SET jobs = jobs - 1
        WHERE campaign_id = OLD.campaign_id AND state = OLD.state;
        INSERT INTO job_state_counts (campaign_id, state, jobs)
        VALUES (NEW.campaign_id, NEW.state, 1)
        ON CONFLICT (campaign_id, state) DO UPDATE SET jobs = job_state_counts.jobs + 1;
    END
    """,
    # An UPDATE, not an upsert: when a campaign is deleted its counts go first (cascade), and
    # a row inserted for it then would break the foreign key.
    """
    CREATE TRIGGER jobs_count_states_on_delete AFTER DELETE ON jobs
    BEGIN
        UPDATE job_state_counts SET jobs = jobs - 1
        WHERE campaign_id = OLD.campaign_id AND state = OLD.state;
    END
    """,
)

POSTGRESQL_FUNCTION = """
CREATE FUNCTION jobs_count_states() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_state_deltas (campaign_id, state, jobs)
        SELECT campaign_id, state, count(*) FROM new_jobs GROUP BY campaign_id, state;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO job_state_deltas (campaign_id, state, jobs)
        SELECT campaign_id, state, -count(*) FROM old_jobs GROUP BY campaign_id, state;
    ELSE
        -- Old rows out, new rows in, netted: not a join of old and new rows by id, as the
        -- transition tables have no index (a nested-loop join took 30 ms on a 500-row claim).
        -- Updates that leave states alone (leases, dispatch marks) net to nothing, no row.
        INSERT INTO job_state_deltas (campaign_id, state, jobs)
        SELECT campaign_id, state, sum(jobs) FROM (
            SELECT campaign_id, state, -1 AS jobs FROM old_jobs
            UNION ALL
            SELECT campaign_id, state, 1 AS jobs FROM new_jobs
        ) AS changes
        GROUP BY campaign_id, state
        HAVING sum(jobs) <> 0;
    END IF;
    RETURN NULL;
END
$$
"""

# Transition tables allow neither a column list (UPDATE OF state) nor several events per trigger.
POSTGRESQL_TRIGGERS = (
    "CREATE TRIGGER jobs_count_states_on_insert AFTER INSERT ON jobs "
    "REFERENCING NEW TABLE AS new_jobs FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_states()",
    "CREATE TRIGGER jobs_count_states_on_update AFTER UPDATE ON jobs "
    "REFERENCING OLD TABLE AS old_jobs NEW TABLE AS new_jobs "
    "FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_states()",
    "CREATE TRIGGER jobs_count_states_on_delete AFTER DELETE ON jobs "
    "REFERENCING OLD TABLE AS old_jobs FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_states()",
)
TRIGGER_NAMES = (
    "jobs_count_states_on_insert",
    "jobs_count_states_on_update",
    "jobs_count_states_on_delete",
)


def upgrade() -> None:
    op.create_table(
        "job_state_counts",
        sa.Column("campaign_id", BigId, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_job_state_counts_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "state", name=op.f("pk_job_state_counts")),
    )
    op.create_table(
        "job_state_deltas",
        sa.Column("id", BigId, nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("jobs", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_state_deltas")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRESQL_FUNCTION)
        for statement in POSTGRESQL_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    op.execute(
        "INSERT INTO job_state_counts (campaign_id, state, jobs) "
        "SELECT campaign_id, state, count(*) FROM jobs GROUP BY campaign_id, state"
    )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER {name} ON jobs" if postgresql else f"DROP TRIGGER {name}")
    if postgresql:
        op.execute("DROP FUNCTION jobs_count_states()")
    op.drop_table("job_state_deltas")
    op.drop_table("job_state_counts")
