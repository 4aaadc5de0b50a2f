from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status

from app.api.deps import AppSettings, CurrentPrincipal, Cursor, DbSession, IfMatch, PageLimit, etag
from app.api.problems import responses
from app.core.pagination import Page
from app.outbound.service import OutboundConfig
from app.routing import service
from app.routing.rules import Rule, RuleSetDefinition
from app.routing.schemas import (
    ReplayRead,
    ReplayRequest,
    RoutingTraceRead,
    RuleSetRead,
    RuleSetVersionRead,
    SimulateRequest,
    SimulationRead,
)

router = APIRouter(prefix="/rules", tags=["rules"])
ticket_routing_router = APIRouter(prefix="/tickets", tags=["rules"])

YAML = "application/yaml"


def _with_etag(response: Response, rules: RuleSetRead) -> RuleSetRead:
    response.headers["ETag"] = etag(rules.version)
    return rules


@router.get("", response_model=RuleSetRead, responses=responses(401, 403))
async def get_rules(
    session: DbSession, principal: CurrentPrincipal, response: Response
) -> RuleSetRead:
    """The routing rules in force, in the order they run (supervisor or admin). The ETag is
    the rule-set version: send it as If-Match when changing the rules."""
    return _with_etag(response, await service.get_rules(session, principal))


@router.put("", response_model=RuleSetRead, responses=responses(401, 403, 412, 422))
async def replace_rules(
    session: DbSession,
    principal: CurrentPrincipal,
    body: RuleSetDefinition,
    if_match: IfMatch,
    response: Response,
    comment: Annotated[str | None, Query(max_length=500)] = None,
) -> RuleSetRead:
    """Put a whole rule set in force as the next version (admin). Invalid rules are a 422
    whose `errors` point at the faulty part (`body.rules.2.when.any.0.field`)."""
    rules = await service.save_rules(
        session, principal, body, expected_version=if_match, comment=comment
    )
    return _with_etag(response, rules)


@router.post(
    "",
    response_model=RuleSetRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 412, 422),
)
async def add_rule(
    session: DbSession,
    principal: CurrentPrincipal,
    body: Rule,
    if_match: IfMatch,
    request: Request,
    response: Response,
    position: Annotated[
        int | None, Query(ge=0, description="Where it runs (0 = first); last when omitted.")
    ] = None,
) -> RuleSetRead:
    """Add a rule, or replace the rule with its id (admin); a new rule-set version."""
    rules = await service.put_rule(
        session, principal, body, position=position, expected_version=if_match
    )
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{body.id}"
    return _with_etag(response, rules)


@router.get(
    "/versions", response_model=Page[RuleSetVersionRead], responses=responses(401, 403, 422)
)
async def list_versions(
    session: DbSession, principal: CurrentPrincipal, limit: PageLimit, cursor: Cursor = None
) -> Page[RuleSetVersionRead]:
    """Every saved rule set, newest first: what was in force when, and who saved it."""
    rows, next_cursor = await service.list_versions(session, principal, cursor=cursor, limit=limit)
    return Page(items=[RuleSetVersionRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/versions/{version}", response_model=RuleSetVersionRead, responses=responses(401, 403, 404)
)
async def get_version(
    session: DbSession, principal: CurrentPrincipal, version: int
) -> RuleSetVersionRead:
    return RuleSetVersionRead.model_validate(await service.get_version(session, principal, version))


@router.get(
    "/export",
    response_class=Response,
    responses={**responses(401, 403), 200: {"content": {YAML: {}}, "description": "YAML"}},
)
async def export_rules(session: DbSession, principal: CurrentPrincipal) -> Response:
    """The rules in force as YAML, to keep in git (`ticketry rules export` does the same)."""
    text = await service.export_yaml(session, principal)
    return Response(
        text,
        media_type=f"{YAML}; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="rules.yaml"'},
    )


@router.put(
    "/yaml",
    response_model=RuleSetRead,
    responses=responses(401, 403, 412, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {YAML: {"schema": {"type": "string"}}},
            "description": "A rule set as `GET /api/v1/rules/export` writes it.",
        }
    },
)
async def apply_yaml(
    session: DbSession,
    principal: CurrentPrincipal,
    request: Request,
    if_match: IfMatch,
    response: Response,
    comment: Annotated[str | None, Query(max_length=500)] = None,
) -> RuleSetRead:
    """Put the rules of a YAML file in force (admin), as `ticketry rules apply FILE` does; the
    same rules again make no new version."""
    text = (await request.body()).decode("utf-8", errors="replace")
    rules = await service.apply_yaml(
        session, principal, text, expected_version=if_match, comment=comment
    )
    return _with_etag(response, rules)


@router.post("/simulate", response_model=SimulationRead, responses=responses(401, 403, 404, 422))
async def simulate(
    session: DbSession, principal: CurrentPrincipal, settings: AppSettings, body: SimulateRequest
) -> SimulationRead:
    """What the rules in force, or a draft (`rule_set`), would decide for a message or an
    existing ticket, with the trace; nothing is changed."""
    return await service.simulate(session, principal, body, OutboundConfig.from_settings(settings))


@router.post("/replay", response_model=ReplayRead, responses=responses(401, 403, 422))
async def replay(
    session: DbSession, principal: CurrentPrincipal, body: Annotated[ReplayRequest, Body()]
) -> ReplayRead:
    """Run a draft rule set over the tickets of a past period and count how many would get
    another queue, priority or assignee, with examples; nothing is changed."""
    return await service.replay(session, principal, body)


@router.get("/{rule_id}", response_model=Rule, responses=responses(401, 403, 404))
async def get_rule(
    session: DbSession, principal: CurrentPrincipal, rule_id: str, response: Response
) -> Rule:
    version, rule = await service.get_rule(session, principal, rule_id)
    response.headers["ETag"] = etag(version)
    return rule


@router.delete("/{rule_id}", response_model=RuleSetRead, responses=responses(401, 403, 404, 412))
async def delete_rule(
    session: DbSession,
    principal: CurrentPrincipal,
    rule_id: str,
    if_match: IfMatch,
    response: Response,
) -> RuleSetRead:
    """Remove a rule (admin); a new rule-set version."""
    rules = await service.delete_rule(session, principal, rule_id, expected_version=if_match)
    return _with_etag(response, rules)


@ticket_routing_router.get(
    "/{ticket_id}/routing",
    response_model=list[RoutingTraceRead],
    responses=responses(401, 403, 404),
)
async def ticket_routing(
    session: DbSession, principal: CurrentPrincipal, ticket_id: int
) -> list[RoutingTraceRead]:
    """Why the ticket is where it is: each time rules ran on it (newest first), the rule-set
    version, every rule evaluated (matched or not, and why) and the actions applied."""
    return await service.traces(session, principal, ticket_id)
