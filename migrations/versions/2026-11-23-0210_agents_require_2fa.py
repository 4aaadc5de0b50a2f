"""Agents: require_2fa, two-factor login an admin requires of one agent besides the roles the
deployment names.

Revision ID: 8c4e1a7d2f53
Revises: 3f8b2d6e9c10
Create Date: 2026-11-23 02:10:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8c4e1a7d2f53"
down_revision: str | None = "3f8b2d6e9c10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "agents",
        sa.Column("require_2fa", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )


def downgrade() -> None:
    op.drop_column("agents", "require_2fa")
