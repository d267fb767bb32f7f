"""Monthly reconciliation for finance (and admins): months and their state, a month's statement, its files,
matching a hospital's file, closing the month."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api import openapi
from api.auth import require
from api.context import MAX_UPLOAD_BYTES, BodyTooLarge, context
from doudi import reconcile
from doudi.accounts import Principal
from doudi.desk import Conflict, NotFound
from reconciliation.files import HOSPITAL_MONEY, SUMMARY_MONEY, detail_money_columns, statement_files
from reconciliation.frames import Month
from reconciliation.national import yuan_text
from reconciliation.statement import Statement, Unbalanced
from settlement.errors import ClaimError, FieldError

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"])

Finance = Annotated[Principal, Depends(require("finance", "admin"))]
# A hospital id as the register writes them (ASCII): it is also part of a download's file name, a header.
_HOSPITAL_ID = {"pattern": r"^[0-9A-Za-z][0-9A-Za-z._:-]*$", "max_length": 64}
HospitalFilter = Annotated[str | None, Query(description="One hospital (default: all)", **_HOSPITAL_ID)]

CONTENT_TYPES = {
    ".csv": "text/csv; charset=utf-8",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".zip": "application/zip",
    ".json": "application/json",
}


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as err:
        raise ClaimError([FieldError("month", str(err))]) from None


def _money_rows(frame: Any, money: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = frame.to_dict("records")
    for row in rows:
        for key, value in row.items():
            if key in money:
                row[key] = None if value is None or value != value else yuan_text(int(value))  # NaN/NA: none
            elif hasattr(value, "isoformat"):
                row[key] = value.isoformat()
            elif value is not None and not isinstance(value, str | int | float | bool):
                row[key] = None if str(value) in ("<NA>", "NaT", "nan") else str(value)
    return rows


def _statement(request: Request, month: Month, hospital_id: str | None) -> tuple[Statement, bool]:
    with Session(reconcile.consistent(context(request).reader)) as session:
        return reconcile.statement(session, month, hospital_id), reconcile.closed(session, month) is not None


@router.get(
    "/months",
    summary="Months with settlements or reversals, and whether each is closed",
    responses={200: openapi.ok(openapi.MONTHS), **openapi.problems(401, 403, 503)},
)
def list_months(request: Request, _who: Finance) -> JSONResponse:
    with Session(context(request).reader) as session:
        return JSONResponse({"months": reconcile.months(session)})


@router.get(
    "/{month}",
    summary="A month's statement: per hospital and fund, per hospital, and every balancing check",
    responses={200: openapi.ok(openapi.STATEMENT), **openapi.problems(401, 403, 422, 503)},
)
def read_statement(request: Request, month: str, _who: Finance, hospital_id: HospitalFilter = None) -> JSONResponse:
    built, is_closed = _statement(request, _month(month), hospital_id)

    failed = built.checks[~built.checks["ok"]]
    return JSONResponse(
        {
            "month": str(built.month),
            "hospital_id": hospital_id,
            "closed": is_closed,
            "balanced": built.balanced,
            "funds": built.funds,
            "summary": _money_rows(built.summary, SUMMARY_MONEY),
            "hospitals": _money_rows(built.hospitals, HOSPITAL_MONEY),
            "checks": {"count": len(built.checks), "failed": _money_rows(failed, ("expected", "found"))},
            "detail_rows": len(built.detail),
        }
    )


@router.get(
    "/{month}/detail",
    summary="A month's detail rows (a page of them)",
    responses={200: openapi.ok(openapi.DETAIL), **openapi.problems(401, 403, 422, 503)},
)
def read_detail(
    request: Request,
    month: str,
    _who: Finance,
    hospital_id: HospitalFilter = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> JSONResponse:
    built, _ = _statement(request, _month(month), hospital_id)
    money = detail_money_columns(built.funds)
    page = built.detail.iloc[offset : offset + limit]
    return JSONResponse({"total_rows": len(built.detail), "offset": offset, "rows": _money_rows(page, money)})


@router.get(
    "/{month}/files/{name:path}",
    summary="Download a statement file: summary.csv, hospitals.csv, detail.csv, checks.csv, statement.xlsx, "
    "national/<hospital>.zip",
    responses={
        200: openapi.files("The file", *CONTENT_TYPES.values()),
        **openapi.problems(401, 403, 404, 409, 422, 503),
    },
)
def download(request: Request, month: str, name: str, _who: Finance, hospital_id: HospitalFilter = None) -> Response:
    chosen = _month(month)
    built, _ = _statement(request, chosen, hospital_id)
    with Session(context(request).reader) as session:
        identifiers = reconcile.file_identifiers(session, chosen)  # masked, unless the month says otherwise
    try:
        files = statement_files(built, identifiers)
    except Unbalanced as err:
        raise Conflict(str(err)) from None
    if name not in files:
        raise NotFound(f"no file {name!r} in the statement of {chosen}; there are: {', '.join(sorted(files))}")
    data = files[name]
    if hospital_id is None:
        _verify_closed(request, chosen, name, data)
    suffix = name[name.rfind(".") :]
    filename = f"{chosen}-{hospital_id + '-' if hospital_id else ''}{name.replace('/', '-')}"
    return Response(
        data,
        media_type=CONTENT_TYPES.get(suffix, "application/octet-stream"),
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-SHA256": hashlib.sha256(data).hexdigest(),
        },
    )


def _verify_closed(request: Request, month: Month, name: str, data: bytes) -> None:
    """A closed month's file is regenerated from the ledger and must match the hash stored at close."""
    with Session(context(request).reader) as session:
        known = reconcile.closed(session, month)
        if known is None:
            return
        stored = {f["name"]: f["sha256"] for f in json.loads(known.manifest)["files"]}
    if stored.get(name) != hashlib.sha256(data).hexdigest():
        raise Conflict(f"{month} is closed, and {name} regenerated from the ledger no longer matches its stored hash")


@router.post(
    "/{month}/close",
    summary="Close the month (月结): write its files once, store their hashes, freeze it",
    responses={
        200: openapi.ok(openapi.CLOSED, "Already closed: the stored manifest"),
        201: openapi.ok(openapi.CLOSED, "Closed"),
        **openapi.problems(401, 403, 409, 422, 503),
    },
    status_code=201,
)
def close(request: Request, month: str, who: Finance) -> JSONResponse:
    ctx = context(request)
    chosen = _month(month)
    folder = reconcile.archive_folder(chosen, ctx.archive)
    try:
        found, new = reconcile.close_month(
            ctx.engine, chosen, who, ctx.clock(), lambda built: reconcile.write_files(built, folder)
        )
    except reconcile.MonthError as err:
        raise ClaimError([FieldError("month", str(err))]) from None
    except Unbalanced as err:
        raise Conflict(str(err)) from None
    return JSONResponse({"month": str(chosen), "closed": True, "manifest": found}, status_code=201 if new else 200)


@router.post(
    "/{month}/match",
    summary="Compare a hospital's own detail file (national layout, CSV or XLSX; UTF-8 or GBK) with the "
    "ledger (3202). Read-only: the ledger never changes, whatever the file holds",
    openapi_extra={
        "parameters": [
            {"name": "X-Filename", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "requestBody": {
            "required": True,
            "description": "The file's bytes as uploaded (a .zip, .txt, .csv or .xlsx).",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
    },
    responses={
        200: {
            "description": "The verdict and every difference (or the report as CSV or XLSX with `format`)",
            "content": {
                **openapi.ok(openapi.MATCHING)["content"],
                **openapi.files("", CONTENT_TYPES[".csv"], CONTENT_TYPES[".xlsx"])["content"],
            },
        },
        **openapi.problems(401, 403, 413, 422, 503),
    },
)
async def match_file(
    request: Request,
    month: str,
    _who: Finance,
    hospital_id: Annotated[str, Query(description="The hospital whose file this is", **_HOSPITAL_ID)],
    format: Annotated[str, Query(pattern="^(json|csv|xlsx)$")] = "json",
) -> Response:
    from starlette.concurrency import run_in_threadpool

    chosen = _month(month)
    data = await request.body()
    if len(data) > MAX_UPLOAD_BYTES:
        raise BodyTooLarge(MAX_UPLOAD_BYTES)
    name = _safe_name(request.headers.get("x-filename", "upload"))

    def compare() -> Any:
        with Session(reconcile.consistent(context(request).reader)) as session:
            return reconcile.match_file(session, chosen, hospital_id, data, name)

    matching = await run_in_threadpool(compare)
    if format == "json":
        return JSONResponse(_matching_body(matching))
    from reconciliation.matching import difference_sheets
    from reconciliation.writers import csv_bytes, xlsx_bytes

    sheets = difference_sheets(matching)
    if format == "csv":
        body, media = csv_bytes(sheets[-1]), CONTENT_TYPES[".csv"]
    else:
        body, media = xlsx_bytes(sheets, chosen.start), CONTENT_TYPES[".xlsx"]
    filename = f"{chosen}-{hospital_id}-differences.{format}"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _safe_name(raw: str) -> str:
    """Only the last part of an uploaded file's name, as printable text: it is shown, never opened."""
    last = raw.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in last if ch.isprintable())[:200]
    return cleaned or "upload"


def _matching_body(matching: Any) -> dict[str, Any]:
    verdict = matching.verdict
    file = matching.file

    def side(totals: Any) -> dict[str, Any]:
        return {
            "rows": totals.rows,
            "settlements": totals.settlements,
            "reversals": totals.reversals,
            "medfee_sumamt": yuan_text(totals.medfee_sumamt),
            "fund_pay_sumamt": yuan_text(totals.fund_pay_sumamt),
            "acct_pay": yuan_text(totals.acct_pay),
        }

    return {
        "month": str(matching.month),
        "file": {
            "name": file.name,
            "format": file.format,
            "encoding": file.encoding,
            "zipped": file.zipped,
            "problems": len(file.problems),
            "notes": list(file.notes),
        },
        "verdict": {
            "stmt_rslt": verdict.stmt_rslt,
            "stmt_rslt_dscr": verdict.stmt_rslt_dscr,
            "balanced": verdict.balanced,
            "doudi": side(verdict.doudi),
            "hospital": side(verdict.hospital),
        },
        "counts": matching.counts,
        "differences": _money_rows(matching.differences, ("doudi", "hospital", "difference")),
    }
