"""The HTTP service for billing desks (first slice of issue 3): quote, settle once, read, reverse once, and
a person's year-to-date figures, all under /v1. Thin: every route calls a use case in `doudi/`.

Claim bodies are read as raw JSON with number literals kept as text, so `12.5` stays exact and `1e3` is
refused by the amount rules; every error is `application/problem+json` naming the field and the problem,
and an invalid request records nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from doudi import services
from doudi.desk import Conflict, NotFound, reverse_settlement, serialise_sqlite_writes, settle_claim
from ledger.migrations import upgrade
from ledger.models import Reversal, Settlement
from ledger.repository import snapshot
from policies.library import Library
from settlement.claims import decode_json, parse_claim
from settlement.errors import ClaimError, FieldError

PROBLEM = "application/problem+json"
DEFAULT_DATABASE_URL = "sqlite:///var/doudi.sqlite3"


def problem(status: int, title: str, detail: str, errors: list[FieldError] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return decode_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ClaimError([FieldError("body", f"not valid JSON: {err}")]) from None


def create_app(
    database_url: str | None = None,
    library: Library | None = None,
    policy: str | None = None,
    clock: Callable[[], dt.datetime] = dt.datetime.now,
) -> FastAPI:
    """The service on `database_url` (default `DOUDI_DATABASE_URL`, else a SQLite file under var/),
    settling under `policy` (default `DOUDI_POLICY`, else jl-meihekou, versions picked by discharge date)."""
    url = database_url or os.environ.get("DOUDI_DATABASE_URL", DEFAULT_DATABASE_URL)
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        os.makedirs(os.path.dirname(url.removeprefix("sqlite:///")) or ".", exist_ok=True)
    upgrade(url)
    engine: Engine = create_engine(url)
    serialise_sqlite_writes(engine)
    lib = library or services.open_library()
    policy_ref = policy or os.environ.get("DOUDI_POLICY", "jl-meihekou")
    # No /docs or /redoc: they load their scripts from a CDN, and hospitals' networks are closed.
    app = FastAPI(
        title="Doudi",
        version="0.1.0",
        description="One-stop settlement across every fund.",
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(ClaimError)
    async def _invalid(_request: Request, err: ClaimError) -> JSONResponse:
        return problem(422, "Invalid claim", "the request has problems; nothing was recorded", list(err.errors))

    @app.exception_handler(Conflict)
    async def _conflict(_request: Request, err: Conflict) -> JSONResponse:
        return problem(409, "Conflict", str(err))

    @app.exception_handler(NotFound)
    async def _missing(_request: Request, err: NotFound) -> JSONResponse:
        return problem(404, "Not found", str(err))

    @app.exception_handler(KeyError)
    async def _no_policy(_request: Request, err: KeyError) -> JSONResponse:
        return problem(422, "No policy", str(err.args[0]) if err.args else "no policy applies")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/quotes")
    async def quote(request: Request) -> JSONResponse:
        """预结算: the full breakdown; nothing is recorded."""
        claim = parse_claim(await _json_body(request))
        with Session(engine) as session:
            start = snapshot(session, [claim.person_id, claim.household_id], _years(claim))
        records, _ = services.quote_claims(lib, policy_ref, [claim], start)
        return JSONResponse(records[0])

    @app.post("/v1/settlements")
    async def settle(request: Request) -> JSONResponse:
        """结算: 201 the first time; the same key and content again: 200 with the same body; other content: 409."""
        claim = parse_claim(await _json_body(request))
        outcome = settle_claim(engine, lib, policy_ref, claim, clock())
        body = {"setl_id": outcome.setl_id, **outcome.record}
        return JSONResponse(body, status_code=201 if outcome.created else 200)

    @app.get("/v1/settlements/{setl_id}")
    def read_settlement(setl_id: str) -> JSONResponse:
        with Session(engine) as session:
            known = session.get(Settlement, setl_id)
            if known is None:
                raise NotFound(f"no settlement {setl_id!r}")
            reversal = session.get(Reversal, setl_id)
            body = {"setl_id": setl_id, **json.loads(known.record_json)}
            body["reversed"] = (
                None
                if reversal is None
                else {
                    "reason": reversal.reason,
                    "reversed_at": reversal.reversed_at.isoformat(),
                }
            )
        return JSONResponse(body)

    @app.post("/v1/settlements/{setl_id}/reversal")
    async def reverse(setl_id: str, request: Request) -> JSONResponse:
        """结算撤销: negative entries dated now; a second reversal: 409."""
        body = await _json_body(request)
        reason = body.get("reason") if isinstance(body, dict) else None
        if not isinstance(reason, str) or not reason.strip():
            raise ClaimError([FieldError("reason", "is required: say why the settlement is reversed")])
        reverse_settlement(engine, setl_id, reason.strip()[:500], clock())
        return JSONResponse({"setl_id": setl_id, "reversed": True}, status_code=201)

    @app.get("/v1/people/{person_id}/accumulators")
    def accumulators(person_id: str, year: int, household_id: str | None = None) -> JSONResponse:
        """Year-to-date figures per accumulator (like the national platform's 5206)."""
        with Session(engine) as session:
            household = household_id or session.scalar(
                select(Settlement.household_id).where(Settlement.person_id == person_id).limit(1)
            )
            entities = [person_id] + ([household] if household else [])
            state = snapshot(session, entities, [year])
        rows = services.accumulator_rows(state)
        return JSONResponse({"person_id": person_id, "year": year, "accumulators": rows})

    return app


def _years(claim: Any) -> list[int]:
    """The policy years a claim can fall in: its discharge's calendar year, or the one before when a
    policy year starts later than 1 January."""
    return [claim.discharged_on.year - 1, claim.discharged_on.year]
