"""Monthly reconciliation for finance (and admins): months and their state, a month's statement, its files,
matching a hospital's file, closing the month."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api import openapi
from api.auth import require
from api.context import MAX_UPLOAD_BYTES, BodyTooLarge, context
from doudi import reconcile
from doudi.accounts import Principal
from doudi.desk import Conflict
from reconciliation.files import HOSPITAL_MONEY, SUMMARY_MONEY, detail_money_columns
from reconciliation.frames import Month
from reconciliation.statement import Statement, Unbalanced
from settlement.errors import ClaimError, FieldError

router = APIRouter(prefix="/v1/reconciliation", tags=["reconciliation"])

Finance = Annotated[Principal, Depends(require("finance", "admin"))]
# A hospital id as the register writes them (ASCII): it is also part of a download's file name, a header.
_HOSPITAL_ID = {"pattern": r"^[0-9A-Za-z][0-9A-Za-z._:-]*$", "max_length": 64}
HospitalFilter = Annotated[str | None, Query(description="One hospital (default: all)", **_HOSPITAL_ID)]

CONTENT_TYPES = reconcile.CONTENT_TYPES


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as err:
        raise ClaimError([FieldError("month", str(err))]) from None


def _statement(request: Request, month: Month, hospital_id: str | None) -> tuple[Statement, bool]:
    with reconcile.month_session(context(request).reader) as session:
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
            "summary": reconcile.json_rows(built.summary, SUMMARY_MONEY),
            "hospitals": reconcile.json_rows(built.hospitals, HOSPITAL_MONEY),
            "checks": {"count": len(built.checks), "failed": reconcile.json_rows(failed, ("expected", "found"))},
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
    return JSONResponse({"total_rows": len(built.detail), "offset": offset, "rows": reconcile.json_rows(page, money)})


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
    found = reconcile.statement_download(context(request).reader, _month(month), name, hospital_id)
    return file_response(found)


def file_response(found: reconcile.Download, *, hashed: bool = True) -> Response:
    """A file as an attachment; `hashed` adds its SHA-256 (a statement file, as its month's manifest holds)."""
    headers = {"Content-Disposition": f'attachment; filename="{found.filename}"'}
    if hashed:
        headers["X-Content-SHA256"] = found.sha256
    return Response(found.data, media_type=found.media_type, headers=headers)


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
    name = reconcile.upload_name(request.headers.get("x-filename", "upload"))

    def compare() -> Any:
        with reconcile.month_session(context(request).reader) as session:
            return reconcile.match_file(session, chosen, hospital_id, data, name)

    matching = await run_in_threadpool(compare)
    if format == "json":
        return JSONResponse(reconcile.matching_body(matching))
    return file_response(reconcile.difference_report(matching, hospital_id, format), hashed=False)
