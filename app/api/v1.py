"""Every domain router under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.agents.router import router as agents
from app.api.idempotency import check_idempotency_key, make_posts_idempotent
from app.api.rate_limits import enforce_rate_limit
from app.attachments.router import router as attachments
from app.audit.router import router as audit
from app.auth.router import router as auth
from app.calendars.router import router as calendars
from app.customers.router import router as customers
from app.events.router import router as events
from app.export.router import router as export
from app.followups.router import router as follow_ups
from app.gdpr.router import router as subject_rights
from app.incidents.router import router as incidents
from app.incidents.router import ticket_updates_router as proactive_updates
from app.ingest.router import router as ingest
from app.jobs.router import bulk_router as bulk_tickets
from app.jobs.router import router as jobs
from app.mailboxes.router import router as mailboxes
from app.organisations.router import router as organisations
from app.privacy.router import messages_router as message_privacy
from app.privacy.router import router as privacy_patterns
from app.queues.router import router as queues
from app.routing.router import router as rules
from app.routing.router import ticket_routing_router
from app.sla.router import router as sla_policies
from app.sla.router import ticket_sla_router
from app.tags.router import router as tags
from app.teams.router import router as teams
from app.templates.router import router as templates
from app.tickets.router import customer_history_router
from app.tickets.router import router as tickets
from app.webhooks.router import router as webhooks

api_v1 = APIRouter(
    prefix="/api/v1",
    dependencies=[Depends(enforce_rate_limit), Depends(check_idempotency_key)],
)
for domain_router in (
    auth,
    tickets,
    follow_ups,
    proactive_updates,
    incidents,
    attachments,
    customers,
    customer_history_router,
    subject_rights,
    organisations,
    queues,
    agents,
    teams,
    calendars,
    sla_policies,
    rules,
    ticket_routing_router,
    ticket_sla_router,
    tags,
    templates,
    mailboxes,
    ingest,
    audit,
    events,
    export,
    privacy_patterns,
    message_privacy,
    webhooks,
    bulk_tickets,
    jobs,
):
    make_posts_idempotent(domain_router)
    api_v1.include_router(domain_router)
