"""OpenLineage ingestion by the catalog server: dataset mapping, run ids, ingested events;
an index of runs by start time (newest runs first).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "ol_datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"],
                                name=op.f("fk_ol_datasets_dataset_id_datasets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ol_datasets")),
        sa.UniqueConstraint("key", name=op.f("uq_ol_datasets_key")),
    )
    op.create_index(op.f("ix_ol_datasets_dataset_id"), "ol_datasets", ["dataset_id"])
    op.create_table(
        "ol_runs",
        sa.Column("ol_run_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_ol_runs_run_id_runs")),
        sa.PrimaryKeyConstraint("ol_run_id", name=op.f("pk_ol_runs")),
    )
    op.create_index(op.f("ix_ol_runs_run_id"), "ol_runs", ["run_id"])
    op.create_table(
        "ol_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("ol_run_id", sa.String(length=36), nullable=True),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("event_type", sa.String(length=16), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("producer", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", JSON, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_ol_events_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ol_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_ol_events_event_id")),
    )
    op.create_index(op.f("ix_ol_events_ol_run_id"), "ol_events", ["ol_run_id"])
    op.create_index(op.f("ix_ol_events_run_id"), "ol_events", ["run_id"])
    op.create_index("ix_runs_started_at", "runs", ["started_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_started_at", table_name="runs")
    op.drop_index(op.f("ix_ol_events_run_id"), table_name="ol_events")
    op.drop_index(op.f("ix_ol_events_ol_run_id"), table_name="ol_events")
    op.drop_table("ol_events")
    op.drop_index(op.f("ix_ol_runs_run_id"), table_name="ol_runs")
    op.drop_table("ol_runs")
    op.drop_index(op.f("ix_ol_datasets_dataset_id"), table_name="ol_datasets")
    op.drop_table("ol_datasets")
