"""Stuck jobs: the control plane's watchdog records on a running job since when it has
made no progress and why (the waiting process and its last error), and clears it when
the job moves again or ends.

Two nullable columns are a catalog change only (no table rewrite). The partial index
holds only stuck jobs; it is built in the migration's transaction: it reads the jobs
table once, which retention keeps to a few weeks of runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 01:06:36.644092
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('jobs', sa.Column('stuck_since', sa.DateTime(timezone=True), nullable=True))
    op.add_column('jobs', sa.Column('stuck_reason', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_index('ix_jobs_stuck', 'jobs', ['stuck_since'], unique=False, postgresql_where=sa.text('stuck_since IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_jobs_stuck', table_name='jobs', postgresql_where=sa.text('stuck_since IS NOT NULL'))
    op.drop_column('jobs', 'stuck_reason')
    op.drop_column('jobs', 'stuck_since')
