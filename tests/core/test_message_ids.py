from __future__ import annotations

from app.core.message_ids import outgoing_message_id, read_token

KEY = "k" * 48


def test_our_message_ids_read_back() -> None:
    value = outgoing_message_id(KEY, 42, 7, "support.example.dk")
    assert value.startswith("<ticketry.42.7.")
    assert value.endswith("@support.example.dk>")
    assert read_token(KEY, value) == (42, 7)
    assert read_token(KEY, f"  {value} ") == (42, 7)


def test_forged_or_foreign_ids_are_ignored() -> None:
    value = outgoing_message_id(KEY, 42, 7, "support.example.dk")
    assert read_token("x" * 48, value) is None
    assert read_token(KEY, value.replace(".42.", ".43.")) is None
    assert read_token(KEY, "<CAB123@mail.gmail.com>") is None
    assert read_token(KEY, "") is None
