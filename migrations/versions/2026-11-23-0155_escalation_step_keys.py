"""Escalation steps are known by a key (their ``at_percent`` and ``metrics``) instead of their
place in the policy's list, so editing a policy neither fires a step again nor skips one.
``ticket_escalations.step_key`` holds it and is unique per target; the existing rows get the
key of the step that stood at their position, or ``at_percent`` with all targets when the
policy is gone or shorter now.

Revision ID: e4a9c27d1f58
Revises: 5b7e1c3d9a24
Create Date: 2026-11-23 01:55:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e4a9c27d1f58"
down_revision: str | None = "5b7e1c3d9a24"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("ticket_escalations", sa.Column("step_key", sa.Text(), nullable=True))
    op.execute(
        """
        UPDATE ticket_escalations e
        SET step_key = e.at_percent::text || ':' || coalesce(
            (
                SELECT string_agg(m, ',' ORDER BY m)
                FROM ticket_sla_targets t
                JOIN sla_policies p ON p.id = t.policy_id,
                jsonb_array_elements_text(
                    CASE jsonb_typeof(p.escalations -> e.step -> 'metrics')
                        WHEN 'array' THEN p.escalations -> e.step -> 'metrics'
                        ELSE '[]'::jsonb
                    END
                ) AS m
                WHERE t.id = e.target_id
                    AND (p.escalations -> e.step ->> 'at_percent')::int = e.at_percent
            ),
            '*'
        )
        """
    )
    op.alter_column("ticket_escalations", "step_key", nullable=False)
    # escalation_level now counts the fired steps (it was the next position to look at).
    op.execute(
        """
        UPDATE ticket_sla_targets t
        SET escalation_level = (SELECT count(*) FROM ticket_escalations e WHERE e.target_id = t.id)
        WHERE t.escalation_level > 0
        """
    )
    op.drop_constraint(
        op.f("uq_ticket_escalations_target_id_step"), "ticket_escalations", type_="unique"
    )
    op.create_unique_constraint(
        op.f("uq_ticket_escalations_target_id_step_key"),
        "ticket_escalations",
        ["target_id", "step_key"],
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("uq_ticket_escalations_target_id_step_key"), "ticket_escalations", type_="unique"
    )
    # Positions may repeat once steps were inserted or removed: keep the first of each.
    op.execute(
        """
        DELETE FROM ticket_escalations e
        USING ticket_escalations f
        WHERE f.target_id = e.target_id AND f.step = e.step AND f.id < e.id
        """
    )
    op.create_unique_constraint(
        op.f("uq_ticket_escalations_target_id_step"), "ticket_escalations", ["target_id", "step"]
    )
    op.execute(
        """
        UPDATE ticket_sla_targets t
        SET escalation_level = (SELECT max(e.step) + 1 FROM ticket_escalations e
                                WHERE e.target_id = t.id)
        WHERE t.escalation_level > 0
        """
    )
    op.drop_column("ticket_escalations", "step_key")
