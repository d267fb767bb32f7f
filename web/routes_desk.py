"""The billing desk's pages (role `desk`): find a person, enter a stay, quote (预结算), settle (结算), print
the slip, today's settlements, reverse (结算撤销). Settlement slips are also read by finance.

Every step calls what the API's desk routes call: the register completes the claim, the claim is
validated by the engine's model, `quote_claim`/`settle_claim` price it, and a reversal goes through the API's
own route function, reason checks included.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from decimal import Decimal
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from api import routes_desk as api_desk
from api.context import Context, context
from doudi import registry, services
from doudi.accounts import WebSignIn
from doudi.desk import NotFound, quote_claim, reversal_reason, reverse_settlement, settle_claim, visible_to
from doudi.registry import category_on, complete_claim
from ledger.models import CategoryPeriod, Hospital, Person, Region, Reversal, Settlement
from ledger.repository import snapshot
from policies.compile import plan_for
from settlement.accumulators import AccKey
from settlement.claims import decode_json, parse_claim
from settlement.codes import CATEGORY_CODE, LEVEL_CODE, VISIT_TYPES
from settlement.errors import ClaimError, FieldError
from settlement.money import NO_CAP, format_yuan
from settlement.slip import REASON_TEXT
from settlement.waterfall import policy_years
from web.pages import PageError, PageRoute, field_errors, posting, render, signed_in, text_field

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Desk = Annotated[WebSignIn, Depends(signed_in("desk"))]
DeskPost = Annotated[tuple[WebSignIn, FormData], Depends(posting("desk"))]
Reader = Annotated[WebSignIn, Depends(signed_in("desk", "finance"))]

AMOUNTS = ("total", "fully_self_paid", "over_limit_self_paid", "pre_self_paid")
"""The amounts a hospital system prints on the bill, in the claim's own field names."""
STAY_FIELDS = (
    "claim_id",
    "person_id",
    "visit_type",
    "admitted_on",
    "discharged_on",
    "settled_at",
    "diagnoses",
    *AMOUNTS,
    "assistance_approval",
    "grant_payer",
    "grant_amount",
)


def _hospital(session: Session, signin: WebSignIn) -> Hospital:
    hospital = session.get(Hospital, signin.principal.hospital_id or "")
    if hospital is None:  # a desk user's hospital is checked when the user is made; this is a broken register
        raise PageError(409, "error.no_hospital", hospital=signin.principal.hospital_id)
    return hospital


@router.get("/desk")
def desk_home(request: Request, signin: Desk) -> Response:
    ctx = context(request)
    with Session(ctx.reader) as session:
        hospital = _hospital(session, signin)
    today = _settlements(request, signin, ctx.clock().date())
    return render(request, "desk/home.html", hospital=hospital, settlements=today, person_id="", errors={})


def _settlements(request: Request, signin: WebSignIn, day: dt.date) -> list[dict[str, Any]]:
    """The desk's hospital's settlements recorded on `day`, newest first: GET /v1/settlements's own answer
    (and its rule that a desk sees its own hospital's only)."""
    return api_desk.settlement_list(context(request).reader, signin.principal, None, day, 1000)


@router.get("/desk/today")
def desk_today(request: Request, signin: Desk) -> Response:
    ctx = context(request)
    day = ctx.clock().date()
    with Session(ctx.reader) as session:
        hospital = _hospital(session, signin)
    found = _settlements(request, signin, day)
    return render(request, "desk/today.html", hospital=hospital, settlements=found, day=day)


@router.get("/desk/people")
def person_page(request: Request, signin: Desk, person_id: str = "", year: int | None = None) -> Response:
    ctx = context(request)
    person_id = person_id.strip()
    with Session(ctx.reader) as session:
        hospital = _hospital(session, signin)
        person = session.get(Person, person_id) if person_id else None
        if person is None:
            message = "desk.person_missing" if not person_id else "desk.person_unknown"
            today = _settlements(request, signin, ctx.clock().date())
            return render(
                request,
                "desk/home.html",
                status=422 if not person_id else 404,
                hospital=hospital,
                settlements=today,
                person_id=person_id,
                errors={"person_id": [message]},
            )
        view = registry.person_view(session, person)
        figures = _year_figures(ctx, session, person, hospital, year)
    return render(request, "desk/person.html", person=view, hospital=hospital, **figures)


def _year_figures(
    ctx: Context, session: Session, person: Person, hospital: Hospital, year: int | None
) -> dict[str, Any]:
    """A person's and household's figures in a policy year (default: this one), and what is left under
    each annual cap for their category today at the desk's hospital level. The caps are read from the
    compiled plan (every tilt applied), the amounts paid from the ledger, as a settlement would read them."""
    today = ctx.clock().date()
    region = session.get(Region, person.region)
    library = ctx.catalogue.library(session)
    try:
        policy = library.get(region.policy_id if region else "", today)
    except KeyError:
        policy = None
    periods = session.scalars(
        select(CategoryPeriod).where(CategoryPeriod.person_id == person.person_id).order_by(CategoryPeriod.valid_from)
    ).all()
    category = category_on(periods, today)
    if policy is None:
        chosen = year or today.year
        return {"year": chosen, "category": category, "policy": None, "caps": [], "accumulators": []}
    plan = plan_for(policy, library)
    this_year = int(policy_years(np.array([np.datetime64(today, "D")]), plan.policy_year_start)[0])
    chosen = year or this_year
    state = snapshot(session, [person.person_id, person.household_id], [chosen])
    caps = []
    c, level = CATEGORY_CODE[category], LEVEL_CODE[hospital.level]  # type: ignore[index]
    for tier in plan.tiers:
        for bucket in tier.buckets:
            if bucket.accumulator is None:
                continue
            entity = person.person_id if bucket.accumulator.per == "person" else person.household_id
            paid = state.get(AccKey(bucket.accumulator.key, entity, chosen))
            cap = int(bucket.annual_cap[c, level])
            paid_fen = paid.paid if paid else 0
            caps.append(
                {
                    "fund": tier.fund_name,
                    "bucket": bucket.name,
                    "per": bucket.accumulator.per,
                    "eligible": bool(tier.category_ok[c]),
                    "paid": format_yuan(paid_fen),
                    "cap": None if cap >= NO_CAP else format_yuan(cap),
                    "left": None if cap >= NO_CAP else format_yuan(max(cap - paid_fen, 0)),
                }
            )
    return {
        "year": chosen,
        "category": category,
        "policy": policy,
        "caps": caps,
        "accumulators": services.accumulator_rows(state),
    }


def _new_key(now: dt.datetime) -> str:
    """A settlement key for a stay entered by hand: the HIS would send its own. Fixed when the form is
    first shown, so a second click on Settle repeats the first settlement instead of paying twice."""
    return f"WEB-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3).upper()}"


@router.get("/desk/stay")
def stay_form(request: Request, signin: Desk, person_id: str = "") -> Response:
    ctx = context(request)
    now = ctx.clock()
    with Session(ctx.reader) as session:
        hospital = _hospital(session, signin)
    values = {
        "claim_id": _new_key(now),
        "person_id": person_id.strip(),
        "visit_type": "inpatient",
        "admitted_on": "",
        "discharged_on": now.date().isoformat(),
        "settled_at": now.strftime("%Y-%m-%dT%H:%M"),
        **{name: "" for name in ("diagnoses", *AMOUNTS, "assistance_approval", "grant_payer", "grant_amount")},
        "fully_self_paid": "0.00",
        "over_limit_self_paid": "0.00",
        "pre_self_paid": "0.00",
        "third_party_liability": False,
        "claim_json": "",
    }
    return _stay_page(request, hospital, values, {})


def _stay_page(
    request: Request, hospital: Hospital, values: dict[str, Any], errors: dict[str, list[str]], status: int = 200
) -> Response:
    known = {*STAY_FIELDS, "claim_json", "diagnoses", "grants"}
    # Problems on fields the form has no input for (or on the whole body) are listed at the top.
    others = {f: m for f, m in errors.items() if f not in known and not f.startswith(("diagnoses", "grants"))}
    return render(
        request,
        "desk/stay.html",
        status=status,
        hospital=hospital,
        values=values,
        errors=errors,
        other_errors=others,
        visit_types=VISIT_TYPES,
    )


def _claim_from_form(form: FormData) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the claim as a hospital system would send it, the form's values to show again). A pasted claim
    JSON, when given, is the claim; otherwise the fields are, each left out when blank so that the engine's
    own "is required" names what is missing."""
    values: dict[str, Any] = {name: text_field(form, name) for name in STAY_FIELDS}
    values["third_party_liability"] = form.get("third_party_liability") == "on"
    values["claim_json"] = text_field(form, "claim_json")
    if values["claim_json"]:
        try:
            body = decode_json(values["claim_json"])
        except (ValueError, RecursionError) as err:
            raise ClaimError([FieldError("claim_json", f"not valid JSON: {err}")]) from None
        if not isinstance(body, dict):
            raise ClaimError([FieldError("claim_json", "expected a JSON object (one claim)")])
        return body, values
    claim: dict[str, Any] = {}
    for name in ("claim_id", "person_id", "visit_type", "admitted_on", "discharged_on", *AMOUNTS):
        if values[name]:
            claim[name] = values[name]
    if values["settled_at"]:
        claim["settled_at"] = values["settled_at"] + (":00" if len(values["settled_at"]) == 16 else "")
    codes = [c for c in values["diagnoses"].replace("，", ",").replace(" ", ",").split(",") if c]
    if codes:
        claim["diagnoses"] = codes
    if values["third_party_liability"]:
        claim["third_party_liability"] = True
    if values["assistance_approval"]:
        claim["assistance_approval"] = values["assistance_approval"]
    if values["grant_payer"] or values["grant_amount"]:
        claim["grants"] = [{"payer": values["grant_payer"], "amount": values["grant_amount"]}]
    return claim, values


def _priced(ctx: Context, signin: WebSignIn, claim: dict[str, Any], settle: bool) -> dict[str, Any]:
    """Quote or settle as POST /v1/quotes and /v1/settlements do: the register completes the claim, the
    engine's model validates it, the published library prices it."""
    with Session(ctx.reader) as session:
        completed, policy_id = complete_claim(session, claim, signin.principal.hospital_id, ctx.clock())
        library = ctx.catalogue.library(session)
    parsed = parse_claim(completed)
    if not settle:
        return {"record": quote_claim(ctx.reader, library, policy_id, parsed), "claim": parsed.as_json()}
    outcome = settle_claim(ctx.engine, library, policy_id, parsed, ctx.clock(), signin.principal)
    return {"setl_id": outcome.setl_id, "created": outcome.created}


def _form_errors(err: ClaimError) -> dict[str, list[str]]:
    errors = field_errors(list(err.errors))
    # The grant row of the form is the claim's first grant.
    for source, target in (("grants[0].payer", "grant_payer"), ("grants[0].amount", "grant_amount")):
        if source in errors:
            errors[target] = errors.pop(source)
    for name in list(errors):
        if name.startswith("diagnoses["):
            errors.setdefault("diagnoses", []).extend(errors.pop(name))
    return errors


@router.post("/desk/quote")
def quote_page(request: Request, posted: DeskPost) -> Response:
    signin, form = posted
    ctx = context(request)
    with Session(ctx.reader) as session:
        hospital = _hospital(session, signin)
    try:
        claim, values = _claim_from_form(form)
    except ClaimError as err:
        values = {name: text_field(form, name) for name in (*STAY_FIELDS, "claim_json")}
        values["third_party_liability"] = form.get("third_party_liability") == "on"
        return _stay_page(request, hospital, values, _form_errors(err), status=422)
    try:
        priced = _priced(ctx, signin, claim, settle=False)
    except ClaimError as err:
        return _stay_page(request, hospital, values, _form_errors(err), status=422)
    claim_text = json.dumps(priced["claim"], ensure_ascii=False)
    return render(
        request,
        "desk/quote.html",
        record=priced["record"],
        claim_json=claim_text,
        hospital=hospital,
        reasons=REASON_TEXT,
        cap_after=cap_after,
    )


@router.post("/desk/settle")
def settle_page(request: Request, posted: DeskPost) -> Response:
    signin, form = posted
    ctx = context(request)
    with Session(ctx.reader) as session:
        hospital = _hospital(session, signin)
    claim, values = _claim_from_form(form)
    try:
        settled = _priced(ctx, signin, claim, settle=True)
    except ClaimError as err:
        return _stay_page(request, hospital, values, _form_errors(err), status=422)
    # A repeat of the same settlement lands on the same slip: nothing was paid twice.
    return RedirectResponse(f"/settlements/{settled['setl_id']}", status_code=303)


def _visible(session: Session, signin: WebSignIn, setl_id: str) -> Settlement:
    found = session.get(Settlement, setl_id)
    if found is None or not visible_to(signin.principal, found):
        raise NotFound(f"no settlement {setl_id!r}")
    return found


def cap_after(tier: dict[str, Any]) -> str | None:
    """What is left of the tier's annual cap after this claim (the record gives it before)."""
    left = tier.get("annual_cap_left")
    if left is None:
        return None
    return str(max(Decimal(left) - Decimal(tier["paid"]), Decimal("0.00")))


@router.get("/settlements/{setl_id}")
def slip_page(request: Request, setl_id: str, signin: Reader) -> Response:
    ctx = context(request)
    with Session(ctx.reader) as session:
        found = _visible(session, signin, setl_id)
        reversal = session.get(Reversal, setl_id)
        person = session.get(Person, found.person_id)
        hospital = session.get(Hospital, found.hospital_id)
    record = json.loads(found.record_json)
    claim = json.loads(found.claim_json)
    return render(
        request,
        "desk/slip.html",
        settlement=found,
        record=record,
        claim=claim,
        person=person,
        hospital=hospital,
        reversal=reversal,
        reasons=REASON_TEXT,
        cap_after=cap_after,
    )


@router.get("/desk/settlements/{setl_id}/reverse")
def reverse_form(request: Request, setl_id: str, signin: Desk) -> Response:
    ctx = context(request)
    with Session(ctx.reader) as session:
        found = _visible(session, signin, setl_id)
        reversed_already = session.get(Reversal, setl_id) is not None
    return render(
        request,
        "desk/reverse.html",
        settlement=found,
        reversed_already=reversed_already,
        values={"reason": "", "confirm": False},
        errors={},
    )


@router.post("/desk/settlements/{setl_id}/reverse")
def reverse_page(request: Request, setl_id: str, posted: DeskPost) -> Response:
    signin, form = posted
    ctx = context(request)
    reason = str(form.get("reason") or "")
    confirmed = form.get("confirm") == "on"
    with Session(ctx.reader) as session:
        found = _visible(session, signin, setl_id)
    errors: dict[str, list[str]] = {}
    if not confirmed:
        errors["confirm"] = ["desk.confirm_needed"]
    else:
        try:  # the API's reason checks, then the reversal, audited
            reverse_settlement(ctx.engine, setl_id, reversal_reason(reason), ctx.clock(), signin.principal)
        except ClaimError as err:
            errors = field_errors(list(err.errors))
    if errors:
        values = {"reason": reason, "confirm": confirmed}
        return render(
            request,
            "desk/reverse.html",
            status=422,
            settlement=found,
            reversed_already=False,
            values=values,
            errors=errors,
        )
    return RedirectResponse(f"/settlements/{setl_id}", status_code=303)


@router.get("/desk/diseases")
def disease_search(request: Request, signin: Desk, q: str = "", format: str = "html") -> Response:
    """The shipped and published disease lists searched by code, Chinese or English name."""
    found = _diseases(context(request), q.strip())
    if format == "json":
        return JSONResponse({"query": q, "matches": found[:30]})
    return render(request, "desk/diseases.html", q=q, matches=found)


def _diseases(ctx: Context, query: str) -> list[dict[str, str]]:
    if not query:
        return []
    needle = query.casefold()
    seen: set[tuple[str, str]] = set()
    matches = []
    for list_id, disease_list in sorted(ctx.catalogue.library().disease_lists.items()):
        for entry in disease_list.entries:
            codes = [*entry.codes, *(f"{low}–{high}" for low, high in entry.ranges)]
            names = f"{entry.name} {entry.name_en or ''}".casefold()
            if needle in names or any(code.casefold().startswith(needle) for code in codes):
                key = (entry.name, ",".join(codes))
                if key in seen:
                    continue
                seen.add(key)
                matches.append(
                    {
                        "code": entry.codes[0] if entry.codes else entry.ranges[0][0],
                        "codes": ", ".join(codes),
                        "name": entry.name,
                        "name_en": entry.name_en or "",
                        "list": list_id,
                    }
                )
    return matches
