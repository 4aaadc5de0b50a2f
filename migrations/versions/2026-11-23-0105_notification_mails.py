"""Notification mails: the outbox also sends mail to agents about a ticket (a rule's or an
escalation step's ``notify_email``). Such a mail is no message of the ticket, so
``outbound_mails.message_id`` may be NULL and the row then keeps the mail itself; it stays
linked to its ticket.

``ALTER TYPE ... ADD VALUE`` runs in the migration's transaction: PostgreSQL 12 and later allow
that as long as the new value is not used before the transaction commits, which nothing here
does.

Revision ID: 8c41d7e2a9f3
Revises: 3f9d2a6c8b17
Create Date: 2026-11-23 01:05:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8c41d7e2a9f3"
down_revision: str | None = "3f9d2a6c8b17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TYPE mail_purpose ADD VALUE 'notification'")
    op.alter_column("outbound_mails", "message_id", existing_type=sa.BigInteger(), nullable=True)
    op.add_column("outbound_mails", sa.Column("to_addresses", postgresql.ARRAY(sa.String(320))))
    op.add_column("outbound_mails", sa.Column("subject", sa.String(998)))
    op.add_column("outbound_mails", sa.Column("body_text", sa.Text()))
    op.add_column("outbound_mails", sa.Column("mail_message_id", sa.String(998)))
    op.create_check_constraint(
        "message_or_content",
        "outbound_mails",
        "(message_id IS NULL) = (to_addresses IS NOT NULL AND subject IS NOT NULL"
        " AND body_text IS NOT NULL AND mail_message_id IS NOT NULL)",
    )


def downgrade() -> None:
    op.execute("DELETE FROM outbound_mails WHERE message_id IS NULL")
    op.drop_constraint("message_or_content", "outbound_mails", type_="check")
    op.drop_column("outbound_mails", "mail_message_id")
    op.drop_column("outbound_mails", "body_text")
    op.drop_column("outbound_mails", "subject")
    op.drop_column("outbound_mails", "to_addresses")
    op.alter_column("outbound_mails", "message_id", existing_type=sa.BigInteger(), nullable=False)
    # PostgreSQL cannot drop an enum value: the type is made again without it.
    op.execute("ALTER TYPE mail_purpose RENAME TO mail_purpose_old")
    op.execute("CREATE TYPE mail_purpose AS ENUM ('reply', 'acknowledgement')")
    op.execute(
        "ALTER TABLE outbound_mails ALTER COLUMN purpose TYPE mail_purpose"
        " USING purpose::text::mail_purpose"
    )
    op.execute("DROP TYPE mail_purpose_old")
