from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app.api.deps import AppSettings, DbSession
from app.api.problems import responses
from app.status import service
from app.status.page import render_page
from app.status.schemas import StatusRead

router = APIRouter(prefix="/status", tags=["status"])

# The token is the key: it must not leak from the page (no referrer, no caching, no indexing),
# and the page runs no script.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


@router.get(
    "/{token}",
    response_model=StatusRead,
    responses={
        **responses(404),
        200: {"content": {"text/html": {}}, "description": "The page, or JSON when asked for"},
    },
)
async def ticket_status(
    session: DbSession,
    settings: AppSettings,
    token: Annotated[str, Path(min_length=1, max_length=64)],
    accept: Annotated[str, Header()] = "text/html",
) -> Response:
    """The customer's status page, linked from the acknowledgement: the ticket's status and its
    latest public messages. No login: the link's token is the key. HTML for a browser; JSON
    with `Accept: application/json`."""
    status = await service.ticket_status(
        session, token, ticket_number_prefix=settings.ticket_number_prefix
    )
    if "application/json" in accept and "text/html" not in accept:
        return JSONResponse(status.model_dump(mode="json"), headers=_PAGE_HEADERS)
    return HTMLResponse(render_page(status), headers=_PAGE_HEADERS)
