"""Taking a person out of stored JSON: everything textual of their own records, only the
mentions of them elsewhere."""

from __future__ import annotations

from app.gdpr.redaction import ERASED, needles_of, scrub, strip_content


def test_their_own_records_keep_ids_states_and_times_only() -> None:
    ticket_updated = {
        "schema_version": 1,
        "ticket_id": 7,
        "number": 100123,
        "changes": {
            "subject": {"from": "Min lønseddel", "to": "Lønseddel, CPR 010190-1234"},
            "status": {"from": "open", "to": "pending"},
            "tags": {"from": [], "to": ["løn"]},
        },
        "due_at": "2026-11-26T10:00:00+00:00",
        "message_id": "<abc@example.dk>",
        "public": True,
    }

    assert strip_content(ticket_updated) == {
        "schema_version": 1,
        "ticket_id": 7,
        "number": 100123,
        "changes": {
            "subject": {"from": ERASED, "to": ERASED},
            "status": {"from": "open", "to": "pending"},
            "tags": {"from": [], "to": [ERASED]},
        },
        "due_at": "2026-11-26T10:00:00+00:00",
        "message_id": ERASED,
        "public": True,
    }
    assert strip_content(None) is None


def test_other_records_lose_only_what_mentions_the_person() -> None:
    needles = needles_of(["Søren Ærø", "Soren@Example.dk", "", "Al", None])
    assert needles == {"søren ærø", "soren@example.dk"}
    refused = {
        "SOREN@example.dk": "550 unknown",
        "ole@example.no": "550 full",
        "note": "Ring til SØREN ÆRØ i morgen",
        "list": ["ok", "cc soren@example.dk"],
        "count": 2,
    }

    assert scrub(refused, needles) == {
        "ole@example.no": "550 full",
        "note": ERASED,
        "list": ["ok", ERASED],
        "count": 2,
    }
