"""Services and the bill: workflows published as services (``services``), functions
registered from outside the repository (``functions.endpoint``), prices (per process on
``functions``, per call on ``services``), the meters (the price copied onto each process,
the call's price and caller on its child job) and what retention keeps of them
(``billing_daily``).

Every new column on the big tables (jobs, processes) is nullable without a default: a
catalog change only, no table rewrite. The check constraints are written by hand
(autogenerate does not see them).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 07:58:38.347220
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('billing_daily',
    sa.Column('account_id', sa.UUID(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('role', sa.String(length=10), nullable=False),
    sa.Column('item', sa.String(length=100), nullable=False),
    sa.Column('unit_price', sa.Numeric(precision=18, scale=6), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.CheckConstraint("role IN ('used', 'served')", name=op.f('ck_billing_daily_role')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_billing_daily_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('account_id', 'day', 'role', 'item', 'unit_price', name=op.f('pk_billing_daily'))
    )
    op.create_table('services',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('account_id', sa.UUID(), nullable=False),
    sa.Column('workflow_id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('visibility', sa.String(length=20), nullable=False),
    sa.Column('description', sa.String(length=2000), nullable=True),
    sa.Column('input_schema', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('price_per_call', sa.Numeric(precision=18, scale=6), server_default=sa.text('0'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unpublished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("visibility IN ('public', 'private')", name=op.f('ck_services_visibility')),
    sa.CheckConstraint('price_per_call >= 0', name=op.f('ck_services_price_per_call')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_services_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workflow_id'], ['workflows.id'], name=op.f('fk_services_workflow_id_workflows'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_services'))
    )
    op.create_index(op.f('ix_services_account_id'), 'services', ['account_id'], unique=False)
    op.create_index(op.f('ix_services_workflow_id'), 'services', ['workflow_id'], unique=False)
    op.create_index('uq_services_live_name', 'services', ['name'], unique=True, postgresql_where=sa.text('unpublished_at IS NULL'))
    op.add_column('functions', sa.Column('price_per_process', sa.Numeric(precision=18, scale=6), server_default=sa.text('0'), nullable=False))
    op.add_column('functions', sa.Column('endpoint', sa.String(length=500), nullable=True))
    op.add_column('jobs', sa.Column('service_id', sa.UUID(), nullable=True))
    op.add_column('jobs', sa.Column('caller_account_id', sa.UUID(), nullable=True))
    op.add_column('jobs', sa.Column('call_price', sa.Numeric(precision=18, scale=6), nullable=True))
    op.create_index('ix_jobs_caller', 'jobs', ['caller_account_id', 'created_at'], unique=False, postgresql_where=sa.text('caller_account_id IS NOT NULL'))
    op.create_foreign_key(op.f('fk_jobs_service_id_services'), 'jobs', 'services', ['service_id'], ['id'], ondelete='CASCADE')
    op.add_column('processes', sa.Column('unit_price', sa.Numeric(precision=18, scale=6), nullable=True))
    op.drop_constraint(op.f('ck_functions_kind'), 'functions', type_='check')
    op.create_check_constraint(op.f('ck_functions_kind'), 'functions',
                               "kind IN ('trigger', 'action', 'service')")
    op.create_check_constraint(op.f('ck_functions_price_per_process'), 'functions',
                               'price_per_process >= 0')
    op.create_check_constraint(op.f('ck_jobs_call_price'), 'jobs', 'call_price >= 0')


def downgrade() -> None:
    op.drop_constraint(op.f('ck_jobs_call_price'), 'jobs', type_='check')
    op.drop_constraint(op.f('ck_functions_price_per_process'), 'functions', type_='check')
    op.execute("DELETE FROM functions WHERE kind = 'service'")
    op.drop_constraint(op.f('ck_functions_kind'), 'functions', type_='check')
    op.create_check_constraint(op.f('ck_functions_kind'), 'functions', "kind IN ('trigger', 'action')")
    op.drop_column('processes', 'unit_price')
    op.drop_constraint(op.f('fk_jobs_service_id_services'), 'jobs', type_='foreignkey')
    op.drop_index('ix_jobs_caller', table_name='jobs', postgresql_where=sa.text('caller_account_id IS NOT NULL'))
    op.drop_column('jobs', 'call_price')
    op.drop_column('jobs', 'caller_account_id')
    op.drop_column('jobs', 'service_id')
    op.drop_column('functions', 'endpoint')
    op.drop_column('functions', 'price_per_process')
    op.drop_index('uq_services_live_name', table_name='services', postgresql_where=sa.text('unpublished_at IS NULL'))
    op.drop_index(op.f('ix_services_workflow_id'), table_name='services')
    op.drop_index(op.f('ix_services_account_id'), table_name='services')
    op.drop_table('services')
    op.drop_table('billing_daily')
