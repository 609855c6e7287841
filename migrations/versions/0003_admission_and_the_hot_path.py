"""Admission at every process creation, a fair claim, and a quieter outbox.

- ``quota_usage``: the processes an account with a monthly quota created this month,
  counted in the transaction that creates them (its row lock queues concurrent creations
  instead of letting them overshoot). Accounts that already have a quota start from what
  they used so far this month (processes, and days already rolled up into usage_daily).
- ``outbox.account_id`` and its partial index: the relay claims fairly across accounts.
  Rows written before this revision have none; the claim treats them as one more account.
- The outbox's NOTIFY fires only when an insert wrote rows: a final step's empty insert
  no longer wakes the relays (nor takes the commit-time notify lock, which keeps
  notifying commits from sharing a WAL flush).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOTIFY_CHANNEL = "stepline_outbox"


def upgrade() -> None:
    op.create_table('quota_usage',
    sa.Column('account_id', sa.UUID(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('processes', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_quota_usage_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'month', name=op.f('pk_quota_usage'))
    )
    op.execute("""
        INSERT INTO quota_usage (account_id, month, processes)
        SELECT a.id, date_trunc('month', now() AT TIME ZONE 'UTC')::date,
               (SELECT count(*) FROM processes p WHERE p.account_id = a.id
                  AND p.created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
             + (SELECT coalesce(sum(u.processes), 0) FROM usage_daily u WHERE u.account_id = a.id
                  AND u.day >= date_trunc('month', now() AT TIME ZONE 'UTC')::date)
        FROM accounts a WHERE a.monthly_quota IS NOT NULL
    """)
    op.add_column('outbox', sa.Column('account_id', sa.UUID(), nullable=True))
    op.create_index('ix_outbox_fair', 'outbox', ['account_id', 'not_before', 'id'], unique=False, postgresql_where=sa.text("status = 'pending'"))
    op.execute("DROP TRIGGER outbox_notify ON outbox")
    op.execute(f"""
        CREATE FUNCTION stepline_outbox_notify_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM inserted) THEN
                PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
            END IF;
            RETURN NULL;
        END $$
    """)
    op.execute("CREATE TRIGGER outbox_notify_insert AFTER INSERT ON outbox "
               "REFERENCING NEW TABLE AS inserted "
               "FOR EACH STATEMENT EXECUTE FUNCTION stepline_outbox_notify_inserted()")
    op.execute("CREATE TRIGGER outbox_notify_due AFTER UPDATE OF not_before ON outbox "
               "FOR EACH STATEMENT EXECUTE FUNCTION stepline_outbox_notify()")


def downgrade() -> None:
    op.execute("DROP TRIGGER outbox_notify_due ON outbox")
    op.execute("DROP TRIGGER outbox_notify_insert ON outbox")
    op.execute("DROP FUNCTION stepline_outbox_notify_inserted()")
    op.execute("CREATE TRIGGER outbox_notify AFTER INSERT OR UPDATE OF not_before ON outbox "
               "FOR EACH STATEMENT EXECUTE FUNCTION stepline_outbox_notify()")
    op.drop_index('ix_outbox_fair', table_name='outbox', postgresql_where=sa.text("status = 'pending'"))
    op.drop_column('outbox', 'account_id')
    op.drop_table('quota_usage')
