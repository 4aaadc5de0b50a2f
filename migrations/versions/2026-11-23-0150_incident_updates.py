"""Incident status updates are kept on the incident: ``incident_updates`` holds each status
message posted, who posted it, when, and the tickets it reached.

Revision ID: 5b7e1c3d9a24
Revises: 8c41d7e2a9f3
Create Date: 2026-11-23 01:50:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5b7e1c3d9a24"
down_revision: str | None = "8c41d7e2a9f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incident_updates",
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=True),
        sa.Column("template_id", sa.BigInteger(), nullable=True),
        sa.Column("author_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticket_ids", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["agents.id"],
            name=op.f("fk_incident_updates_author_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_updates_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_incident_updates_template_id_templates"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_updates")),
    )
    op.create_index(
        "ix_incident_updates_incident_id_created_at",
        "incident_updates",
        ["incident_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_incident_updates_incident_id_created_at", table_name="incident_updates")
    op.drop_table("incident_updates")
