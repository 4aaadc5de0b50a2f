from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import crypto
from app.core.config import Settings
from app.mailboxes import service
from app.mailboxes.models import Mailbox
from app.templates.models import Template
from tests.conftest import Caller, MakeAgent
from tests.helpers import audit_events
from tests.mailboxes.conftest import add_template

URL = "/api/v1/mailboxes"

PASSWORD = "hemmeligt-Kodeord-Ø-1"
CLIENT_SECRET = "klient-hemmelighed-Æ-2"
REFRESH_TOKEN = "fornyelses-token-Å-3"
ACCESS_TOKEN = "adgangs-token-ß-4"
SECRETS = (PASSWORD, CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN)


def _body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Kundeservice Århus",
        "imap_host": "imap.example.test",
        "username": "støtte@example.test",
        "password": PASSWORD,
    }
    return {**body, **fields}


async def _create(client: httpx.AsyncClient, admin: Caller, **fields: Any) -> dict[str, Any]:
    response = await client.post(URL, headers=admin.headers, json=_body(**fields))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _pointers(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [e["pointer"] for e in response.json()["errors"]]


def _assert_no_secret(text: str, *extra: str) -> None:
    for secret in (*SECRETS, *extra):
        assert secret not in text


async def test_create_and_read(client: httpx.AsyncClient, admin: Caller) -> None:
    created = await client.post(
        URL,
        headers=admin.headers,
        json=_body(
            imap_host="IMAP.Example.TEST.",
            folders=["INBOX", "INBOX/Faktura", "INBOX"],
            addresses=["Støtte@Example.TEST", "faktura@example.test", "støtte@example.test"],
            after_import="move",
            move_to_folder="INBOX/Importeret",
            poll_interval_seconds=30,
        ),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == f"{URL}/{body['id']}"
    assert body["name"] == "Kundeservice Århus"
    assert body["active"] is True
    assert body["imap_host"] == "imap.example.test"
    assert (body["imap_port"], body["imap_security"]) == (993, "tls")
    assert body["auth_method"] == "password"
    assert body["has_password"] is True
    assert "password" not in body
    assert body["folders"] == ["INBOX", "INBOX/Faktura"]
    assert body["addresses"] == ["støtte@example.test", "faktura@example.test"]
    assert (body["after_import"], body["move_to_folder"]) == ("move", "INBOX/Importeret")
    assert body["poll_interval_seconds"] == 30
    assert body["default_queue_id"] is None
    assert body["has_oauth_client_secret"] is False
    assert body["has_oauth_refresh_token"] is False
    assert body["has_oauth_access_token"] is False
    assert body["status"] == {
        "state": "new",
        "reader": None,
        "last_success_at": None,
        "last_error_at": None,
        "last_error": None,
        "consecutive_failures": 0,
    }
    assert body["folder_states"] == []
    assert body["version"] == 1

    fetched = await client.get(created.headers["location"], headers=admin.headers)
    assert fetched.status_code == 200
    assert fetched.headers["etag"] == '"1"'
    assert fetched.json() == body

    missing = await client.get(f"{URL}/987654321", headers=admin.headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"

    events = await audit_events(client, admin, entity_type="mailbox", entity_id=str(body["id"]))
    assert [e["action"] for e in events] == ["mailbox.created"]
    assert events[0]["after"]["has_password"] is True
    assert "status" not in events[0]["after"]


async def test_defaults(client: httpx.AsyncClient, admin: Caller) -> None:
    mailbox = await _create(client, admin)
    assert mailbox["folders"] == ["INBOX"]
    assert mailbox["after_import"] == "mark_seen"
    assert mailbox["addresses"] == []
    assert mailbox["poll_interval_seconds"] == 60
    starttls = await _create(client, admin, name="Starttls", imap_security="starttls")
    assert starttls["imap_port"] == 143
    plain = await _create(client, admin, name="Lokal", imap_host="127.0.0.1", imap_security="none")
    assert plain["imap_port"] == 143
    own_port = await _create(client, admin, name="Egen port", imap_port=10993)
    assert own_port["imap_port"] == 10993


async def test_secrets_are_stored_encrypted_and_never_shown(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, settings: Settings
) -> None:
    created = await client.post(
        URL,
        headers=admin.headers,
        json=_body(
            auth_method="xoauth2",
            oauth_token_url="https://login.example.test/oauth2/token",
            oauth_client_id="ticketry-app",
            oauth_client_secret=CLIENT_SECRET,
            oauth_scope="IMAP.AccessAsUser.All offline_access",
            oauth_refresh_token=REFRESH_TOKEN,
            oauth_access_token=ACCESS_TOKEN,
            oauth_access_token_expires_at="2030-01-01T12:00:00+01:00",
        ),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["has_password"] is True
    assert body["has_oauth_client_secret"] is True
    assert body["has_oauth_refresh_token"] is True
    assert body["has_oauth_access_token"] is True
    assert datetime.fromisoformat(body["oauth_access_token_expires_at"]) == datetime(
        2030, 1, 1, 11, tzinfo=UTC
    )
    url = f"{URL}/{body['id']}"

    stored = await session.scalar(
        select(Mailbox).where(Mailbox.id == body["id"]).execution_options(populate_existing=True)
    )
    assert stored is not None
    encrypted = (
        stored.password_encrypted,
        stored.oauth_client_secret_encrypted,
        stored.oauth_refresh_token_encrypted,
        stored.oauth_access_token_encrypted,
    )
    key = settings.resolved_secret_key()
    assert [crypto.decrypt(key, value or "") for value in encrypted] == list(SECRETS)

    responses = [
        created,
        await client.get(url, headers=admin.headers),
        await client.get(URL, headers=admin.headers),
        await client.patch(url, headers=admin.headers, json={"password": "nyt-Kodeord-5"}),
        await client.patch(url, headers=admin.headers, json={"oauth_client_secret": None}),
        await client.put(
            f"{url}/oauth-token",
            headers=admin.headers,
            json={"access_token": "overdraget-token-6", "refresh_token": "ny-fornyelse-7"},
        ),
        await client.patch(url, headers=admin.headers, json={"name": "Omdøbt"}),
    ]
    for response in responses:
        assert response.status_code < 300, response.text
        _assert_no_secret(response.text, "nyt-Kodeord-5", "overdraget-token-6", "ny-fornyelse-7")
        for value in encrypted:
            assert value is not None
            assert value not in response.text
    # Refused requests do not echo what was sent either.
    refused = await client.post(
        URL,
        headers=admin.headers,
        json=_body(name="Afvist", imap_security="ssl", oauth_access_token=ACCESS_TOKEN * 600),
    )
    assert refused.status_code == 422
    _assert_no_secret(refused.text)
    assert responses[4].json()["has_oauth_client_secret"] is False
    # Handing over a token is no change of the configuration: the version stays.
    assert responses[5].json()["version"] == responses[4].json()["version"]
    assert responses[5].headers["etag"] == f'"{responses[4].json()["version"]}"'

    deleted = await client.delete(url, headers=admin.headers)
    assert deleted.status_code == 204

    events = await audit_events(client, admin, entity_type="mailbox", entity_id=str(body["id"]))
    assert [e["action"] for e in events] == [
        "mailbox.deleted",
        "mailbox.updated",
        "mailbox.oauth_token_received",
        "mailbox.updated",
        "mailbox.updated",
        "mailbox.created",
    ]
    # Which secrets changed is recorded, never their values.
    assert events[4]["after"]["secrets_changed"] == ["password"]
    assert events[3]["after"]["secrets_changed"] == ["oauth_client_secret"]
    assert events[3]["after"]["has_oauth_client_secret"] is False
    assert events[2]["after"]["secrets_changed"] == [
        "oauth_access_token",
        "oauth_refresh_token",
    ]
    everything = json.dumps(events, ensure_ascii=False)
    _assert_no_secret(everything, "nyt-Kodeord-5", "overdraget-token-6", "ny-fornyelse-7")
    assert "gAAAAA" not in everything  # every Fernet token starts so


async def test_invalid_bodies_point_at_the_field(client: httpx.AsyncClient, admin: Caller) -> None:
    async def post(**fields: Any) -> list[str]:
        return _pointers(await client.post(URL, headers=admin.headers, json=_body(**fields)))

    assert _pointers(await client.post(URL, headers=admin.headers, json={})) == [
        "/body/name",
        "/body/imap_host",
        "/body/username",
    ]
    assert await post(imap_host="imaps://imap.example.test:993") == ["/body/imap_host"]
    assert await post(imap_port=0) == ["/body/imap_port"]
    assert await post(imap_security="ssl") == ["/body/imap_security"]
    assert await post(auth_method="kerberos") == ["/body/auth_method"]
    assert await post(folders=[]) == ["/body/folders"]
    assert await post(after_import="archive") == ["/body/after_import"]
    assert await post(addresses=["ok@example.test", "ikke en adresse"]) == ["/body/addresses/1"]
    assert await post(poll_interval_seconds=9) == ["/body/poll_interval_seconds"]
    assert await post(poll_interval_seconds=3601) == ["/body/poll_interval_seconds"]
    assert await post(password="") == ["/body/password"]
    assert await post(oauth_token_url="ftp://example.test/token") == ["/body/oauth_token_url"]
    assert await post(unknown="x") == ["/body/unknown"]
    assert await post(oauth_access_token_expires_at="2030-01-01T12:00:00") == [
        "/body/oauth_access_token_expires_at"
    ]

    plain_http = await client.post(
        URL, headers=admin.headers, json=_body(oauth_token_url="http://login.example.test/t")
    )
    assert _pointers(plain_http) == ["/body/oauth_token_url"]
    assert "https" in plain_http.json()["detail"]

    no_tls = await client.post(URL, headers=admin.headers, json=_body(imap_security="none"))
    assert _pointers(no_tls) == ["/body/imap_security"]
    assert "plain text" in no_tls.json()["detail"]
    assert "localhost" in no_tls.json()["detail"]

    no_target = await client.post(URL, headers=admin.headers, json=_body(after_import="move"))
    assert _pointers(no_target) == ["/body/move_to_folder"]
    assert "move_to_folder" in no_target.json()["detail"]
    into_read_folder = await client.post(
        URL, headers=admin.headers, json=_body(after_import="move", move_to_folder="INBOX")
    )
    assert _pointers(into_read_folder) == ["/body/move_to_folder"]

    no_password = await client.post(URL, headers=admin.headers, json=_body(password=None))
    assert _pointers(no_password) == ["/body/password"]
    refresh_without_url = await client.post(
        URL,
        headers=admin.headers,
        json=_body(auth_method="xoauth2", password=None, oauth_refresh_token="r"),
    )
    assert _pointers(refresh_without_url) == ["/body/oauth_token_url"]

    missing_queue = await client.post(URL, headers=admin.headers, json=_body(default_queue_id=0))
    assert _pointers(missing_queue) == ["/body/default_queue_id"]
    assert "Queue 0" in missing_queue.json()["detail"]

    assert (await client.get(URL, headers=admin.headers)).json()["items"] == []


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.1", "::1", "[::1]"])
async def test_no_tls_is_allowed_on_loopback(
    client: httpx.AsyncClient, admin: Caller, host: str
) -> None:
    mailbox = await _create(client, admin, imap_host=host, imap_security="none")
    assert mailbox["imap_security"] == "none"


async def test_name_and_address_clashes_are_409(client: httpx.AsyncClient, admin: Caller) -> None:
    owner = await _create(client, admin, name="Support", addresses=["hjælp@example.dk"])
    again = await client.post(URL, headers=admin.headers, json=_body(name="Support"))
    assert again.status_code == 409
    assert again.json()["mailbox_id"] == owner["id"]

    clash = await client.post(
        URL,
        headers=admin.headers,
        json=_body(name="Salg", addresses=["salg@example.dk", "HJÆLP@example.dk"]),
    )
    assert clash.status_code == 409
    problem = clash.json()
    assert "Support" in problem["detail"]
    assert problem["mailbox_id"] == owner["id"]
    assert problem["addresses"] == ["hjælp@example.dk"]

    other = await _create(client, admin, name="Salg", addresses=["salg@example.dk"])
    other_url = f"{URL}/{other['id']}"
    assert (
        await client.patch(other_url, headers=admin.headers, json={"name": "Support"})
    ).status_code == 409
    steal = await client.patch(
        other_url, headers=admin.headers, json={"addresses": ["hjælp@example.dk"]}
    )
    assert steal.status_code == 409
    # Keeping its own addresses is no clash with itself.
    keep = await client.patch(
        f"{URL}/{owner['id']}",
        headers=admin.headers,
        json={"name": "Support", "addresses": ["hjælp@example.dk", "mere@example.dk"]},
    )
    assert keep.status_code == 200, keep.text


async def test_patch(client: httpx.AsyncClient, admin: Caller) -> None:
    queue = await client.post("/api/v1/queues", headers=admin.headers, json={"name": "Første"})
    mailbox = await _create(client, admin, default_queue_id=queue.json()["id"])
    url = f"{URL}/{mailbox['id']}"

    for field in (
        "name",
        "active",
        "imap_host",
        "imap_port",
        "imap_security",
        "username",
        "auth_method",
        "folders",
        "after_import",
        "addresses",
        "poll_interval_seconds",
    ):
        response = await client.patch(url, headers=admin.headers, json={field: None})
        assert _pointers(response) == [f"/body/{field}"], field
    assert _pointers(
        await client.patch(url, headers=admin.headers, json={"default_queue_id": 0})
    ) == ["/body/default_queue_id"]
    assert _pointers(
        await client.patch(url, headers=admin.headers, json={"after_import": "move"})
    ) == ["/body/move_to_folder"]
    assert _pointers(
        await client.patch(url, headers=admin.headers, json={"imap_security": "none"})
    ) == ["/body/imap_security"]
    # Removing the password of a password-authenticated mailbox leaves it unable to log in.
    assert _pointers(await client.patch(url, headers=admin.headers, json={"password": None})) == [
        "/body/password"
    ]
    assert _pointers(await client.patch(url, headers=admin.headers, json={"unknown": 1})) == [
        "/body/unknown"
    ]

    updated = await client.patch(
        url,
        headers={**admin.headers, "If-Match": '"1"'},
        json={
            "imap_security": "starttls",
            "default_queue_id": None,
            "active": False,
            "folders": ["INBOX", "Arkiv"],
        },
    )
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == '"2"'
    body = updated.json()
    # The port was the usual one for tls, so it follows to the usual one for starttls.
    assert (body["imap_security"], body["imap_port"]) == ("starttls", 143)
    assert body["default_queue_id"] is None
    assert body["active"] is False
    assert body["folders"] == ["INBOX", "Arkiv"]
    assert body["has_password"] is True

    own_port = await client.patch(url, headers=admin.headers, json={"imap_port": 10143})
    kept = await client.patch(url, headers=admin.headers, json={"imap_security": "tls"})
    assert own_port.json()["imap_port"] == kept.json()["imap_port"] == 10143

    stale = await client.patch(
        url, headers={**admin.headers, "If-Match": '"1"'}, json={"name": "Andet"}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert (await client.get(url, headers=admin.headers)).json()["name"] == mailbox["name"]

    events = await audit_events(client, admin, entity_type="mailbox", action="mailbox.updated")
    first = events[-1]
    assert first["before"]["imap_security"] == "tls"
    assert first["after"]["imap_security"] == "starttls"
    assert first["after"]["imap_port"] == 143
    assert "name" not in first["after"]
    assert "secrets_changed" not in first["after"]


async def test_delete(client: httpx.AsyncClient, session: AsyncSession, admin: Caller) -> None:
    mailbox = await _create(client, admin, addresses=["væk@example.dk"])
    url = f"{URL}/{mailbox['id']}"
    await service.record_failure(session, mailbox["id"], "worker-1", "forbindelsen røg")
    await service.save_folder_state(session, mailbox["id"], "INBOX", 7, 42)

    assert (
        await client.delete(url, headers={**admin.headers, "If-Match": '"9"'})
    ).status_code == 412
    assert (await client.delete(url, headers=admin.headers)).status_code == 204
    assert (await client.get(url, headers=admin.headers)).status_code == 404
    assert (await client.delete(url, headers=admin.headers)).status_code == 404
    # The status and folder state went with it; the address is free again.
    assert await service.folder_state(session, mailbox["id"], "INBOX") == (None, 0)
    await _create(client, admin, name="Ny", addresses=["væk@example.dk"])

    events = await audit_events(client, admin, entity_type="mailbox", entity_id=str(mailbox["id"]))
    assert events[0]["action"] == "mailbox.deleted"
    assert events[0]["before"]["name"] == mailbox["name"]


async def test_list_is_paged_by_name(client: httpx.AsyncClient, admin: Caller) -> None:
    for name in ("Charlie", "Alfa", "Bravo"):
        await _create(client, admin, name=name)
    first = await client.get(URL, headers=admin.headers, params={"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert [m["name"] for m in page["items"]] == ["Alfa", "Bravo"]
    second = await client.get(
        URL, headers=admin.headers, params={"limit": 2, "cursor": page["next_cursor"]}
    )
    assert [m["name"] for m in second.json()["items"]] == ["Charlie"]
    assert second.json()["next_cursor"] is None
    assert _pointers(await client.get(URL, headers=admin.headers, params={"cursor": "x"})) == [
        "/cursor"
    ]


async def test_status_and_folder_states_are_shown(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    mailbox = await _create(client, admin, folders=["INBOX", "Faktura"])
    other = await _create(client, admin, name="Anden")
    url = f"{URL}/{mailbox['id']}"

    await service.record_failure(session, mailbox["id"], "worker-1", "Connection refused")
    await service.record_failure(session, mailbox["id"], "worker-2", "TLS handshake failed")
    await service.save_folder_state(session, mailbox["id"], "INBOX", 1234, 17)
    await service.save_folder_state(session, mailbox["id"], "Faktura", 99, 0)
    failing = (await client.get(url, headers=admin.headers)).json()
    assert failing["status"]["state"] == "failing"
    assert failing["status"]["consecutive_failures"] == 2
    assert failing["status"]["reader"] == "worker-2"
    assert failing["status"]["last_error"] == "TLS handshake failed"
    assert failing["status"]["last_error_at"] is not None
    assert failing["status"]["last_success_at"] is None
    assert failing["folder_states"] == [
        {"folder": "Faktura", "uidvalidity": 99, "last_uid": 0},
        {"folder": "INBOX", "uidvalidity": 1234, "last_uid": 17},
    ]
    # The reader's reports are no change of the configuration.
    assert failing["version"] == 1

    await service.record_success(session, mailbox["id"], "worker-2")
    await service.save_folder_state(session, mailbox["id"], "INBOX", 1234, 25)
    ok = (await client.get(url, headers=admin.headers)).json()
    assert ok["status"]["state"] == "ok"
    assert ok["status"]["consecutive_failures"] == 0
    assert ok["status"]["last_success_at"] is not None
    # The last error stays visible, for the record.
    assert ok["status"]["last_error"] == "TLS handshake failed"
    assert ok["folder_states"][1] == {"folder": "INBOX", "uidvalidity": 1234, "last_uid": 25}

    listed = (await client.get(URL, headers=admin.headers)).json()["items"]
    assert [(m["name"], m["status"]["state"], len(m["folder_states"])) for m in listed] == [
        ("Anden", "new", 0),
        (mailbox["name"], "ok", 2),
    ]
    assert listed[0]["id"] == other["id"]


async def test_oauth_token_handover(client: httpx.AsyncClient, admin: Caller) -> None:
    password_box = await _create(client, admin)
    refused = await client.put(
        f"{URL}/{password_box['id']}/oauth-token",
        headers=admin.headers,
        json={"access_token": "a"},
    )
    assert refused.status_code == 422
    assert "xoauth2" in refused.json()["detail"]

    mailbox = await _create(client, admin, name="OAuth", auth_method="xoauth2", password=None)
    url = f"{URL}/{mailbox['id']}/oauth-token"
    assert mailbox["has_oauth_access_token"] is False
    handed = await client.put(
        url,
        headers=admin.headers,
        json={"access_token": ACCESS_TOKEN, "expires_at": "2030-06-01T00:00:00Z"},
    )
    assert handed.status_code == 200, handed.text
    assert handed.json()["has_oauth_access_token"] is True
    assert handed.json()["has_oauth_refresh_token"] is False
    assert datetime.fromisoformat(handed.json()["oauth_access_token_expires_at"]) == datetime(
        2030, 6, 1, tzinfo=UTC
    )
    assert handed.json()["version"] == 1
    _assert_no_secret(handed.text)

    assert _pointers(await client.put(url, headers=admin.headers, json={})) == [
        "/body/access_token"
    ]
    assert (
        await client.put(f"{URL}/0/oauth-token", headers=admin.headers, json={"access_token": "a"})
    ).status_code == 404


ENDPOINTS = [
    ("GET", ""),
    ("POST", ""),
    ("GET", "/{id}"),
    ("PATCH", "/{id}"),
    ("DELETE", "/{id}"),
    ("POST", "/{id}/test"),
    ("PUT", "/{id}/oauth-token"),
]


@pytest.mark.parametrize("role", ["supervisor", "agent", "external"])
async def test_only_admins(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent, role: str
) -> None:
    mailbox = await _create(client, admin, auth_method="xoauth2", password=None)
    caller = await make_agent(role)
    bodies: dict[str, Any] = {
        "POST": _body(name="Ny"),
        "PATCH": {"name": "Nyt navn"},
        "PUT": {"access_token": "a"},
    }
    for method, path in ENDPOINTS:
        body = None if path.endswith("/test") else bodies.get(method)
        response = await client.request(
            method,
            URL + path.format(id=mailbox["id"]),
            headers=caller.headers,
            json=body,
        )
        assert response.status_code == 403, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    after = await client.get(f"{URL}/{mailbox['id']}", headers=admin.headers)
    assert after.json()["version"] == 1
    assert after.json()["has_oauth_access_token"] is False


SMTP_PASSWORD = "smtp-Kodeord-Ø-8"


async def test_sending_settings(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller, settings: Settings
) -> None:
    template_id = await add_template(session)
    receive_only = await _create(client, admin, name="Kun modtager")
    assert {key: receive_only[key] for key in SENDING_FIELDS} == {
        "smtp_host": None,
        "smtp_port": None,
        "smtp_security": "starttls",
        "smtp_username": None,
        "has_smtp_password": False,
        "from_name": None,
        "from_address": None,
        "acknowledge": True,
        "acknowledgement_template_id": None,
    }

    created = await _create(
        client,
        admin,
        smtp_host="SMTP.Example.TEST.",
        smtp_port=465,
        smtp_security="tls",
        smtp_username="afsender@example.test",
        smtp_password=SMTP_PASSWORD,
        from_name="  Kundeservice Århus ",
        from_address="Svar@Example.TEST",
        acknowledge=False,
        acknowledgement_template_id=template_id,
    )
    assert {key: created[key] for key in SENDING_FIELDS} == {
        "smtp_host": "smtp.example.test",
        "smtp_port": 465,
        "smtp_security": "tls",
        "smtp_username": "afsender@example.test",
        "has_smtp_password": True,
        "from_name": "Kundeservice Århus",
        "from_address": "svar@example.test",
        "acknowledge": False,
        "acknowledgement_template_id": template_id,
    }
    url = f"{URL}/{created['id']}"
    fetched = await client.get(url, headers=admin.headers)
    assert fetched.json() == created
    _assert_no_secret(fetched.text + json.dumps(created), SMTP_PASSWORD)

    stored = await session.scalar(
        select(Mailbox).where(Mailbox.id == created["id"]).execution_options(populate_existing=True)
    )
    assert stored is not None
    assert stored.smtp_password_encrypted is not None
    assert SMTP_PASSWORD not in stored.smtp_password_encrypted
    key = settings.resolved_secret_key()
    assert crypto.decrypt(key, stored.smtp_password_encrypted) == SMTP_PASSWORD

    # Sending stops: the password is removed, the host cleared; the rest stays as it was.
    changed = await client.patch(
        url,
        headers={**admin.headers, "If-Match": '"1"'},
        json={"smtp_host": None, "smtp_password": None, "acknowledge": True, "from_name": None},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["smtp_host"], body["has_smtp_password"], body["acknowledge"]) == (
        None,
        False,
        True,
    )
    assert (body["from_name"], body["smtp_port"], body["smtp_security"]) == (None, 465, "tls")
    assert body["version"] == 2

    events = await audit_events(client, admin, entity_type="mailbox", entity_id=str(created["id"]))
    assert [e["action"] for e in events] == ["mailbox.updated", "mailbox.created"]
    assert events[1]["after"]["has_smtp_password"] is True
    assert events[0]["before"]["smtp_host"] == "smtp.example.test"
    assert events[0]["after"]["smtp_host"] is None
    assert events[0]["after"]["secrets_changed"] == ["smtp_password"]
    _assert_no_secret(json.dumps(events, ensure_ascii=False), SMTP_PASSWORD)


SENDING_FIELDS = (
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_username",
    "has_smtp_password",
    "from_name",
    "from_address",
    "acknowledge",
    "acknowledgement_template_id",
)


async def test_invalid_sending_settings_point_at_the_field(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    async def post(**fields: Any) -> list[str]:
        return _pointers(await client.post(URL, headers=admin.headers, json=_body(**fields)))

    smtp = {"smtp_host": "smtp.example.test", "smtp_port": 587}
    assert await post(smtp_host="smtp://smtp.example.test") == ["/body/smtp_host"]
    assert await post(smtp_host="smtp.example.test", smtp_port=0) == ["/body/smtp_port"]
    assert await post(smtp_host="smtp.example.test", smtp_port=65536) == ["/body/smtp_port"]
    assert await post(**smtp, smtp_security="ssl") == ["/body/smtp_security"]
    assert await post(**smtp, smtp_username="") == ["/body/smtp_username"]
    assert await post(**smtp, smtp_password="") == ["/body/smtp_password"]
    assert await post(from_address="ikke en adresse") == ["/body/from_address"]
    assert await post(from_name="Støtte\r\nBcc: alle@example.test") == ["/body/from_name"]
    assert await post(from_name=" ") == ["/body/from_name"]
    assert await post(acknowledge=None) == ["/body/acknowledge"]

    no_port = await client.post(URL, headers=admin.headers, json=_body(smtp_host="smtp.x.test"))
    assert _pointers(no_port) == ["/body/smtp_port"]
    assert "587" in no_port.json()["detail"]

    no_tls = await client.post(URL, headers=admin.headers, json=_body(**smtp, smtp_security="none"))
    assert _pointers(no_tls) == ["/body/smtp_security"]
    assert "plain text" in no_tls.json()["detail"]
    assert "465" in no_tls.json()["detail"]

    missing_template = await client.post(
        URL, headers=admin.headers, json=_body(acknowledgement_template_id=0)
    )
    assert _pointers(missing_template) == ["/body/acknowledgement_template_id"]
    assert "Template 0" in missing_template.json()["detail"]
    assert (await client.get(URL, headers=admin.headers)).json()["items"] == []

    # A relay on this machine may go without TLS.
    local = await _create(client, admin, smtp_host="127.0.0.1", smtp_port=25, smtp_security="none")
    assert (local["smtp_host"], local["smtp_security"]) == ("127.0.0.1", "none")


async def test_patch_sending_settings(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    mailbox = await _create(client, admin)
    url = f"{URL}/{mailbox['id']}"
    for field in ("smtp_security", "acknowledge"):
        response = await client.patch(url, headers=admin.headers, json={field: None})
        assert _pointers(response) == [f"/body/{field}"], field
    # The port is needed once there is a host, and plain text only on this machine.
    assert _pointers(
        await client.patch(url, headers=admin.headers, json={"smtp_host": "smtp.example.test"})
    ) == ["/body/smtp_port"]
    assert _pointers(
        await client.patch(
            url,
            headers=admin.headers,
            json={"smtp_host": "smtp.example.test", "smtp_port": 25, "smtp_security": "none"},
        )
    ) == ["/body/smtp_security"]
    assert _pointers(
        await client.patch(url, headers=admin.headers, json={"acknowledgement_template_id": 0})
    ) == ["/body/acknowledgement_template_id"]
    assert (await client.get(url, headers=admin.headers)).json()["version"] == 1

    template_id = await add_template(session)
    updated = await client.patch(
        url,
        headers=admin.headers,
        json={
            "smtp_host": "smtp.example.test",
            "smtp_port": 587,
            "from_address": "svar@example.test",
            "acknowledgement_template_id": template_id,
        },
    )
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["smtp_host"], body["smtp_port"], body["smtp_security"]) == (
        "smtp.example.test",
        587,
        "starttls",
    )
    assert (body["from_address"], body["acknowledgement_template_id"]) == (
        "svar@example.test",
        template_id,
    )
    # Once the port is stored, changing the host alone is fine.
    moved = await client.patch(url, headers=admin.headers, json={"smtp_host": "smtp2.example.test"})
    assert moved.json()["smtp_port"] == 587

    # A deleted template leaves the mailbox without one.
    template = await session.get(Template, template_id)
    await session.delete(template)
    await session.flush()
    after = (await client.get(url, headers=admin.headers)).json()
    assert after["acknowledgement_template_id"] is None
