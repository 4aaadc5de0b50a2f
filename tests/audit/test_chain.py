"""The hash chain on a committed database of its own (sealing needs transactions that really
ended): a clean log verifies, an edited, deleted or unlinked event is the first broken link,
rows of running transactions wait, concurrent writers and sealers make one valid chain, and the
CLI says so with its exit code."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.audit import service as audit
from app.audit.chain import content_digest, redactions_digest
from app.audit.models import AuditChainLink, AuditEvent
from app.audit.schemas import AuditVerification
from app.audit.worker import AuditSealer
from app.auth.schemas import system_principal
from app.customers import service as customers
from app.customers.schemas import CustomerCreate
from app.db.migrate import upgrade_to_head
from app.db.session import create_engine, create_sessionmaker
from app.gdpr import service as subject_rights
from app.tickets import service as tickets
from app.tickets.schemas import CustomerRef, FirstMessage, TicketCreate
from tests.conftest import _drop_database, _recreate_database
from tests.test_cli import cli_env, run_cli

Maker = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WRITER = system_principal("mail-ingest")
ADMIN = system_principal("auditor")


@pytest.fixture(scope="module")
async def chain_database(database_url: str) -> AsyncIterator[tuple[str, Maker]]:
    """Migrated once for the module; each test empties the audit tables first."""
    name = f"ticketry_audit_{os.getpid()}"
    url = await _recreate_database(database_url, name)
    engine = create_engine(url, pool_size=5)
    await upgrade_to_head(engine)
    yield url, create_sessionmaker(engine)
    await engine.dispose()
    await _drop_database(database_url, name)


async def _as_superuser(maker: Maker, statement: str, **params: object) -> None:
    """Bypass the append-only triggers, as someone with full access to the database could."""
    async with maker.begin() as session:
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        await session.execute(text(statement), params)


@pytest.fixture
async def maker(chain_database: tuple[str, Maker]) -> Maker:
    maker = chain_database[1]
    await _as_superuser(maker, "TRUNCATE audit_events, audit_chain")
    return maker


async def write(maker: Maker, count: int, *, label: str = "e") -> list[int]:
    """Each event in a transaction of its own; their ids."""
    ids = []
    for number in range(count):
        async with maker.begin() as session:
            await audit.record(
                session, WRITER, "ticket.updated", "ticket", number, after={"note": f"{label}ø"}
            )
            ids.append(await _last_id(session))
    return ids


async def _last_id(session: AsyncSession) -> int:
    newest = await session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    assert newest is not None
    return newest


async def verify(maker: Maker) -> AuditVerification:
    async with maker.begin() as session:
        return await audit.verify(session, ADMIN, NOW)


async def seal_everything(maker: Maker) -> AuditVerification:
    """Verify until no event is left unsealed: a test run beside this one may hold the oldest
    running transaction back for a moment (that is the sealer waiting as it should)."""
    for _ in range(400):
        result = await verify(maker)
        if result.unsealed == 0:
            return result
        await asyncio.sleep(0.05)
    pytest.fail("transactions of other sessions kept running for 20 seconds")


async def test_a_clean_log_verifies_and_the_chain_follows_the_transactions(maker: Maker) -> None:
    ids = await write(maker, 3)

    result = await seal_everything(maker)

    assert result.ok
    assert result.first_broken is None
    assert result.checked == 3
    assert result.head is not None
    assert result.head.position == 3
    async with maker() as session:
        links = (await session.scalars(select(AuditChainLink).order_by("position"))).all()
    assert [link.event_id for link in links] == ids
    assert {link.sealed_at for link in links} == {NOW}
    assert len({link.hash for link in links}) == 3

    again = await verify(maker)
    assert (again.ok, again.checked, again.head) == (True, 3, result.head), "sealing is idempotent"


async def test_events_of_running_transactions_wait_and_are_sealed_in_transaction_order(
    maker: Maker,
) -> None:
    await write(maker, 1)
    async with maker() as early:
        # This transaction writes first (an older txid) and commits last.
        await audit.record(early, WRITER, "ticket.viewed", "ticket", 7)
        early_id = await _last_id(early)
        [late_id] = await write(maker, 1, label="late")

        result = await verify(maker)

        assert result.ok
        assert result.unsealed >= 1, "the committed event waits for the older transaction"
        await early.commit()

    result = await seal_everything(maker)
    assert (result.ok, result.checked, result.unsealed) == (True, 3, 0)
    async with maker() as session:
        order = (await session.scalars(select(AuditChainLink.event_id).order_by("position"))).all()
    assert order[1:] == [early_id, late_id]


async def test_an_edited_event_is_the_first_broken_link(maker: Maker) -> None:
    ids = await write(maker, 5)
    await seal_everything(maker)

    await _as_superuser(maker, "UPDATE audit_events SET after = '{}' WHERE id = :id", id=ids[2])
    result = await verify(maker)

    assert not result.ok
    assert result.first_broken is not None
    assert (result.first_broken.position, result.first_broken.event_id) == (3, ids[2])
    assert result.first_broken.problem == "altered"
    assert result.checked == 2


async def test_a_deleted_event_or_link_is_reported(maker: Maker) -> None:
    ids = await write(maker, 4)
    await seal_everything(maker)

    await _as_superuser(maker, "DELETE FROM audit_chain WHERE position = 3")
    missing = await verify(maker)
    await _as_superuser(maker, "DELETE FROM audit_events WHERE id = :id", id=ids[1])
    deleted = await verify(maker)

    assert missing.first_broken is not None
    assert (missing.first_broken.position, missing.first_broken.problem) == (3, "missing_link")
    assert deleted.first_broken is not None
    assert deleted.first_broken.model_dump(include={"position", "event_id", "problem"}) == {
        "position": 2,
        "event_id": ids[1],
        "problem": "deleted",
    }
    assert not deleted.ok
    assert deleted.checked == 1


async def test_the_tables_refuse_changes_without_superuser_rights(maker: Maker) -> None:
    await write(maker, 1)
    await seal_everything(maker)
    for statement in (
        "UPDATE audit_chain SET hash = 'x'",
        "DELETE FROM audit_chain",
        "TRUNCATE audit_events",
        "TRUNCATE audit_chain",
    ):
        async with maker() as session:
            with pytest.raises(DBAPIError, match="is append-only"):
                await session.execute(text(statement))


async def test_concurrent_writers_and_sealers_make_one_valid_chain(maker: Maker) -> None:
    async def writer(number: int) -> None:
        async with maker.begin() as session:
            for step in range(3):
                await audit.record(session, WRITER, "ticket.updated", "ticket", number * 10 + step)
                await asyncio.sleep(0)

    async def sealer() -> None:
        for _ in range(5):
            await audit.run_audit_seal_pass(maker, NOW, batch=4)
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(n) for n in range(12)), sealer(), sealer())
    result = await seal_everything(maker)

    assert (result.ok, result.checked, result.unsealed) == (True, 36, 0)
    async with maker() as session:
        rows = (
            await session.execute(
                select(AuditChainLink.position, AuditEvent.txid, AuditEvent.id)
                .join(AuditEvent, AuditEvent.id == AuditChainLink.event_id)
                .order_by(AuditChainLink.position)
            )
        ).all()
    assert [row.position for row in rows] == list(range(1, 37))
    assert [(row.txid, row.id) for row in rows] == sorted((row.txid, row.id) for row in rows)


async def test_the_workers_seal_in_the_background_until_stopped(maker: Maker) -> None:
    ids = await write(maker, 2)
    stop = asyncio.Event()
    running = asyncio.create_task(
        AuditSealer(maker, interval_seconds=0.02, clock=lambda: NOW).run(stop)
    )
    try:
        for _ in range(1000):
            async with maker() as session:
                sealed = (await session.scalars(select(AuditChainLink.event_id))).all()
            if len(sealed) == len(ids):
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)

    assert sorted(sealed) == ids


async def test_the_cli_exits_0_on_an_intact_chain_and_1_at_the_first_break(
    chain_database: tuple[str, Maker], maker: Maker, tmp_path: Path
) -> None:
    ids = await write(maker, 2)
    await seal_everything(maker)
    env = cli_env(tmp_path, database_url=chain_database[0])

    intact = await asyncio.to_thread(run_cli, "audit", "verify", env=env, cwd=tmp_path)
    await _as_superuser(maker, "DELETE FROM audit_events WHERE id = :id", id=ids[0])
    broken = await asyncio.to_thread(run_cli, "audit", "verify", env=env, cwd=tmp_path)

    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.startswith("Audit trail intact: 2 event(s) checked")
    assert broken.returncode == 1
    assert "broken at position 1" in broken.stderr
    assert f"Audit event {ids[0]}" in broken.stderr
    assert "compare audit_events with a backup" in broken.stderr


# --- redaction ---------------------------------------------------------------------------------


async def _redact(maker: Maker, event_id: int, after: dict[str, object]) -> int:
    """Redact one event through the recorded path; the id of the event that vouches for it."""
    async with maker.begin() as session:
        event = await session.get(AuditEvent, event_id)
        assert event is not None
        await audit.redact(
            session,
            ADMIN,
            [audit.Redaction(event, event.before, after)],
            "customer.erased",
            "customer",
            1,
            after={"erased": {"audit_events": 1}},
        )
        return await _last_id(session)


async def test_a_recorded_redaction_keeps_the_chain_whole_and_a_later_edit_still_shows(
    maker: Maker,
) -> None:
    ids = await write(maker, 3, label="Søren Ærø")
    await seal_everything(maker)

    redactor = await _redact(maker, ids[1], {"note": "[erased]"})
    result = await seal_everything(maker)

    assert (result.ok, result.checked, result.redacted) == (True, 4, 1)
    async with maker() as session:
        event = await session.get(AuditEvent, ids[1])
        vouching = await session.get(AuditEvent, redactor)
    assert event is not None
    assert event.after == {"note": "[erased]"}
    assert vouching is not None
    assert vouching.after is not None
    assert vouching.after["audit_redactions"]["count"] == 1

    await _as_superuser(
        maker, """UPDATE audit_events SET after = '{"note": "x"}' WHERE id = :id""", id=ids[1]
    )
    edited = await verify(maker)
    assert not edited.ok
    assert edited.first_broken is not None
    assert (edited.first_broken.position, edited.first_broken.problem) == (2, "altered")


async def test_a_redaction_no_sealed_event_vouches_for_is_a_broken_link(maker: Maker) -> None:
    ids = await write(maker, 2)
    await seal_everything(maker)

    # Someone with full rights edits an event and records a redaction to cover it up.
    await _as_superuser(maker, "UPDATE audit_events SET after = '{}' WHERE id = :id", id=ids[0])
    async with maker() as session:
        event = await session.get(AuditEvent, ids[0])
        link = await session.scalar(select(AuditChainLink).where(AuditChainLink.event_id == ids[0]))
        assert event is not None
        assert link is not None
        digest = content_digest(event)
    await _as_superuser(
        maker,
        "INSERT INTO audit_redactions "
        "(event_id, redacted_by_event_id, previous_digest, redacted_digest) "
        "VALUES (:event_id, :by, :previous, :digest)",
        event_id=ids[0],
        by=ids[1],
        previous=link.content_digest,
        digest=digest,
    )
    result = await verify(maker)

    assert not result.ok
    assert result.first_broken is not None
    assert (result.first_broken.position, result.first_broken.event_id) == (1, ids[0])
    assert "does not vouch" in result.first_broken.detail


async def test_an_event_redacted_twice_verifies_and_both_redacting_events_are_listed(
    maker: Maker,
) -> None:
    ids = await write(maker, 2, label="Søren Ærø og Ida Holm")
    await seal_everything(maker)

    first = await _redact(maker, ids[0], {"note": "[erased] og Ida Holm"})
    second = await _redact(maker, ids[0], {"note": "[erased] og [erased]"})
    result = await seal_everything(maker)

    assert result.ok, result.first_broken
    assert (result.checked, result.redacted) == (4, 1)
    assert [(e.event_id, e.action, e.redacted) for e in result.redacting_events] == [
        (first, "customer.erased", 1),
        (second, "customer.erased", 1),
    ]


async def test_a_redaction_vouched_for_by_another_action_or_transaction_does_not_hold(
    maker: Maker,
) -> None:
    """What the application's own database role can do: set the redaction setting, record a
    redaction and write an event claiming it. Only a sealed ``customer.erased`` or
    ``retention.applied`` written in the redaction's transaction vouches."""
    for action, same_transaction in (("ticket.updated", True), ("customer.erased", False)):
        [event_id] = await write(maker, 1)
        await seal_everything(maker)
        async with maker() as session:
            event = await session.get(AuditEvent, event_id)
            assert event is not None
            previous = content_digest(event)
            event.after = {"note": "forged"}
            forged = content_digest(event)
            await session.rollback()
        async with maker() as session:
            claim = {"count": 1, "digest": redactions_digest([(event_id, forged)])}
            await session.execute(
                text(
                    "INSERT INTO audit_events (actor_label, action, entity_type, entity_id, "
                    "after) VALUES ('x', :action, 'customer', '1', :after) RETURNING id"
                ),
                {"action": action, "after": json.dumps({"audit_redactions": claim})},
            )
            redactor = await _last_id(session)
            if not same_transaction:
                await session.commit()
            await session.execute(
                text(
                    "INSERT INTO audit_redactions "
                    "(event_id, redacted_by_event_id, previous_digest, redacted_digest) "
                    "VALUES (:event_id, :by, :previous, :forged)"
                ),
                {"event_id": event_id, "by": redactor, "previous": previous, "forged": forged},
            )
            await session.execute(text("SELECT set_config('ticketry.audit_redaction', 'on', true)"))
            await session.execute(
                text("""UPDATE audit_events SET after = '{"note": "forged"}' WHERE id = :id"""),
                {"id": event_id},
            )
            await session.commit()
        result = await seal_everything(maker)

        assert not result.ok, action
        assert result.first_broken is not None
        assert result.first_broken.event_id == event_id
        assert "does not vouch" in result.first_broken.detail
        await _as_superuser(maker, "TRUNCATE audit_events, audit_chain")


async def test_the_database_changes_audit_content_only_through_a_recorded_redaction(
    maker: Maker,
) -> None:
    [event_id] = await write(maker, 1)
    without_setting = "UPDATE audit_events SET after = '{}' WHERE id = :id"
    with_setting = "SELECT set_config('ticketry.audit_redaction', 'on', true)"
    async with maker() as session:
        with pytest.raises(DBAPIError, match="is append-only"):
            await session.execute(text(without_setting), {"id": event_id})
    async with maker() as session:
        await session.execute(text(with_setting))
        with pytest.raises(DBAPIError, match="is append-only"):
            await session.execute(text(without_setting), {"id": event_id})
    redactor = await _redact(maker, event_id, {"note": "[erased]"})
    # Its redaction was recorded by another transaction: it covers no later change.
    for statement in (without_setting, "UPDATE audit_events SET action = 'x' WHERE id = :id"):
        async with maker() as session:
            await session.execute(text(with_setting))
            with pytest.raises(DBAPIError, match="is append-only"):
                await session.execute(text(statement), {"id": event_id})
    for statement in (
        "UPDATE audit_redactions SET redacted_digest = 'x'",
        "DELETE FROM audit_redactions",
        "TRUNCATE audit_redactions",
    ):
        async with maker() as session:
            with pytest.raises(DBAPIError, match="is append-only"):
                await session.execute(text(statement))
    assert redactor > event_id


async def test_verify_holds_after_a_customer_is_erased_and_catches_an_edit_after(
    maker: Maker,
) -> None:
    email = f"kunde-{uuid.uuid4().hex[:8]}@example.dk"
    async with maker.begin() as session:
        customer = await customers.create_customer(
            session, WRITER, CustomerCreate(name="Søren Ærø", emails=[email])
        )
        ticket = await tickets.create_ticket(
            session,
            WRITER,
            TicketCreate(
                subject="Min faktura",
                customer=CustomerRef(id=customer.id),
                message=FirstMessage(body_text="Hej, Søren her."),
            ),
        )
        customer_id, ticket_id = customer.id, ticket.id
    await seal_everything(maker)

    async with maker.begin() as session:
        erased = await subject_rights.erase_customer(session, ADMIN, customer_id, "By request")
    result = await seal_everything(maker)

    assert result.ok, result.first_broken
    assert result.redacted == erased["audit_events"] >= 2
    async with maker() as session:
        about = await audit.events_about(session, {"ticket": [ticket_id]})
    assert about
    assert "Min faktura" not in str([e.after for e in about])
    await _as_superuser(
        maker, "UPDATE audit_events SET after = '{}' WHERE id = :id", id=about[0].id
    )
    assert not (await verify(maker)).ok
