"""Scheduled automations: when a ticket last changed status, heard from its customer and got an
agent's reply (backfilled from history), and the firings of scheduled rules.

Revision ID: 9eb9f00f6689
Revises: 5b1e0c7d9a42
Create Date: 2026-11-23 00:35:19.717399+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9eb9f00f6689"
down_revision: str | None = "5b1e0c7d9a42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "automation_firings",
        sa.Column("ticket_id", sa.BigInteger(), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("rule_set_version", sa.Integer(), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_automation_firings_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "rule_id", name=op.f("pk_automation_firings")),
    )
    op.add_column(
        "tickets",
        sa.Column(
            "status_changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    )
    op.add_column(
        "tickets", sa.Column("last_customer_message_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "tickets", sa.Column("last_agent_reply_at", sa.DateTime(timezone=True), nullable=True)
    )
    # The status history is not kept, so the latest moment known to follow the status change
    # stands in: a late estimate, which makes a rule fire late rather than early.
    op.execute(
        """
        UPDATE tickets SET status_changed_at = CASE status
            WHEN 'solved' THEN coalesce(solved_at, updated_at)
            WHEN 'closed' THEN coalesce(closed_at, updated_at)
            ELSE updated_at END
        """
    )
    op.execute(
        """
        UPDATE tickets SET last_customer_message_at = m.at
        FROM (SELECT ticket_id, max(created_at) AS at FROM messages
              WHERE direction = 'inbound' AND kind IN ('normal', 'mailing_list')
              GROUP BY ticket_id) AS m
        WHERE m.ticket_id = tickets.id
        """
    )
    op.execute(
        """
        UPDATE tickets SET last_agent_reply_at = m.at
        FROM (SELECT ticket_id, max(created_at) AS at FROM messages
              WHERE direction = 'outbound' AND is_public AND kind = 'normal'
              GROUP BY ticket_id) AS m
        WHERE m.ticket_id = tickets.id
        """
    )


def downgrade() -> None:
    op.drop_column("tickets", "last_agent_reply_at")
    op.drop_column("tickets", "last_customer_message_at")
    op.drop_column("tickets", "status_changed_at")
    op.drop_table("automation_firings")
