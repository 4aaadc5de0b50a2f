"""Erasure and retention after review: chained audit redactions, erased customers, confirmed
retention policies.

An audit event may be redacted more than once (a person erased, then another person mentioned
in the same event): ``audit_redactions.event_id`` is no longer unique, and each redaction
records the digest it started from and its writing transaction. The guard lets an event's
content change only in the transaction that recorded its redaction.

Revision ID: 6d2f8a4c1e73
Revises: e4a9c27d1f58
Create Date: 2026-11-23 01:55:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "6d2f8a4c1e73"
down_revision: str | None = "e4a9c27d1f58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GUARD = """
CREATE OR REPLACE FUNCTION audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND current_setting('ticketry.audit_redaction', true) = 'on'
        AND EXISTS (SELECT 1 FROM audit_redactions WHERE event_id = OLD.id{same_transaction})
        AND (NEW.id, NEW.txid, NEW.occurred_at, NEW.actor_agent_id, NEW.actor_label,
             NEW.actor_token_id, NEW.source_ip, NEW.request_id, NEW.action, NEW.entity_type,
             NEW.entity_id)
            IS NOT DISTINCT FROM
            (OLD.id, OLD.txid, OLD.occurred_at, OLD.actor_agent_id, OLD.actor_label,
             OLD.actor_token_id, OLD.source_ip, OLD.request_id, OLD.action, OLD.entity_type,
             OLD.entity_id)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP;
END;
$$
"""


def upgrade() -> None:
    op.add_column("customers", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("queues", sa.Column("retention_confirmed_months", sa.Integer(), nullable=True))
    op.add_column(
        "queues",
        sa.Column(
            "retention_confirmed_action",
            postgresql.ENUM(name="retention_action", create_type=False),
            nullable=True,
        ),
    )
    op.add_column(
        "queues",
        sa.Column("retention_confirmed_at", sa.DateTime(timezone=True), nullable=True),
    )

    op.drop_constraint("uq_audit_redactions_event_id", "audit_redactions", type_="unique")
    op.create_index(
        op.f("ix_audit_redactions_event_id"), "audit_redactions", ["event_id"], unique=False
    )
    op.add_column(
        "audit_redactions",
        sa.Column(
            "txid",
            sa.BigInteger(),
            server_default=sa.text("pg_current_xact_id()::text::bigint"),
            nullable=False,
        ),
    )
    op.add_column(
        "audit_redactions", sa.Column("previous_digest", sa.String(length=64), nullable=True)
    )
    # Redactions made so far started from the content their event was sealed with.
    op.execute("ALTER TABLE audit_redactions DISABLE TRIGGER USER")
    op.execute(
        "UPDATE audit_redactions r SET previous_digest = coalesce("
        "(SELECT l.content_digest FROM audit_chain l WHERE l.event_id = r.event_id), ''), "
        "txid = coalesce((SELECT e.txid FROM audit_events e "
        "WHERE e.id = r.redacted_by_event_id), r.txid)"
    )
    op.execute("ALTER TABLE audit_redactions ENABLE TRIGGER USER")
    op.alter_column("audit_redactions", "previous_digest", nullable=False)
    op.execute(_GUARD.format(same_transaction=" AND txid = pg_current_xact_id()::text::bigint"))


def downgrade() -> None:
    op.execute(_GUARD.format(same_transaction=""))
    op.drop_column("audit_redactions", "previous_digest")
    op.drop_column("audit_redactions", "txid")
    op.drop_index(op.f("ix_audit_redactions_event_id"), table_name="audit_redactions")
    # Events redacted twice keep one row (the last) so the unique constraint holds again.
    op.execute("ALTER TABLE audit_redactions DISABLE TRIGGER USER")
    op.execute(
        "DELETE FROM audit_redactions r WHERE EXISTS (SELECT 1 FROM audit_redactions o "
        "WHERE o.event_id = r.event_id AND o.id > r.id)"
    )
    op.execute("ALTER TABLE audit_redactions ENABLE TRIGGER USER")
    op.create_unique_constraint("uq_audit_redactions_event_id", "audit_redactions", ["event_id"])

    op.drop_column("queues", "retention_confirmed_at")
    op.drop_column("queues", "retention_confirmed_action")
    op.drop_column("queues", "retention_confirmed_months")
    op.drop_column("customers", "erased_at")
