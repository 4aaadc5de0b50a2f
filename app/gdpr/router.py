from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.deps import CurrentPrincipal, DbSession, get_sessionmaker
from app.api.problems import responses
from app.core.clock import utcnow
from app.gdpr import retention, service
from app.gdpr.schemas import (
    ErasureRead,
    ErasureRequest,
    Reason,
    RetentionConfirm,
    RetentionPreview,
    RetentionQueuePreview,
)

router = APIRouter(tags=["data subject rights"])

_ZIP: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A zip: `customer.json`, `tickets/<number>.json` (the ticket with its "
        "messages), `attachments/<id>-<filename>` and `audit.json` (audit events about the "
        "customer, their tickets and messages).",
        "content": {"application/zip": {}},
    }
}


@router.get(
    "/customers/{customer_id}/export",
    response_class=StreamingResponse,
    responses=_ZIP | responses(401, 403, 404, 422),
)
async def export_customer(
    session: DbSession,
    principal: CurrentPrincipal,
    maker: Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)],
    customer_id: int,
    reason: Annotated[Reason, Query()],
) -> StreamingResponse:
    """Everything held about the customer, as a machine-readable zip streamed to the client
    (GDPR Art. 15; supervisor or higher). Texts are not masked: it is the person's own data.
    Audited as `customer.exported` with the reason."""
    export = await service.export_customer(session, principal, customer_id, reason)
    return StreamingResponse(
        service.zip_stream(maker, export),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="customer-{customer_id}-export.zip"'
        },
    )


@router.post(
    "/customers/{customer_id}/erase",
    response_model=ErasureRead,
    responses=responses(401, 403, 404, 422),
)
async def erase_customer(
    session: DbSession, principal: CurrentPrincipal, customer_id: int, body: ErasureRequest
) -> ErasureRead:
    """Erase the customer everywhere, irreversibly, in one transaction (GDPR Art. 17; admin):
    messages, attachments, raw mail, outbound mail, event and webhook payloads, audit content
    and every other mention go; the customer and their tickets stay as anonymous statistics
    rows. The response and the `customer.erased` audit event list the rows per table."""
    erased = await service.erase_customer(session, principal, customer_id, body.reason)
    return ErasureRead(customer_id=customer_id, erased=erased)


@router.get("/retention/preview", response_model=RetentionPreview, responses=responses(401, 403))
async def preview_retention(session: DbSession, principal: CurrentPrincipal) -> RetentionPreview:
    """What the retention pass would do now (admin): per queue with `retention_months`, how
    many closed tickets are past it and the oldest. Nothing is changed."""
    return await retention.preview(session, principal, utcnow())


@router.post(
    "/retention/queues/{queue_id}/confirm",
    response_model=RetentionQueuePreview,
    responses=responses(401, 403, 404, 409, 422),
)
async def confirm_retention(
    session: DbSession, principal: CurrentPrincipal, queue_id: int, body: RetentionConfirm
) -> RetentionQueuePreview:
    """Let the retention pass act on the queue (admin): the body restates the period and
    action seen in the preview, and must still be the queue's (else 409: preview again).
    Until confirmed, and again after any change of the policy, the pass leaves the queue
    alone. Audited as `retention.confirmed`; answers the queue's preview."""
    return await retention.confirm(session, principal, queue_id, body, utcnow())
