"""``GET /export/{tickets,customers,messages,organisations}``: one route per table, each
documented with its own item model."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import CurrentPrincipal, DbSession
from app.api.problems import responses
from app.export import service
from app.export.schemas import (
    DEFAULT_EXPORT_LIMIT,
    MAX_EXPORT_LIMIT,
    CustomerExportPage,
    ExportEntity,
    ExportPage,
    MessageExportPage,
    OrganisationExportPage,
    TicketExportPage,
)

router = APIRouter(prefix="/export", tags=["export"])

ExportCursor = Annotated[
    str | None,
    Query(description="`next_cursor` of the previous answer; omit to start from the beginning."),
]
ExportLimit = Annotated[
    int, Query(ge=1, le=MAX_EXPORT_LIMIT, description="Changes per answer at most.")
]


def _add_export_route(entity: ExportEntity, page_model: type[ExportPage[Any]]) -> None:
    async def export(
        session: DbSession,
        principal: CurrentPrincipal,
        cursor: ExportCursor = None,
        limit: ExportLimit = DEFAULT_EXPORT_LIMIT,
    ) -> ExportPage[Any]:
        batch = await service.export(session, principal, entity, cursor=cursor, limit=limit)
        return page_model(
            items=[change.item for change in batch.changes],
            next_cursor=batch.next_cursor,
            has_more=batch.has_more,
        )

    router.add_api_route(
        f"/{entity.value}",
        export,
        methods=["GET"],
        name=f"export_{entity.value}",
        response_model=page_model,
        responses=responses(401, 403, 422),
        summary=f"Export {entity.value} changed since the cursor (admin)",
        description=(
            f"Every {entity.value[:-1]} created, changed or deleted since `cursor`, oldest "
            "change first. Start without a cursor to read the whole table, then call again "
            "with `next_cursor`, at once while `has_more` is true and on a schedule after: "
            "no change is skipped or served twice, even while writes are committing. An item "
            "is the row as it is now (upsert it by `id`; a row changed again later comes "
            'again), or `{"id": ..., "deleted": true}` for a row deleted (remove it).'
        ),
    )


_add_export_route(ExportEntity.tickets, TicketExportPage)
_add_export_route(ExportEntity.customers, CustomerExportPage)
_add_export_route(ExportEntity.messages, MessageExportPage)
_add_export_route(ExportEntity.organisations, OrganisationExportPage)
