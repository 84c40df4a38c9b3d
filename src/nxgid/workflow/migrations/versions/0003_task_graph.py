"""Task prerequisites, input signatures and stale marks.

``after_id`` names the task that must be done before this one may be claimed (convert
after link, preview after convert); ``signature`` is the SHA-256 of a done task's inputs
and recipe, so a later change marks it ``stale``; ``overwrite`` records that the task was
queued with permission to replace its outputs; ``detail`` is a one-line result
("4 frames → f1_reduced.nxs").

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_runs") as batch:
        batch.add_column(sa.Column("after_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("signature", sa.String(64), nullable=True))
        batch.add_column(sa.Column("stale", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("overwrite", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("detail", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_runs") as batch:
        for column in ("detail", "overwrite", "stale", "signature", "after_id"):
            batch.drop_column(column)
