"""Finance's pages (roles `finance` and `admin`, as the API's reconciliation routes): months and their
state, a month's statement per hospital and fund, its files, matching a hospital's own file, closing.

The statement is `doudi.reconcile.statement`, closing is `reconcile.close_month` writing the same files, and
downloads go through the API's own route function, so a closed month's file is checked against the hash
stored when it closed exactly as the API checks it.
"""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from api import routes_reconciliation as api_reconciliation
from api.context import context
from doudi import reconcile
from doudi.accounts import WebSignIn
from reconciliation.files import HOSPITAL_MONEY, SUMMARY_MONEY
from reconciliation.frames import Month
from reconciliation.national import yuan_text
from reconciliation.statement import Statement, Unbalanced
from settlement.errors import ClaimError
from web.pages import PageError, PageRoute, file_field, posting, render, signed_in, text_field

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Finance = Annotated[WebSignIn, Depends(signed_in("finance", "admin"))]
FinancePost = Annotated[tuple[WebSignIn, FormData], Depends(posting("finance", "admin"))]

STATEMENT_FILES = ("summary.csv", "hospitals.csv", "detail.csv", "checks.csv", "statement.xlsx")
DETAIL_SHOWN = 200  # detail rows listed on a hospital's page; every row is in the files


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as err:
        raise PageError(404, "error.not_found", f"{text}: {err}") from None


def money_rows(frame: pd.DataFrame, money: tuple[str, ...] | list[str]) -> list[dict[str, Any]]:
    """Rows of a statement frame with money (integer fen) as yuan text."""
    rows: list[dict[str, Any]] = [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]
    for row in rows:
        for key in money:
            value = row.get(key)
            if value is not None and value == value:  # NaN/NA: none
                row[key] = yuan_text(int(value))
    return rows


def _totals(rows: list[dict[str, Any]], money: tuple[str, ...], counts: tuple[str, ...] = ()) -> dict[str, str]:
    """Column sums of rows whose money is yuan text, summed exactly in fen."""
    from decimal import Decimal

    totals: dict[str, Any] = {}
    for key in money:
        totals[key] = yuan_text(int(sum(Decimal(r[key]) * 100 for r in rows if r.get(key) not in (None, ""))))
    for key in counts:
        totals[key] = str(sum(int(r[key]) for r in rows))
    return totals


@router.get("/finance")
def months_page(request: Request, signin: Finance) -> Response:
    with Session(context(request).reader) as session:
        months = reconcile.months(session)
    return render(request, "finance/months.html", months=months)


def _statement(request: Request, month: Month, hospital_id: str | None) -> tuple[Statement, Any]:
    with reconcile.month_session(context(request).reader) as session:
        return reconcile.statement(session, month, hospital_id), reconcile.closed(session, month)


def _hospital_states(built: Statement) -> list[dict[str, Any]]:
    failed = built.checks[~built.checks["ok"]]
    failing = set(failed["hospital_id"].astype(str))
    rows = money_rows(built.hospitals, HOSPITAL_MONEY)
    for row in rows:
        row["balanced"] = str(row["hospital_id"]) not in failing
    return rows


@router.get("/finance/{month}")
def month_page(request: Request, month: str, signin: Finance) -> Response:
    chosen = _month(month)
    built, closed = _statement(request, chosen, None)
    return _month_view(request, chosen, built, closed, {}, {})


def _month_view(
    request: Request,
    month: Month,
    built: Statement,
    closed: Any,
    errors: dict[str, list[str]],
    values: dict[str, Any],
    status: int = 200,
) -> Response:
    summary = money_rows(built.summary, SUMMARY_MONEY)
    by_fund: dict[str, list[dict[str, Any]]] = {}
    for row in summary:
        by_fund.setdefault(f"{row['fund']} {row['fund_name']}", []).append(row)
    funds = [
        {"name": name, "rows": rows, "totals": _totals(rows, SUMMARY_MONEY, ("settlements", "reversals"))}
        for name, rows in by_fund.items()
    ]
    hospitals = _hospital_states(built)
    failed = money_rows(built.checks[~built.checks["ok"]], ("expected", "found"))
    return render(
        request,
        "finance/month.html",
        status=status,
        month=str(month),
        closed=closed,
        balanced=built.balanced,
        hospitals=hospitals,
        hospital_totals=_totals(hospitals, HOSPITAL_MONEY, ("settlements", "reversals")),
        summary=summary,
        funds=funds,
        failed=failed,
        checks=len(built.checks),
        files=STATEMENT_FILES,
        over=month.end <= context(request).clock(),
        errors=errors,
        values=values,
    )


@router.get("/finance/{month}/hospitals/{hospital_id}")
def hospital_page(request: Request, month: str, hospital_id: str, signin: Finance) -> Response:
    chosen = _month(month)
    built, closed = _statement(request, chosen, hospital_id)
    return _hospital_view(request, chosen, hospital_id, built, closed)


def _hospital_view(
    request: Request,
    month: Month,
    hospital_id: str,
    built: Statement,
    closed: Any,
    matching: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Response:
    summary = money_rows(built.summary, SUMMARY_MONEY)
    detail = built.detail.head(DETAIL_SHOWN)
    detail_rows = money_rows(detail, ("total", "fund_paid", "patient_burden"))
    return render(
        request,
        "finance/hospital.html",
        status=status,
        month=str(month),
        hospital_id=hospital_id,
        closed=closed,
        balanced=built.balanced,
        summary=summary,
        totals=_totals(summary, SUMMARY_MONEY, ("settlements", "reversals")),
        detail=detail_rows,
        detail_count=len(built.detail),
        detail_shown=DETAIL_SHOWN,
        matching=matching,
        errors=errors or {},
    )


@router.get("/finance/{month}/files/{name:path}")
def download(request: Request, month: str, name: str, signin: Finance, hospital_id: str | None = None) -> Response:
    # The API's own files, and a closed month's file checked against its stored hash.
    found = reconcile.statement_download(context(request).reader, _month(month), name, hospital_id)
    return api_reconciliation.file_response(found)


@router.post("/finance/{month}/hospitals/{hospital_id}/match")
def match_page(request: Request, month: str, hospital_id: str, posted: FinancePost) -> Response:
    """Compare a hospital's own detail file with the ledger: read-only, whatever the file holds. With `format`
    (csv or xlsx) the answer is the difference report as a file, as the API's match route gives it."""
    _signin, form = posted
    chosen = _month(month)
    uploaded = file_field(form, "file")
    report = text_field(form, "format")
    errors: dict[str, list[str]] = {}
    if uploaded is None:
        errors["file"] = ["finance.file_missing"]
    if report not in ("", "csv", "xlsx"):
        errors["file"] = [*errors.get("file", []), "finance.bad_format"]
    if uploaded is None or errors:
        built, closed = _statement(request, chosen, hospital_id)
        return _hospital_view(request, chosen, hospital_id, built, closed, errors=errors, status=422)
    name, data = uploaded
    safe = reconcile.upload_name(name)
    with reconcile.month_session(context(request).reader) as session:
        found = reconcile.match_file(session, chosen, hospital_id, data, safe)
    if report:
        return api_reconciliation.file_response(reconcile.difference_report(found, hospital_id, report), hashed=False)
    built, closed = _statement(request, chosen, hospital_id)
    body = reconcile.matching_body(found)
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in body["differences"]:
        groups.setdefault(row["kind"], []).append(row)
    body["groups"] = groups
    return _hospital_view(request, chosen, hospital_id, built, closed, matching=body)


@router.post("/finance/{month}/close")
def close_page(request: Request, month: str, posted: FinancePost) -> Response:
    signin, form = posted
    ctx = context(request)
    chosen = _month(month)
    if form.get("confirm") != "on" or text_field(form, "month_again") != str(chosen):
        built, closed = _statement(request, chosen, None)
        errors = {"month_again": ["finance.close_confirm"]}
        values = {"month_again": text_field(form, "month_again")}
        return _month_view(request, chosen, built, closed, errors, values, status=422)
    folder = reconcile.archive_folder(chosen, ctx.archive)
    try:
        reconcile.close_month(
            ctx.engine, chosen, signin.principal, ctx.clock(), lambda built: reconcile.write_files(built, folder)
        )
    except (reconcile.MonthError, Unbalanced) as err:
        built, closed = _statement(request, chosen, None)
        errors = {"month_again": [str(err)]}
        return _month_view(request, chosen, built, closed, errors, {"month_again": str(chosen)}, status=409)
    except ClaimError as err:  # pragma: no cover - the month was parsed above
        raise PageError(422, "error.invalid", str(err)) from None
    return RedirectResponse(f"/finance/{chosen}", status_code=303)
