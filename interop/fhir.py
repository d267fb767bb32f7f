"""FHIR R4 resources for health-insurance systems outside China: an ExplanationOfBenefit per settlement
and a PaymentReconciliation per fund and hospital for a month. Money is `Decimal` throughout (written by
interop.exact_json as exact JSON numbers), in CNY.

ExplanationOfBenefit. Each fund that covered the stay is an `insurance` entry, in payment order. The stay
is one `item`; its `adjudication` holds one set per fund, each tied to its insurance entry by the extension
INSURANCE_EXTENSION (R4's adjudication has no payer of its own), in the categories of R4 and of CARIN Blue
Button. For the fund at position k, with L the amount left when it pays (the charge less what the funds
before it paid):

    submitted        the charge (医疗费总额)
    priorpayerpaid   what the funds before it paid
    noncovered       L − eligible: what this fund does not consider
    eligible         the fund's base (for the first insurance: 符合政策范围金额)
    deductible       the deductible applied (起付线)
    coinsurance      eligible − deductible − benefit: the share the ratio and caps leave
    benefit          what the fund paid
    memberliability  L − benefit: what is left after it

so that submitted − priorpayerpaid − noncovered − deductible − coinsurance = benefit for each fund. `total`
holds the stay's figures (submitted − memberliability = benefit = payment.amount), and `benefitBalance`
each fund's annual cap (allowed) and what it has paid this year, this settlement included (used).

A reversal is a second EOB, `{setl_id}-reversal`, status `cancelled`, every amount negated, `related` to
the original (relationship `prior`); the original names it (relationship `associated`) and stays active,
as the ledger keeps both entries.

PaymentReconciliation. One per hospital and fund of the month's statement (reconciliation/): `detail` has
one entry per settlement row that moved the fund (type `payment`; a reversal row is an `adjustment` whose
`predecessor` is the settlement), plus the balance carried in from the month before and the balance carried
out to the next one (both `adjustment`), so that Σ detail.amount = paymentAmount = what is due (拨付).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import pandas as pd

from interop.dictionary import Dictionary
from interop.statements import records
from reconciliation.frames import Month
from reconciliation.statement import Statement
from settlement.money import yuan

CURRENCY: Final = "CNY"
_CENT: Final = Decimal("0.01")
TIMEZONE: Final = "+08:00"  # settlement times are Beijing wall-clock times

SETL_ID_SYSTEM: Final = "urn:doudi:setl_id"
REVERSAL_SYSTEM: Final = "urn:doudi:reversal"
MEDINS_SETL_ID_SYSTEM: Final = "urn:doudi:medins_setl_id"
PERSON_SYSTEM: Final = "urn:doudi:psn_no"
HOSPITAL_SYSTEM: Final = "urn:doudi:fixmedins_code"
AREA_SYSTEM: Final = "urn:doudi:admdvs"
FUND_SYSTEM: Final = "urn:doudi:fund_pay_type"
STATEMENT_FUND_SYSTEM: Final = "urn:doudi:statement-fund"
REMITTANCE_SYSTEM: Final = "urn:doudi:remittance"
CARRY_SYSTEM: Final = "urn:doudi:carry"
VISIT_SYSTEM: Final = "urn:doudi:visit_type"
INSURANCE_EXTENSION: Final = "urn:doudi:fhir:adjudication-insurance"

ICD10: Final = "http://hl7.org/fhir/sid/icd-10"
ADJUDICATION: Final = "http://terminology.hl7.org/CodeSystem/adjudication"
CARIN_ADJUDICATION: Final = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication"
CARIN_SUBTYPE: Final = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBInstitutionalClaimSubType"
CLAIM_TYPE: Final = "http://terminology.hl7.org/CodeSystem/claim-type"
DIAGNOSIS_TYPE: Final = "http://terminology.hl7.org/CodeSystem/ex-diagnosistype"
RELATED: Final = "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship"
PAYMENT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/payment-type"
EX_PAYMENT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/ex-paymenttype"
BENEFIT_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/ex-benefitcategory"
BENEFIT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/benefit-type"
BENEFIT_UNIT: Final = "http://terminology.hl7.org/CodeSystem/benefit-unit"
BENEFIT_TERM: Final = "http://terminology.hl7.org/CodeSystem/benefit-term"

CATEGORIES: Final = {
    "submitted": ADJUDICATION,
    "priorpayerpaid": CARIN_ADJUDICATION,
    "noncovered": CARIN_ADJUDICATION,
    "eligible": ADJUDICATION,
    "deductible": ADJUDICATION,
    "coinsurance": CARIN_ADJUDICATION,
    "benefit": ADJUDICATION,
    "memberliability": CARIN_ADJUDICATION,
}
"""Each adjudication category and its code system, in the order they are written."""


def money(amount: Decimal) -> dict[str, Any]:
    # Two places always, and never a negative zero (a reversal of a fund that paid nothing).
    return {"value": amount.quantize(_CENT) if amount else _CENT * 0, "currency": CURRENCY}


def _coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    found = {"system": system, "code": code}
    if display:
        found["display"] = display
    return {"coding": [found]}


def _moment(moment: dt.datetime) -> str:
    return moment.replace(microsecond=0, tzinfo=None).isoformat() + TIMEZONE


def _reference(system: str, value: str, display: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"identifier": {"system": system, "value": value}}
    if display:
        found["display"] = display
    return found


# ---------------------------------------------------------------------------------------------------------
# ExplanationOfBenefit


def fund_adjudications(record: Mapping[str, Any]) -> list[tuple[dict[str, Any], dict[str, Decimal]]]:
    """(tier record, amounts by category) for each fund that covered the stay, in payment order."""
    total = Decimal(record["amounts"]["total"])
    prior = Decimal("0.00")
    out = []
    for tier in record["tiers"]:
        if not tier["eligible"]:
            continue
        paid = Decimal(tier["paid"])
        left = total - prior
        eligible = Decimal(tier["base"]) if tier.get("base") is not None else paid
        deductible = Decimal(tier["deductible"]) if tier.get("deductible") is not None else Decimal("0.00")
        amounts = {
            "submitted": total,
            "priorpayerpaid": prior,
            "noncovered": left - eligible,
            "eligible": eligible,
            "deductible": deductible,
            "coinsurance": eligible - deductible - paid,
            "benefit": paid,
            "memberliability": left - paid,
        }
        out.append((tier, amounts))
        prior += paid
    return out


def explanation_of_benefit(
    setl_id: str,
    record: Mapping[str, Any],
    claim: Mapping[str, Any],
    hospital_id: str,
    dictionary: Dictionary,
    reversal: tuple[dt.datetime, str] | None = None,
) -> dict[str, Any]:
    """The settlement's EOB (`record` as stored, `claim` the claim as settled). `reversal`, when the
    settlement was reversed, is (when, why): the EOB then names the reversal's EOB."""
    eob = _eob(setl_id, record, claim, hospital_id, dictionary, sign=1)
    eob["benefitBalance"] = _balances(record)
    if reversal is not None:
        eob["related"] = [
            {"relationship": _coding(RELATED, "associated"), "reference": {"system": REVERSAL_SYSTEM, "value": setl_id}}
        ]
    return eob


def reversal_explanation_of_benefit(
    setl_id: str,
    record: Mapping[str, Any],
    claim: Mapping[str, Any],
    hospital_id: str,
    dictionary: Dictionary,
    reversed_at: dt.datetime,
    reason: str,
) -> dict[str, Any]:
    """The reversal of a settlement: a cancelled EOB with every amount negated, related to the original."""
    eob = _eob(setl_id, record, claim, hospital_id, dictionary, sign=-1)
    eob["id"] = f"{setl_id}-reversal"
    eob["identifier"] = [{"system": REVERSAL_SYSTEM, "value": setl_id}]
    eob["status"] = "cancelled"
    eob["created"] = _moment(reversed_at)
    eob["disposition"] = f"reversed (结算撤销): {reason}"
    eob["payment"]["date"] = reversed_at.date().isoformat()
    eob["related"] = [
        {"relationship": _coding(RELATED, "prior"), "reference": {"system": SETL_ID_SYSTEM, "value": setl_id}}
    ]
    return eob


def _eob(
    setl_id: str,
    record: Mapping[str, Any],
    claim: Mapping[str, Any],
    hospital_id: str,
    dictionary: Dictionary,
    sign: int,
) -> dict[str, Any]:
    amounts = record["amounts"]
    setlinfo = record["nhsa"]["setlinfo"]
    total = Decimal(amounts["total"])
    in_scope = Decimal(amounts["in_scope"])
    fund_paid = Decimal(record["fund_paid"])
    burden = Decimal(record["patient_burden"])
    visit = record["visit_type"]
    settled_at = dt.datetime.fromisoformat(setlinfo["setl_time"])
    funds = fund_adjudications(record)
    insurance, adjudication = [], []
    for k, (tier, figures) in enumerate(funds, start=1):
        code, name = dictionary.fund(tier["fund_pay_type"], tier["fund_name"])
        insurance.append({"focal": True, "coverage": _reference(FUND_SYSTEM, code, f"{name} · {tier['name']}")})
        for category, system in CATEGORIES.items():
            adjudication.append(
                {
                    "extension": [{"url": INSURANCE_EXTENSION, "valuePositiveInt": k}],
                    "category": _coding(system, category),
                    "amount": money(sign * figures[category]),
                }
            )
    policy = record["policy"]
    return {
        "resourceType": "ExplanationOfBenefit",
        "id": setl_id,
        "identifier": [
            {"system": SETL_ID_SYSTEM, "value": setl_id},
            {
                "system": MEDINS_SETL_ID_SYSTEM,
                "value": record["claim_id"],
                "assigner": _reference(HOSPITAL_SYSTEM, hospital_id),
            },
        ],
        "status": "active",
        "type": _coding(CLAIM_TYPE, "institutional"),
        "subType": _coding(CARIN_SUBTYPE, "inpatient" if visit == "inpatient" else "outpatient"),
        "use": "claim",
        "patient": _reference(PERSON_SYSTEM, record["person_id"]),
        "billablePeriod": {"start": claim["admitted_on"], "end": claim["discharged_on"]},
        "created": _moment(settled_at),
        "insurer": _reference(AREA_SYSTEM, policy["region"], f"{policy['title']} ({policy['id']}@{policy['version']})"),
        "provider": _reference(HOSPITAL_SYSTEM, hospital_id),
        "outcome": "complete",
        "disposition": f"settled in one step (一站式结算) under {policy['id']}@{policy['version']}",
        "diagnosis": [
            {
                "sequence": i,
                "diagnosisCodeableConcept": _coding(ICD10, code),
                "type": [_coding(DIAGNOSIS_TYPE, "principal" if i == 1 else "discharge")],
            }
            for i, code in enumerate(claim["diagnoses"], start=1)
        ],
        "insurance": insurance,
        "item": [
            {
                "sequence": 1,
                "diagnosisSequence": list(range(1, len(claim["diagnoses"]) + 1)),
                "productOrService": _coding(
                    VISIT_SYSTEM, visit, "住院 inpatient stay" if visit == "inpatient" else None
                ),
                "servicedPeriod": {"start": claim["admitted_on"], "end": claim["discharged_on"]},
                "net": money(sign * total),
                "adjudication": adjudication,
            }
        ],
        "total": [
            {"category": _coding(ADJUDICATION, "submitted"), "amount": money(sign * total)},
            {"category": _coding(CARIN_ADJUDICATION, "noncovered"), "amount": money(sign * (total - in_scope))},
            {"category": _coding(ADJUDICATION, "eligible"), "amount": money(sign * in_scope)},
            {"category": _coding(ADJUDICATION, "benefit"), "amount": money(sign * fund_paid)},
            {"category": _coding(CARIN_ADJUDICATION, "memberliability"), "amount": money(sign * burden)},
        ],
        "payment": {
            "type": _coding(EX_PAYMENT_TYPE, "complete"),
            "date": settled_at.date().isoformat(),
            "amount": money(sign * fund_paid),
        },
    }


def _balances(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each fund's year so far after this settlement: its annual cap (allowed; text where it has none) and
    what it has paid this policy year (used); what is left is allowed − used."""
    out = []
    for tier in record["tiers"]:
        acc = tier.get("accumulator")
        if not tier["eligible"] or acc is None:
            continue
        financial: dict[str, Any] = {"type": _coding(BENEFIT_TYPE, "benefit")}
        if tier.get("annual_cap_left") is None:
            financial["allowedString"] = "no annual cap"
        else:
            financial["allowedMoney"] = money(Decimal(tier["annual_cap_left"]) + Decimal(acc["paid_before"]))
        financial["usedMoney"] = money(Decimal(acc["paid_after"]))
        out.append(
            {
                "category": _coding(BENEFIT_CATEGORY, "30", "Health Benefit Plan Coverage"),
                "name": tier.get("bucket_name", tier["name"]),
                "description": f"{tier['fund_name']}: accumulator {acc['key']}, policy year {acc['year']}",
                "unit": _coding(BENEFIT_UNIT, "individual" if acc["per"] == "person" else "family"),
                "term": _coding(BENEFIT_TERM, "annual"),
                "financial": [financial],
            }
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# PaymentReconciliation


def payment_reconciliations(
    statement: Statement, created: dt.datetime, closed_at: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """One PaymentReconciliation per hospital and fund of the statement's summary, in its order. `closed_at`:
    when the month was closed (its remittance is final), else None."""
    month = statement.month
    detail = statement.detail
    out = []
    summary = records(statement.summary)
    for row in summary:
        hospital, fund = str(row["hospital_id"]), str(row["fund"])
        rows = detail[(detail["hospital_id"] == hospital) & (detail[fund] != 0)] if len(detail) else detail
        details = [_detail(r, fund) for r in records(rows)]
        if int(row["carried_in"]):
            details.append(_carry(hospital, fund, f"in:{month.previous()}", int(row["carried_in"]), month.start))
        if int(row["carried_out"]):
            last = month.end - dt.timedelta(days=1)
            details.append(_carry(hospital, fund, f"out:{month.next()}", -int(row["carried_out"]), last))
        out.append(
            {
                "resourceType": "PaymentReconciliation",
                "id": _id(month, hospital, fund),
                "identifier": [{"system": REMITTANCE_SYSTEM, "value": f"{month}/{hospital}/{fund}"}],
                "status": "active",
                "period": {
                    "start": month.start.date().isoformat(),
                    "end": (month.end - dt.timedelta(days=1)).date().isoformat(),
                },
                "created": _moment(created),
                "paymentIssuer": _reference(STATEMENT_FUND_SYSTEM, fund, str(row["fund_name"])),
                "requestor": _reference(HOSPITAL_SYSTEM, hospital),
                "outcome": "complete" if closed_at is not None else "partial",
                "disposition": _disposition(month, row, closed_at),
                "paymentDate": (closed_at or created).date().isoformat(),
                "paymentAmount": money(yuan(int(row["due"]))),
                "detail": details,
            }
        )
    return out


def _id(month: Month, hospital: str, fund: str) -> str:
    """A FHIR id (letters, digits, '-' and '.'), stable for the same month, hospital and fund."""
    return f"{month}-" + hashlib.sha256(f"{month}|{hospital}|{fund}".encode()).hexdigest()[:24]


def _disposition(month: Month, row: Mapping[str, Any], closed_at: dt.datetime | None) -> str:
    state = f"closed {closed_at:%Y-%m-%d}" if closed_at is not None else "open: figures may still change"
    return (
        f"{month} {row['fund_name']}: {int(row['settlements'])} settlements, {int(row['reversals'])} reversals, "
        f"net {yuan(int(row['net']))}, carried in {yuan(int(row['carried_in']))}, "
        f"carried out {yuan(int(row['carried_out']))} ({state})"
    )


def _detail(row: Mapping[str, Any], fund: str) -> dict[str, Any]:
    forward = row["row_kind"] == "settlement"
    setl_id = str(row["setl_id"])
    found: dict[str, Any] = {
        "identifier": {"system": SETL_ID_SYSTEM if forward else REVERSAL_SYSTEM, "value": setl_id},
        "type": _coding(PAYMENT_TYPE, "payment" if forward else "adjustment"),
        "response": {"reference": f"ExplanationOfBenefit/{setl_id}" + ("" if forward else "-reversal")},
        "submitter": _reference(HOSPITAL_SYSTEM, str(row["hospital_id"])),
        "date": pd.Timestamp(row["booked_at"]).date().isoformat(),
        "payee": _reference(HOSPITAL_SYSTEM, str(row["hospital_id"])),
        "amount": money(yuan(int(row[fund]))),
    }
    if not forward:
        found["predecessor"] = {"system": SETL_ID_SYSTEM, "value": setl_id}
    return found


def _carry(hospital: str, fund: str, which: str, fen: int, day: dt.datetime) -> dict[str, Any]:
    return {
        "identifier": {"system": CARRY_SYSTEM, "value": f"{which}/{hospital}/{fund}"},
        "type": _coding(PAYMENT_TYPE, "adjustment"),
        "date": day.date().isoformat(),
        "payee": _reference(HOSPITAL_SYSTEM, hospital),
        "amount": money(yuan(fen)),
    }


def searchset(resources: Sequence[Mapping[str, Any]], base: str, self_url: str) -> dict[str, Any]:
    """A search's answer: a Bundle of the resources found, each with its full URL under `base`."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [
            {
                "fullUrl": f"{base.rstrip('/')}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }
