"""The audit log (admins only): read it a page at a time, filtered, and check its hash chain. There is no
route that changes or deletes an entry; entries are written only by the writes they record."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api import openapi
from api.auth import require
from api.context import context
from doudi import audit
from doudi.accounts import Principal
from settlement.errors import ClaimError, FieldError

router = APIRouter(prefix="/v1", tags=["accounts"])

Admin = Annotated[Principal, Depends(require("admin"))]

_TEXT: dict[str, Any] = {"type": "string"}
_HASH: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_SEQ: dict[str, Any] = {"type": "integer", "minimum": 0}
_ENTRY = {
    "type": "object",
    "required": ["id", "seq", "at", "user", "token_id", "action", "target", "detail", "prev_sha256", "entry_sha256"],
    "properties": {
        "id": {"type": "integer"},
        "seq": _SEQ,
        "at": {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}"},
        "user": _TEXT,
        "token_id": {"type": ["string", "null"]},
        "action": _TEXT,
        "target": _TEXT,
        "detail": {"type": "object"},
        "prev_sha256": _HASH,
        "entry_sha256": _HASH,
    },
}
PAGE = {
    "type": "object",
    "required": ["entries", "next_before"],
    "properties": {
        "entries": {"type": "array", "items": _ENTRY},
        "next_before": {"oneOf": [{"type": "null"}, _SEQ]},
    },
}
VERDICT = {
    "type": "object",
    "required": ["intact", "entries", "head", "broken"],
    "properties": {
        "intact": {"type": "boolean"},
        "entries": {"type": "integer", "minimum": 0},
        "head": {"type": "object", "required": ["seq", "sha256"], "properties": {"seq": _SEQ, "sha256": _HASH}},
        "broken": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["seq", "id", "kind", "message"],
                    "properties": {
                        "seq": _SEQ,
                        "id": {"type": ["integer", "null"]},
                        "kind": {"enum": ["changed", "deleted", "inserted", "reordered", "head"]},
                        "message": _TEXT,
                    },
                },
            ]
        },
    },
}


@router.get(
    "/audit",
    summary="The audit log, newest first, a page at a time (pass next_before as before for the next page)",
    responses={200: openapi.ok(PAGE), **openapi.problems(401, 403, 422, 503)},
)
def audit_log(
    request: Request,
    _who: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None,
        # le: seq is a 32-bit integer column; a larger number is a 422 here, not a database error (500)
        Query(ge=1, le=2**31 - 1, description="Entries before this place in the chain (seq)."),
    ] = None,
    user: Annotated[
        str | None, Query(max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]*$", description="Written by this user.")
    ] = None,
    action: Annotated[
        str | None,
        Query(max_length=40, pattern=r"^[a-z0-9_.]+(\.\*)?$", description="This action, or a family: settlement.*"),
    ] = None,
    since: Annotated[dt.datetime | None, Query(description="Written at or after this moment.")] = None,
    until: Annotated[dt.datetime | None, Query(description="Written before this moment.")] = None,
) -> JSONResponse:
    filters = audit.Filters(user, action, _naive(since, "since"), _naive(until, "until"))
    with Session(context(request).reader) as session:
        rows, next_before = audit.page(session, filters, limit, before)
    return JSONResponse({"entries": rows, "next_before": next_before})


@router.get(
    "/audit/verify",
    summary="Check the audit log's hash chain: intact, or the first entry changed, deleted, inserted or reordered",
    responses={200: openapi.ok(VERDICT), **openapi.problems(401, 403, 503)},
)
def verify(request: Request, _who: Admin) -> JSONResponse:
    return JSONResponse(audit.verdict_view(audit.verify(context(request).reader)))


def _naive(moment: dt.datetime | None, field: str) -> dt.datetime | None:
    """Entries are stored in local wall time without a zone (doudi/audit.py); a moment with one is converted."""
    if moment is None or moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone().replace(tzinfo=None)
    except OverflowError:
        raise ClaimError([FieldError(field, "is out of the range of dates")]) from None
