"""Triggers from everywhere: connections of the kinds the new triggers use (``amqp`` for
Queue, ``imap`` for Email, ``twilio`` for Sms), and each trigger step's health — what
its consumer or poller last said of its source, its last event and what became of its
events (``stepline.lifecycle.triggers`` writes it); and on each job, what its trigger knew
of the event besides the payload (the packet's ``trigger``: a queue message's id and
properties, a mail's UID), kept so that a process delivered again carries it too. A
nullable column is a catalog change only.

The connection kind's check is dropped and made again with the new kinds: a catalog
change and one scan of the connections table, which holds a few rows per account. The
health table is new and empty.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 07:58:17.405271
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


OLD_KINDS = "kind IN ('postgres', 'http')"
NEW_KINDS = "kind IN ('postgres', 'http', 'amqp', 'imap', 'twilio')"


def upgrade() -> None:
    op.drop_constraint(op.f('ck_connections_kind'), 'connections', type_='check')
    op.create_check_constraint(op.f('ck_connections_kind'), 'connections', NEW_KINDS)
    op.add_column('jobs', sa.Column('trigger_data', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_table('trigger_health',
    sa.Column('step_id', sa.UUID(), nullable=False),
    sa.Column('workflow_id', sa.UUID(), nullable=False),
    sa.Column('account_id', sa.UUID(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('failing_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('duplicates', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('dead_letters', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('unacked', sa.Integer(), nullable=True),
    sa.Column('cursor', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.CheckConstraint("state IN ('connected', 'failing', 'idle')", name=op.f('ck_trigger_health_state')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_trigger_health_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], name=op.f('fk_trigger_health_workflow_id_workflows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('step_id', name=op.f('pk_trigger_health'))
    )
    op.create_index(op.f('ix_trigger_health_account_id'), 'trigger_health', ['account_id'], unique=False)
    op.create_index(op.f('ix_trigger_health_workflow_id'), 'trigger_health', ['workflow_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_trigger_health_workflow_id'), table_name='trigger_health')
    op.drop_index(op.f('ix_trigger_health_account_id'), table_name='trigger_health')
    op.drop_table('trigger_health')
    op.drop_column('jobs', 'trigger_data')
    op.execute("DELETE FROM connections WHERE kind IN ('amqp', 'imap', 'twilio')")
    op.drop_constraint(op.f('ck_connections_kind'), 'connections', type_='check')
    op.create_check_constraint(op.f('ck_connections_kind'), 'connections', OLD_KINDS)
