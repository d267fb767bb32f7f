"""The HTTP service: FastAPI under /v1, thin over the use cases in `doudi/`.

Every route but /healthz needs a bearer token (api/auth.py). Errors are `application/problem+json` naming
the field and the problem, and an invalid request records nothing. When the database does not answer, the
answer is 503 with Retry-After: the transaction was rolled back, and a retry with the same settlement key
is safe.
"""

from __future__ import annotations

import datetime as dt
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

from api import openapi, routes_accounts, routes_desk, routes_policies, routes_reconciliation, routes_registry
from api.auth import Forbidden, Unauthenticated
from api.context import Context
from doudi import services
from doudi.catalogue import Catalogue, PublishRefused
from doudi.desk import Conflict, NotFound, reader, serialise_sqlite_writes
from ledger.migrations import upgrade
from policies.library import Library
from settlement.errors import ClaimError, FieldError

PROBLEM = "application/problem+json"
DEFAULT_DATABASE_URL = "sqlite:///var/doudi.sqlite3"
ARCHIVE_ENV, DEFAULT_ARCHIVE = "DOUDI_ARCHIVE_DIR", "var/reconciliation"


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


def open_engine(url: str) -> Engine:
    """An engine for the service; on SQLite a write lock taken at the start of each writing transaction.
    Connections are not pinged before use: after a database restart the first request on a stale
    connection answers 503 (retry-safe), and SQLAlchemy then discards the whole pool."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, pool_size=20, max_overflow=20, pool_timeout=30)
    else:
        engine = create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=False, pool_timeout=10)
    serialise_sqlite_writes(engine)
    return engine


def create_app(
    url: str | None = None,
    lists: Library | None = None,
    clock: Callable[[], dt.datetime] = dt.datetime.now,
    archive: Path | None = None,
) -> FastAPI:
    """The service on the database at `url` (migrated to the newest schema first), settling with the
    policies published there over the disease lists of `lists` (default: the shipped library). Closed
    months' files go under `archive` (default DOUDI_ARCHIVE_DIR, else var/reconciliation)."""
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
    )
    archive_dir = archive or Path(os.environ.get(ARCHIVE_ENV, DEFAULT_ARCHIVE))
    app.state.context = Context(engine, reader(engine), catalogue, clock, archive_dir)
    for module in (routes_desk, routes_registry, routes_policies, routes_reconciliation, routes_accounts):
        app.include_router(module.router)
    openapi.install(app)
    _handle_errors(app)

    @app.get("/healthz", tags=["service"], summary="Liveness: no token needed")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _handle_errors(app: FastAPI) -> None:
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
        if isinstance(err, DBAPIError) and not (isinstance(err, OperationalError) or err.connection_invalidated):
            raise err  # a programming error, not an outage: let it be a 500 and be seen
        return problem(
            503,
            "Database unavailable",
            "the database did not answer; nothing was recorded; retry with the same settlement key",
            headers={"Retry-After": "1"},
        )

    app.add_exception_handler(DBAPIError, _database_down)

    async def _too_busy(_request: Request, _err: Exception) -> JSONResponse:
        # Every pooled connection stayed busy for the pool's timeout: an overload, not a fault in the request.
        return problem(
            503,
            "Service busy",
            "no database connection came free in time; nothing was recorded; retry",
            headers={"Retry-After": "1"},
        )

    app.add_exception_handler(PoolTimeout, _too_busy)
