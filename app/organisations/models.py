from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.core.external_ids import ExternalIdColumns
from app.db.base import Base, ChangeTxidMixin, IdMixin, TimestampMixin, VersionedMixin


class Organisation(IdMixin, TimestampMixin, VersionedMixin, ChangeTxidMixin, Base):
    __tablename__ = "organisations"
    __table_args__ = (
        Index("ix_organisations_domains", "domains", postgresql_using="gin"),
        Index("ix_organisations_change_txid_id", "change_txid", "id"),
    )

    name: Mapped[str] = mapped_column(String(300), index=True)
    domains: Mapped[list[str]] = mapped_column(ARRAY(String(253)), server_default=text("'{}'"))
    attributes: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))

    # passive_deletes: the database's ON DELETE CASCADE removes the rows on delete.
    external_ids: Mapped[list[OrganisationExternalId]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="raise"
    )


class OrganisationExternalId(ExternalIdColumns, Base):
    """The organisation's id in another system (CRM, ERP); unique per system."""

    __tablename__ = "organisation_external_ids"

    organisation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
