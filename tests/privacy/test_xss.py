"""Script in a mail or in API input never comes out of the API as live HTML."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Caller
from tests.ingest.test_service import ingest_raw

PAYLOADS = """
<p>Hej <b>support</b></p>
<script>alert(document.cookie)</script>
<img src="x" onerror="alert(1)">
<a href="javascript:alert(2)">klik</a>
<a href="JaVaScRiPt&colon;alert(3)">klik igen</a>
<svg onload="alert(4)"><script>alert(5)</script></svg>
<iframe src="https://evil.example/"></iframe>
<div style="background:url(javascript:alert(6))">stil</div>
<form action="https://evil.example/"><input name="pw"></form>
<body onload="alert(7)"><math><mi xlink:href="javascript:alert(8)">x</mi></math>
"""
DANGEROUS = (
    "<script",
    "onerror",
    "onload",
    "javascript",
    "<svg",
    "<iframe",
    "url(",
    "<form",
    "<input",
    "xlink",
    "alert(",
)


def _assert_inert(html: str | None) -> None:
    assert html is not None
    assert "<b>support</b>" in html
    lowered = html.lower()
    for needle in DANGEROUS:
        assert needle not in lowered, (needle, html)


async def test_an_html_mail_with_script_comes_out_inert(
    client: httpx.AsyncClient, session: AsyncSession, admin: Caller
) -> None:
    mail = EmailMessage()
    mail["From"] = "Mallory <mallory@example.dk>"
    mail["To"] = "support@firma.dk"
    mail["Subject"] = "<script>alert('emne')</script>"
    mail["Message-ID"] = "<xss@example.dk>"
    mail.set_content("Hej support")
    mail.add_alternative(PAYLOADS, subtype="html")
    outcome = await ingest_raw(session, mail.as_bytes(policy=SMTP))
    response = await client.get(
        f"/api/v1/tickets/{outcome.ticket_id}",
        headers=admin.headers,
        params={"include": "messages"},
    )
    assert response.status_code == 200, response.text
    [message] = response.json()["included"]["messages"][str(outcome.ticket_id)]
    _assert_inert(message["body_html"])
    # Plain-text fields are text: the SPA shows them as text, never as HTML.
    assert response.headers["content-type"].startswith("application/json")


async def test_html_given_through_the_api_is_sanitised_on_every_path(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    created = await client.post(
        "/api/v1/tickets",
        headers=admin.headers,
        json={
            "subject": "Webformular",
            "channel": "web",
            "customer": {"email": "mallory@example.dk"},
            "message": {"body_text": "Hej support", "body_html": PAYLOADS},
        },
    )
    assert created.status_code == 201, created.text
    ticket_id = created.json()["id"]
    recorded = await client.post(
        f"/api/v1/tickets/{ticket_id}/messages",
        headers=admin.headers,
        json={"body_text": "Hej support", "body_html": PAYLOADS, "direction": "inbound"},
    )
    assert recorded.status_code == 201, recorded.text
    _assert_inert(recorded.json()["body_html"])
    listed = await client.get(f"/api/v1/tickets/{ticket_id}/messages", headers=admin.headers)
    for message in listed.json()["items"]:
        _assert_inert(message["body_html"])
