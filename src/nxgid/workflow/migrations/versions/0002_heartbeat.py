"""Worker heartbeats and a queue index.

Workers record a heartbeat while they run a task so that a task whose worker died can be
requeued; the (experiment_id, status, id) index serves the claim query "oldest queued
task of this experiment first".

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from nxgid.workflow.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_runs") as batch:
        batch.add_column(sa.Column("heartbeat_at", UTCDateTime(), nullable=True))
    op.create_index("ix_task_runs_queue", "task_runs", ["experiment_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_task_runs_queue", table_name="task_runs")
    with op.batch_alter_table("task_runs") as batch:
        batch.drop_column("heartbeat_at")
