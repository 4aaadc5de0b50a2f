"""Password rules on every way a password is set."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.auth.passwords import check_password
from app.core.errors import Invalid
from tests.auth.helpers import changed_settings
from tests.conftest import TEST_PASSWORD, Caller, MakeAgent


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short pass", "min_length"),
        ("IngridBerg@Example.test!", "contains_email"),
        ("ILoveIngridBerg2026", "contains_email"),
        ("Password 1234", "common"),
    ],
)
def test_each_rule_is_named(password: str, rule: str) -> None:
    with pytest.raises(Invalid) as refused:
        check_password(password, email="ingridberg@example.test", min_length=12)
    assert refused.value.extra["rule"] == rule


def test_the_minimum_length_is_a_setting_and_a_good_password_passes() -> None:
    with pytest.raises(Invalid):
        check_password("fjord kaffe ved", email="ingrid@example.test", min_length=16)
    check_password("fjord kaffe ved vinduet", email="ingrid@example.test", min_length=16)


async def test_passwords_are_checked_when_agents_are_created_or_changed(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    created = await client.post(
        "/api/v1/agents",
        headers=admin.headers,
        json={"email": "sven.lund@example.se", "name": "Sven", "password": "sven.lund-2026!"},
    )
    assert created.status_code == 422
    assert created.json()["rule"] == "contains_email"
    assert created.json()["errors"][0]["pointer"] == "/body/password"

    agent = await make_agent("agent")
    common = await client.patch(
        "/api/v1/agents/me",
        headers=agent.headers,
        json={"password": "qwerty123456", "current_password": TEST_PASSWORD},
    )
    assert common.status_code == 422
    assert common.json()["rule"] == "common"
    by_admin = await client.patch(
        f"/api/v1/agents/{agent.id}", headers=admin.headers, json={"password": "password1234"}
    )
    assert by_admin.status_code == 422
    fine = await client.patch(
        "/api/v1/agents/me",
        headers=agent.headers,
        json={"password": "tre små grise i skoven", "current_password": TEST_PASSWORD},
    )
    assert fine.status_code == 200, fine.text


async def test_the_apps_own_minimum_length_applies(
    client: httpx.AsyncClient, app: FastAPI, admin: Caller
) -> None:
    new_agent = {"email": "sara@example.test", "name": "Sara", "password": "fjord kaffe ved"}
    with changed_settings(app, password_min_length=20):
        short = await client.post("/api/v1/agents", headers=admin.headers, json=new_agent)
        assert short.status_code == 422
        assert short.json()["rule"] == "min_length"
        longer = {**new_agent, "password": "fjord kaffe ved vinduet"}
        assert (
            await client.post("/api/v1/agents", headers=admin.headers, json=longer)
        ).status_code == 201
