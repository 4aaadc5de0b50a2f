"""Declarative base with a naming convention, so constraints and indexes have stable names."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, FetchedValue, Identity, Integer, MetaData, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
        list[dict[str, Any]]: JSONB,
    }


class IdMixin:
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    def touch(self) -> None:
        """Mark the row changed when only its children changed (messages, emails, ids), so
        ``updated_at`` and the version (ETag) move: the ORM bumps them only on a row UPDATE."""
        self.updated_at = func.now()


CURRENT_TXID = text("pg_current_xact_id()::text::bigint")
"""The id of the writing transaction (PostgreSQL's ``xid8``, kept as a bigint)."""


class ChangeTxidMixin:
    """The transaction that last wrote the row, for the incremental export (``app.export``).

    Only the database writes it: its default on insert and a trigger on every update (so plain
    SQL moves the row too). ``FetchedValue`` makes the ORM read it back instead of keeping a
    value from before an update."""

    change_txid: Mapped[int] = mapped_column(
        BigInteger, server_default=CURRENT_TXID, server_onupdate=FetchedValue()
    )


class VersionedMixin:
    """Optimistic locking: every UPDATE checks and bumps ``version`` (the resource's ETag)."""

    version: Mapped[int] = mapped_column(Integer, nullable=False)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:  # noqa: N805
        # eager_defaults: read back server-set columns (updated_at) in the same statement.
        return {"version_id_col": cls.version, "eager_defaults": True}
