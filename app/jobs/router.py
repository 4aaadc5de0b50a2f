from __future__ import annotations

from fastapi import APIRouter, Response, status

from app.api.deps import AppSettings, CurrentPrincipal, Cursor, DbSession, PageLimit
from app.api.problems import responses
from app.core.clock import utcnow
from app.core.pagination import Page
from app.jobs import service
from app.jobs.models import BulkJobItemState
from app.jobs.schemas import BulkJobItemRead, BulkJobRead, BulkTicketUpdate

router = APIRouter(prefix="/jobs", tags=["jobs"])
bulk_router = APIRouter(prefix="/tickets", tags=["tickets"])


@bulk_router.post(
    "/bulk",
    response_model=BulkJobRead,
    status_code=status.HTTP_202_ACCEPTED,
    responses=responses(401, 403, 422),
)
async def bulk_update_tickets(
    session: DbSession,
    principal: CurrentPrincipal,
    settings: AppSettings,
    body: BulkTicketUpdate,
    response: Response,
) -> BulkJobRead:
    """Change many tickets (status, queue, assignee, team, tags) as one job (agents and
    above). The tickets are chosen now, by id or by the ticket list's filters (at most
    `TICKETRY_BULK_MAX_TICKETS`); the workers then change each one as if you had sent
    `PATCH /tickets/{id}` (routing rules run, every change is audited). Follow the job at
    `Location`."""
    job = await service.create_ticket_update(
        session, principal, body, now=utcnow(), max_tickets=settings.bulk_max_tickets
    )
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return BulkJobRead.model_validate(job)


@router.get("/{job_id}", response_model=BulkJobRead, responses=responses(401, 403, 404, 422))
async def get_job(session: DbSession, principal: CurrentPrincipal, job_id: int) -> BulkJobRead:
    """The job's state and progress (its requester and admins)."""
    return BulkJobRead.model_validate(await service.get_job(session, principal, job_id))


@router.get(
    "/{job_id}/items",
    response_model=Page[BulkJobItemRead],
    responses=responses(401, 403, 404, 422),
)
async def list_job_items(
    session: DbSession,
    principal: CurrentPrincipal,
    job_id: int,
    limit: PageLimit,
    cursor: Cursor = None,
    state: BulkJobItemState | None = None,
) -> Page[BulkJobItemRead]:
    """The job's tickets and how each went, in the order they were selected; `state=failed`
    lists those that could not be changed, with the reason."""
    rows, next_cursor = await service.list_items(session, principal, job_id, state, cursor, limit)
    return Page(items=[BulkJobItemRead.model_validate(i) for i in rows], next_cursor=next_cursor)


@router.post(
    "/{job_id}/cancel", response_model=BulkJobRead, responses=responses(401, 403, 404, 409, 422)
)
async def cancel_job(session: DbSession, principal: CurrentPrincipal, job_id: int) -> BulkJobRead:
    """Stop the job: tickets not yet changed stay as they are."""
    job = await service.cancel_job(session, principal, job_id, utcnow())
    return BulkJobRead.model_validate(job)
