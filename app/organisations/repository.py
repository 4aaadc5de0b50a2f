from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from app.core.pagination import SortKey, paginate
from app.organisations.models import Organisation, OrganisationExternalId

_WITH_EXTERNAL_IDS = selectinload(Organisation.external_ids)


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


async def get_by_external_id(
    session: AsyncSession, system: str, external_id: str
) -> Organisation | None:
    statement = (
        select(Organisation)
        .join(OrganisationExternalId)
        .where(
            OrganisationExternalId.system == system,
            OrganisationExternalId.external_id == external_id,
        )
        .options(_WITH_EXTERNAL_IDS)
    )
    return await session.scalar(statement)


async def external_id_owners(
    session: AsyncSession, pairs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    """Which organisation holds each ``(system, external_id)``, for those that are taken."""
    wanted = list(pairs)
    if not wanted:
        return {}
    statement = select(
        OrganisationExternalId.system,
        OrganisationExternalId.external_id,
        OrganisationExternalId.organisation_id,
    ).where(tuple_(OrganisationExternalId.system, OrganisationExternalId.external_id).in_(wanted))
    return {(system, value): owner for system, value, owner in await session.execute(statement)}


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
