"""Data subject rights and retention: queues keep closed tickets for a number of months; audit
events can be redacted through one recorded path without breaking the hash chain.

The chain's links now bind each event's content digest (``sha256`` of its canonical JSON) and
chain those digests, so a redacted event keeps its link (see ``app.audit.chain``). Links
sealed before this revision chained the content itself; they are removed here and the sealer
chains every event again from the first, in the new form, on its next pass (``verify`` seals
first). A head kept elsewhere from before this revision no longer applies.

``audit_events`` stays append-only, except that ``before``/``after`` of an event may change
inside a transaction that set ``ticketry.audit_redaction`` to ``on`` and recorded the event in
``audit_redactions`` first; ``audit_redactions`` itself is append-only.

Revision ID: 3f9d2a6c8b17
Revises: cf5cf981e52c
Create Date: 2026-11-23 01:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3f9d2a6c8b17"
down_revision: str | None = "cf5cf981e52c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RETENTION_ACTION = postgresql.ENUM("anonymise", "delete", name="retention_action")

GUARD_FUNCTION = """
CREATE FUNCTION audit_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND current_setting('ticketry.audit_redaction', true) = 'on'
        AND EXISTS (SELECT 1 FROM audit_redactions WHERE event_id = OLD.id)
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


def _clear_chain() -> None:
    op.execute("ALTER TABLE audit_chain DISABLE TRIGGER USER")
    op.execute("DELETE FROM audit_chain")
    op.execute("ALTER TABLE audit_chain ENABLE TRIGGER USER")


def upgrade() -> None:
    RETENTION_ACTION.create(op.get_bind())
    op.add_column("queues", sa.Column("retention_months", sa.Integer(), nullable=True))
    op.add_column(
        "queues",
        sa.Column(
            "retention_action",
            postgresql.ENUM(name="retention_action", create_type=False),
            server_default="anonymise",
            nullable=False,
        ),
    )

    _clear_chain()
    op.add_column("audit_chain", sa.Column("content_digest", sa.String(length=64), nullable=False))
    op.create_table(
        "audit_redactions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("redacted_by_event_id", sa.BigInteger(), nullable=False),
        sa.Column("redacted_digest", sa.String(length=64), nullable=False),
        sa.Column(
            "redacted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_redactions")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_redactions_event_id")),
    )
    op.create_index(
        op.f("ix_audit_redactions_redacted_by_event_id"),
        "audit_redactions",
        ["redacted_by_event_id"],
        unique=False,
    )
    op.execute(
        "CREATE TRIGGER audit_redactions_append_only BEFORE UPDATE OR DELETE ON audit_redactions "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_redactions_no_truncate BEFORE TRUNCATE ON audit_redactions "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
    )
    op.execute(GUARD_FUNCTION)
    op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
    op.execute(
        "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_guard()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
    op.execute(
        "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
    )
    op.execute("DROP FUNCTION audit_events_guard()")
    op.execute("DROP TRIGGER audit_redactions_no_truncate ON audit_redactions")
    op.execute("DROP TRIGGER audit_redactions_append_only ON audit_redactions")
    op.drop_index(op.f("ix_audit_redactions_redacted_by_event_id"), table_name="audit_redactions")
    op.drop_table("audit_redactions")
    # Links of the digest form do not hold in the older form: the sealer chains again.
    _clear_chain()
    op.drop_column("audit_chain", "content_digest")

    op.drop_column("queues", "retention_action")
    op.drop_column("queues", "retention_months")
    RETENTION_ACTION.drop(op.get_bind())
