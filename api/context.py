"""What every route needs, built once per app: the database engine, the published policies and a clock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from doudi.catalogue import Catalogue
from settlement.claims import decode_json
from settlement.errors import ClaimError, FieldError

MAX_BODY_BYTES = 4 * 1024 * 1024  # an itemised claim of 2,000 lines is well under 1 MB


@dataclass(frozen=True)
class Context:
    engine: Engine  # transactions that write (on SQLite they take the write lock when they begin)
    reader: Engine  # the same pool, for transactions that only read
    catalogue: Catalogue
    clock: Callable[[], dt.datetime]
    archive: Path  # closed months' files


def context(request: Request) -> Context:
    found: Context = request.app.state.context
    return found


def read_session(request: Request) -> Iterator[Session]:
    """One read-only session per request, shared by the token check and the route (FastAPI caches a
    dependency within a request). It holds a connection only while it is being used: the token check and a
    route that then writes close it."""
    with Session(context(request).reader) as session:
        yield session


async def json_body(request: Request) -> Any:
    """The request body as JSON with number literals kept as text (so 12.5 stays exact and 1e3 is caught
    by the amount rules)."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ClaimError([FieldError("body", f"is larger than {MAX_BODY_BYTES} bytes")])
    try:
        return decode_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ClaimError([FieldError("body", f"not valid JSON: {err}")]) from None


async def text_body(request: Request) -> str:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ClaimError([FieldError("body", f"is larger than {MAX_BODY_BYTES} bytes")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ClaimError([FieldError("body", f"not UTF-8 text: {err}")]) from None


def json_object(body: Any, what: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ClaimError([FieldError(what, "expected a JSON object")])
    return body
