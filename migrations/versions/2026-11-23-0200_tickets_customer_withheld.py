"""Tickets: customer_withheld, set when an outside partner opens a ticket for the address of a
customer already known, so the partner's views leave that customer's record out.

Revision ID: 3f8b2d6e9c10
Revises: 5b7e0c3d9a41
Create Date: 2026-11-23 02:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3f8b2d6e9c10"
down_revision: str | None = "5b7e0c3d9a41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "tickets",
        sa.Column(
            "customer_withheld", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_column("tickets", "customer_withheld")
