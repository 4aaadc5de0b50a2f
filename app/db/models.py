"""Imports every model so that ``Base.metadata`` (and Alembic) sees the whole schema."""

from app.agents.models import Agent
from app.api.models import IdempotencyRecord, RateLimitWindow
from app.attachments.models import Attachment, Blob
from app.audit.models import AuditEvent
from app.auth.models import ApiToken
from app.calendars.models import Calendar, CalendarHoliday
from app.customers.models import Customer, CustomerEmail, CustomerExternalId
from app.db.base import Base
from app.events.models import Event
from app.export.models import ExportTombstone
from app.followups.models import FollowUp
from app.incidents.models import Incident, IncidentTicket, TicketUpdateSchedule
from app.ingest.models import InboundMail
from app.jobs.models import BulkJob, BulkJobItem
from app.mailboxes.models import Mailbox, MailboxFolder, MailboxStatus
from app.organisations.models import Organisation, OrganisationExternalId
from app.outbound.models import OutboundMail
from app.privacy.models import MessageFinding, SensitivePattern
from app.queues.models import Queue, queue_grants
from app.routing.models import AssignmentCursor, RoutingTrace, RuleSetVersion
from app.scheduler.models import AutomationFiring
from app.sla.models import SlaPolicy
from app.teams.models import Team, team_members
from app.templates.models import Template, TemplateVersion, template_queues
from app.tickets.models import Message, Ticket, TicketLink
from app.webhooks.models import Webhook, WebhookDelivery, fan_out_cursor

__all__ = [
    "Agent",
    "ApiToken",
    "AssignmentCursor",
    "Attachment",
    "AuditEvent",
    "AutomationFiring",
    "Base",
    "Blob",
    "BulkJob",
    "BulkJobItem",
    "Calendar",
    "CalendarHoliday",
    "Customer",
    "CustomerEmail",
    "CustomerExternalId",
    "Event",
    "ExportTombstone",
    "FollowUp",
    "IdempotencyRecord",
    "InboundMail",
    "Incident",
    "IncidentTicket",
    "Mailbox",
    "MailboxFolder",
    "MailboxStatus",
    "Message",
    "MessageFinding",
    "Organisation",
    "OrganisationExternalId",
    "OutboundMail",
    "Queue",
    "RateLimitWindow",
    "RoutingTrace",
    "RuleSetVersion",
    "SensitivePattern",
    "SlaPolicy",
    "Team",
    "Template",
    "TemplateVersion",
    "Ticket",
    "TicketLink",
    "TicketUpdateSchedule",
    "Webhook",
    "WebhookDelivery",
    "fan_out_cursor",
    "queue_grants",
    "team_members",
    "template_queues",
]
