"""The HTTP service: FastAPI under /v1, thin over the use cases in `doudi/`.

Every route but /healthz needs a bearer token (api/auth.py). Errors are `application/problem+json` naming
the field and the problem, and an invalid request records nothing. When the database does not answer, the
answer is 503 with Retry-After: the transaction was rolled back, and a retry with the same settlement key
is safe.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

import web
from api import (
    openapi,
    routes_accounts,
    routes_audit,
    routes_desk,
    routes_fhir,
    routes_nhsa,
    routes_policies,
    routes_reconciliation,
    routes_registry,
    routes_simulations,
)
from api.context import BodyTooLarge, Context, body_limit
from api.desk_lane import DeskLane
from doudi import logs, masking, services
from doudi.accounts import Forbidden, Unauthenticated
from doudi.catalogue import Catalogue, PublishRefused
from doudi.desk import Conflict, NotFound, reader, serialise_sqlite_writes, sqlite_connect_args
from doudi.group_desk import DatabaseUnavailable, GroupDesk
from doudi.simulations import SimulationJobs
from interop.dictionary import load_dictionary
from ledger.migrations import upgrade
from policies.library import Library
from settlement.errors import ClaimError, FieldError

PROBLEM = "application/problem+json"
DEFAULT_DATABASE_URL = "sqlite:///var/doudi.sqlite3"
ARCHIVE_ENV, DEFAULT_ARCHIVE = "DOUDI_ARCHIVE_DIR", "var/reconciliation"
SIMULATIONS_ENV, DEFAULT_SIMULATIONS = "DOUDI_SIMULATIONS_DIR", "var/simulations"


def problem(
    status: int, title: str, detail: str, errors: list[FieldError] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = [{"field": e.field, "message": e.message} for e in errors]
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def database_url(url: str | None = None) -> str:
    """`url`, else DOUDI_DATABASE_URL, else a SQLite file under var/ (its folder made if missing)."""
    found = url or os.environ.get("DOUDI_DATABASE_URL", DEFAULT_DATABASE_URL)
    if found.startswith("sqlite:///") and not found.startswith("sqlite:////"):
        os.makedirs(os.path.dirname(found.removeprefix("sqlite:///")) or ".", exist_ok=True)
    return found


def simulations_folder(url: str) -> Path:
    """Where simulation jobs keep their datasets and reports: DOUDI_SIMULATIONS_DIR, else a folder
    `simulations` next to a SQLite database file, else var/simulations."""
    if os.environ.get(SIMULATIONS_ENV):
        return Path(os.environ[SIMULATIONS_ENV])
    if url.startswith("sqlite:///") and url.removeprefix("sqlite:///") not in ("", ":memory:"):
        return Path(url.removeprefix("sqlite:///")).parent / "simulations"
    return Path(DEFAULT_SIMULATIONS)


def open_engine(url: str) -> Engine:
    """An engine for the service; on SQLite a write lock taken at the start of each writing transaction.
    Connections are not pinged before use: after a database restart the first request on a stale
    connection answers 503 (retry-safe), and SQLAlchemy then discards the whole pool."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args=sqlite_connect_args(busy_seconds=30),
            pool_size=20,
            max_overflow=20,
            pool_timeout=30,
            hide_parameters=True,
        )
    else:
        engine = create_engine(
            url, pool_size=20, max_overflow=20, pool_pre_ping=False, pool_timeout=10, hide_parameters=True
        )
    serialise_sqlite_writes(engine)
    return engine


def create_app(
    url: str | None = None,
    lists: Library | None = None,
    clock: Callable[[], dt.datetime] = dt.datetime.now,
    archive: Path | None = None,
    simulations: Path | None = None,
) -> FastAPI:
    """The service on the database at `url` (migrated to the newest schema first), settling with the
    policies published there over the disease lists of `lists` (default: the shipped library). Closed
    months' files go under `archive` (default DOUDI_ARCHIVE_DIR, else var/reconciliation); simulation jobs
    under `simulations` (default: `simulations_folder`)."""
    logs.install()  # people's identifiers and names masked in every log line (doudi/masking.py)
    masking.full_identifiers(os.environ)  # a mistyped DOUDI_FULL_IDENTIFIERS stops the start, not a download
    found_url = database_url(url)
    upgrade(found_url)
    engine = open_engine(found_url)
    catalogue = Catalogue(engine, lists or services.open_library())
    # No /docs or /redoc: they load their scripts from a CDN, and hospitals' networks are closed.
    app = FastAPI(
        title="Doudi",
        version="0.2.0",
        description="One-stop settlement across every fund: basic insurance, critical illness, medical "
        "assistance, temporary aid and grants. Money is decimal text in yuan to the fen.",
        docs_url=None,
        redoc_url=None,
        # Doudi sets up no OpenTelemetry provider; with FastAPI's bridge on, every request looked for one
        # (some 2 % of the event loop's time per settlement under 16 desks).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    archive_dir = archive or Path(os.environ.get(ARCHIVE_ENV, DEFAULT_ARCHIVE))
    simulations_dir = simulations or simulations_folder(found_url)
    jobs = SimulationJobs(simulations_dir, catalogue.library)
    # On PostgreSQL, settlements sent at the same moment are recorded in one transaction (doudi/group_desk.py).
    group = GroupDesk(found_url, catalogue, clock) if engine.dialect.name == "postgresql" else None
    app.state.context = Context(engine, reader(engine), catalogue, clock, archive_dir, jobs, group)
    if group is not None:
        app.router.on_shutdown.append(group.close)
    # The national platform's codes as this province writes them (DOUDI_NHSA_DICTIONARY): a bad file stops here.
    app.state.nhsa_dictionary = load_dictionary()
    routes = (routes_desk, routes_registry, routes_policies, routes_reconciliation, routes_accounts, routes_audit)
    for module in (*routes, routes_nhsa, routes_fhir, routes_simulations):
        app.include_router(module.router)
    openapi.install(app)
    _handle_errors(app)
    web.install(app)  # the pages for desk, finance and policy staff, at / (after the API's error handlers)
    app.add_middleware(DeskLane, group=group)  # inside LimitBody: added first
    app.add_middleware(LimitBody)

    @app.get(
        "/healthz", tags=["service"], summary="Liveness: no token needed", responses={200: openapi.ok(openapi.HEALTH)}
    )
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def served_app(url: str | None = None) -> FastAPI:
    """The app as `doudi serve` runs it (in each of its processes): `create_app` on `url` (default
    DOUDI_DATABASE_URL), and what was built before the first request set aside from the garbage collector
    once it starts."""
    app = create_app(url)
    app.router.on_startup.append(set_aside_startup_objects)
    return app


def set_aside_startup_objects() -> None:
    """Keep the collector off what was built before the first request (policies, engine plans, the
    framework): some 200,000 objects that live as long as the process. Left in the oldest generation, each
    full collection walked them all: 90-170 ms, every request of the process waiting, about once in ten
    seconds under 16 desks (timed with `gc.callbacks` in `bench.service`'s server; BENCHMARKS.md). Frozen,
    a full collection walks only what requests made (one of 21 ms in a run of the same length). A server
    process's own objects, not a test's: `create_app` alone leaves the collector as it is."""
    gc.collect()
    gc.freeze()


class LimitBody:
    """Refuses a request body over its route's limit (`api.context.body_limit`) with 413: at once when its
    Content-Length says so, else as soon as the bytes received pass the limit, so that a chunked upload
    cannot fill the server's memory before a route looks at it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(BodyTooLarge(limit))(scope, receive, send)
            return
        received = 0

        async def counted() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)  # answered 413 by the handler below, inside the app
            return message

        await self.app(scope, counted, send)


def _too_large(err: BodyTooLarge) -> JSONResponse:
    return problem(413, "Request body too large", str(err), [FieldError("body", f"is over {err.limit} bytes")])


def _handle_errors(app: FastAPI) -> None:
    @app.exception_handler(BodyTooLarge)
    async def _large(_request: Request, err: BodyTooLarge) -> JSONResponse:
        return _too_large(err)

    @app.exception_handler(ClaimError)
    async def _invalid(_request: Request, err: ClaimError) -> JSONResponse:
        return problem(422, "Invalid request", "the request has problems; nothing was recorded", list(err.errors))

    @app.exception_handler(RequestValidationError)
    async def _invalid_parameter(_request: Request, err: RequestValidationError) -> JSONResponse:
        errors = [
            FieldError(".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]), str(e["msg"])) for e in err.errors()
        ]
        return problem(422, "Invalid request", "the request has problems; nothing was recorded", errors)

    @app.exception_handler(PublishRefused)
    async def _refused(_request: Request, err: PublishRefused) -> JSONResponse:
        status, title = (409, "Conflict") if err.immutable else (422, "Invalid policy")
        errors = [FieldError(p.path or "(document)", f"{p.reason} ({p.file})") for p in err.problems]
        return problem(status, title, "the version was not published", errors)

    @app.exception_handler(Conflict)
    async def _conflict(_request: Request, err: Conflict) -> JSONResponse:
        return problem(409, "Conflict", str(err))

    @app.exception_handler(NotFound)
    async def _missing(_request: Request, err: NotFound) -> JSONResponse:
        return problem(404, "Not found", str(err))

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(_request: Request, err: Unauthenticated) -> JSONResponse:
        return problem(401, "Unauthenticated", str(err), headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Forbidden)
    async def _forbidden(_request: Request, err: Forbidden) -> JSONResponse:
        return problem(403, "Forbidden", str(err))

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, err: HTTPException) -> JSONResponse:
        return problem(err.status_code, str(err.detail), str(err.detail), headers=getattr(err, "headers", None))

    async def _database_down(_request: Request, err: Exception) -> JSONResponse:
        # DBAPIError from SQLAlchemy; DatabaseUnavailable from the group desk, which uses psycopg directly.
        if isinstance(err, DBAPIError) and not (isinstance(err, OperationalError) or err.connection_invalidated):
            raise err  # a programming error, not an outage: let it be a 500 and be seen
        return problem(
            503,
            "Database unavailable",
            "the database did not answer; nothing was recorded; retry with the same settlement key",
            headers={"Retry-After": "1"},
        )

    app.add_exception_handler(DBAPIError, _database_down)
    app.add_exception_handler(DatabaseUnavailable, _database_down)

    async def _too_busy(_request: Request, _err: Exception) -> JSONResponse:
        # Every pooled connection stayed busy for the pool's timeout: an overload, not a fault in the request.
        return problem(
            503,
            "Service busy",
            "no database connection came free in time; nothing was recorded; retry",
            headers={"Retry-After": "1"},
        )

    app.add_exception_handler(PoolTimeout, _too_busy)
