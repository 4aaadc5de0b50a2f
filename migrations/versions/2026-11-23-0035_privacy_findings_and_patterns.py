"""privacy_findings_and_patterns

Revision ID: fdef3d092669
Revises: 7165a0e6bfe0
Create Date: 2026-11-23 00:35:49.911229+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "fdef3d092669"
down_revision: str | None = "7165a0e6bfe0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINDING_FIELD = postgresql.ENUM(
    "subject", "body_text", "body_html", "new_text", name="finding_field", create_type=False
)
CUSTOMER_FIELDS = postgresql.ENUM(
    "none", "name", "name_and_email", name="customer_fields", create_type=False
)


def upgrade() -> None:
    FINDING_FIELD.create(op.get_bind())
    CUSTOMER_FIELDS.create(op.get_bind())
    op.create_table(
        "privacy_patterns",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("regex", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_patterns")),
        sa.UniqueConstraint("name", name=op.f("uq_privacy_patterns_name")),
    )
    op.create_table(
        "message_findings",
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("field", FINDING_FIELD, nullable=False),
        sa.Column("kind", sa.String(length=120), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_findings_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_findings")),
    )
    op.create_index(
        op.f("ix_message_findings_message_id"), "message_findings", ["message_id"], unique=False
    )
    op.add_column(
        "queue_grants",
        sa.Column("customer_fields", CUSTOMER_FIELDS, server_default="none", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("queue_grants", "customer_fields")
    op.drop_index(op.f("ix_message_findings_message_id"), table_name="message_findings")
    op.drop_table("message_findings")
    op.drop_table("privacy_patterns")
    CUSTOMER_FIELDS.drop(op.get_bind())
    FINDING_FIELD.drop(op.get_bind())
