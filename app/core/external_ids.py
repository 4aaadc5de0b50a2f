"""External ids (a CRM's or ERP's key for our record), shared by customers and organisations."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

from app.core.errors import Conflict


class ExternalIdRow(Protocol):
    @property
    def system(self) -> str: ...

    @property
    def external_id(self) -> str: ...


RowT = TypeVar("RowT", bound=ExternalIdRow)


def sync_external_ids(
    rows: list[RowT],
    wanted: Mapping[str, str],
    *,
    owners: Mapping[tuple[str, str], int],
    entity: str,
    entity_id: int | None,
    make: Callable[[str, str], RowT],
) -> bool:
    """Make the relationship collection ``rows`` hold exactly ``wanted`` (system -> id).

    ``owners`` tells who holds each wanted id already (from the repository); an id held by
    another ``entity`` is a conflict. Returns whether anything changed.
    """
    for (system, external_id), owner in sorted(owners.items()):
        if owner != entity_id:
            raise Conflict(
                f"The {system} id {external_id!r} belongs to {entity} {owner} already.",
                **{f"{entity}_id": owner},
            )
    kept = {(r.system, r.external_id) for r in rows if wanted.get(r.system) == r.external_id}
    removed = [row for row in rows if (row.system, row.external_id) not in kept]
    for row in removed:
        rows.remove(row)
    added = [make(system, value) for system, value in wanted.items() if (system, value) not in kept]
    rows.extend(added)
    return bool(removed or added)
