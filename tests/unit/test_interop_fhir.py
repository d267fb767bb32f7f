"""FHIR R4 resources (interop/fhir.py) checked three ways: against the FHIR models of a maintained library
(fhir.resources, whose R4B models are R4's for these financial resources), against figures worked out by
hand for the seed's leukaemia case and a hand-checked month, and by the identities over random claims:
for each fund, submitted − priorpayerpaid − noncovered − deductible − coinsurance = benefit; for the stay,
submitted − memberliability = Σ benefit = payment; for a remittance, Σ detail = paymentAmount."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.explanationofbenefit import ExplanationOfBenefit
from fhir.resources.R4B.paymentreconciliation import PaymentReconciliation
from hypothesis import HealthCheck, given, settings

from doudi import services
from interop import exact_json, fhir
from interop.dictionary import load_dictionary, parse_dictionary
from reconciliation.statement import build_statement
from settlement.claims import parse_claim

from .strategies import Case, cases
from .test_statement import JULY, small_month

ROOT = Path(__file__).resolve().parents[2]
NATIONAL = load_dictionary(None)


def decoded(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as a client reads it: exact JSON text, numbers back as Decimal."""
    found: dict[str, Any] = json.loads(exact_json.dumps(resource), parse_float=Decimal)
    return found


def by_fund(eob: dict[str, Any]) -> dict[int, dict[str, Decimal]]:
    """Adjudication amounts per insurance entry (1-based) and category."""
    found: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for entry in eob["item"][0]["adjudication"]:
        (extension,) = entry["extension"]
        assert extension["url"] == fhir.INSURANCE_EXTENSION
        category = entry["category"]["coding"][0]["code"]
        assert category not in found[extension["valuePositiveInt"]], "a category twice for one fund"
        found[extension["valuePositiveInt"]][category] = entry["amount"]["value"]
    return dict(found)


def totals(eob: dict[str, Any]) -> dict[str, Decimal]:
    return {t["category"]["coding"][0]["code"]: t["amount"]["value"] for t in eob["total"]}


def check_identities(eob: dict[str, Any]) -> None:
    funds = by_fund(eob)
    assert sorted(funds) == list(range(1, len(eob["insurance"]) + 1))
    prior = Decimal(0)
    for k in sorted(funds):
        a = funds[k]
        assert set(a) == set(fhir.CATEGORIES)
        # charge − adjustments = paid, for each fund
        assert (
            a["submitted"] - a["priorpayerpaid"] - a["noncovered"] - a["deductible"] - a["coinsurance"] == a["benefit"]
        )
        assert a["priorpayerpaid"] == prior
        assert a["memberliability"] == a["submitted"] - prior - a["benefit"]
        prior += a["benefit"]
    whole = totals(eob)
    paid = sum((a["benefit"] for a in funds.values()), Decimal(0))
    assert whole["benefit"] == paid == eob["payment"]["amount"]["value"]
    assert whole["submitted"] - whole["memberliability"] == whole["benefit"]
    assert whole["submitted"] - whole["noncovered"] == whole["eligible"]


def test_exact_json_writes_decimals_with_their_digits() -> None:
    text = exact_json.dumps(
        {"a": Decimal("1234.50"), "b": [Decimal("-0.01"), Decimal("1E+2"), 3, True, None], "c": "文字\n"}
    )
    assert text == '{"a":1234.50,"b":[-0.01,100,3,true,null],"c":"文字\\n"}'
    assert json.loads(text, parse_float=Decimal)["a"] == Decimal("1234.50")
    # 0.1 + 0.2 is exact here, as it never is in binary floating point.
    assert exact_json.dumps(Decimal("0.1") + Decimal("0.2")) == "0.3"
    with pytest.raises(TypeError):
        exact_json.dumps({"x": 0.1})
    with pytest.raises(ValueError):
        exact_json.dumps(Decimal("NaN"))
    with pytest.raises(TypeError):
        exact_json.dumps({1: "a"})


def leukaemia() -> tuple[dict[str, Any], dict[str, Any]]:
    claim = parse_claim(json.loads((ROOT / "examples/meihekou-leukaemia.json").read_text(encoding="utf-8")))
    library = services.open_library()
    (record,), _ = services.quote_claims(library, "jl-meihekou@2014", [claim])
    return record, claim.as_json()


def test_the_leukaemia_case_as_an_explanation_of_benefit() -> None:
    record, claim = leukaemia()
    eob = decoded(fhir.explanation_of_benefit("s1", record, claim, "JL-PROV-H001", NATIONAL))
    ExplanationOfBenefit.model_validate(eob)
    assert (eob["status"], eob["outcome"], eob["created"]) == ("active", "complete", "2014-06-12T10:20:00+08:00")
    assert [i["coverage"]["identifier"]["value"] for i in eob["insurance"]] == [
        "390100",
        "390200",
        "610100",
        "TA0001",
        "GR0001",
    ]
    funds = by_fund(eob)
    # Worked by hand from the seed's figures: total 236,000.00, in scope 206,000.00.
    assert funds[1] == {
        "submitted": Decimal("236000.00"),
        "priorpayerpaid": Decimal("0.00"),
        "noncovered": Decimal("30000.00"),  # out of scope: 21,000 fully self-paid + 9,000 first share
        "eligible": Decimal("206000.00"),
        "deductible": Decimal("800.00"),
        "coinsurance": Decimal("105200.00"),  # 206,000 − 800 − 100,000 (the annual cap held it there)
        "benefit": Decimal("100000.00"),
        "memberliability": Decimal("136000.00"),
    }
    assert funds[2] == {
        "submitted": Decimal("236000.00"),
        "priorpayerpaid": Decimal("100000.00"),
        "noncovered": Decimal("30000.00"),
        "eligible": Decimal("106000.00"),  # in scope less what basic insurance paid
        "deductible": Decimal("10000.00"),
        "coinsurance": Decimal("41800.00"),
        "benefit": Decimal("54200.00"),  # 40,000 × 50 % + 50,000 × 60 % + 6,000 × 70 %
        "memberliability": Decimal("81800.00"),
    }
    assert [funds[k]["benefit"] for k in (3, 4, 5)] == [Decimal("51800.00"), Decimal("5000.00"), Decimal("25000.00")]
    assert funds[5]["memberliability"] == Decimal("0.00")
    assert totals(eob) == {
        "submitted": Decimal("236000.00"),
        "noncovered": Decimal("30000.00"),
        "eligible": Decimal("206000.00"),
        "benefit": Decimal("236000.00"),
        "memberliability": Decimal("0.00"),
    }
    check_identities(eob)
    balances = {b["name"]: b["financial"][0] for b in eob["benefitBalance"]}
    basic = balances["城乡居民基本医疗保险统筹基金（住院）"]
    assert (basic["allowedMoney"]["value"], basic["usedMoney"]["value"]) == (Decimal("100000.00"), Decimal("100000.00"))
    aid = balances["临时救助"]
    assert (aid["allowedMoney"]["value"], aid["usedMoney"]["value"]) == (Decimal("5000.00"), Decimal("5000.00"))
    assert balances["重特大疾病医疗救助（27 种，政策范围内全额救助）"]["allowedString"] == "no annual cap"
    families = [b for b in eob["benefitBalance"] if b["unit"]["coding"][0]["code"] == "family"]
    assert [b["name"] for b in families] == ["临时救助"]  # temporary aid's cap is the household's


def test_a_reversal_is_a_cancelled_eob_related_to_the_original() -> None:
    record, claim = leukaemia()
    when = dt.datetime(2014, 12, 1, 9, 30)
    original = decoded(
        fhir.explanation_of_benefit("s1", record, claim, "JL-PROV-H001", NATIONAL, (when, "wrong patient"))
    )
    reversal = decoded(
        fhir.reversal_explanation_of_benefit("s1", record, claim, "JL-PROV-H001", NATIONAL, when, "wrong patient")
    )
    for resource in (original, reversal):
        ExplanationOfBenefit.model_validate(resource)
    assert (reversal["id"], reversal["status"], reversal["created"]) == (
        "s1-reversal",
        "cancelled",
        "2014-12-01T09:30:00+08:00",
    )
    assert reversal["related"][0]["relationship"]["coding"][0]["code"] == "prior"
    assert reversal["related"][0]["reference"] == {"system": fhir.SETL_ID_SYSTEM, "value": "s1"}
    assert original["status"] == "active"
    assert original["related"][0]["reference"] == {"system": fhir.REVERSAL_SYSTEM, "value": "s1"}
    assert reversal["payment"]["amount"]["value"] == Decimal("-236000.00")
    negated = by_fund(reversal)
    assert all(negated[k][c] == -v for k, figures in by_fund(original).items() for c, v in figures.items())
    check_identities(reversal)
    assert "benefitBalance" not in reversal


def test_the_provinces_fund_codes_are_used() -> None:
    record, claim = leukaemia()
    province = parse_dictionary(
        'name: p\nrecode_fund_pay_type: {"390200": "391100"}\nfund_pay_type: {"391100": 大病（省）}\n',
        "p.yaml",
        over=NATIONAL,
    )
    eob = fhir.explanation_of_benefit("s1", record, claim, "H", province)
    assert eob["insurance"][1]["coverage"]["identifier"]["value"] == "391100"
    assert eob["insurance"][1]["coverage"]["display"].startswith("大病（省）")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases(with_snapshot=True, max_claims=4))
def test_every_settlement_gives_a_valid_eob_whose_identities_hold(case: Case) -> None:
    records, _ = services.quote_claims(case.library, case.policy.key, case.claims, case.snapshot)
    for claim, record in zip(case.claims, records, strict=True):
        eob = decoded(fhir.explanation_of_benefit("s1", record, claim.as_json(), "H1", NATIONAL))
        ExplanationOfBenefit.model_validate(eob)
        check_identities(eob)
        for figures in by_fund(eob).values():
            assert all(v >= 0 for v in figures.values()), figures  # no category is ever negative
        whole = totals(eob)
        assert whole["submitted"] == claim.total and whole["benefit"] == Decimal(record["fund_paid"])
        assert whole["memberliability"] == Decimal(record["patient_burden"])
        for balance in eob["benefitBalance"]:
            money = balance["financial"][0]
            if "allowedMoney" in money:
                assert money["usedMoney"]["value"] <= money["allowedMoney"]["value"]  # a cap is never passed


# -------------------------------------------------------------------------------- PaymentReconciliation


def test_the_hand_checked_month_as_payment_reconciliations() -> None:
    statement = build_statement(JULY, *small_month())
    created = dt.datetime(2014, 8, 2, 10, 0)
    found = [decoded(r) for r in fhir.payment_reconciliations(statement, created, dt.datetime(2014, 8, 1, 9, 0))]
    for resource in found:
        PaymentReconciliation.model_validate(resource)
    by_key = {r["identifier"][0]["value"]: r for r in found}
    assert list(by_key) == [
        "2014-07/H1/basic_insurance",
        "2014-07/H1/medical_assistance/catastrophic",
        "2014-07/H1/medical_assistance/general",
        "2014-07/H1/temporary_aid",
        "2014-07/H2/basic_insurance",
    ]

    def details(key: str) -> list[tuple[str, str, Decimal]]:
        return [
            (d["identifier"]["value"], d["type"]["coding"][0]["code"], d["amount"]["value"])
            for d in by_key[key]["detail"]
        ]

    # From the month's docstring: S1 and S2 at H1 (S2 reversed on 20 July); S3 of June reversed in July and
    # S4 at H2, which also carries −100.00 of basic insurance in from June.
    assert details("2014-07/H1/basic_insurance") == [
        ("S1", "payment", Decimal("4000.00")),
        ("S2", "payment", Decimal("3000.00")),
        ("S2", "adjustment", Decimal("-3000.00")),
    ]
    assert by_key["2014-07/H1/basic_insurance"]["paymentAmount"]["value"] == Decimal("4000.00")
    assert details("2014-07/H1/medical_assistance/catastrophic") == [
        ("S2", "payment", Decimal("2000.00")),
        ("S2", "adjustment", Decimal("-2000.00")),
    ]
    assert by_key["2014-07/H1/medical_assistance/catastrophic"]["paymentAmount"]["value"] == Decimal("0.00")
    assert details("2014-07/H2/basic_insurance") == [
        ("S3", "adjustment", Decimal("-1200.00")),
        ("S4", "payment", Decimal("600.00")),
        ("in:2014-06/H2/basic_insurance", "adjustment", Decimal("-100.00")),
        ("out:2014-08/H2/basic_insurance", "adjustment", Decimal("700.00")),
    ]
    h2 = by_key["2014-07/H2/basic_insurance"]
    assert h2["paymentAmount"]["value"] == Decimal("0.00")  # −700.00 is carried to August, not paid
    assert h2["detail"][0]["predecessor"] == {"system": fhir.SETL_ID_SYSTEM, "value": "S3"}
    assert h2["detail"][0]["response"] == {"reference": "ExplanationOfBenefit/S3-reversal"}
    assert (h2["outcome"], h2["paymentDate"], h2["period"]) == (
        "complete",
        "2014-08-01",
        {"start": "2014-07-01", "end": "2014-07-31"},
    )
    summary = {(r["hospital_id"], r["fund"]): r for r in statement.summary.to_dict("records")}
    for key, resource in by_key.items():
        _, hospital, fund = key.split("/", 2)
        # Σ detail = payment, and the payment is the statement's amount due, to the fen.
        paid = sum((d["amount"]["value"] for d in resource["detail"]), Decimal(0))
        assert paid == resource["paymentAmount"]["value"] == Decimal(summary[(hospital, fund)]["due"]) / 100
    bundle = decoded(fhir.searchset(found, "https://doudi.test/v1/fhir", "https://doudi.test/v1/fhir/x"))
    Bundle.model_validate(bundle)
    assert bundle["total"] == 5 and bundle["entry"][0]["fullUrl"].startswith("https://doudi.test/v1/fhir/Payment")
    open_month = fhir.payment_reconciliations(statement, created)
    assert {r["outcome"] for r in open_month} == {"partial"}
    assert [r["id"] for r in open_month] == [r["id"] for r in found]  # ids are stable
