"""The national platform's transactions (国家医疗保障信息平台), for hospital systems that already speak them:
2303/2304/2305 (inpatient pre-settlement, settlement, reversal), 2206/2207/2208 (the same for outpatient
visits), 5206 (a person's year so far), 3201/3202 (a month's totals and details).

Each takes the platform's request body and answers in its envelope, through the same use cases as the
rest of the service (interop/ maps the shapes). The HTTP status says what kind of answer it is (200, 404,
409, 422, 503) and the body is the envelope whatever the status: `infcode` 0 for success, below 0 for a
refusal, with `err_msg` naming each field and its problem. Only a missing or refused token is answered
before the transaction is read, as everywhere in the service (401/403 problem+json).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from api import openapi
from api.auth import require
from api.context import context
from doudi import reconcile, services
from doudi.accounts import Principal
from doudi.desk import Conflict, NotFound, quote_claim, reverse_settlement, settle_claim, visible_to
from doudi.registry import complete_claim
from interop import nhsa, statements
from interop.dictionary import Dictionary, load_dictionary
from interop.envelope import STATUS, answer
from ledger.models import Hospital, Person, Reversal, Settlement
from ledger.repository import snapshot
from reconciliation.frames import Month
from reconciliation.national import detail_rows
from settlement.claims import decode_json, parse_claim
from settlement.errors import ClaimError, FieldError

router = APIRouter(prefix="/v1/nhsa", tags=["national platform"])

Desk = Annotated[Principal, Depends(require("desk"))]
Reader = Annotated[Principal, Depends(require("desk", "finance"))]
Finance = Annotated[Principal, Depends(require("finance", "admin"))]


class Unreadable:
    """A body that is not JSON: answered in the envelope like any other problem."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


async def national_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return decode_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        return Unreadable(f"not valid JSON: {err}")


Body = Annotated[Any, Depends(national_body)]


class Refused(Exception):
    """A transaction refused for a reason other than its input: `kind` is a key of envelope.INFCODE."""

    def __init__(self, kind: str, errors: list[FieldError]) -> None:
        self.kind = kind
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def dictionary_of(request: Request) -> Dictionary:
    """The field-code dictionary, loaded once per app (create_app loads it, so a bad province file stops the
    service from starting rather than failing its first request)."""
    found: Dictionary | None = getattr(request.app.state, "nhsa_dictionary", None)
    if found is None:
        found = request.app.state.nhsa_dictionary = load_dictionary()
    return found


def _run(request: Request, body: Any, work: Callable[[], Any], warn: list[str] | None = None) -> JSONResponse:
    """Run a transaction and answer in the envelope, whatever happens short of a programming error."""
    ctx = context(request)
    received = ctx.clock()
    area = body.get("mdtrtarea_admvs") if isinstance(body, dict) else None
    area = area if isinstance(area, str) and re.fullmatch(r"[0-9]{6}", area) else None
    output: Any = None
    errors: list[FieldError] = []
    try:
        if isinstance(body, Unreadable):
            raise ClaimError([FieldError("body", body.reason)])
        output = work()
        kind = "ok"
    except ClaimError as err:
        kind, errors = "invalid", list(err.errors)
    except Refused as err:
        kind, errors = err.kind, err.errors
    except PoolTimeout:
        kind = "unavailable"
        errors = [FieldError("service", "no database connection came free in time; nothing was recorded; retry")]
    except DBAPIError as err:
        if not (isinstance(err, OperationalError) or err.connection_invalidated):
            raise  # a programming error, not an outage: let it be a 500 and be seen
        kind = "unavailable"
        errors = [FieldError("service", "the database did not answer; nothing was recorded; retry the same message")]
    envelope = answer(kind, output, received, ctx.clock(), area, errors)
    if warn:
        envelope["warn_msg"] = "; ".join(warn)
    headers = {"Retry-After": "1"} if kind == "unavailable" else None
    return JSONResponse(envelope, status_code=STATUS[kind], headers=headers)


# ---------------------------------------------------------------------------------------------------------
# The OpenAPI description of the envelope

_ENVELOPE = {
    "type": "object",
    "required": ["infcode", "inf_refmsgid", "refmsg_time", "respond_time", "err_msg", "output"],
    "properties": {
        "infcode": {"type": "integer", "description": "0 success; -1 invalid, -2 conflict, -3 not found, -4 retry"},
        "inf_refmsgid": {"type": "string"},
        "refmsg_time": {"type": "string"},
        "respond_time": {"type": "string"},
        "err_msg": {"type": ["string", "null"]},
        "warn_msg": {"type": ["string", "null"]},
        "output": {"type": ["object", "null"]},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
_REFUSALS = {
    404: "Not found (infcode -3): the settlement named is not this hospital's or does not exist",
    409: "Conflict (infcode -2): the same msgid with other content, or a second reversal",
    422: "Invalid (infcode -1): err_msg names each field and its problem; nothing was recorded",
    503: "Database unavailable (infcode -4): nothing was recorded; send the same message again",
}


def _request_body(infno: str, example: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": f"The national platform's {infno} request (docs/interop.md lists the fields read).",
            "content": {"application/json": {"schema": {"type": "object"}, "example": example}},
        }
    }


def _responses(*refusals: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {
        200: {"description": "Done (infcode 0)", "content": {"application/json": {"schema": _ENVELOPE}}},
    }
    for status in refusals:
        out[status] = {"description": _REFUSALS[status], "content": {"application/json": {"schema": _ENVELOPE}}}
    return {**out, **openapi.problems(401, 403)}


_HEADER = {
    "msgid": "H22010000001201406121020000001",
    "mdtrtarea_admvs": "220100",
    "insuplc_admdvs": "220581",
    "fixmedins_code": "JL-PROV-H001",
    "inf_time": "2014-06-12 10:20:00",
}
_SETTLE_EXAMPLE: dict[str, Any] = {
    "infno": "2304",
    **_HEADER,
    "input": {
        "data": {
            "psn_no": "MHK-P-0001",
            "mdtrt_id": "ZY2014050600017",
            "insutype": "390",
            "medfee_sumamt": "236000.00",
            "fulamt_ownpay_amt": "21000.00",
            "overlmt_selfpay": "0.00",
            "preselfpay_amt": "9000.00",
            "inscp_scp_amt": "206000.00",
            "mid_setl_flag": "0",
            "acct_used_flag": "0",
        },
        "mdtrtinfo": {"begntime": "2014-05-06 08:30:00", "endtime": "2014-06-12 09:00:00"},
        "diseinfo": [{"diag_code": "C91.0", "maindiag_flag": "1", "diag_srt_no": 1, "diag_name": "急性淋巴细胞白血病"}],
    },
}


# ---------------------------------------------------------------------------------------------------------
# Pre-settlement and settlement


def _settlement(request: Request, who: Principal, body: Any, infno: str, warnings: list[str]) -> Any:
    ctx = context(request)
    dictionary = dictionary_of(request)
    parsed = nhsa.settlement_request(body, infno, dictionary)
    warnings.extend(parsed.warnings)
    with Session(ctx.reader) as session:
        areas = _area_problems(session, parsed.message, parsed.claim.get("person_id"), who.hospital_id)
        registered: list[FieldError] = []
        try:
            completed, policy_id = complete_claim(session, parsed.claim, who.hospital_id, ctx.clock())
        except ClaimError as err:
            registered, completed = list(parsed.national_errors(err).errors), None
        library = ctx.catalogue.library(session)
    checked: list[FieldError] = []
    if completed is not None:
        try:
            claim = parse_claim(completed)
        except ClaimError as err:
            checked = list(parsed.national_errors(err).errors)
    problems = parsed.all_problems(areas, registered, checked)
    if problems:
        raise ClaimError(problems)
    try:
        if nhsa.SETTLING[infno] == "quote":
            record = quote_claim(ctx.reader, library, policy_id, claim)
            return nhsa.settlement_output(record, dictionary, mdtrt_id=parsed.mdtrt_id)
        try:
            outcome = settle_claim(
                ctx.engine, library, policy_id, claim, ctx.clock(), who, setlinfo={"mdtrt_id": parsed.mdtrt_id}
            )
        except Conflict as err:
            raise Refused("conflict", [FieldError("msgid", str(err))]) from None
    except ClaimError as err:
        raise parsed.national_errors(err) from None
    recorded = outcome.record["nhsa"]["setlinfo"].get("mdtrt_id")
    if recorded != parsed.mdtrt_id:
        raise Refused(
            "conflict",
            [FieldError("input.data.mdtrt_id", f"msgid {parsed.message.msgid!r} settled visit {recorded!r} before")],
        )
    return nhsa.settlement_output(outcome.record, dictionary, outcome.setl_id)


def _area_problems(session: Session, message: Any, person_id: Any, desk_hospital: str | None) -> list[FieldError]:
    """The areas a message names must be the register's: the person's insured area (参保地) and the
    hospital's area (就医地)."""
    problems = []
    person = session.get(Person, person_id) if isinstance(person_id, str) else None
    if message.insuplc_admdvs is not None and person is not None and person.region != message.insuplc_admdvs:
        problems.append(
            FieldError(
                "insuplc_admdvs",
                f"{message.insuplc_admdvs!r} contradicts the register: person {person.person_id!r} is insured in "
                f"{person.region!r}",
            )
        )
    hospital_id = message.fixmedins_code or desk_hospital
    hospital = session.get(Hospital, hospital_id) if hospital_id is not None else None
    if message.mdtrtarea_admvs is not None and hospital is not None and hospital.region != message.mdtrtarea_admvs:
        problems.append(
            FieldError(
                "mdtrtarea_admvs",
                f"{message.mdtrtarea_admvs!r} contradicts the register: hospital {hospital.hospital_id!r} is in "
                f"{hospital.region!r}",
            )
        )
    return problems


def _settlement_route(infno: str, summary: str) -> None:
    kind = nhsa.SETTLING[infno]
    example = {**_SETTLE_EXAMPLE, "infno": infno}
    if infno in nhsa.OUTPATIENT:
        example["input"] = {**_SETTLE_EXAMPLE["input"], "data": {**_SETTLE_EXAMPLE["input"]["data"], "med_type": "11"}}

    @router.post(
        f"/{infno}",
        summary=summary,
        description="Settled through the same path as POST /v1/settlements: the register completes the stay "
        "(category on the settlement date), the settlement key is `msgid` (the same message again answers "
        "what was recorded; the same msgid with other content is refused)."
        if kind == "settle"
        else "What settling would pay now; nothing is recorded.",
        openapi_extra=_request_body(infno, example),
        responses=_responses(409, 422, 503) if kind == "settle" else _responses(422, 503),
        name=f"nhsa_{infno}",
    )
    def transaction(request: Request, who: Desk, body: Body) -> JSONResponse:
        warnings: list[str] = []
        return _run(request, body, lambda: _settlement(request, who, body, infno, warnings), warnings)


_settlement_route("2303", "2303 住院预结算 (inpatient pre-settlement): what settling would pay; nothing recorded")
_settlement_route("2304", "2304 住院结算 (inpatient settlement), once per msgid")
_settlement_route("2206", "2206 门诊预结算 (outpatient pre-settlement): nothing recorded")
_settlement_route("2207", "2207 门诊结算 (outpatient settlement), once per msgid")


# ---------------------------------------------------------------------------------------------------------
# Reversal


def _reversal(request: Request, who: Principal, body: Any, infno: str) -> Any:
    ctx = context(request)
    dictionary = dictionary_of(request)
    parsed = nhsa.reversal_request(body, infno)
    with Session(ctx.reader) as session:
        known = session.get(Settlement, parsed.setl_id)
        if known is None or not visible_to(who, known):
            raise Refused("not_found", [FieldError("input.data.setl_id", f"no settlement {parsed.setl_id!r}")])
        record = json.loads(known.record_json)
        visit_id = record["nhsa"]["setlinfo"].get("mdtrt_id") or known.medins_setl_id
        problems = nhsa.reversal_mismatches(parsed, known.person_id, visit_id, known.visit_type)
        if problems:
            raise ClaimError(problems)
        earlier = session.get(Reversal, parsed.setl_id)
    if earlier is None:
        now = ctx.clock()
        try:
            reverse_settlement(ctx.engine, parsed.setl_id, parsed.reason, now, who)
        except NotFound:
            raise Refused(
                "not_found", [FieldError("input.data.setl_id", f"no settlement {parsed.setl_id!r}")]
            ) from None
        except Conflict:
            with Session(ctx.reader) as session:  # reversed by another request since we looked
                earlier = session.get(Reversal, parsed.setl_id)
        else:
            return nhsa.reversal_output(nhsa.settlement_output(record, dictionary, parsed.setl_id), now)
    assert earlier is not None
    same_message = nhsa.reversal_reason(infno, parsed.message.msgid)
    if earlier.reason != same_message and not earlier.reason.startswith(same_message + ": "):
        raise Refused(
            "conflict",
            [
                FieldError(
                    "input.data.setl_id", f"settlement {parsed.setl_id!r} was already reversed ({earlier.reason})"
                )
            ],
        )
    # The same message again: the answer it had, and nothing new is recorded.
    return nhsa.reversal_output(nhsa.settlement_output(record, dictionary, parsed.setl_id), earlier.reversed_at)


def _reversal_route(infno: str, summary: str) -> None:
    example = {
        "infno": infno,
        **_HEADER,
        "input": {"data": {"psn_no": "MHK-P-0001", "mdtrt_id": "ZY2014050600017", "setl_id": "5f0c…"}},
    }

    @router.post(
        f"/{infno}",
        summary=summary,
        description="Reverses through the same path as POST /v1/settlements/{setl_id}/reversal; the answer "
        "is the settlement's view with every amount negated. The same message again answers the same.",
        openapi_extra=_request_body(infno, example),
        responses=_responses(404, 409, 422, 503),
        name=f"nhsa_{infno}",
    )
    def transaction(request: Request, who: Desk, body: Body) -> JSONResponse:
        return _run(request, body, lambda: _reversal(request, who, body, infno))


_reversal_route("2305", "2305 住院结算撤销 (inpatient reversal), once")
_reversal_route("2208", "2208 门诊结算撤销 (outpatient reversal), once")


# ---------------------------------------------------------------------------------------------------------
# 5206: a person's year so far


@router.post(
    "/5206",
    summary="5206 人员累计信息查询: a person's (and household's) year-to-date figures",
    openapi_extra=_request_body(
        "5206", {"infno": "5206", **_HEADER, "input": {"data": {"psn_no": "MHK-P-0001", "cum_ym": "201412"}}}
    ),
    responses=_responses(422, 503),
)
def cumulative(request: Request, _who: Reader, body: Body) -> JSONResponse:
    def work() -> Any:
        ctx = context(request)
        parsed = nhsa.cumulative_request(body)
        with Session(ctx.reader) as session:
            person = session.get(Person, parsed.psn_no)
            if person is None:
                raise ClaimError([FieldError("input.data.psn_no", f"no person {parsed.psn_no!r} is registered")])
            year = parsed.year or ctx.clock().year
            state = snapshot(session, [person.person_id, person.household_id], [year])
            region = person.region
        rows = services.accumulator_rows(state)
        return nhsa.cumulative_output(rows, parsed.psn_no, region, dictionary_of(request))

    return _run(request, body, work)


# ---------------------------------------------------------------------------------------------------------
# 3201 and 3202: a month's totals and details


_STATEMENT_DATA = {"setl_optins": "220581", "stmt_begndate": "2014-12-01", "stmt_enddate": "2014-12-31"}


def _statement_header(session: Session, parsed: nhsa.StatementRequest) -> tuple[str, Month]:
    hospital = parsed.message.fixmedins_code
    assert hospital is not None  # statement_request requires it
    if session.get(Hospital, hospital) is None:
        raise ClaimError([FieldError("fixmedins_code", f"no hospital {hospital!r} is registered")])
    return hospital, Month.parse(parsed.month)


@router.post(
    "/3201",
    summary="3201 医药机构费用结算对总账: the hospital's totals of a month against Doudi's",
    openapi_extra=_request_body(
        "3201",
        {
            "infno": "3201",
            **_HEADER,
            "input": {
                "data": {
                    **_STATEMENT_DATA,
                    "medfee_sumamt": "236000.00",
                    "fund_pay_sumamt": "236000.00",
                    "acct_pay": "0.00",
                    "fixmedins_setl_cnt": 1,
                }
            },
        },
    ),
    responses=_responses(422, 503),
)
def totals(request: Request, _who: Finance, body: Body) -> JSONResponse:
    def work() -> Any:
        ctx = context(request)
        parsed = nhsa.statement_request(body, "3201", dictionary_of(request))
        with reconcile.month_session(ctx.reader) as session:
            hospital, month = _statement_header(session, parsed)
            rows = detail_rows(reconcile.statement(session, month, hospital))
            kinds: dict[str, tuple[str, str]] = {}
            if parsed.schemes is not None or parsed.visit_types is not None:
                ids = sorted(set(rows["setl_id"].astype(str)))
                for start in range(0, len(ids), 1000):
                    query = select(Settlement.setl_id, Settlement.insurance_scheme, Settlement.visit_type).where(
                        Settlement.setl_id.in_(ids[start : start + 1000])
                    )
                    kinds.update({s: (scheme, visit) for s, scheme, visit in session.execute(query)})
        ours = statements.totals_of(statements.selected_rows(rows, kinds, parsed))
        return statements.totals_output(parsed, ours)

    return _run(request, body, work)


@router.post(
    "/3202",
    summary="3202 医药机构费用结算对明细账: the hospital's detail file of a month against Doudi's",
    description="The detail file (national layout, or CSV/XLSX as POST /v1/reconciliation/{month}/match reads) "
    'travels in the request as 9101\'s upload block, `input.fsUploadIn` = {"filename", "in": base64}. The answer '
    "carries the result file (表201, TAB-separated, zipped) in `output.fileinfo.content` (base64).",
    openapi_extra=_request_body(
        "3202",
        {
            "infno": "3202",
            **_HEADER,
            "input": {
                "data": _STATEMENT_DATA,
                "fsUploadIn": {"filename": "JL-PROV-H001-201412.zip", "in": "UEsDBBQAAAAIAA…"},
            },
        },
    ),
    responses=_responses(422, 503),
)
def details(request: Request, _who: Finance, body: Body) -> JSONResponse:
    def work() -> Any:
        ctx = context(request)
        parsed = nhsa.statement_request(body, "3202", dictionary_of(request))
        with reconcile.month_session(ctx.reader) as session:
            hospital, month = _statement_header(session, parsed)
            matching = reconcile.match_file(session, month, hospital, parsed.file, parsed.filename)
            ours = detail_rows(reconcile.statement(session, month, hospital))
        rows = statements.result_rows(ours, matching)
        safe = re.sub(r"[^0-9A-Za-z._-]", "_", hospital)
        name = f"{safe}-{month.year:04d}{month.month:02d}-result"
        zipped = statements.result_file(rows, month, f"{name}.txt")
        return statements.details_output(matching, rows, f"{name}.zip", base64.b64encode(zipped).decode("ascii"))

    return _run(request, body, work)
