"""External ids (a CRM's or ERP's key for our record), shared by customers and organisations:
the API's types for them, and one store that keeps each id with one entity."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import String, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Mapped, mapped_column
from sqlalchemy.sql.base import ExecutableOption

from app.core.errors import Invalid, NotFound, PreconditionFailed
from app.core.uniqueness import check_free
from app.db.locks import lock_values

SystemName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
        description="The other system's name: lower-case letters, digits, `_`, `.` and `-`.",
        examples=["crm"],
    ),
]
ExternalIdValue = Annotated[str, Field(min_length=1, max_length=200, examples=["A-17"])]
ExternalIds = Annotated[
    dict[SystemName, ExternalIdValue],
    Field(
        description="The entity's id in other systems, one per system; an id belongs to one "
        "entity only.",
        examples=[{"crm": "A-17"}],
    ),
]


def with_path_id(system: str, external_id: str, given: Mapping[str, str] | None) -> dict[str, str]:
    """The ids of an upsert's body plus the one named by its path; the body may repeat that
    one, not contradict it."""
    ids = dict(given or {})
    if ids.setdefault(system, external_id) != external_id:
        raise Invalid(
            f"The body gives the {system} id {ids[system]!r}, the path {external_id!r}.",
            field=f"body.external_ids.{system}",
        )
    return ids


BodyT = TypeVar("BodyT", bound=BaseModel)
EntityT = TypeVar("EntityT")


async def upsert(
    body: BodyT,
    ids: dict[str, str],
    owner_id: int | None,
    *,
    expected_version: int | None,
    missing: str,
    create: Callable[[BodyT], Awaitable[EntityT]],
    update: Callable[[int, dict[str, Any]], Awaitable[EntityT]],
) -> tuple[EntityT, bool]:
    """Create or update by external id: ``create`` the entity from the ``body`` with ``ids``
    when no entity (``owner_id``) has the id, else ``update`` it with the fields the body
    gives (``ids`` in place of its ``external_ids`` when it gives them). An ``If-Match``
    version (``missing`` names what is absent) cannot match an entity that does not exist.
    Returns the entity and whether it was created."""
    if owner_id is None:
        if expected_version is not None:
            raise PreconditionFailed(f"No {missing} exists yet.")
        return await create(body.model_copy(update={"external_ids": ids})), True
    values = body.model_dump(exclude_unset=True)
    if "external_ids" in values:
        values["external_ids"] = ids
    return await update(owner_id, values), False


def external_ids_as_dict(value: Any) -> Any:
    """Read schemas show the ORM's external-id rows as one ``{system: id}`` object."""
    if isinstance(value, dict):
        return value
    return {row.system: row.external_id for row in value}


class ExternalIdColumns:
    """Mixin of a model of external ids: ``(system, external_id)`` is the primary key, so an
    id belongs to one entity; the model adds the foreign key to its entity. (``sort_order``:
    the columns come first, as the tables were created.)"""

    system: Mapped[str] = mapped_column(String(64), primary_key=True, sort_order=-1)
    external_id: Mapped[str] = mapped_column(String(200), primary_key=True, sort_order=-1)

    if TYPE_CHECKING:
        # The declarative base's constructor, which the mapped subclasses get.
        def __init__(self, **values: Any) -> None: ...


OwnerT = TypeVar("OwnerT")
RowT = TypeVar("RowT", bound=ExternalIdColumns)


@dataclass(frozen=True)
class ExternalIdStore(Generic[OwnerT, RowT]):
    """The external ids of one kind of entity: ``row`` rows pointing at ``owner`` rows
    through ``owner_id``; ``entity`` names the owner in errors (``"customer"``)."""

    entity: str
    owner: type[OwnerT]
    row: type[RowT]
    owner_id: InstrumentedAttribute[int]

    async def get_owner(
        self,
        session: AsyncSession,
        system: str,
        external_id: str,
        *,
        options: Sequence[ExecutableOption] = (),
    ) -> OwnerT:
        """The entity holding the id in that system, loaded with ``options``; NotFound when
        none does."""
        statement = (
            select(self.owner)
            .join(self.row)
            .where(self.row.system == system, self.row.external_id == external_id)
            .options(*options)
        )
        owner = await session.scalar(statement)
        if owner is None:
            raise NotFound(f"No {self.entity} has the {system} id {external_id!r}.")
        return owner

    async def lock_and_find(
        self, session: AsyncSession, system: str, external_id: str
    ) -> int | None:
        """For an upsert: who holds the id, after waiting for any other writer of the same id
        to end its transaction (two creating it at once would clash on the key)."""
        await lock_values(session, f"{self.entity}-external-id", [f"{system}:{external_id}"])
        return (await self.owners(session, [(system, external_id)])).get((system, external_id))

    async def owners(
        self, session: AsyncSession, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], int]:
        """Which entity holds each ``(system, external_id)``, for those that are taken."""
        wanted = list(pairs)
        if not wanted:
            return {}
        statement = select(self.row.system, self.row.external_id, self.owner_id).where(
            tuple_(self.row.system, self.row.external_id).in_(wanted)
        )
        return {(system, value): owner for system, value, owner in await session.execute(statement)}

    async def sync(
        self,
        session: AsyncSession,
        rows: list[RowT],
        wanted: Mapping[str, str],
        *,
        entity_id: int | None,
    ) -> bool:
        """Make the relationship collection ``rows`` of entity ``entity_id`` (``None``: not
        yet flushed) hold exactly ``wanted`` (system -> id); an id another entity holds is a
        conflict. Returns whether anything changed."""
        owners = await self.owners(session, wanted.items())
        for (system, external_id), owner in sorted(owners.items()):
            check_free(
                f"The {system} id {external_id!r}",
                owner_id=owner,
                entity=self.entity,
                entity_id=entity_id,
            )
        kept = {(r.system, r.external_id) for r in rows if wanted.get(r.system) == r.external_id}
        removed = [row for row in rows if (row.system, row.external_id) not in kept]
        for row in removed:
            rows.remove(row)
        added = [
            self.row(system=system, external_id=value)
            for system, value in wanted.items()
            if (system, value) not in kept
        ]
        rows.extend(added)
        return bool(removed or added)
