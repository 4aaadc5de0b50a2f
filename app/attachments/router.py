from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Response

from app.api.deps import CurrentPrincipal, DbSession
from app.api.problems import responses
from app.attachments import service
from app.attachments.schemas import AttachmentRead
from app.audit import service as audit
from app.tickets import service as tickets

router = APIRouter(prefix="/attachments", tags=["attachments"])


@router.get("/{attachment_id}", response_model=AttachmentRead, responses=responses(401, 403, 404))
async def get_attachment(
    session: DbSession, principal: CurrentPrincipal, attachment_id: int
) -> AttachmentRead:
    return AttachmentRead.model_validate(
        await tickets.get_attachment(session, principal, attachment_id)
    )


@router.get(
    "/{attachment_id}/content",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}, **responses(401, 403, 404)},
)
async def download_attachment(
    session: DbSession, principal: CurrentPrincipal, attachment_id: int
) -> Response:
    """The file itself, as an attachment download (audited as `attachment.downloaded`)."""
    attachment = await tickets.get_attachment(session, principal, attachment_id)
    await audit.record_read(
        session, principal, "attachment", attachment.id, action="attachment.downloaded"
    )
    return Response(
        await service.content(session, attachment),
        media_type=attachment.content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(attachment.filename)}",
            "X-Content-Type-Options": "nosniff",
        },
    )
