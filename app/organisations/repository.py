from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.external_ids import ExternalIdStore
from app.core.pagination import SortKey, paginate
from app.organisations.models import Organisation, OrganisationExternalId

_WITH_EXTERNAL_IDS = selectinload(Organisation.external_ids)
_EXTERNAL_IDS = ExternalIdStore(
    "organisation", Organisation, OrganisationExternalId, OrganisationExternalId.organisation_id
)


async def get(session: AsyncSession, organisation_id: int) -> Organisation | None:
    return await session.scalar(
        select(Organisation).where(Organisation.id == organisation_id).options(_WITH_EXTERNAL_IDS)
    )


async def exists(session: AsyncSession, organisation_id: int) -> bool:
    found = await session.scalar(select(Organisation.id).where(Organisation.id == organisation_id))
    return found is not None


async def ids_with_domain(session: AsyncSession, domain: str, *, limit: int) -> list[int]:
    statement = (
        select(Organisation.id)
        .where(Organisation.domains.contains([domain]))
        .order_by(Organisation.id)
        .limit(limit)
    )
    return list(await session.scalars(statement))


async def get_by_external_id(session: AsyncSession, system: str, external_id: str) -> Organisation:
    """The organisation with that id in the other system; NotFound when none has it."""
    return await _EXTERNAL_IDS.get_owner(session, system, external_id, options=[_WITH_EXTERNAL_IDS])


async def lock_external_id(session: AsyncSession, system: str, external_id: str) -> int | None:
    """The id of the organisation holding that external id, if any, locked against other
    writers of the same id until the transaction ends."""
    return await _EXTERNAL_IDS.lock_and_find(session, system, external_id)


async def set_external_ids(
    session: AsyncSession, organisation: Organisation, wanted: Mapping[str, str]
) -> bool:
    """Give the organisation exactly these ids (system -> id); Conflict when another
    organisation holds one. Returns whether anything changed."""
    return await _EXTERNAL_IDS.sync(
        session, organisation.external_ids, wanted, entity_id=organisation.id
    )


async def list_organisations(
    session: AsyncSession,
    *,
    q: str | None,
    domain: str | None,
    key: SortKey,
    cursor: str | None,
    limit: int,
) -> list[Organisation]:
    statement = select(Organisation).options(_WITH_EXTERNAL_IDS)
    if q:
        statement = statement.where(Organisation.name.icontains(q, autoescape=True))
    if domain is not None:
        statement = statement.where(Organisation.domains.contains([domain]))
    return list(await session.scalars(paginate(statement, key, cursor, limit)))
