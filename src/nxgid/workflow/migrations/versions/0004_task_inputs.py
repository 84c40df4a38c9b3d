"""The named parts of task signatures.

``inputs`` keeps, for a done task, the parts its signature was made of (part name →
short digest of one input: ``raw stack``, ``geometry``, ``recipe``, …), so that
`nxgid status` can say which inputs of a stale task changed. Tasks done before this
revision have none (NULL): they are told apart as "inputs changed".

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_runs") as batch:
        batch.add_column(sa.Column("inputs", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_runs") as batch:
        batch.drop_column("inputs")
