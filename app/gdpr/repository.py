"""The queries of exporting and erasing a person and of retention. Erasure reaches into every
table that can hold personal data, so its statements are here together, named by table."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Text,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, selectinload

from app.api.models import IdempotencyRecord
from app.attachments.models import Attachment, Blob
from app.customers.models import Customer, CustomerEmail, CustomerExternalId
from app.events.models import Event
from app.ingest.models import InboundMail
from app.queues.models import Queue
from app.tickets.models import Message, Ticket, TicketLink, TicketStatus
from app.webhooks.models import WebhookDelivery

# --- export ------------------------------------------------------------------------------------


async def customer(
    session: AsyncSession, customer_id: int, *, lock: bool = False
) -> Customer | None:
    statement = (
        select(Customer)
        .where(Customer.id == customer_id)
        .options(selectinload(Customer.emails), selectinload(Customer.external_ids))
        .execution_options(populate_existing=True)
    )
    if lock:
        statement = statement.with_for_update(of=Customer)
    return await session.scalar(statement)


async def tickets_of(
    session: AsyncSession, customer_id: int, *, lock: bool = False
) -> list[Ticket]:
    statement = select(Ticket).where(Ticket.customer_id == customer_id).order_by(Ticket.id)
    if lock:
        statement = statement.with_for_update()
    return list(await session.scalars(statement))


async def messages_of(session: AsyncSession, ticket_ids: Collection[int]) -> list[Message]:
    """The tickets' messages, oldest first, with attachments and mail delivery."""
    statement = (
        select(Message)
        .where(Message.ticket_id.in_(ticket_ids))
        .options(selectinload(Message.attachments), selectinload(Message.delivery))
        .order_by(Message.created_at, Message.id)
    )
    return list(await session.scalars(statement))


# --- erasure: finding what is the person's -------------------------------------------------------


async def messages_by(
    session: AsyncSession, ticket_ids: Collection[int], customer_id: int | None, emails: list[str]
) -> list[Message]:
    """Messages of the tickets, and (for a person) those they wrote on other tickets."""
    mine: list[ColumnElement[bool]] = [Message.ticket_id.in_(ticket_ids)]
    if customer_id is not None:
        mine.append(Message.author_customer_id == customer_id)
    if emails:
        mine.append(func.lower(Message.from_address).in_(emails))
    statement = (
        select(Message)
        .where(or_(*mine))
        .options(selectinload(Message.attachments), selectinload(Message.delivery))
        .order_by(Message.created_at, Message.id)
    )
    return list(await session.scalars(statement))


async def inbound_mails_of(
    session: AsyncSession,
    ticket_ids: Collection[int],
    message_ids: Collection[int],
    emails: list[str],
) -> list[tuple[int, str]]:
    """Raw mails kept by ingestion that became these messages or tickets, or that the person
    sent (a quarantined mail has neither): their ids and blobs."""
    theirs: list[ColumnElement[bool]] = [
        InboundMail.ticket_id.in_(ticket_ids),
        InboundMail.message_id.in_(message_ids),
    ]
    if emails:
        theirs.append(func.lower(InboundMail.sender).in_(emails))
    statement = select(InboundMail.id, InboundMail.raw_sha256).where(or_(*theirs))
    return [(row.id, row.raw_sha256) for row in await session.execute(statement)]


_UNLINKED_BATCH = 50


async def unlinked_inbound_mails_from(
    session: AsyncSession, emails: Collection[str]
) -> list[tuple[int, str]]:
    """Raw mails not parsed yet or unparseable (no ticket, no sender known) whose bytes name
    one of the addresses: their ids and blobs. Read ``_UNLINKED_BATCH`` at a time, so a full
    quarantine is never held in memory at once."""
    found: list[tuple[int, str]] = []
    after = 0
    while True:
        statement = (
            select(InboundMail.id, InboundMail.raw_sha256, Blob.content)
            .join(Blob, Blob.sha256 == InboundMail.raw_sha256)
            .where(
                InboundMail.ticket_id.is_(None),
                InboundMail.sender.is_(None),
                InboundMail.id > after,
            )
            .order_by(InboundMail.id)
            .limit(_UNLINKED_BATCH)
        )
        rows = (await session.execute(statement)).all()
        found += [
            (row.id, row.raw_sha256)
            for row in rows
            if any(email.encode() in row.content.lower() for email in emails)
        ]
        if len(rows) < _UNLINKED_BATCH:
            return found
        after = rows[-1].id


async def attachment_blobs(session: AsyncSession, message_ids: Collection[int]) -> set[str]:
    statement = select(Attachment.sha256).where(Attachment.message_id.in_(message_ids))
    return set(await session.scalars(statement))


async def count_of_messages(
    session: AsyncSession, column: InstrumentedAttribute[Any], message_ids: Collection[int]
) -> int:
    """Rows of a table hanging off the messages (deleted with them by cascade)."""
    statement = select(func.count()).where(column.in_(message_ids))
    return await session.scalar(statement) or 0


# --- erasure: deleting and anonymising ---------------------------------------------------------


async def delete_messages(session: AsyncSession, message_ids: Collection[int]) -> int:
    """Delete the messages; attachments, findings and outbound mails go with them (cascade)."""
    result = await session.execute(
        delete(Message)
        .where(Message.id.in_(message_ids))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def delete_by_id(
    session: AsyncSession, column: InstrumentedAttribute[int], ids: Collection[int]
) -> int:
    entity = column.class_
    result = await session.execute(
        delete(entity).where(column.in_(ids)).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def delete_unused_blobs(session: AsyncSession, shas: Collection[str]) -> int:
    """Delete the blobs no attachment or raw mail uses any more (others may share one)."""
    result = await session.execute(
        delete(Blob)
        .where(
            Blob.sha256.in_(shas),
            ~exists().where(Attachment.sha256 == Blob.sha256),
            ~exists().where(InboundMail.raw_sha256 == Blob.sha256),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def anonymise_tickets(session: AsyncSession, ticket_ids: Collection[int], erased: str) -> int:
    """Keep the tickets as statistics rows: status, priority, channel, queue, team, assignee,
    category and times stay; subject, tags and custom fields go. The version moves (ETag)."""
    result = await session.execute(
        update(Ticket)
        .where(Ticket.id.in_(ticket_ids))
        .values(
            subject=erased,
            tags=[],
            custom_fields={},
            version=Ticket.version + 1,
            updated_at=func.now(),
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def set_text(
    session: AsyncSession,
    column: InstrumentedAttribute[Any],
    where: ColumnElement[bool],
    value: str,
) -> int:
    result = await session.execute(
        update(column.class_)
        .where(where)
        .values({column.key: value})
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def links_of(ticket_ids: Collection[int]) -> ColumnElement[bool]:
    return or_(TicketLink.ticket_id.in_(ticket_ids), TicketLink.other_ticket_id.in_(ticket_ids))


async def anonymise_customer(session: AsyncSession, customer_id: int) -> None:
    """The customer stays as the anonymous owner of their tickets' statistics rows."""
    await session.execute(
        delete(CustomerEmail)
        .where(CustomerEmail.customer_id == customer_id)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        delete(CustomerExternalId)
        .where(CustomerExternalId.customer_id == customer_id)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Customer)
        .where(Customer.id == customer_id)
        .values(
            name=None,
            phone=None,
            customer_number=None,
            attributes={},
            blocked=False,
            erased_at=func.now(),
            version=Customer.version + 1,
            updated_at=func.now(),
        )
        .execution_options(synchronize_session=False)
    )


async def erased_customers(session: AsyncSession, customer_ids: Collection[int]) -> set[int]:
    """Those of the customers that are erased, their rows locked ``FOR SHARE``: an erasure in
    progress holds them ``FOR UPDATE``, so this waits for it to end and sees its outcome."""
    statement = (
        select(Customer.id, Customer.erased_at)
        .where(Customer.id.in_(customer_ids))
        .with_for_update(read=True)
    )
    return {row.id for row in await session.execute(statement) if row.erased_at is not None}


async def remove_addresses(session: AsyncSession, emails: list[str]) -> int:
    """Take the addresses out of other messages' recipients; how many messages changed."""
    changed: set[int] = set()
    for column in _ADDRESS_COLUMNS:
        statement = text(
            f"UPDATE messages SET {column} = ARRAY("  # noqa: S608 - fixed column names
            f"SELECT a FROM unnest({column}) AS a WHERE lower(a) <> ALL(:emails)) "
            f"WHERE EXISTS (SELECT 1 FROM unnest({column}) AS a WHERE lower(a) = ANY(:emails)) "
            "RETURNING id"
        )
        changed.update(await session.scalars(statement, {"emails": emails}))
    return len(changed)


_ADDRESS_COLUMNS = ("to_addresses", "cc_addresses", "bcc_addresses", "reply_to_addresses")


# --- erasure: scrubbing text that mentions the person ------------------------------------------


def mentioning(column: InstrumentedAttribute[Any], needles: Collection[str]) -> ColumnElement[bool]:
    """Rows whose column (JSON as text) contains any of the needles, case-insensitive."""
    return or_(*(cast(column, Text).icontains(needle, autoescape=True) for needle in needles))


_UPDATE_BATCH = 500


async def update_rows(
    session: AsyncSession,
    key: InstrumentedAttribute[int],
    column: InstrumentedAttribute[Any],
    values: dict[int, Any],
    *,
    versioned: bool = False,
) -> None:
    """Set ``column`` to ``values[key]`` in each row, ``_UPDATE_BATCH`` rows per executemany;
    ``versioned`` rows move their version (ETag) and ``updated_at``."""
    entity = key.class_
    table = entity.metadata.tables[entity.__tablename__]
    changes: dict[str, Any] = {column.key: bindparam("new_value", type_=column.type)}
    if versioned:
        changes |= {"version": table.c.version + 1, "updated_at": func.now()}
    # On the table, not the entity: a list of parameters then runs as one executemany.
    statement = update(table).where(table.c[key.key] == bindparam("row_key")).values(changes)
    rows = [{"row_key": row_key, "new_value": value} for row_key, value in values.items()]
    for start in range(0, len(rows), _UPDATE_BATCH):
        await session.execute(statement, rows[start : start + _UPDATE_BATCH])


async def scrub_json(
    session: AsyncSession,
    key: InstrumentedAttribute[int],
    column: InstrumentedAttribute[Any],
    change: Callable[[Any], Any],
    where: ColumnElement[bool],
) -> list[int]:
    """Rewrite the JSON ``column`` with ``change`` in the rows ``where`` selects; their keys."""
    rows = (await session.execute(select(key, column).where(where))).all()
    await update_rows(session, key, column, {row_key: change(value) for row_key, value in rows})
    return [row_key for row_key, _ in rows]


async def rewrite_text(
    session: AsyncSession,
    key: InstrumentedAttribute[int],
    column: InstrumentedAttribute[Any],
    change: Callable[[str], str],
    where: ColumnElement[bool],
    *,
    versioned: bool = False,
) -> list[int]:
    """Rewrite the text ``column`` with ``change`` in the rows ``where`` selects; the keys of
    the rows it changed."""
    changed = {}
    for row_key, value in (await session.execute(select(key, column).where(where))).all():
        if (new := change(value)) != value:
            changed[row_key] = new
    await update_rows(session, key, column, changed, versioned=versioned)
    return list(changed)


def events_about(entities: dict[str, Collection[int]]) -> ColumnElement[bool]:
    return or_(
        *(
            and_(Event.entity == kind, Event.entity_id.in_(ids))
            for kind, ids in entities.items()
            if ids
        ),
        literal(False),  # never an empty OR
    )


async def delete_idempotency_records(
    session: AsyncSession,
    needles: Collection[str],
    paths: Sequence[str],
    customer_id: int | None,
) -> int:
    """Stored answers that hold the person's data or are about their records (they are
    replayed only for a while anyway)."""
    # The body as escaped text never fails to convert, whatever bytes it holds; needles are
    # escaped alike. Lower-casing it there reaches ASCII letters only, so the usual spellings
    # of a needle with other letters are tried too.
    body = func.lower(func.encode(IdempotencyRecord.body, "escape"))
    spellings = {
        _bytea_escaped(form).lower()
        for needle in needles
        for form in (needle, needle.lower(), needle.upper(), needle.title())
    }
    about: list[ColumnElement[bool]] = [
        body.contains(spelling, autoescape=True) for spelling in sorted(spellings)
    ]
    if paths:
        about.append(IdempotencyRecord.path.op("~")(_any_path(paths)))
    if customer_id is not None:
        about.append(body.op("~")(f'"customer_id": ?{customer_id}[,}}]'))
    if not about:
        return 0
    result = await session.execute(
        delete(IdempotencyRecord).where(or_(*about)).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def count_webhook_deliveries(session: AsyncSession, event_ids: Collection[int]) -> int:
    statement = select(func.count()).where(WebhookDelivery.event_id.in_(event_ids))
    return await session.scalar(statement) or 0


# --- retention ---------------------------------------------------------------------------------


async def retention_queues(session: AsyncSession) -> list[Queue]:
    statement = select(Queue).where(Queue.retention_months.is_not(None)).order_by(Queue.name)
    return list(await session.scalars(statement))


def _expired(queue_id: int, closed_before: datetime, erased: str) -> ColumnElement[bool]:
    return and_(
        Ticket.queue_id == queue_id,
        Ticket.status == TicketStatus.closed,
        Ticket.closed_at < closed_before,
        # An anonymised ticket keeps its place in the statistics; it is done.
        Ticket.subject != erased,
    )


async def expired_summary(
    session: AsyncSession, queue_id: int, closed_before: datetime, erased: str
) -> tuple[int, datetime | None]:
    statement = select(func.count(), func.min(Ticket.closed_at)).where(
        _expired(queue_id, closed_before, erased)
    )
    row = (await session.execute(statement)).one()
    return int(row[0]), row[1]


async def queue(session: AsyncSession, queue_id: int, *, lock: bool = False) -> Queue | None:
    return await session.get(Queue, queue_id, with_for_update=lock, populate_existing=lock)


async def claim_expired(
    session: AsyncSession,
    queue_id: int,
    closed_before: datetime,
    erased: str,
    limit: int,
    *,
    skip: Collection[int] = (),
) -> list[int]:
    """Up to ``limit`` expired tickets but ``skip``, locked; those another pass holds are
    skipped too."""
    statement = (
        select(Ticket.id)
        .where(_expired(queue_id, closed_before, erased), Ticket.id.not_in(skip))
        .order_by(Ticket.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(await session.scalars(statement))


def _bytea_escaped(value: str) -> str:
    """``value``'s UTF-8 bytes as PostgreSQL's ``encode(..., 'escape')`` writes them."""
    return "".join(
        "\\\\" if byte == 0x5C else chr(byte) if 0x20 <= byte < 0x7F else f"\\{byte:03o}"
        for byte in value.encode()
    )


def _any_path(paths: Sequence[str]) -> str:
    return "^/api/v1/(" + "|".join(_regex_escape(path) for path in paths) + ")(/|$)"


def _regex_escape(value: str) -> str:
    return "".join(c if c.isalnum() else f"\\{c}" for c in value)
