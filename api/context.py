"""What every route needs, built once per app: the database engine, the published policies and a clock."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from doudi.catalogue import Catalogue
from doudi.group_desk import GroupDesk
from doudi.simulations import SimulationJobs
from settlement.claims import decode_json
from settlement.errors import ClaimError, FieldError

MAX_BODY_BYTES = 4 * 1024 * 1024  # an itemised claim of 2,000 lines is well under 1 MB
MAX_UPLOAD_BYTES = 200 * 1024 * 1024  # a hospital's monthly detail file, as uploaded for matching


class BodyTooLarge(Exception):
    """The request body is over the limit of its route: answered 413, before the rest of it is read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes, this address's limit; nothing was recorded")
        self.limit = limit


def body_limit(path: str) -> int:
    """The most bytes a request body to `path` may hold: hospitals' files for matching are uploaded whole;
    every other body is a JSON or YAML document."""
    if path.startswith("/v1/reconciliation/") and path.endswith("/match"):
        return MAX_UPLOAD_BYTES
    if path == "/v1/nhsa/3202":  # the national detail comparison carries the month's file inline (base64)
        return MAX_UPLOAD_BYTES
    if path in ("/v1/simulations/datasets", "/v1/simulations/sheets"):  # a claims dataset, a parameter sheet
        return MAX_UPLOAD_BYTES
    if (path.startswith("/finance/") and path.endswith("/match")) or path == "/policy/datasets/upload":  # web forms
        return MAX_UPLOAD_BYTES
    return MAX_BODY_BYTES


# Characters refused in any text a request carries (ids, names, reasons, filters, documents): controls other
# than tab and line breaks (PostgreSQL cannot even store NUL), lone surrogates (not text at all), and the
# invisible characters that reorder or hide text (direction overrides and isolates, zero-width characters),
# with which a name or an id would read differently on a slip or a statement from what is stored.
_REFUSED_CHARACTERS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_MAX_TEXT_PROBLEMS = 20


def unsafe_text(text: str) -> str | None:
    """Why `text` is refused (the first refused character), or None when it is acceptable."""
    found = _REFUSED_CHARACTERS.search(text)
    if found is None:
        return None
    char = found.group()
    what = unicodedata.name(char, "a control character or lone surrogate")
    return (
        f"contains U+{ord(char):04X} ({what}) at position {found.start()}: control characters, lone surrogates "
        "and invisible or direction-changing characters are refused"
    )


def unsafe_strings(value: Any, field: str = "", found: list[FieldError] | None = None) -> list[FieldError]:
    """Every string (keys too) in a decoded JSON document that `unsafe_text` refuses, on its field path."""
    found = [] if found is None else found
    if len(found) >= _MAX_TEXT_PROBLEMS:
        return found
    if isinstance(value, str):
        reason = unsafe_text(value)
        if reason:
            found.append(FieldError(field or "body", reason))
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{field}.{key}" if field else str(key)
            reason = unsafe_text(key)
            if reason:
                found.append(FieldError(field or "body", f"a key {reason}"))
            unsafe_strings(item, path, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            unsafe_strings(item, f"{field}.{index}" if field else str(index), found)
    return found


@dataclass(frozen=True)
class Context:
    engine: Engine  # transactions that write (on SQLite they take the write lock when they begin)
    reader: Engine  # the same pool, for transactions that only read
    catalogue: Catalogue
    clock: Callable[[], dt.datetime]
    archive: Path  # closed months' files
    simulations: SimulationJobs  # policy simulations run in the background (doudi/simulations.py)
    group: GroupDesk | None = None  # POST /v1/settlements on PostgreSQL (doudi/group_desk.py); None: one by one

    def close(self) -> None:
        """Give back every database connection (the group desk's thread ends once its queue is done)."""
        if self.group is not None:
            self.group.close()
        self.engine.dispose()


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
        raise BodyTooLarge(MAX_BODY_BYTES)
    try:
        text = raw.decode("utf-8")
        decoded = decode_json(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ClaimError([FieldError("body", f"not valid JSON: {err}")]) from None
    problems = refused_strings(text, decoded)
    if problems:
        raise ClaimError(problems)
    return decoded


def refused_strings(text: str, decoded: Any) -> list[FieldError]:
    """`unsafe_strings` of the document `decoded` from the JSON `text`. Without an escape every character of
    every string and key is in the text as written: when the text holds no refused character, no string
    does, and the walk naming each one's field (about 3 % of a settlement's time on the event loop) is not
    needed."""
    if "\\" not in text and _REFUSED_CHARACTERS.search(text) is None:
        return []
    return unsafe_strings(decoded)


async def text_body(request: Request) -> str:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise BodyTooLarge(MAX_BODY_BYTES)
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark from an editor is no text
    except UnicodeDecodeError as err:
        raise ClaimError([FieldError("body", f"not UTF-8 text: {err}")]) from None
    lines = [(n, unsafe_text(line)) for n, line in enumerate(text.splitlines(), start=1)]
    problems = [FieldError("body", f"line {n} {reason}") for n, reason in lines if reason]
    if problems:
        raise ClaimError(problems[:_MAX_TEXT_PROBLEMS])
    return text


def json_object(body: Any, what: str = "body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ClaimError([FieldError(what, "expected a JSON object")])
    return body
