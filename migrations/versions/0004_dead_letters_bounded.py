"""Dead letters: bounded and readable per account. ``truncated`` says the stored body
(or a header) was cut to the writer's limit (``stepline.deadletter_limits``); an index per
account serves ``GET /v1/dead-letters`` newest first, and a partial index on
``resolved_at`` serves retention, which now prunes dead letters too.

Adding a column with a constant default is a catalog change only (no table rewrite).
The indexes are built in the migration's transaction: the table holds only what went
wrong, and retention keeps it small from now on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('dead_letters', sa.Column('truncated', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.create_index(op.f('ix_dead_letters_account_id_created_at_id'), 'dead_letters', ['account_id', 'created_at', 'id'], unique=False)
    op.create_index(op.f('ix_dead_letters_resolved_at'), 'dead_letters', ['resolved_at'], unique=False, postgresql_where=sa.text('resolved_at IS NOT NULL'))


def downgrade() -> None:
    op.drop_index(op.f('ix_dead_letters_resolved_at'), table_name='dead_letters', postgresql_where=sa.text('resolved_at IS NOT NULL'))
    op.drop_index(op.f('ix_dead_letters_account_id_created_at_id'), table_name='dead_letters')
    op.drop_column('dead_letters', 'truncated')
