"""Run owners and leases: who executes a RUNNING run (host, pid, a token naming the process) and
until when its heartbeat vouches for it, so a run whose process died (OOM, SIGKILL, preemption)
is reaped to a terminal state instead of staying RUNNING forever; ``retry_of`` links an Airflow
retry to the try it replaced.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 19:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner_host", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("owner_pid", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("owner_token", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("retry_of", sa.String(length=36), nullable=True))
    op.create_index("ix_runs_state_lease_until", "runs", ["state", "lease_until"])


def downgrade() -> None:
    op.drop_index("ix_runs_state_lease_until", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("retry_of")
        batch.drop_column("lease_until")
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner_token")
        batch.drop_column("owner_pid")
        batch.drop_column("owner_host")
