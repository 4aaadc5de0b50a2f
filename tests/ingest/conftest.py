"""Fixtures for the ingestion tests: a real Dovecot for the run, a fresh mailbox user per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mailserver import DOVECOT, Dovecot, MailUser


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """Dovecot on loopback ports for the whole run; stopped and removed afterwards, also when
    tests fail."""
    if not Path(DOVECOT).exists():
        message = "Dovecot is not installed: apt-get install dovecot-imapd"
        # CI installs it (.ci/run), so missing there is a broken set-up, not a reason to skip.
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with Dovecot() as server:
        yield server


@pytest.fixture
def imap_user(dovecot: Dovecot) -> MailUser:
    """A user of its own, so tests never see each other's mail; the password is not ASCII."""
    token = uuid.uuid4().hex[:12]
    return dovecot.add_user(f"support-{token}@example.test", f"blåbær-{token}")
