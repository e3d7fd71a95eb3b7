"""Retention of ingested OpenLineage events: an index on ``ol_events.received_at`` so the server
prunes events older than its retention with an index range scan, not a table scan.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 19:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ol_events_received_at", "ol_events", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_ol_events_received_at", table_name="ol_events")
