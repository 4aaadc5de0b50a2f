"""Webhook deliveries: the head of an endpoint's line is its pending delivery with the lowest
id (the order the fan-out creates them in, which is the event feed's order), so the partial
index serving it is on ``(webhook_id, id)`` instead of ``(webhook_id, event_id)``.

Revision ID: 5b7e0c3d9a41
Revises: afd3e06f110e
Create Date: 2026-11-23 01:50:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b7e0c3d9a41"
down_revision: str | None = "afd3e06f110e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _index(column: str) -> None:
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["webhook_id", column],
        postgresql_where=sa.text("status = 'pending'"),
    )


def upgrade() -> None:
    op.drop_index("ix_webhook_deliveries_pending", table_name="webhook_deliveries")
    _index("id")


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_pending", table_name="webhook_deliveries")
    _index("event_id")
