"""The export's queries: the rows of one table and its tombstones after a position, up to the
horizon, each in ``(change_txid, id)`` order along its index."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import BigInteger, literal, select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.interfaces import LoaderOption

from app.customers.models import Customer
from app.export.models import ExportTombstone
from app.export.schemas import ExportEntity
from app.organisations.models import Organisation
from app.tickets.models import Message, Ticket

ExportedRow = Ticket | Customer | Message | Organisation
ExportedModel = type[Ticket] | type[Customer] | type[Message] | type[Organisation]

_EXPORTED: dict[ExportEntity, tuple[ExportedModel, tuple[LoaderOption, ...]]] = {
    ExportEntity.tickets: (Ticket, ()),
    ExportEntity.customers: (
        Customer,
        (selectinload(Customer.emails), selectinload(Customer.external_ids)),
    ),
    ExportEntity.messages: (
        Message,
        (selectinload(Message.attachments), selectinload(Message.delivery)),
    ),
    ExportEntity.organisations: (Organisation, (selectinload(Organisation.external_ids),)),
}


async def horizon(session: AsyncSession) -> int:
    """The oldest transaction still running: every transaction below it has ended, so no row
    can still appear or change below it. Taken once per page and used by both of its queries:
    each statement has its own snapshot, and a later horizon in the second one could serve a
    tombstone past a row the first one could not see yet."""
    value: int = await session.scalar(
        text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
    )
    return value


async def rows_after(
    session: AsyncSession,
    entity: ExportEntity,
    position: tuple[int, int],
    before_txid: int,
    limit: int,
) -> list[tuple[int, ExportedRow]]:
    """Up to ``limit`` rows after ``position`` written by transactions below ``before_txid``,
    each with its ``change_txid``; read as stored now, even if this session holds an older
    copy."""
    model, options = _EXPORTED[entity]
    statement = (
        select(model.change_txid, model)
        .where(
            model.change_txid < before_txid,
            tuple_(model.change_txid, model.id) > _position(position),
        )
        .order_by(model.change_txid, model.id)
        .limit(limit)
        .options(*options)
        .execution_options(populate_existing=True)
    )
    # The model is picked at run time, so the rows are typed as the common base.
    return cast(list[tuple[int, ExportedRow]], list(await session.execute(statement)))


async def tombstones_after(
    session: AsyncSession,
    entity: ExportEntity,
    position: tuple[int, int],
    before_txid: int,
    limit: int,
) -> list[ExportTombstone]:
    statement = (
        select(ExportTombstone)
        .where(
            ExportTombstone.entity == entity.value,
            ExportTombstone.change_txid < before_txid,
            tuple_(ExportTombstone.change_txid, ExportTombstone.entity_id) > _position(position),
        )
        .order_by(ExportTombstone.change_txid, ExportTombstone.entity_id)
        .limit(limit)
    )
    return list(await session.scalars(statement))


def _position(position: tuple[int, int]) -> Any:
    txid, row_id = position
    return tuple_(literal(txid, BigInteger), literal(row_id, BigInteger))
