from __future__ import annotations

from fastapi import APIRouter, status

from app.api.deps import CurrentPrincipal, DbSession
from app.api.problems import responses
from app.core.clock import utcnow
from app.followups import service
from app.followups.schemas import FollowUpRead, FollowUpSet

router = APIRouter(prefix="/tickets", tags=["follow-ups"])


@router.get(
    "/{ticket_id}/follow-up", response_model=FollowUpRead, responses=responses(401, 403, 404)
)
async def get_follow_up(
    session: DbSession, principal: CurrentPrincipal, ticket_id: int
) -> FollowUpRead:
    """The ticket's current reminder: waiting, or fired (`fired: true`) until an agent clears
    it; 404 when it has none."""
    follow_up = await service.get_follow_up(session, principal, ticket_id)
    return FollowUpRead.model_validate(follow_up)


@router.put(
    "/{ticket_id}/follow-up",
    response_model=FollowUpRead,
    responses=responses(401, 403, 404, 422),
)
async def set_follow_up(
    session: DbSession, principal: CurrentPrincipal, ticket_id: int, body: FollowUpSet
) -> FollowUpRead:
    """Set the ticket pending until `due_at` (or `in` an ISO 8601 duration from now) with a
    note; it replaces a current reminder. At that time the ticket opens again for its
    assignee (or whoever set the reminder) and a `ticket.follow_up_due` event fires. A
    customer message before then reopens it at once and the reminder still fires (agent
    role or higher)."""
    follow_up = await service.set_follow_up(session, principal, ticket_id, body, now=utcnow())
    return FollowUpRead.model_validate(follow_up)


@router.delete(
    "/{ticket_id}/follow-up",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404),
)
async def clear_follow_up(session: DbSession, principal: CurrentPrincipal, ticket_id: int) -> None:
    """Clear the ticket's reminder, fired or not; its status stays (agent role or higher)."""
    await service.clear_follow_up(session, principal, ticket_id, now=utcnow())
