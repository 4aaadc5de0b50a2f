"""Follow-up reminders on tickets, incidents with their linked tickets, and per-ticket
proactive update schedules.

Revision ID: 8f28c39dfc99
Revises: 9eb9f00f6689
Create Date: 2026-11-23 00:35:27.349621+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8f28c39dfc99"
down_revision: str | None = "9eb9f00f6689"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("status_text", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "state",
            sa.Enum("open", "resolved", name="incident_state"),
            server_default="open",
            nullable=False,
        ),
        sa.Column("template_id", sa.BigInteger(), nullable=True),
        sa.Column("update_interval_minutes", sa.Integer(), nullable=True),
        sa.Column("next_update_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["agents.id"],
            name=op.f("fk_incidents_created_by_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_incidents_template_id_templates"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_index(
        "ix_incidents_next_update_at_open",
        "incidents",
        ["next_update_at"],
        unique=False,
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_index(
        "ix_incidents_state_created_at_id", "incidents", ["state", "created_at", "id"], unique=False
    )
    op.create_table(
        "incident_tickets",
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("ticket_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_tickets_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_incident_tickets_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_tickets")),
        sa.UniqueConstraint(
            "incident_id", "ticket_id", name=op.f("uq_incident_tickets_incident_id_ticket_id")
        ),
    )
    op.create_index(
        "ix_incident_tickets_ticket_id", "incident_tickets", ["ticket_id"], unique=False
    )
    op.create_table(
        "ticket_follow_ups",
        sa.Column("ticket_id", sa.BigInteger(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_by", sa.BigInteger(), nullable=True),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_ticket_follow_ups_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["cleared_by"],
            ["agents.id"],
            name=op.f("fk_ticket_follow_ups_cleared_by_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["agents.id"],
            name=op.f("fk_ticket_follow_ups_created_by_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_follow_ups_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_follow_ups")),
    )
    op.create_index(
        "ix_ticket_follow_ups_due_at_waiting",
        "ticket_follow_ups",
        ["due_at"],
        unique=False,
        postgresql_where=sa.text("fired_at IS NULL AND cleared_at IS NULL"),
    )
    op.create_index(
        "ix_ticket_follow_ups_ticket_id_created_at",
        "ticket_follow_ups",
        ["ticket_id", "created_at"],
        unique=False,
    )
    op.create_index(
        "uq_ticket_follow_ups_ticket_id_current",
        "ticket_follow_ups",
        ["ticket_id"],
        unique=True,
        postgresql_where=sa.text("cleared_at IS NULL"),
    )
    op.create_table(
        "ticket_update_schedules",
        sa.Column("ticket_id", sa.BigInteger(), nullable=False),
        sa.Column("template_id", sa.BigInteger(), nullable=False),
        sa.Column("every_minutes", sa.Integer(), nullable=False),
        sa.Column("next_update_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["agents.id"],
            name=op.f("fk_ticket_update_schedules_created_by_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["templates.id"],
            name=op.f("fk_ticket_update_schedules_template_id_templates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_update_schedules_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_update_schedules")),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_ticket_update_schedules_ticket_id")),
    )
    op.create_index(
        "ix_ticket_update_schedules_next_update_at",
        "ticket_update_schedules",
        ["next_update_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_ticket_update_schedules_next_update_at", table_name="ticket_update_schedules")
    op.drop_table("ticket_update_schedules")
    op.drop_index(
        "uq_ticket_follow_ups_ticket_id_current",
        table_name="ticket_follow_ups",
        postgresql_where=sa.text("cleared_at IS NULL"),
    )
    op.drop_index("ix_ticket_follow_ups_ticket_id_created_at", table_name="ticket_follow_ups")
    op.drop_index(
        "ix_ticket_follow_ups_due_at_waiting",
        table_name="ticket_follow_ups",
        postgresql_where=sa.text("fired_at IS NULL AND cleared_at IS NULL"),
    )
    op.drop_table("ticket_follow_ups")
    op.drop_index("ix_incident_tickets_ticket_id", table_name="incident_tickets")
    op.drop_table("incident_tickets")
    op.drop_index("ix_incidents_state_created_at_id", table_name="incidents")
    op.drop_index(
        "ix_incidents_next_update_at_open",
        table_name="incidents",
        postgresql_where=sa.text("state = 'open'"),
    )
    op.drop_table("incidents")
    op.execute("DROP TYPE incident_state")
