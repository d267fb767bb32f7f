"""FHIR R4 through HTTP, on SQLite and PostgreSQL: settlements as ExplanationOfBenefit (a reversal as a
cancelled one related to the original), months as PaymentReconciliation matching the reconciliation statement
to the fen, every resource validated with the FHIR models of fhir.resources and money written as exact JSON
numbers."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.explanationofbenefit import ExplanationOfBenefit

from api.app import create_app
from doudi import demo, services
from interop import fhir

ROOT = Path(__file__).resolve().parents[2]
LEUKAEMIA = json.loads((ROOT / "examples/meihekou-leukaemia.json").read_text(encoding="utf-8"))
FHIR_JSON = "application/fhir+json"
CODES = {
    "ExplanationOfBenefit": {"status": {"active", "cancelled"}, "use": {"claim"}, "outcome": {"complete"}},
    "PaymentReconciliation": {"status": {"active"}, "outcome": {"complete", "partial"}},
}
"""The R4 required value sets the resources use (the model library checks structure and types, not codes)."""


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2014, 6, 15, 9, 0)

    def __call__(self) -> dt.datetime:
        return self.now


World = tuple[TestClient, dict[str, dict[str, str]], Clock]


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> World:
    files = services.open_library()
    clock = Clock()
    app = create_app(database_url, files, clock=clock, archive=tmp_path / "archive")
    ctx = app.state.context
    tokens = demo.seed(ctx.engine, ctx.catalogue, files, clock.now)
    return TestClient(app), {user: {"Authorization": f"Bearer {t}"} for user, t in tokens.items()}, clock


def resource(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith(FHIR_JSON)
    found: dict[str, Any] = json.loads(answer.text, parse_float=Decimal)
    return found


def codes_are_r4s(found: dict[str, Any]) -> None:
    for name, allowed in CODES[found["resourceType"]].items():
        assert found[name] in allowed, (name, found[name])


def outpatient_visit() -> dict[str, Any]:
    """2207 at the Meihekou hospital: a 特困 person's visit of 300.00 (general assistance pays 210.00)."""
    return {
        "infno": "2207",
        "msgid": "MHKH00120140614100000000001",
        "mdtrtarea_admvs": "220581",
        "insuplc_admdvs": "220581",
        "fixmedins_code": "MHK-H001",
        "inf_time": "2014-06-14 10:00:00",
        "input": {
            "data": {
                "psn_no": "MHK-P-0101",
                "mdtrt_id": "MZ20140614001",
                "med_type": "11",
                "insutype": "390",
                "medfee_sumamt": "300.00",
                "fulamt_ownpay_amt": "0.00",
                "overlmt_selfpay": "0.00",
                "preselfpay_amt": "0.00",
                "begntime": "2014-06-14 09:30:00",
            },
            "diseinfo": [{"diag_code": "J18.9", "maindiag_flag": "1"}],
        },
    }


def test_settlements_and_months_in_fhir(world: World) -> None:
    client, auth, clock = world
    desk, mhk, finance = auth["demo-desk"], auth["demo-desk-mhk"], auth["demo-finance"]
    stay = client.post("/v1/settlements", json=LEUKAEMIA, headers=desk)
    assert stay.status_code == 201, stay.text
    setl_id = stay.json()["setl_id"]
    visit = client.post("/v1/nhsa/2207", json=outpatient_visit(), headers=mhk).json()
    assert visit["infcode"] == 0, visit
    visit_id = visit["output"]["setlinfo"]["setl_id"]

    # The stay's EOB: valid, money exact in the JSON text, each fund in order.
    answer = client.get(f"/v1/fhir/ExplanationOfBenefit/{setl_id}", headers=finance)
    assert (
        '"payment":{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/ex-paymenttype",' in answer.text
    )
    assert '"amount":{"value":236000.00,"currency":"CNY"}}' in answer.text
    eob = resource(answer)
    ExplanationOfBenefit.model_validate(eob)
    codes_are_r4s(eob)
    assert [i["coverage"]["identifier"]["value"] for i in eob["insurance"]] == [
        "390100",
        "390200",
        "610100",
        "TA0001",
        "GR0001",
    ]
    benefits = [
        a["amount"]["value"] for a in eob["item"][0]["adjudication"] if a["category"]["coding"][0]["code"] == "benefit"
    ]
    assert benefits == [Decimal(v) for v in ("100000.00", "54200.00", "51800.00", "5000.00", "25000.00")]
    assert eob["identifier"][1]["value"] == LEUKAEMIA["claim_id"] and "related" not in eob
    # The visit's EOB, settled through the national shape, seen by its own desk; not by the other hospital's.
    outpatient = resource(client.get(f"/v1/fhir/ExplanationOfBenefit/{visit_id}", headers=mhk))
    ExplanationOfBenefit.model_validate(outpatient)
    assert outpatient["subType"]["coding"][0]["code"] == "outpatient"
    assert outpatient["payment"]["amount"]["value"] == Decimal("210.00")
    assert client.get(f"/v1/fhir/ExplanationOfBenefit/{visit_id}", headers=desk).status_code == 404
    assert client.get(f"/v1/fhir/ExplanationOfBenefit/{setl_id}-reversal", headers=desk).status_code == 404
    missing = client.get("/v1/fhir/ExplanationOfBenefit/nope", headers=finance)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")

    # June, closed in July; then the stay is reversed in July (through 2305): a prior-period adjustment.
    clock.now = dt.datetime(2014, 7, 2, 9, 0)
    assert client.post("/v1/reconciliation/2014-06/close", headers=finance).status_code == 201
    reversal = {
        "infno": "2305",
        "msgid": "R-2014-07-02-001",
        "input": {"data": {"psn_no": "MHK-P-0001", "mdtrt_id": LEUKAEMIA["claim_id"], "setl_id": setl_id}},
    }
    assert client.post("/v1/nhsa/2305", json=reversal, headers=desk).json()["infcode"] == 0

    original = resource(client.get(f"/v1/fhir/ExplanationOfBenefit/{setl_id}", headers=desk))
    cancelled = resource(client.get(f"/v1/fhir/ExplanationOfBenefit/{setl_id}-reversal", headers=desk))
    for found in (original, cancelled):
        ExplanationOfBenefit.model_validate(found)
        codes_are_r4s(found)
    assert original["status"] == "active" and original["related"][0]["reference"]["value"] == setl_id
    assert cancelled["status"] == "cancelled" and cancelled["created"] == "2014-07-02T09:00:00+08:00"
    assert cancelled["related"][0]["relationship"]["coding"][0]["code"] == "prior"
    assert cancelled["payment"]["amount"]["value"] == Decimal("-236000.00")
    assert cancelled["disposition"].endswith("2305 msgid R-2014-07-02-001")

    for month, hospital in (("2014-06", None), ("2014-07", None), ("2014-07", "JL-PROV-H001")):
        months_match_the_statement(client, finance, month, hospital)

    june = bundle(client, finance, "2014-06")
    assert {r["outcome"] for r in june} == {"complete"} and {r["paymentDate"] for r in june} == {"2014-07-02"}
    july = {r["identifier"][0]["value"]: r for r in bundle(client, finance, "2014-07")}
    basic = july["2014-07/JL-PROV-H001/basic_insurance"]
    assert basic["outcome"] == "partial" and basic["paymentAmount"]["value"] == Decimal("0.00")
    assert [(d["type"]["coding"][0]["code"], d["amount"]["value"]) for d in basic["detail"]] == [
        ("adjustment", Decimal("-100000.00")),  # the reversal of June's payment
        ("adjustment", Decimal("100000.00")),  # carried out to August: nothing is due, the hospital owes it
    ]
    assert basic["detail"][0]["predecessor"] == {"system": fhir.SETL_ID_SYSTEM, "value": setl_id}
    assert basic["detail"][0]["response"]["reference"] == f"ExplanationOfBenefit/{setl_id}-reversal"


def bundle(
    client: TestClient, headers: dict[str, str], month: str, hospital: str | None = None
) -> list[dict[str, Any]]:
    params = {"month": month, **({"hospital": hospital} if hospital else {})}
    found = resource(client.get("/v1/fhir/PaymentReconciliation", params=params, headers=headers))
    Bundle.model_validate(found)
    assert found["type"] == "searchset" and found["total"] == len(found["entry"])
    resources = [entry["resource"] for entry in found["entry"]]
    for entry, item in zip(found["entry"], resources, strict=True):
        assert entry["fullUrl"].endswith(f"/v1/fhir/PaymentReconciliation/{item['id']}")
        codes_are_r4s(item)
    return resources


def months_match_the_statement(client: TestClient, finance: dict[str, str], month: str, hospital: str | None) -> None:
    """Each resource is one (hospital, fund) row of the statement: its payment the amount due, its details
    the month's rows of that fund (plus carries), adding up to the payment to the fen."""
    params = {"hospital_id": hospital} if hospital else {}
    statement = client.get(f"/v1/reconciliation/{month}", params=params, headers=finance).json()
    assert statement["balanced"]
    rows = {(r["hospital_id"], r["fund"]): r for r in statement["summary"]}
    found = bundle(client, finance, month, hospital)
    assert len(found) == len(rows)
    for item in found:
        _, hospital_id, fund = item["identifier"][0]["value"].split("/", 2)
        row = rows[(hospital_id, fund)]
        assert item["paymentAmount"]["value"] == Decimal(row["due"])
        assert sum((d["amount"]["value"] for d in item["detail"]), Decimal(0)) == item["paymentAmount"]["value"]
        kinds = [d["identifier"]["system"] for d in item["detail"]]
        assert kinds.count(fhir.SETL_ID_SYSTEM) == row["settlements"]
        assert kinds.count(fhir.REVERSAL_SYSTEM) == row["reversals"]
        carried = [d["amount"]["value"] for d in item["detail"] if d["identifier"]["system"] == fhir.CARRY_SYSTEM]
        assert sum(carried, Decimal(0)) == Decimal(row["carried_in"]) - Decimal(row["carried_out"])
        assert all(re.fullmatch(r"-?[0-9]+\.[0-9]{2}", str(d["amount"]["value"])) for d in item["detail"])


def test_fhir_refusals_are_problems(world: World) -> None:
    client, auth, _ = world
    finance = auth["demo-finance"]
    for params in ({"month": "2014-13"}, {}, {"month": "June"}):
        answer = client.get("/v1/fhir/PaymentReconciliation", params=params, headers=finance)
        assert answer.status_code == 422, params
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["errors"][0]["field"] == "month"
    assert (
        client.get("/v1/fhir/PaymentReconciliation", params={"month": "2014-06"}, headers=auth["demo-desk"]).status_code
        == 403
    )
    empty = resource(client.get("/v1/fhir/PaymentReconciliation", params={"month": "2013-01"}, headers=finance))
    assert (empty["total"], empty["entry"]) == (0, [])
    assert client.get("/v1/fhir/ExplanationOfBenefit/x", headers=auth["demo-policy"]).status_code == 403
