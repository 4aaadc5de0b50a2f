from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String, func, text
from sqlalchemy.orm import Mapped, deferred, mapped_column

from app.db.base import Base, IdMixin


class Blob(Base):
    """File content, stored once per SHA-256 however many attachments share it."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Attachment(IdMixin, Base):
    __tablename__ = "attachments"

    message_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    sha256: Mapped[str] = mapped_column(
        String(64), ForeignKey("blobs.sha256", ondelete="RESTRICT"), index=True
    )
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(Integer)
    content_id: Mapped[str | None] = mapped_column(String(998))
    inline: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
