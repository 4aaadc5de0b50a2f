"""Incremental export: every exported row keeps the transaction that last wrote it, and
deletions leave tombstones.

``change_txid`` is set by its default on insert and by a trigger on every update, so any
change, through the ORM or plain SQL, moves the row to the end of the export order. Rows that
exist already get 0 (served first, by id): a constant default adds the column without
rewriting tables of millions of rows, which a per-row transaction id would.
Deletes, cascades included, write one tombstone per row through a statement trigger.

Revision ID: 5b1e0c7d9a42
Revises: 0966277a6c2b
Create Date: 2026-11-23 00:40:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1e0c7d9a42"
down_revision: str | None = "0966277a6c2b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXPORTED_TABLES = ("tickets", "customers", "messages", "organisations")
CURRENT_TXID = sa.text("pg_current_xact_id()::text::bigint")

TOUCH_FUNCTION = """
CREATE FUNCTION export_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_txid := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END;
$$
"""

TOMBSTONE_FUNCTION = """
CREATE FUNCTION export_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO export_tombstones (entity, entity_id) SELECT TG_TABLE_NAME, id FROM gone;
    RETURN NULL;
END;
$$
"""


def upgrade() -> None:
    op.create_table(
        "export_tombstones",
        sa.Column("entity", sa.String(length=50), nullable=False),
        sa.Column("entity_id", sa.BigInteger(), nullable=False),
        sa.Column("change_txid", sa.BigInteger(), server_default=CURRENT_TXID, nullable=False),
        sa.Column(
            "deleted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_tombstones")),
    )
    op.create_index(
        "ix_export_tombstones_entity_change_txid_entity_id",
        "export_tombstones",
        ["entity", "change_txid", "entity_id"],
        unique=False,
    )
    op.execute(TOUCH_FUNCTION)
    op.execute(TOMBSTONE_FUNCTION)
    for table in EXPORTED_TABLES:
        op.add_column(
            table, sa.Column("change_txid", sa.BigInteger(), server_default="0", nullable=False)
        )
        op.alter_column(table, "change_txid", server_default=CURRENT_TXID)
        op.create_index(f"ix_{table}_change_txid_id", table, ["change_txid", "id"], unique=False)
        op.execute(
            f"CREATE TRIGGER {table}_export_touch BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION export_touch()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_export_tombstone AFTER DELETE ON {table} "
            "REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION export_tombstone()"
        )


def downgrade() -> None:
    for table in EXPORTED_TABLES:
        op.execute(f"DROP TRIGGER {table}_export_tombstone ON {table}")
        op.execute(f"DROP TRIGGER {table}_export_touch ON {table}")
        op.drop_index(f"ix_{table}_change_txid_id", table_name=table)
        op.drop_column(table, "change_txid")
    op.execute("DROP FUNCTION export_tombstone()")
    op.execute("DROP FUNCTION export_touch()")
    op.drop_index(
        "ix_export_tombstones_entity_change_txid_entity_id", table_name="export_tombstones"
    )
    op.drop_table("export_tombstones")
