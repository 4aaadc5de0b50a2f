from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.api.deps import AppSettings, CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit
from app.api.etag import created_with_etag, read_with_etag
from app.api.problems import responses
from app.core.clock import utcnow
from app.core.pagination import Page
from app.webhooks import service
from app.webhooks.models import Webhook
from app.webhooks.schemas import (
    DeliveryRead,
    PingResult,
    WebhookCreate,
    WebhookRead,
    WebhookUpdate,
    WebhookWithSecret,
)
from app.webhooks.service import WebhookConfig

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def _with_secret(response: Response, webhook: Webhook, secret: str) -> WebhookWithSecret:
    read = read_with_etag(response, WebhookRead, webhook)
    return WebhookWithSecret(**read.model_dump(), secret=secret)


@router.get("", response_model=Page[WebhookRead], responses=responses(401, 403, 422))
async def list_webhooks(
    session: DbSession, principal: CurrentPrincipal, limit: PageLimit, cursor: Cursor = None
) -> Page[WebhookRead]:
    """List webhooks, oldest first (admin)."""
    rows, next_cursor = await service.list_webhooks(session, principal, cursor=cursor, limit=limit)
    return Page(items=[WebhookRead.model_validate(w) for w in rows], next_cursor=next_cursor)


@router.post(
    "",
    response_model=WebhookWithSecret,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 422),
)
async def create_webhook(
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    body: WebhookCreate,
    request: Request,
    response: Response,
) -> WebhookWithSecret:
    """Subscribe an endpoint to events (admin). The answer holds the signing secret, which
    is not shown again."""
    webhook, secret = await service.create_webhook(
        session, principal, body, WebhookConfig.from_settings(settings)
    )
    created_with_etag(request, response, WebhookRead, webhook)
    return _with_secret(response, webhook, secret)


@router.get("/{webhook_id}", response_model=WebhookRead, responses=responses(401, 403, 404, 422))
async def get_webhook(
    session: DbSession, principal: CurrentPrincipal, webhook_id: int, response: Response
) -> WebhookRead:
    webhook = await service.get_webhook(session, principal, webhook_id)
    return read_with_etag(response, WebhookRead, webhook)


@router.patch(
    "/{webhook_id}", response_model=WebhookRead, responses=responses(401, 403, 404, 412, 422)
)
async def update_webhook(
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    webhook_id: int,
    body: WebhookUpdate,
    if_match: IfMatch,
    response: Response,
) -> WebhookRead:
    """Change the URL, the event types, the description, or switch it off and on (admin)."""
    webhook = await service.update_webhook(
        session,
        principal,
        webhook_id,
        body,
        if_match,
        WebhookConfig.from_settings(settings),
        now=utcnow(),
    )
    return read_with_etag(response, WebhookRead, webhook)


@router.delete(
    "/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 412, 422),
)
async def delete_webhook(
    session: DbSession, principal: CurrentPrincipal, webhook_id: int, if_match: IfMatch
) -> None:
    """Delete a webhook and its delivery log (admin)."""
    await service.delete_webhook(session, principal, webhook_id, if_match)


@router.post(
    "/{webhook_id}/rotate-secret",
    response_model=WebhookWithSecret,
    responses=responses(401, 403, 404, 409, 422),
)
async def rotate_secret(
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    webhook_id: int,
    response: Response,
) -> WebhookWithSecret:
    """A new signing secret (admin), shown this once. The old one keeps signing as well for
    TICKETRY_WEBHOOK_SECRET_OVERLAP_HOURS: deliveries then carry both signatures. 409 while
    the secret before the last rotation still signs."""
    webhook, secret = await service.rotate_secret(
        session, principal, webhook_id, WebhookConfig.from_settings(settings), now=utcnow()
    )
    return _with_secret(response, webhook, secret)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=Page[DeliveryRead],
    responses=responses(401, 403, 404, 422),
)
async def list_deliveries(
    session: DbSession,
    principal: CurrentPrincipal,
    webhook_id: int,
    limit: PageLimit,
    cursor: Cursor = None,
) -> Page[DeliveryRead]:
    """The delivery log, newest first (admin): status, attempts, last answer and error."""
    rows, next_cursor = await service.list_deliveries(
        session, principal, webhook_id, cursor=cursor, limit=limit
    )
    return Page(items=[DeliveryRead.model_validate(d) for d in rows], next_cursor=next_cursor)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryRead,
    responses=responses(401, 403, 404, 422),
)
async def redeliver(
    session: DbSession, principal: CurrentPrincipal, webhook_id: int, delivery_id: int
) -> DeliveryRead:
    """Send a delivery's event again, with the same `webhook-id` (admin)."""
    delivery = await service.redeliver(session, principal, webhook_id, delivery_id, now=utcnow())
    return DeliveryRead.model_validate(delivery)


@router.post(
    "/{webhook_id}/ping", response_model=PingResult, responses=responses(401, 403, 404, 422)
)
async def ping(
    session: DbSession, principal: CurrentPrincipal, settings: AppSettings, webhook_id: int
) -> PingResult:
    """Post a signed `webhook.ping` event to this endpoint now and report the answer (admin)."""
    outcome = await service.ping(
        session, principal, webhook_id, WebhookConfig.from_settings(settings), now=utcnow()
    )
    return PingResult(
        delivered=outcome.delivered,
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        error=outcome.error,
    )
