"""The billing desk's routes: quote, settle once, read, list, reverse once, and a person's year so far."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api import openapi
from api.auth import BEARER_SECURITY, bearer_token, refuse_unsafe_parameters, require
from api.context import BodyTooLarge, Context, context, json_body, json_object
from doudi import services
from doudi.accounts import NO_TOKEN, Principal, Unauthenticated, allowed, authenticate
from doudi.desk import (
    NotFound,
    answer_body,
    quote_claim,
    reversal_reason,
    reverse_settlement,
    settle_claim,
    visible_to,
)
from doudi.group_desk import GroupDesk
from doudi.registry import complete_claim
from ledger.models import Person, Reversal, Settlement
from ledger.repository import snapshot
from policies.library import Library
from settlement.claims import Claim, parse_claim
from settlement.errors import ClaimError, FieldError

router = APIRouter(prefix="/v1", tags=["desk"])

Desk = Annotated[Principal, Depends(require("desk"))]
Reader = Annotated[Principal, Depends(require("desk", "finance"))]
Body = Annotated[Any, Depends(json_body)]

_CLAIM_BODY = openapi.json_body(
    Claim,
    openapi.CLAIM_EXAMPLE,
    "The stay. household_id, insurance_scheme, category and hospital_level are filled in from the register "
    "when absent (category: the one held on the settlement date); hospital_id defaults to the desk's own.",
    optional=("household_id", "insurance_scheme", "category", "hospital_level", "hospital_id"),
)
_SETTLED_LINKS = {
    "ReadSettlement": openapi.link("/v1/settlements/{setl_id}", "get", setl_id="setl_id"),
    "ReverseSettlement": openapi.link("/v1/settlements/{setl_id}/reversal", "post", setl_id="setl_id"),
    "YearSoFar": openapi.link("/v1/people/{person_id}/accumulators", "get", person_id="person_id"),
}


def _claim(ctx: Context, session: Session, who: Principal, body: Any) -> tuple[Library, str, Claim]:
    """The claim completed from the register, the published library and the policy id governing it. The
    request's read session is closed here: what follows writes in its own transaction."""
    try:
        completed, policy_id = complete_claim(session, json_object(body), who.hospital_id, ctx.clock())
        library = ctx.catalogue.library(session)
    finally:
        session.close()
    return library, policy_id, parse_claim(completed)


@router.post(
    "/quotes",
    summary="Pre-settlement (预结算): the full split; nothing is recorded",
    openapi_extra={**_CLAIM_BODY, **BEARER_SECURITY},
    responses={
        200: openapi.ok(openapi.SETTLEMENT_RECORD, "The split, trace and national view; nothing recorded"),
        **openapi.problems(401, 403, 413, 422, 503),
    },
)
async def quote(request: Request) -> Response:
    ctx = context(request)
    if ctx.group is not None:  # on PostgreSQL `api.desk_lane` answers before the request gets here
        return await queued_quote(request, ctx.group)
    token, body = await _token_and_body(request)
    return JSONResponse(await run_in_threadpool(_quote_one, ctx, token, body))


async def queued_quote(request: Request, group: GroupDesk) -> Response:
    """A quote priced with the settlements and quotes sent at the same moment (PostgreSQL)."""
    token, body = await _token_and_body(request)
    return Response(await group.quote(token, body), media_type="application/json")


async def _token_and_body(request: Request) -> tuple[str | None, Any]:
    """The bearer token and the claim, or the problem reading the claim. Both are read here rather than by
    dependencies: a bad token is answered before a bad body or query parameter, as on every route, and the
    token is checked with the claim (in its group, on PostgreSQL); and FastAPI's solving of dependencies cost
    these two busiest routes about 8 % of the event loop's time per request (BENCHMARKS.md)."""
    token = bearer_token(request)
    body: Any
    try:
        body = await json_body(request)
        refuse_unsafe_parameters(request)
    except (ClaimError, BodyTooLarge) as err:
        body = err
    return token, body


def _desk_claim(ctx: Context, token: str | None, body: Any) -> tuple[Principal, Library, str, Claim]:
    """The desk that sent `body` and its claim, checked in that order, one request at a time (SQLite)."""
    with Session(ctx.reader) as session:
        if token is None:
            raise Unauthenticated(NO_TOKEN)
        who = allowed(authenticate(session, token, ctx.clock()), ("desk",))
        if isinstance(body, Exception):
            raise body
        return who, *_claim(ctx, session, who, body)


def _quote_one(ctx: Context, token: str | None, body: Any) -> dict[str, Any]:
    _who, library, policy_id, claim = _desk_claim(ctx, token, body)
    return quote_claim(ctx.reader, library, policy_id, claim)


@router.post(
    "/settlements",
    summary="Settle (结算) once per hospital settlement key",
    description="The first request records the settlement and answers 201. The same key with the same content "
    "answers 200 with the same body and records nothing; the same key with other content answers 409.",
    openapi_extra={**_CLAIM_BODY, **BEARER_SECURITY},
    responses={
        200: openapi.ok(openapi.SETTLED, "A repeat of a recorded settlement: the recorded body", _SETTLED_LINKS),
        201: openapi.ok(openapi.SETTLED, "Recorded: the split, trace, references, national view", _SETTLED_LINKS),
        **openapi.problems(401, 403, 409, 413, 422, 503),
    },
    status_code=201,
)
async def settle(request: Request) -> Response:
    ctx = context(request)
    if ctx.group is not None:  # on PostgreSQL `api.desk_lane` answers before the request gets here
        return await queued_settlement(request, ctx.group)
    token, body = await _token_and_body(request)
    created, content = await run_in_threadpool(_settle_one, ctx, token, body)
    return _settled(created, content)


async def queued_settlement(request: Request, group: GroupDesk) -> Response:
    """A settlement recorded in the group of those sent at the same moment (PostgreSQL)."""
    token, body = await _token_and_body(request)
    answer = await group.settle(token, body)
    return _settled(answer.created, answer.body)


def _settled(created: bool, content: bytes) -> Response:
    return Response(content, status_code=201 if created else 200, media_type="application/json")


def _settle_one(ctx: Context, token: str | None, body: Any) -> tuple[bool, bytes]:
    """Settle one claim in its own transaction (SQLite, where writers take turns anyway)."""
    who, library, policy_id, claim = _desk_claim(ctx, token, body)
    outcome = settle_claim(ctx.engine, library, policy_id, claim, ctx.clock(), who)
    return outcome.created, answer_body(outcome.setl_id, outcome.record_json)


@router.get(
    "/settlements",
    summary="Settlements of a hospital and day (a desk sees its own hospital's only)",
    responses={200: openapi.ok(openapi.SETTLEMENT_LIST), **openapi.problems(401, 403, 422, 503)},
)
def list_settlements(
    request: Request,
    who: Reader,
    hospital_id: str | None = None,
    settled_on: dt.date | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> JSONResponse:
    return JSONResponse({"settlements": settlement_list(context(request).reader, who, hospital_id, settled_on, limit)})


def settlement_list(
    reader: Engine, who: Principal, hospital_id: str | None, settled_on: dt.date | None, limit: int
) -> list[dict[str, Any]]:
    """Settlements of a hospital and day, newest first, as GET /v1/settlements lists them (the desk's pages
    list the same): a desk sees its own hospital's only."""
    if who.hospital_id is not None:
        if hospital_id not in (None, who.hospital_id):
            raise ClaimError([FieldError("hospital_id", "a desk sees its own hospital's settlements only")])
        hospital_id = who.hospital_id
    query = select(Settlement, Reversal).outerjoin(Reversal, Reversal.setl_id == Settlement.setl_id)
    if hospital_id is not None:
        query = query.where(Settlement.hospital_id == hospital_id)
    if settled_on is not None:
        start = dt.datetime.combine(settled_on, dt.time())
        query = query.where(Settlement.settled_at >= start, Settlement.settled_at < start + dt.timedelta(days=1))
    with Session(reader) as session:
        rows = session.execute(query.order_by(Settlement.settled_at.desc()).limit(limit)).all()
        return [_summary(s, r) for s, r in rows]


def _summary(settlement: Settlement, reversal: Reversal | None) -> dict[str, Any]:
    return {
        "setl_id": settlement.setl_id,
        "medins_setl_id": settlement.medins_setl_id,
        "hospital_id": settlement.hospital_id,
        "person_id": settlement.person_id,
        "policy": settlement.policy,
        "settled_at": settlement.settled_at.isoformat(),
        "total": f"{settlement.total:.2f}",
        "fund_paid": f"{settlement.fund_paid:.2f}",
        "patient_burden": f"{settlement.patient_burden:.2f}",
        "reversed": reversal is not None,
    }


@router.get(
    "/settlements/{setl_id}",
    summary="A settlement: split, trace with clause references, national setlinfo/setldetail, reversal",
    responses={200: openapi.ok(openapi.SETTLEMENT_READ), **openapi.problems(401, 403, 404, 422, 503)},
)
def read_settlement(request: Request, setl_id: str, who: Reader) -> JSONResponse:
    with Session(context(request).reader) as session:
        known = session.get(Settlement, setl_id)
        if known is None or not visible_to(who, known):
            raise NotFound(f"no settlement {setl_id!r}")
        reversal = session.get(Reversal, setl_id)
        body = {"setl_id": setl_id, **json.loads(known.record_json)}
        body["reversed"] = (
            None if reversal is None else {"reason": reversal.reason, "reversed_at": reversal.reversed_at.isoformat()}
        )
    return JSONResponse(body)


@router.post(
    "/settlements/{setl_id}/reversal",
    summary="Reverse (结算撤销): negative entries dated now give back every accumulator; once only",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["reason"],
                        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
                    },
                    "example": {"reason": "wrong patient selected at the desk"},
                }
            },
        }
    },
    responses={201: openapi.ok(openapi.REVERSED, "Reversed"), **openapi.problems(401, 403, 404, 409, 413, 422, 503)},
    status_code=201,
)
def reverse(request: Request, setl_id: str, who: Desk, body: Body) -> JSONResponse:
    ctx = context(request)
    reason = reversal_reason(json_object(body).get("reason"))
    reverse_settlement(ctx.engine, setl_id, reason, ctx.clock(), who)
    return JSONResponse({"setl_id": setl_id, "reversed": True}, status_code=201)


@router.get(
    "/people/{person_id}/accumulators",
    summary="A person's (and household's) year-to-date figures per accumulator, like the national 5206",
    responses={200: openapi.ok(openapi.ACCUMULATORS), **openapi.problems(401, 403, 404, 422, 503)},
)
def accumulators(
    request: Request, person_id: str, who: Reader, year: Annotated[int, Query(ge=1990, le=2100)]
) -> JSONResponse:
    with Session(context(request).reader) as session:
        person = session.get(Person, person_id)
        if person is None:
            raise NotFound(f"no person {person_id!r} is registered")
        state = snapshot(session, [person_id, person.household_id], [year])
    rows = services.accumulator_rows(state)
    return JSONResponse(
        {"person_id": person_id, "household_id": person.household_id, "year": year, "accumulators": rows}
    )
