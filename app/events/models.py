from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Identity, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class Event(Base):
    """A domain change, written in the transaction that made it (a transactional outbox):
    consumers (the event feed, webhooks) read it only once that transaction committed.

    ``txid`` is the id of the writing transaction (PostgreSQL's ``xid8``, which SQLAlchemy has
    no type for, kept as a bigint): the feed orders by ``(txid, id)`` and serves only events of
    transactions older than every transaction still running (see ``app.events.service``)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_entity_entity_id", "entity", "entity_id"),
        Index("ix_events_txid_id", "txid", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    txid: Mapped[int] = mapped_column(
        BigInteger, server_default=text("pg_current_xact_id()::text::bigint")
    )
    type: Mapped[str] = mapped_column(String(100), index=True)
    entity: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[int | None] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now())
