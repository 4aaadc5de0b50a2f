from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin


class BulkJobKind(StrEnum):
    ticket_update = "ticket_update"


class BulkJobState(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"
    """The job could not go on as a whole (its requester was deactivated); a failed item
    leaves the job ``done``."""
    cancelled = "cancelled"


class BulkJobItemState(StrEnum):
    pending = "pending"
    updated = "updated"
    unchanged = "unchanged"
    failed = "failed"


class BulkJob(IdMixin, Base):
    """One requested change of many tickets. The requester is kept as the worker needs it to
    act for them: their current role and grants are read again when the work is done."""

    __tablename__ = "bulk_jobs"

    kind: Mapped[BulkJobKind] = mapped_column(Enum(BulkJobKind, name="bulk_job_kind"))
    state: Mapped[BulkJobState] = mapped_column(
        Enum(BulkJobState, name="bulk_job_state"), server_default=BulkJobState.queued.value
    )
    requester_agent_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("agents.id", ondelete="SET NULL")
    )
    requester_label: Mapped[str] = mapped_column(String(320))
    requester_token_id: Mapped[int | None] = mapped_column(BigInteger)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    selection: Mapped[dict[str, Any]]
    """As given: ``{"ticket_ids": [...]}`` or ``{"filter": {...}}``."""
    changes: Mapped[dict[str, Any]]
    total: Mapped[int] = mapped_column(Integer)
    succeeded: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    unchanged: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class BulkJobItem(IdMixin, Base):
    """One ticket of a job, with the outcome of its change."""

    __tablename__ = "bulk_job_items"
    __table_args__ = (
        UniqueConstraint("job_id", "ticket_id"),
        # What the workers claim: pending items, oldest job first, in ticket order.
        Index(
            "ix_bulk_job_items_pending",
            "job_id",
            "ticket_id",
            postgresql_where=text("state = 'pending'"),
        ),
    )

    job_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("bulk_jobs.id", ondelete="CASCADE"))
    # No foreign key: the snapshot keeps the id of a ticket deleted before its turn, which then
    # fails with the reason.
    ticket_id: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[BulkJobItemState] = mapped_column(
        Enum(BulkJobItemState, name="bulk_job_item_state"),
        server_default=BulkJobItemState.pending.value,
    )
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]
