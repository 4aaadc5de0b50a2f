from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Row, literal, select, update
from sqlalchemy.dialects.postgresql import Insert, array, insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.pagination import SortKey, paginate
from app.db.locks import lock_values
from app.mailboxes.models import Mailbox, MailboxFolder, MailboxState, MailboxStatus
from app.templates.models import Template


async def get(session: AsyncSession, mailbox_id: int) -> Mailbox | None:
    return await session.get(Mailbox, mailbox_id)


async def id_by_name(session: AsyncSession, name: str) -> int | None:
    return await session.scalar(select(Mailbox.id).where(Mailbox.name == name))


async def list_mailboxes(
    session: AsyncSession, *, key: SortKey, cursor: str | None, limit: int
) -> list[Mailbox]:
    return list(await session.scalars(paginate(select(Mailbox), key, cursor, limit)))


async def list_active(session: AsyncSession) -> list[Mailbox]:
    return list(await session.scalars(select(Mailbox).where(Mailbox.active).order_by(Mailbox.id)))


async def lock_addresses(session: AsyncSession, addresses: Collection[str]) -> None:
    """Serialise writers of the same addresses until the transaction ends (no constraint can
    keep an address in one mailbox's array only)."""
    await lock_values(session, "mailbox-address", addresses)


async def find_address_owners(
    session: AsyncSession, addresses: Collection[str], *, exclude_id: int | None
) -> list[Mailbox]:
    """Mailboxes (other than ``exclude_id``) that serve any of the addresses."""
    statement = (
        select(Mailbox)
        .where(Mailbox.addresses.overlap(array(list(addresses))))
        .order_by(Mailbox.id)
    )
    if exclude_id is not None:
        statement = statement.where(Mailbox.id != exclude_id)
    return list(await session.scalars(statement))


async def by_address(session: AsyncSession, address: str) -> Mailbox | None:
    return await session.scalar(
        select(Mailbox).where(Mailbox.addresses.contains([address])).order_by(Mailbox.id).limit(1)
    )


async def statuses(session: AsyncSession, mailbox_ids: Collection[int]) -> dict[int, MailboxStatus]:
    rows = await session.scalars(
        select(MailboxStatus)
        .where(MailboxStatus.mailbox_id.in_(mailbox_ids))
        .execution_options(populate_existing=True)
    )
    return {row.mailbox_id: row for row in rows}


async def folder_states(
    session: AsyncSession, mailbox_ids: Collection[int]
) -> dict[int, list[MailboxFolder]]:
    rows = await session.scalars(
        select(MailboxFolder)
        .where(MailboxFolder.mailbox_id.in_(mailbox_ids))
        .order_by(MailboxFolder.mailbox_id, MailboxFolder.folder)
        .execution_options(populate_existing=True)
    )
    states: dict[int, list[MailboxFolder]] = {}
    for row in rows:
        states.setdefault(row.mailbox_id, []).append(row)
    return states


async def folder_state(
    session: AsyncSession, mailbox_id: int, folder: str
) -> tuple[int | None, int] | None:
    row = (
        await session.execute(
            select(MailboxFolder.uidvalidity, MailboxFolder.last_uid).where(
                MailboxFolder.mailbox_id == mailbox_id, MailboxFolder.folder == folder
            )
        )
    ).one_or_none()
    return None if row is None else (row.uidvalidity, row.last_uid)


def _upsert_for_mailbox(
    model: type[MailboxStatus | MailboxFolder], mailbox_id: int, values: dict[str, Any]
) -> Insert:
    """``INSERT INTO <model's table> SELECT id, <values> FROM mailboxes WHERE id = ...``: adds
    nothing once the mailbox is gone (deleted while its reader was busy) instead of failing on
    the foreign key; the caller adds the ON CONFLICT part."""
    table = model.__table__
    columns = [literal(value, table.c[name].type).label(name) for name, value in values.items()]
    source = select(Mailbox.id, *columns).where(Mailbox.id == mailbox_id)
    return insert(model).from_select(["mailbox_id", *values], source)


async def save_folder_state(
    session: AsyncSession, mailbox_id: int, folder: str, uidvalidity: int, last_uid: int
) -> None:
    values = {"folder": folder, "uidvalidity": uidvalidity, "last_uid": last_uid}
    statement = _upsert_for_mailbox(MailboxFolder, mailbox_id, values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[MailboxFolder.mailbox_id, MailboxFolder.folder],
            set_={"uidvalidity": uidvalidity, "last_uid": last_uid},
        )
    )


async def record_success(session: AsyncSession, mailbox_id: int, reader: str, at: datetime) -> None:
    values = {
        "state": MailboxState.ok,
        "reader": reader,
        "last_success_at": at,
        "consecutive_failures": 0,
        "updated_at": at,
    }
    statement = _upsert_for_mailbox(MailboxStatus, mailbox_id, values)
    await session.execute(
        statement.on_conflict_do_update(index_elements=[MailboxStatus.mailbox_id], set_=values)
    )


async def record_failure(
    session: AsyncSession, mailbox_id: int, reader: str, error: str, at: datetime
) -> None:
    values = {
        "state": MailboxState.failing,
        "reader": reader,
        "last_error_at": at,
        "last_error": error,
        "consecutive_failures": 1,
        "updated_at": at,
    }
    statement = _upsert_for_mailbox(MailboxStatus, mailbox_id, values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[MailboxStatus.mailbox_id],
            set_={**values, "consecutive_failures": MailboxStatus.consecutive_failures + 1},
        )
    )


async def lock_token_refresh(session: AsyncSession, mailbox_id: int) -> None:
    """Let one transaction at a time refresh the mailbox's OAuth token (until it ends)."""
    await lock_values(session, "mailbox-oauth-refresh", [str(mailbox_id)])


async def oauth_tokens(
    session: AsyncSession, mailbox_id: int
) -> Row[str | None, datetime | None, str | None] | None:
    """The stored (encrypted) access token, its expiry and the refresh token, as they are now:
    the caller's ``Mailbox`` may be an older copy, detached from this session."""
    return (
        await session.execute(
            select(
                Mailbox.oauth_access_token_encrypted,
                Mailbox.oauth_access_token_expires_at,
                Mailbox.oauth_refresh_token_encrypted,
            ).where(Mailbox.id == mailbox_id)
        )
    ).one_or_none()


async def store_oauth_tokens(
    session: AsyncSession, mailbox_id: int, values: dict[str, str | datetime | None]
) -> None:
    """Store new OAuth tokens (encrypted) without making it a change of the configuration:
    neither the version (ETag) nor ``updated_at`` moves, so a refresh by the reader does not
    fail an administrator's edit with 412."""
    await session.execute(
        update(Mailbox)
        .where(Mailbox.id == mailbox_id)
        .values(**values, updated_at=Mailbox.updated_at)
        .execution_options(synchronize_session="fetch")
    )


async def template_exists(session: AsyncSession, template_id: int) -> bool:
    found = await session.scalar(select(Template.id).where(Template.id == template_id))
    return found is not None
