"""idempotent answers encrypted and expiring

Revision ID: afd3e06f110e
Revises: 6d2f8a4c1e73
Create Date: 2026-11-23 01:46:12.081525+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "afd3e06f110e"
down_revision: str | None = "6d2f8a4c1e73"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "idempotency_records",
        sa.Column("body_encrypted", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column(
        "idempotency_records", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True)
    )
    # Answers kept so far expire after the default lifetime of a key (24 hours).
    op.execute("UPDATE idempotency_records SET expires_at = created_at + interval '24 hours'")
    op.alter_column("idempotency_records", "expires_at", nullable=False)
    op.create_index(
        op.f("ix_idempotency_records_expires_at"),
        "idempotency_records",
        ["expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotency_records_expires_at"), table_name="idempotency_records")
    op.drop_column("idempotency_records", "expires_at")
    op.drop_column("idempotency_records", "body_encrypted")
