"""The desk's HTTP service end to end, through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import Service

ROOT = Path(__file__).resolve().parents[2]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]
LEUKAEMIA = (ROOT / "examples/meihekou-leukaemia.json").read_text(encoding="utf-8")


def test_quote_records_nothing_and_settle_records_once(service: Service) -> None:
    client, desk = service.client, service.auth("demo-desk")
    quoted = client.post("/v1/quotes", content=LEUKAEMIA, headers=desk)
    assert quoted.status_code == 200
    first = client.post("/v1/settlements", content=LEUKAEMIA, headers=desk)
    assert first.status_code == 201
    body = first.json()
    assert body["tiers"] == quoted.json()["tiers"]  # nothing was recorded by the quote
    again = client.post("/v1/settlements", content=LEUKAEMIA, headers=desk)
    assert again.status_code == 200 and again.json() == body
    changed = LEUKAEMIA.replace('"total": "236000.00"', '"total": "236000.01"')
    conflict = client.post("/v1/settlements", content=changed, headers=desk)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"].startswith("application/problem+json")
    read = client.get(f"/v1/settlements/{body['setl_id']}", headers=desk)
    assert read.status_code == 200 and read.json()["reversed"] is None
    assert read.json()["nhsa"] == body["nhsa"]
    assert body["nhsa"]["setlinfo"]["setl_id"] == body["setl_id"]


def test_the_next_stay_sees_the_year_so_far_and_a_reversal_gives_it_back(service: Service) -> None:
    client, desk = service.client, service.auth("demo-desk")
    first, second = json.dumps(FAMILY[1]), json.dumps(FAMILY[2])
    one = client.post("/v1/settlements", content=first, headers=desk).json()
    two = client.post("/v1/settlements", content=second, headers=desk).json()
    basic = next(t for t in two["tiers"] if t["tier"] == "resident_basic")
    assert basic["accumulator"]["paid_before"] == next(t["paid"] for t in one["tiers"] if t["tier"] == "resident_basic")
    year = client.get("/v1/people/MHK-P-0001/accumulators", params={"year": 2014}, headers=desk).json()
    paid = {row["key"]: row["paid"] for row in year["accumulators"] if row["entity"] == "MHK-P-0001"}
    assert paid["jl_resident_basic"] == "100000.00"
    assert (
        client.post(
            f"/v1/settlements/{two['setl_id']}/reversal", json={"reason": "wrong stay"}, headers=desk
        ).status_code
        == 201
    )
    again = client.post(f"/v1/settlements/{two['setl_id']}/reversal", json={"reason": "again"}, headers=desk)
    assert again.status_code == 409
    year = client.get("/v1/people/MHK-P-0001/accumulators", params={"year": 2014}, headers=desk).json()
    paid = {row["key"]: row["paid"] for row in year["accumulators"] if row["entity"] == "MHK-P-0001"}
    assert paid["jl_resident_basic"] == next(t["paid"] for t in one["tiers"] if t["tier"] == "resident_basic")
    assert client.get(f"/v1/settlements/{two['setl_id']}", headers=desk).json()["reversed"]["reason"] == "wrong stay"


def test_a_bad_claim_is_a_problem_naming_each_field_and_records_nothing(service: Service) -> None:
    client, desk = service.client, service.auth("demo-desk")
    bad = client.post(
        "/v1/settlements", content='{"claim_id": "X1", "total": 1e3, "fully_self_paid": "-5"}', headers=desk
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"]: e["message"] for e in bad.json()["errors"]}
    assert fields["total"] == "amount '1e3' uses exponent notation; write plain digits like 1000.00"
    assert fields["fully_self_paid"] == "amount '-5' must not be negative"
    assert client.post("/v1/settlements", content="{not json", headers=desk).status_code == 422
    assert client.post("/v1/settlements/nope/reversal", json={"reason": "x"}, headers=desk).status_code == 404
    assert client.post("/v1/settlements/nope/reversal", json={}, headers=desk).json()["errors"][0]["field"] == "reason"
    assert client.get("/v1/settlements/nope", headers=desk).status_code == 404
    assert client.get("/healthz").json() == {"status": "ok"}


def test_a_reversed_stay_is_settled_again_under_a_new_key_and_counted_once(service: Service) -> None:
    client, desk = service.client, service.auth("demo-desk")
    first = client.post("/v1/settlements", content=LEUKAEMIA, headers=desk).json()
    assert client.post(f"/v1/settlements/{first['setl_id']}/reversal", json={"reason": "wrong"}, headers=desk)
    # The reversed key stays what it was: a repeat answers the recorded (reversed) settlement.
    again = client.post("/v1/settlements", content=LEUKAEMIA, headers=desk)
    assert again.status_code == 200 and again.json()["setl_id"] == first["setl_id"]
    corrected = json.loads(LEUKAEMIA) | {"claim_id": "MHK-2014-0612-001-R1"}
    second = client.post("/v1/settlements", json=corrected, headers=desk)
    assert second.status_code == 201
    assert second.json()["tiers"] == first["tiers"]  # the reversal gave every accumulator back
    year = client.get("/v1/people/MHK-P-0001/accumulators", params={"year": 2014}, headers=desk).json()
    paid = {row["key"]: row["paid"] for row in year["accumulators"] if row["entity"] == "MHK-P-0001"}
    assert paid["jl_resident_basic"] == next(t["paid"] for t in first["tiers"] if t["tier"] == "resident_basic")
