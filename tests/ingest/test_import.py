"""`ticketry import`: a shared mailbox's history, as an mbox and as a Maildir, into tickets."""

from __future__ import annotations

import mailbox
from pathlib import Path

from tests.helpers import build_mail
from tests.test_cli import cli_env, run_cli


def _history() -> list[bytes]:
    return [
        build_mail(message_id="<h1@example.dk>", subject="Levering mangler"),
        build_mail(
            message_id="<h2@example.dk>",
            subject="Re: Levering mangler",
            headers={"In-Reply-To": "<h1@example.dk>"},
            body="Stadig ingen pakke",
        ),
        build_mail(message_id="<h1@example.dk>", subject="Levering mangler"),  # a copy
        build_mail(
            message_id="<h3@example.se>", sender="Åsa <asa@example.se>", subject="Frågа om retur"
        ),
        b"",  # nothing at all: kept, quarantined
    ]


def test_import_an_mbox_and_a_maildir(tmp_path: Path, empty_database_url: str) -> None:
    env = cli_env(tmp_path, database_url=empty_database_url)
    assert run_cli("migrate", env=env, cwd=tmp_path).returncode == 0

    mbox_path = tmp_path / "delt-postkasse.mbox"
    box = mailbox.mbox(mbox_path)
    for raw in _history():
        box.add(raw)
    box.flush()
    result = run_cli("import", str(mbox_path), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "Read 5 mail(s): 2 new ticket(s), 1 added to existing tickets, 1 duplicate(s), "
        "1 quarantined."
    )
    assert "GET /api/v1/ingest/quarantine" in result.stderr

    maildir = mailbox.Maildir(tmp_path / "Maildir")
    maildir.add(build_mail(message_id="<md1@example.no>", subject="Hei fra Norge"))
    maildir.add(_history()[0])  # seen in the mbox already
    result = run_cli("import", str(tmp_path / "Maildir"), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "Read 2 mail(s): 1 new ticket(s), 0 added to existing tickets, 1 duplicate(s), "
        "0 quarantined."
    )

    missing = run_cli("import", str(tmp_path / "nowhere"), env=env, cwd=tmp_path)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_mail_is_imported_oldest_first(tmp_path: Path) -> None:
    """A reply stored before its original (Maildir order is arbitrary) still comes after it,
    so it threads instead of opening a ticket of its own."""
    from datetime import UTC, datetime

    from app.ingest.importer import open_source

    original = build_mail(message_id="<o@example.dk>", date=datetime(2026, 3, 1, tzinfo=UTC))
    reply = build_mail(
        message_id="<r@example.dk>",
        date=datetime(2026, 3, 2, tzinfo=UTC),
        headers={"In-Reply-To": "<o@example.dk>"},
    )
    undated = b"From: a@example.dk\r\nSubject: no date\r\n\r\nhej\r\n"
    box = mailbox.mbox(tmp_path / "history.mbox")
    for raw in (undated, reply, original):
        box.add(raw)
    box.flush()
    total, mails = open_source(tmp_path / "history.mbox")
    ordered = list(mails)
    assert total == 3
    assert b"Message-ID: <o@example.dk>" in ordered[0]
    assert b"Message-ID: <r@example.dk>" in ordered[1]
    assert b"no date" in ordered[2]
