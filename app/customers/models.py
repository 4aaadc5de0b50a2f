from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.external_ids import ExternalIdColumns
from app.db.base import Base, ChangeTxidMixin, IdMixin, TimestampMixin, VersionedMixin


class Customer(IdMixin, TimestampMixin, VersionedMixin, ChangeTxidMixin, Base):
    """A contact who writes to support; known by one or more email addresses."""

    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_change_txid_id", "change_txid", "id"),)

    name: Mapped[str | None] = mapped_column(String(300), index=True)
    phone: Mapped[str | None] = mapped_column(String(50))
    customer_number: Mapped[str | None] = mapped_column(String(100), unique=True)
    organisation_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    language: Mapped[str | None] = mapped_column(String(16))
    attributes: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    blocked: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    """No mail is sent to a blocked customer's addresses (spam, abuse)."""
    erased_at: Mapped[datetime | None]
    """When the person was erased (GDPR Art. 17): the row is an anonymous statistics owner
    since, and nothing new is ever filed under it."""

    # passive_deletes: the database's ON DELETE CASCADE removes the rows on delete.
    emails: Mapped[list[CustomerEmail]] = relationship(
        order_by="CustomerEmail.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="raise",
    )
    external_ids: Mapped[list[CustomerExternalId]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )


class CustomerEmail(IdMixin, Base):
    """One address of a customer; an address belongs to one customer (stored lower-case)."""

    __tablename__ = "customer_emails"

    customer_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)
    position: Mapped[int] = mapped_column(Integer)


class CustomerExternalId(ExternalIdColumns, Base):
    """The customer's id in another system (CRM, ERP); unique per system."""

    __tablename__ = "customer_external_ids"

    customer_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
