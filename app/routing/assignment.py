"""Choosing the agent for a ticket, for a rule's ``assign`` action.

The pool is the active, available agents of the team named (else of the queue's team, else
every admin, supervisor and agent); external partners join it only for a queue granted to
them, so never for a ticket without a queue. An agent's load is the tickets assigned to them
that are new, open or on hold: pending tickets wait on the customer, solved and closed ones are
done (``assignment_queries.LOAD_STATUSES``). An agent with as many as their capacity takes no
more. The required skills (the action's and the queue's, the higher level winning) must all be
met at or above their level, whatever the strategy:

- ``skills``: the lowest load ratio (load / capacity), then the most skill to spare (the sum of
  levels above those required), then the lowest id;
- ``least_loaded``: the lowest load ratio, then the lowest load, then the lowest id;
- ``round_robin``: the first candidate by id after the pool's last turn, wrapping around.

Safe under concurrency, and why under READ COMMITTED: a routing first takes the round-robin
cursor row (``FOR UPDATE``) when it needs one, then locks the available agents of its pool
(``FOR NO KEY UPDATE``, by ascending id), and only then counts their loads, in a new statement.
Every lock is held until the transaction ends, so a second routing that shares any agent waits
until the first has committed its assignment; READ COMMITTED gives each statement a fresh
snapshot, so the count the second one then makes includes that assignment, and the cursor it
then reads is the turn the first one moved. Counting in the locking statement itself would not
do: its snapshot is taken before it waits. Locks are taken in one order (cursor, then agents by
id), so two routings cannot deadlock. A transaction should route one ticket: a second routing
in it would lock a cursor after agents. Capacity binds automatic assignment only; a person
assigning by hand may go over it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from sqlalchemy.ext.asyncio import AsyncSession

from app.agents import service as agents
from app.agents.models import AgentRole
from app.queues import service as queues
from app.routing import assignment_queries as queries
from app.routing.assignment_queries import Member


class Strategy(StrEnum):
    skills = "skills"
    least_loaded = "least_loaded"
    round_robin = "round_robin"


@dataclass(frozen=True)
class Choice:
    agent_id: int | None
    """None: nobody fits; the ticket stays unassigned in its queue."""
    reason: str
    """Why, in words, for the routing trace."""


@dataclass(frozen=True)
class _Pool:
    team_id: int | None
    queue_id: int | None

    @property
    def scope(self) -> str:
        """The round-robin cursor's key: a team's members share their turns across queues."""
        if self.team_id is not None:
            return f"team:{self.team_id}"
        return "everyone" if self.queue_id is None else f"queue:{self.queue_id}"

    @property
    def label(self) -> str:
        if self.team_id is not None:
            return f"team {self.team_id}"
        return "all agents" if self.queue_id is None else f"all agents (queue {self.queue_id})"


def _merge_skills(*requirements: Mapping[str, int]) -> dict[str, int]:
    """Skill levels required by any of the requirements, the highest level of a skill winning."""
    merged: dict[str, int] = {}
    for requirement in requirements:
        for name, level in requirement.items():
            merged[name] = max(level, merged.get(name, level))
    return merged


def _skills_text(required: Mapping[str, int]) -> str:
    return ", ".join(f"{name}≥{level}" for name, level in sorted(required.items()))


def _has_skills(member: Member, required: Mapping[str, int]) -> bool:
    return all(member.skills.get(name, 0) >= level for name, level in required.items())


def _surplus(member: Member, required: Mapping[str, int]) -> int:
    return sum(member.skills.get(name, 0) - level for name, level in required.items())


def _ratio(member: Member) -> Fraction:
    return Fraction(member.load, member.capacity)


def _by_skills(candidates: Sequence[Member], required: Mapping[str, int]) -> Member:
    return min(candidates, key=lambda m: (_ratio(m), -_surplus(m, required), m.id))


def _least_loaded(candidates: Sequence[Member]) -> Member:
    return min(candidates, key=lambda m: (_ratio(m), m.load, m.id))


def _shortfall(
    pool: _Pool, members: Sequence[Member], away: int, unskilled: int, required: Mapping[str, int]
) -> str:
    """Why nobody of the pool fits."""
    if not members:
        return f"nobody fits: {pool.label} has no active agents"
    needs = f" (needs {_skills_text(required)})" if required else ""
    counts = [f"{len(members) - away - unskilled} at capacity", f"{away} away"]
    if unskilled:
        counts.append(f"{unskilled} without those skills")
    return f"nobody fits in {pool.label}{needs}: " + ", ".join(counts)


async def choose_agent(
    session: AsyncSession,
    *,
    strategy: Strategy,
    queue_id: int | None,
    team_id: int | None,
    required_skills: Mapping[str, int],
    exclude_ticket_id: int | None = None,
) -> Choice:
    """The agent to assign the ticket to by the strategy, or nobody, with the reason.

    ``exclude_ticket_id`` is the ticket being routed: it does not count in anyone's load. The
    chosen agent stays locked until the transaction ends (see the module's notes), so assign
    the ticket in the same transaction.
    """
    queue = await queues.find_queue(session, queue_id) if queue_id is not None else None
    required = _merge_skills(queue.required_skills if queue else {}, required_skills)
    pool = _Pool(team_id if team_id is not None else queue.team_id if queue else None, queue_id)
    last_turn = None
    if strategy is Strategy.round_robin:
        last_turn = await queries.lock_cursor(session, pool.scope)
    locked = await queries.lock_available(session, team_id=pool.team_id, queue_id=queue_id)
    members = await queries.pool_members(
        session, team_id=pool.team_id, queue_id=queue_id, exclude_ticket_id=exclude_ticket_id
    )
    present = [m for m in members if m.available and m.id in locked]
    skilled = [m for m in present if _has_skills(m, required)]
    candidates = [m for m in skilled if m.load < m.capacity]
    if not candidates:
        away, unskilled = len(members) - len(present), len(present) - len(skilled)
        return Choice(None, _shortfall(pool, members, away, unskilled, required))
    if strategy is Strategy.round_robin:
        chosen, why = _round_robin(candidates, last_turn, members, pool)
        await queries.move_cursor(session, pool.scope, chosen.id)
    elif strategy is Strategy.skills:
        chosen = _by_skills(candidates, required)
        why = f"skills {_skills_text(required)}" if required else "skills (none required)"
    else:
        chosen, why = _least_loaded(candidates), "least loaded"
    return Choice(chosen.id, f"{chosen.name}: {why}, {chosen.load} of {chosen.capacity} open")


def _round_robin(
    candidates: Sequence[Member], last_turn: int | None, members: Sequence[Member], pool: _Pool
) -> tuple[Member, str]:
    """The first candidate (by id) after the last turn, wrapping around, and why."""
    later = [m for m in candidates if last_turn is None or m.id > last_turn]
    chosen = later[0] if later else candidates[0]
    if last_turn is None:
        return chosen, f"first turn in {pool.label}"
    after = next((m.name for m in members if m.id == last_turn), f"agent {last_turn}")
    wrapped = "" if later else ", wrapping around"
    return chosen, f"next turn in {pool.label} after {after}{wrapped}"


async def check_agent(session: AsyncSession, *, agent_id: int, queue_id: int | None) -> Choice:
    """Whether a rule may assign the ticket to this agent directly.

    Naming an agent is a decision like assigning by hand, and is held to the same checks: the
    agent must be active, and an external partner must have a grant for the ticket's queue
    (there is none for a ticket without a queue). Availability and capacity are not required,
    as a rule naming someone means that person; the reason says when they are away.
    """
    agent = await agents.find_by_id(session, agent_id)
    if agent is None or not agent.active:
        return Choice(None, f"nobody fits: agent {agent_id} does not exist or is inactive")
    if agent.role is AgentRole.external and (
        queue_id is None or queue_id not in await queues.granted_queue_ids(session, agent.id)
    ):
        where = "tickets without a queue" if queue_id is None else f"queue {queue_id}"
        return Choice(
            None, f"nobody fits: {agent.name} is an external partner without a grant for {where}"
        )
    away = "" if agent.available else " (away, assigned all the same)"
    return Choice(agent.id, f"{agent.name}: named by the rule{away}")
