from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import CURRENT_TXID, Base, IdMixin


class ExportTombstone(IdMixin, Base):
    """A row deleted from an exported table, so a mirror learns that it is gone.

    Written only by the tables' delete triggers (see the migration), in the deleting
    transaction: a delete by any path, cascades included, leaves one."""

    __tablename__ = "export_tombstones"
    __table_args__ = (
        Index(
            "ix_export_tombstones_entity_change_txid_entity_id",
            "entity",
            "change_txid",
            "entity_id",
        ),
    )

    entity: Mapped[str] = mapped_column(String(50))
    """The exported table the row was deleted from."""
    entity_id: Mapped[int] = mapped_column(BigInteger)
    change_txid: Mapped[int] = mapped_column(BigInteger, server_default=CURRENT_TXID)
    deleted_at: Mapped[datetime] = mapped_column(server_default=func.now())
