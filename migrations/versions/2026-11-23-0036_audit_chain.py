"""Audit chain: audit events keep their transaction id; sealed events get a hash chain.

Revision ID: 7165a0e6bfe0
Revises: 8f28c39dfc99
Create Date: 2026-11-23 00:36:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7165a0e6bfe0"
down_revision: str | None = "8f28c39dfc99"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP;
END;
$$
"""

PREVIOUS_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP;
END;
$$
"""


def upgrade() -> None:
    # Rows written before the chain existed get txid 0: they are sealed first, in id order.
    # A constant default keeps this a catalogue change, not a rewrite of the table.
    op.add_column(
        "audit_events",
        sa.Column("txid", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.alter_column(
        "audit_events",
        "txid",
        server_default=sa.text("pg_current_xact_id()::text::bigint"),
    )
    op.create_index("ix_audit_events_txid_id", "audit_events", ["txid", "id"], unique=False)
    op.create_table(
        "audit_chain",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("event_txid", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_audit_chain")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_chain_event_id")),
    )
    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(
        "CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
    )
    for table in ("audit_events", "audit_chain"):
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )


def downgrade() -> None:
    for table in ("audit_chain", "audit_events"):
        op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
    op.execute("DROP TRIGGER audit_chain_append_only ON audit_chain")
    op.execute(PREVIOUS_FUNCTION)
    op.drop_table("audit_chain")
    op.drop_index("ix_audit_events_txid_id", table_name="audit_events")
    op.drop_column("audit_events", "txid")
