"""Export pages: each item is the entity's usual read model with `"deleted": false`, or a
tombstone `{"id": ..., "deleted": true, "deleted_at": ...}` for a row that is gone."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from app.customers.schemas import CustomerRead
from app.organisations.schemas import OrganisationRead
from app.tickets.schemas import MessageRead, TicketRead

ItemT = TypeVar("ItemT")

DEFAULT_EXPORT_LIMIT = 1000
MAX_EXPORT_LIMIT = 5000


class ExportEntity(StrEnum):
    """The exported tables, as named in the export's paths."""

    tickets = "tickets"
    customers = "customers"
    messages = "messages"
    organisations = "organisations"


class Deleted(BaseModel):
    """The row was deleted (a customer also when merged into another): remove it."""

    id: int
    deleted: Literal[True] = True
    deleted_at: datetime


class _Present(BaseModel):
    deleted: Literal[False] = Field(
        default=False, description="Always false here: the row as it is now; upsert it by id."
    )


class ExportedTicket(TicketRead, _Present):
    pass


class ExportedCustomer(CustomerRead, _Present):
    pass


class ExportedMessage(MessageRead, _Present):
    pass


class ExportedOrganisation(OrganisationRead, _Present):
    pass


ExportItem = ExportedTicket | ExportedCustomer | ExportedMessage | ExportedOrganisation | Deleted


class ExportPage(BaseModel, Generic[ItemT]):
    """Changes after the cursor, oldest first; ask again with ``next_cursor``."""

    items: list[ItemT]
    next_cursor: str = Field(
        description="Where the next call starts; the cursor sent when nothing changed since."
    )
    has_more: bool = Field(
        description="More changes are ready now: ask again at once instead of waiting."
    )


class TicketExportPage(ExportPage[ExportedTicket | Deleted]):
    pass


class CustomerExportPage(ExportPage[ExportedCustomer | Deleted]):
    pass


class MessageExportPage(ExportPage[ExportedMessage | Deleted]):
    pass


class OrganisationExportPage(ExportPage[ExportedOrganisation | Deleted]):
    pass
