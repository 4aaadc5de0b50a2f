"""SLA policies with targets and escalation steps, queue default policies, live targets on
tickets (one row per cycle) and the escalation steps fired.

Revision ID: 3c5d7e9f1a2b
Revises: fdef3d092669
Create Date: 2026-11-23 00:37:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3c5d7e9f1a2b"
down_revision: str | None = "fdef3d092669"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

sla_metric = postgresql.ENUM(
    "first_response",
    "next_response",
    "periodic_update",
    "resolution",
    name="sla_metric",
    create_type=False,
)


def upgrade() -> None:
    sla_metric.create(op.get_bind())
    op.add_column("sla_policies", sa.Column("calendar_id", sa.BigInteger(), nullable=True))
    op.add_column(
        "sla_policies",
        sa.Column(
            "targets",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column(
        "sla_policies",
        sa.Column("at_risk_percent", sa.Integer(), server_default=sa.text("80"), nullable=False),
    )
    op.add_column(
        "sla_policies",
        sa.Column(
            "escalations",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.create_index(
        op.f("ix_sla_policies_calendar_id"), "sla_policies", ["calendar_id"], unique=False
    )
    op.create_foreign_key(
        op.f("fk_sla_policies_calendar_id_calendars"),
        "sla_policies",
        "calendars",
        ["calendar_id"],
        ["id"],
        ondelete="SET NULL",
    )

    op.add_column("queues", sa.Column("sla_policy_id", sa.BigInteger(), nullable=True))
    op.create_index(op.f("ix_queues_sla_policy_id"), "queues", ["sla_policy_id"], unique=False)
    op.create_foreign_key(
        op.f("fk_queues_sla_policy_id_sla_policies"),
        "queues",
        "sla_policies",
        ["sla_policy_id"],
        ["id"],
        ondelete="SET NULL",
    )

    op.add_column("tickets", sa.Column("sla_due_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tickets", sa.Column("sla_at_risk_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "tickets",
        sa.Column("sla_breached", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column(
        "tickets",
        sa.Column(
            "sla_due_order",
            sa.DateTime(timezone=True),
            sa.Computed(
                "COALESCE(sla_due_at, '9999-01-01T00:00:00+00:00'::timestamptz)", persisted=True
            ),
            nullable=False,
        ),
    )
    op.create_index(
        op.f("ix_tickets_sla_due_order_id"), "tickets", ["sla_due_order", "id"], unique=False
    )

    op.create_table(
        "ticket_sla_targets",
        sa.Column("ticket_id", sa.BigInteger(), nullable=False),
        sa.Column("policy_id", sa.BigInteger(), nullable=True),
        sa.Column("metric", sla_metric, nullable=False),
        sa.Column("target_seconds", sa.Integer(), nullable=False),
        sa.Column("calendar_id", sa.BigInteger(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("elapsed_seconds", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("at_risk_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("met_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalation_level", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["calendars.id"],
            name=op.f("fk_ticket_sla_targets_calendar_id_calendars"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["sla_policies.id"],
            name=op.f("fk_ticket_sla_targets_policy_id_sla_policies"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_sla_targets_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_sla_targets")),
    )
    op.create_index(
        op.f("ix_ticket_sla_targets_ticket_id"), "ticket_sla_targets", ["ticket_id"], unique=False
    )
    op.create_index(
        "ix_ticket_sla_targets_next_check_at",
        "ticket_sla_targets",
        ["next_check_at"],
        unique=False,
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
    )

    op.create_table(
        "ticket_escalations",
        sa.Column("ticket_id", sa.BigInteger(), nullable=False),
        sa.Column("target_id", sa.BigInteger(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("at_percent", sa.Integer(), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["ticket_sla_targets.id"],
            name=op.f("fk_ticket_escalations_target_id_ticket_sla_targets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_escalations_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_escalations")),
        sa.UniqueConstraint("target_id", "step", name=op.f("uq_ticket_escalations_target_id_step")),
    )
    op.create_index(
        op.f("ix_ticket_escalations_ticket_id"), "ticket_escalations", ["ticket_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ticket_escalations_ticket_id"), table_name="ticket_escalations")
    op.drop_table("ticket_escalations")
    op.drop_index(
        "ix_ticket_sla_targets_next_check_at",
        table_name="ticket_sla_targets",
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
    )
    op.drop_index(op.f("ix_ticket_sla_targets_ticket_id"), table_name="ticket_sla_targets")
    op.drop_table("ticket_sla_targets")
    op.drop_index(op.f("ix_tickets_sla_due_order_id"), table_name="tickets")
    op.drop_column("tickets", "sla_due_order")
    op.drop_column("tickets", "sla_breached")
    op.drop_column("tickets", "sla_at_risk_at")
    op.drop_column("tickets", "sla_due_at")
    op.drop_constraint(op.f("fk_queues_sla_policy_id_sla_policies"), "queues", type_="foreignkey")
    op.drop_index(op.f("ix_queues_sla_policy_id"), table_name="queues")
    op.drop_column("queues", "sla_policy_id")
    op.drop_constraint(
        op.f("fk_sla_policies_calendar_id_calendars"), "sla_policies", type_="foreignkey"
    )
    op.drop_index(op.f("ix_sla_policies_calendar_id"), table_name="sla_policies")
    op.drop_column("sla_policies", "escalations")
    op.drop_column("sla_policies", "at_risk_percent")
    op.drop_column("sla_policies", "targets")
    op.drop_column("sla_policies", "calendar_id")
    sla_metric.drop(op.get_bind())
