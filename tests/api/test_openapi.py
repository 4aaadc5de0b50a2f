"""The committed API contract, openapi/openapi.json, is the one the code serves."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from app.cli import render_openapi
from app.core.config import Settings

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_code(settings: Settings) -> None:
    generated = render_openapi(settings)
    committed = COMMITTED.read_text(encoding="utf-8") if COMMITTED.exists() else ""
    if committed != generated:
        diff = difflib.unified_diff(
            committed.splitlines(), generated.splitlines(), "committed", "code", lineterm="", n=1
        )
        shown = "\n".join(list(diff)[:40])
        pytest.fail(
            f"openapi/openapi.json differs from the API: run `ticketry openapi` and commit it.\n"
            f"{shown}",
            pytrace=False,
        )
