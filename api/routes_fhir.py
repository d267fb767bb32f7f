"""FHIR R4 for health-insurance systems that speak it: a settlement as an ExplanationOfBenefit, a month's
remittance per fund as PaymentReconciliation. Read-only; interop/fhir.py builds the resources, and money is
written as exact JSON numbers (application/fhir+json). Errors are problem+json, as everywhere in the service.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from api import openapi
from api.auth import require
from api.context import context
from api.routes_nhsa import dictionary_of
from doudi import reconcile
from doudi.accounts import Principal
from doudi.desk import Conflict, NotFound, visible_to
from interop import exact_json, fhir
from ledger.models import Reversal, Settlement
from reconciliation.frames import Month
from reconciliation.statement import Unbalanced
from settlement.errors import ClaimError, FieldError

router = APIRouter(prefix="/v1/fhir", tags=["FHIR R4"])

Reader = Annotated[Principal, Depends(require("desk", "finance"))]
Finance = Annotated[Principal, Depends(require("finance", "admin"))]

FHIR_JSON = "application/fhir+json"
REVERSAL_SUFFIX = "-reversal"


def _fhir(resource: dict[str, Any]) -> Response:
    return Response(exact_json.dumps(resource), media_type=FHIR_JSON)


def _resource_schema(resource_type: str) -> dict[str, Any]:
    return {
        "description": f"A FHIR R4 {resource_type}",
        "content": {
            FHIR_JSON: {
                "schema": {
                    "type": "object",
                    "required": ["resourceType"],
                    "properties": {"resourceType": {"const": resource_type}},
                }
            }
        },
    }


@router.get(
    "/ExplanationOfBenefit/{setl_id}",
    summary="A settlement as an ExplanationOfBenefit; `{setl_id}-reversal` is its reversal (cancelled)",
    description="Each fund that covered the stay is an insurance entry, in payment order; the stay's item "
    "has one set of adjudications per fund (submitted, priorpayerpaid, noncovered, eligible, deductible, "
    "coinsurance, benefit, memberliability), benefitBalance each fund's annual cap and what it has paid this "
    "year. A desk reads its own hospital's settlements only.",
    responses={200: _resource_schema("ExplanationOfBenefit"), **openapi.problems(401, 403, 404, 422, 503)},
)
def explanation_of_benefit(request: Request, setl_id: str, who: Reader) -> Response:
    wanted = setl_id.removesuffix(REVERSAL_SUFFIX)
    with Session(context(request).reader) as session:
        known = session.get(Settlement, wanted)
        if known is None or not visible_to(who, known):
            raise NotFound(f"no settlement {wanted!r}")
        reversal = session.get(Reversal, wanted)
        record, claim = json.loads(known.record_json), json.loads(known.claim_json)
        hospital = known.hospital_id
    dictionary = dictionary_of(request)
    if setl_id.endswith(REVERSAL_SUFFIX):
        if reversal is None:
            raise NotFound(f"settlement {wanted!r} is not reversed")
        return _fhir(
            fhir.reversal_explanation_of_benefit(
                wanted, record, claim, hospital, dictionary, reversal.reversed_at, reversal.reason
            )
        )
    done = None if reversal is None else (reversal.reversed_at, reversal.reason)
    return _fhir(fhir.explanation_of_benefit(wanted, record, claim, hospital, dictionary, done))


@router.get(
    "/PaymentReconciliation",
    summary="A month's remittance per hospital and fund, one detail per settlement row (a searchset Bundle)",
    description="The month's statement (GET /v1/reconciliation/{month}) as PaymentReconciliation resources: "
    "paymentAmount is what is due to the hospital from the fund, and the details (settlements, reversals, "
    "balances carried in and out) add up to it. An open month's resources have outcome `partial`.",
    responses={200: _resource_schema("Bundle"), **openapi.problems(401, 403, 409, 422, 503)},
)
def payment_reconciliation(
    request: Request,
    _who: Finance,
    month: Annotated[str, Query(description="YYYY-MM")],
    hospital: Annotated[str | None, Query(description="One hospital (default: all)")] = None,
) -> Response:
    try:
        chosen = Month.parse(month)
    except ValueError as err:
        raise ClaimError([FieldError("month", str(err))]) from None
    ctx = context(request)
    with reconcile.month_session(ctx.reader) as session:
        built = reconcile.statement(session, chosen, hospital)
        closed = reconcile.closed(session, chosen)
        closed_at = closed.closed_at if closed is not None else None
    try:
        built.require_balanced()
    except Unbalanced as err:
        raise Conflict(str(err)) from None
    resources = fhir.payment_reconciliations(built, ctx.clock(), closed_at)
    base = str(request.base_url).rstrip("/") + router.prefix
    return _fhir(fhir.searchset(resources, base, str(request.url)))
