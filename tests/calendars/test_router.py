from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import AgentRole
from app.calendars.business_time import BusinessCalendar
from app.calendars.models import CalendarHoliday
from app.calendars.service import load_calendar
from tests.conftest import Caller, MakeAgent
from tests.helpers import audit_events

CALENDARS = "/api/v1/calendars"
OFFICE_HOURS = {day: [{"start": "08:00", "end": "16:00"}] for day in ("mon", "tue", "wed", "thu")}


async def _create(client: httpx.AsyncClient, admin: Caller, **body: Any) -> dict[str, Any]:
    response = await client.post(
        CALENDARS,
        headers=admin.headers,
        json={"timezone": "Europe/Copenhagen", "hours": OFFICE_HOURS, **body},
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_admin_creates_reads_updates_and_deletes_a_calendar(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent
) -> None:
    hours = {
        "fri": [{"start": "08:00", "end": "15:00"}],
        "mon": [{"start": "22:00", "end": "24:00"}, {"start": "08:00", "end": "16:00"}],
        "tue": [{"start": "00:00", "end": "06:00"}],
    }
    created = await client.post(
        CALENDARS,
        headers=admin.headers,
        json={"name": " Kundeservice København ", "timezone": "Europe/Copenhagen", "hours": hours},
    )
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"'
    calendar = created.json()
    assert created.headers["location"] == f"{CALENDARS}/{calendar['id']}"
    assert calendar["name"] == "Kundeservice København"
    assert calendar["hours"]["mon"] == [
        {"start": "08:00", "end": "16:00"},
        {"start": "22:00", "end": "24:00"},
    ]
    assert calendar["hours"]["sat"] == []

    agent = await make_agent(AgentRole.agent)
    fetched = await client.get(created.headers["location"], headers=agent.headers)
    assert fetched.status_code == 200
    assert fetched.json() == calendar
    listed = await client.get(CALENDARS, headers=agent.headers)
    assert [c["name"] for c in listed.json()["items"]] == ["Kundeservice København"]

    stale = await client.patch(
        created.headers["location"],
        headers={**admin.headers, "If-Match": '"7"'},
        json={"timezone": "Europe/Stockholm"},
    )
    assert stale.status_code == 412
    moved = await client.patch(
        created.headers["location"],
        headers={**admin.headers, "If-Match": '"1"'},
        json={"timezone": "Europe/Stockholm", "description": "Kundtjänst"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.headers["etag"] == '"2"'
    assert moved.json()["timezone"] == "Europe/Stockholm"

    deleted = await client.delete(created.headers["location"], headers=admin.headers)
    assert deleted.status_code == 204
    gone = await client.get(created.headers["location"], headers=agent.headers)
    assert gone.status_code == 404

    events = await audit_events(
        client, admin, entity_type="calendar", entity_id=str(calendar["id"])
    )
    assert [e["action"] for e in events] == [
        "calendar.deleted",
        "calendar.updated",
        "calendar.created",
    ]
    assert events[1]["before"]["timezone"] == "Europe/Copenhagen"
    assert events[1]["after"]["timezone"] == "Europe/Stockholm"


async def test_invalid_calendars_point_at_the_field(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    async def pointers(body: dict[str, Any]) -> list[str]:
        response = await client.post(CALENDARS, headers=admin.headers, json=body)
        assert response.status_code == 422, response.text
        return [e["pointer"] for e in response.json()["errors"]]

    base = {"name": "Desk", "timezone": "Europe/Oslo"}
    backwards = {"mon": [{"start": "16:00", "end": "08:00"}]}
    assert await pointers({**base, "hours": backwards}) == ["/body/hours/mon/0/end"]
    bad_clock = {"tue": [{"start": "8:00", "end": "25:00"}]}
    assert await pointers({**base, "hours": bad_clock}) == [
        "/body/hours/tue/0/start",
        "/body/hours/tue/0/end",
    ]
    overlapping = {"wed": [{"start": "08:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}]}
    assert await pointers({**base, "hours": overlapping}) == ["/body/hours/wed"]
    assert await pointers({**base, "hours": {}}) == ["/body/hours"]
    assert await pointers({**base, "hours": {"mo": []}}) == ["/body/hours/mo"]
    unknown_zone = {**base, "timezone": "Europe/Aarhus", "hours": OFFICE_HOURS}
    assert await pointers(unknown_zone) == ["/body/timezone"]

    calendar = await _create(client, admin, name="Support")
    emptied = await client.patch(
        f"{CALENDARS}/{calendar['id']}", headers=admin.headers, json={"hours": {"sun": []}}
    )
    assert emptied.status_code == 422
    assert [e["pointer"] for e in emptied.json()["errors"]] == ["/body/hours"]
    clash = await client.post(
        CALENDARS,
        headers=admin.headers,
        json={"name": "Support", "timezone": "UTC", "hours": OFFICE_HOURS},
    )
    assert clash.status_code == 409


async def test_holidays_are_replaced_as_a_list_in_utf8(
    client: httpx.AsyncClient, admin: Caller, make_agent: MakeAgent, session: AsyncSession
) -> None:
    calendar = await _create(client, admin, name="Kundtjänst", timezone="Europe/Stockholm")
    url = f"{CALENDARS}/{calendar['id']}/holidays"
    holidays = [
        {"date": "2026-06-19", "name": "Midsommarafton"},
        {"date": "2026-06-05", "name": "Grundlovsdag"},
    ]
    replaced = await client.put(
        url, headers={**admin.headers, "If-Match": '"1"'}, json={"holidays": holidays}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.headers["etag"] == '"2"'
    assert replaced.json() == sorted(holidays, key=lambda h: h["date"])

    agent = await make_agent(AgentRole.agent)
    listed = await client.get(url, headers=agent.headers)
    assert listed.json() == replaced.json()
    assert listed.headers["etag"] == '"2"'
    again = await client.put(
        url, headers=admin.headers, json={"holidays": [{"date": "2026-12-24", "name": "Julafton"}]}
    )
    assert again.json() == [{"date": "2026-12-24", "name": "Julafton"}]
    stored = await session.scalars(
        select(CalendarHoliday.name).where(CalendarHoliday.calendar_id == calendar["id"])
    )
    assert list(stored) == ["Julafton"]

    twice = await client.put(
        url,
        headers=admin.headers,
        json={
            "holidays": [{"date": "2026-12-24", "name": "A"}, {"date": "2026-12-24", "name": "B"}]
        },
    )
    assert twice.status_code == 422
    assert [e["pointer"] for e in twice.json()["errors"]] == ["/body/holidays/1/date"]
    stale = await client.put(
        url, headers={**admin.headers, "If-Match": '"1"'}, json={"holidays": []}
    )
    assert stale.status_code == 412

    events = await audit_events(
        client, admin, entity_type="calendar", entity_id=str(calendar["id"])
    )
    assert [e["action"] for e in events][:2] == ["calendar.holidays_changed"] * 2
    assert events[0]["after"] == {"holidays": [{"date": "2026-12-24", "name": "Julafton"}]}


async def test_importing_danish_holidays_keeps_the_admins_edits(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    calendar = await _create(client, admin, name="Kundeservice")
    url = f"{CALENDARS}/{calendar['id']}/holidays"
    own = {"date": "2026-12-24", "name": "Lukket juleaften"}
    await client.put(url, headers=admin.headers, json={"holidays": [own]})

    imported = await client.post(
        f"{url}/import", headers=admin.headers, json={"country": "DK", "years": [2026, 2027]}
    )
    assert imported.status_code == 200, imported.text
    by_date = {h["date"]: h["name"] for h in imported.json()}
    assert by_date["2026-06-05"] == "Grundlovsdag"
    assert by_date["2026-12-25"] == "Juledag"
    assert by_date["2027-03-28"] == "Påskedag"
    assert by_date["2026-12-24"] == "Lukket juleaften"
    assert imported.headers["etag"] == '"3"'

    again = await client.post(
        f"{url}/import", headers=admin.headers, json={"country": "DK", "years": [2026]}
    )
    assert again.json() == imported.json()
    assert again.headers["etag"] == '"3"'  # nothing new: no change


async def test_importing_swedish_and_regional_holidays(
    client: httpx.AsyncClient, admin: Caller
) -> None:
    calendar = await _create(client, admin, name="Stockholm", timezone="Europe/Stockholm")
    url = f"{CALENDARS}/{calendar['id']}/holidays/import"
    swedish = await client.post(url, headers=admin.headers, json={"country": "SE", "years": [2026]})
    by_date = {h["date"]: h["name"] for h in swedish.json()}
    assert by_date["2026-06-19"] == "Midsommarafton"
    assert "2026-06-18" not in by_date  # a half day ("från kl. 14.00") is no closed day
    assert not [name for name in by_date.values() if name == "Söndag"]

    unknown = await client.post(url, headers=admin.headers, json={"country": "XX", "years": [2026]})
    assert unknown.status_code == 422
    assert [e["pointer"] for e in unknown.json()["errors"]] == ["/body/country"]
    wrong_region = await client.post(
        url, headers=admin.headers, json={"country": "NO", "years": [2026], "subdivision": "99"}
    )
    assert [e["pointer"] for e in wrong_region.json()["errors"]] == ["/body/subdivision"]
    no_years = await client.post(url, headers=admin.headers, json={"country": "NO", "years": []})
    assert [e["pointer"] for e in no_years.json()["errors"]] == ["/body/years"]


async def test_business_calendars_are_loaded_and_renewed_after_changes(
    client: httpx.AsyncClient, admin: Caller, session: AsyncSession
) -> None:
    assert await load_calendar(session, None) == BusinessCalendar.always_open()
    calendar = await _create(client, admin, name="Kundeservice")
    thursday = datetime(2026, 6, 4, 15, tzinfo=UTC)  # 17:00 in Copenhagen, a Thursday
    loaded = await load_calendar(session, calendar["id"])
    assert await load_calendar(session, calendar["id"]) is loaded
    assert loaded.add(thursday, timedelta(hours=1)) == datetime(2026, 6, 8, 7, tzinfo=UTC)

    await client.put(
        f"{CALENDARS}/{calendar['id']}/holidays",
        headers=admin.headers,
        json={"holidays": [{"date": "2026-06-08", "name": "Lukket"}]},
    )
    renewed = await load_calendar(session, calendar["id"])
    assert renewed.holidays == frozenset({date(2026, 6, 8)})
    assert renewed.add(thursday, timedelta(hours=1)) == datetime(2026, 6, 9, 7, tzinfo=UTC)
