from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import SortKey, paginate
from app.ingest.models import InboundMail, InboundStatus


async def insert_raw(session: AsyncSession, values: dict[str, object]) -> int | None:
    """Insert the raw mail; None when this mailbox's UID is stored already."""
    inserted: int | None = await session.scalar(
        insert(InboundMail)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[
                InboundMail.mailbox_id,
                InboundMail.folder,
                InboundMail.uidvalidity,
                InboundMail.uid,
            ]
        )
        .returning(InboundMail.id)
    )
    return inserted


async def id_for_uid(
    session: AsyncSession, mailbox_id: int, folder: str, uidvalidity: int, uid: int
) -> int | None:
    return await session.scalar(
        select(InboundMail.id).where(
            InboundMail.mailbox_id == mailbox_id,
            InboundMail.folder == folder,
            InboundMail.uidvalidity == uidvalidity,
            InboundMail.uid == uid,
        )
    )


async def get(
    session: AsyncSession, inbound_id: int, *, for_update: bool = False
) -> InboundMail | None:
    # populate_existing: a locking read must refresh an object the session loaded before.
    return await session.get(
        InboundMail, inbound_id, with_for_update=for_update, populate_existing=for_update
    )


async def find_processed_twin(session: AsyncSession, inbound: InboundMail) -> InboundMail | None:
    """An earlier mail with the same Message-ID and the same content, already processed."""
    statement = select(InboundMail).where(
        InboundMail.id != inbound.id,
        InboundMail.content_hash == inbound.content_hash,
        InboundMail.status.in_([InboundStatus.processed, InboundStatus.duplicate]),
    )
    if inbound.message_id_header is None:
        # Without a Message-ID only a recent copy counts: a monitoring system may send the
        # same text again next week, and that is a new mail.
        statement = statement.where(
            InboundMail.message_id_header.is_(None),
            InboundMail.received_at >= inbound.received_at - timedelta(hours=48),
        )
    else:
        statement = statement.where(InboundMail.message_id_header == inbound.message_id_header)
    return await session.scalar(statement.order_by(InboundMail.id).limit(1))


async def count_automatic_answers(session: AsyncSession, sender: str, since: datetime) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(InboundMail)
        .where(
            InboundMail.sender == sender,
            InboundMail.received_at >= since,
            InboundMail.auto_reply_allowed.is_(True),
        )
    )
    return count or 0


async def ids_with_status(
    session: AsyncSession,
    status: InboundStatus,
    *,
    mailbox_id: int | None = None,
    source: str | None = None,
) -> list[int]:
    statement = select(InboundMail.id).where(InboundMail.status == status)
    if mailbox_id is not None:
        statement = statement.where(InboundMail.mailbox_id == mailbox_id)
    if source is not None:
        statement = statement.where(InboundMail.source == source)
    return list(await session.scalars(statement.order_by(InboundMail.id)))


async def unhandled_on_server(
    session: AsyncSession, mailbox_id: int, folder: str, uidvalidity: int
) -> list[tuple[int, int]]:
    """(inbound id, UID) of stored mails the server was not yet told about."""
    rows = await session.execute(
        select(InboundMail.id, InboundMail.uid)
        .where(
            InboundMail.mailbox_id == mailbox_id,
            InboundMail.folder == folder,
            InboundMail.uidvalidity == uidvalidity,
            InboundMail.handled_on_server_at.is_(None),
            InboundMail.status != InboundStatus.received,
        )
        .order_by(InboundMail.uid)
    )
    return [(row_id, uid) for row_id, uid in rows if uid is not None]


async def mark_handled_on_server(session: AsyncSession, ids: list[int], when: datetime) -> None:
    await session.execute(
        update(InboundMail).where(InboundMail.id.in_(ids)).values(handled_on_server_at=when)
    )


async def list_by_status(
    session: AsyncSession, status: InboundStatus, key: SortKey, cursor: str | None, limit: int
) -> list[InboundMail]:
    statement = select(InboundMail).where(InboundMail.status == status)
    return list(await session.scalars(paginate(statement, key, cursor, limit)))


async def count_attempt(session: AsyncSession, inbound_id: int) -> int:
    """One more processing attempt; returns how many there have been."""
    attempts: int | None = await session.scalar(
        update(InboundMail)
        .where(InboundMail.id == inbound_id)
        .values(attempts=InboundMail.attempts + 1)
        .returning(InboundMail.attempts)
    )
    return attempts or 0
