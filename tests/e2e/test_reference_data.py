"""Reference data through HTTP, on SQLite and PostgreSQL: insured areas, hospitals and people with their
assistance-category periods, and how the desk's claims are completed and checked against them.

Why: the register decides facts a hospital system cannot be trusted to send (a person's household, scheme
and category on the settlement date; a hospital's level). A wrong register entry, or a claim settled on
facts that contradict it, pays the wrong fund the wrong amount; so writes are checked field by field and
store nothing when refused, and a claim is completed from the register or refused on the contradicting
field.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx

from tests.e2e.conftest import Service
from tests.e2e.helpers import database_rows, engine_of, fields_of, stay

COUNTY = "220582"  # an insured area the demo region does not have
PERSON = {
    "household_id": "T-HH-0001",
    "name": "测试甲 (test)",
    "insurance_scheme": "resident",
    "region": COUNTY,
    "categories": [
        {"category": "tekun", "valid_from": "2012-01-01", "valid_until": "2013-12-31"},
        {"category": "orphan", "valid_from": "2014-01-01", "valid_until": None},
    ],
}


def assert_refused_on(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in fields_of(response), response.text


def test_areas_hospitals_and_people_read_back_as_written(service: Service) -> None:
    client, admin, desk = service.client, service.auth("demo-admin"), service.auth("demo-desk")
    region = {"region": COUNTY, "name": "测试县 (test)", "policy_id": "jl-meihekou"}
    put = client.put(f"/v1/regions/{COUNTY}", json={k: v for k, v in region.items() if k != "region"}, headers=admin)
    assert put.status_code == 200 and put.json() == region
    assert region in client.get("/v1/regions", headers=desk).json()["regions"]
    renamed = {**region, "name": "测试县 (renamed)"}  # the id may be repeated in the body when it agrees
    assert client.put(f"/v1/regions/{COUNTY}", json=renamed, headers=admin).json() == renamed
    regions = client.get("/v1/regions", headers=service.auth("demo-policy")).json()["regions"]
    assert [r for r in regions if r["region"] == COUNTY] == [renamed]
    assert {r["region"] for r in regions} == {"220100", "220400", "220581", COUNTY}

    hospital = {"hospital_id": "T-H001", "name": "测试卫生院 (test)", "level": 1, "region": COUNTY}
    assert client.put("/v1/hospitals/T-H001", json=hospital, headers=admin).json() == hospital
    assert client.get("/v1/hospitals/T-H001", headers=service.auth("demo-finance")).json() == hospital
    assert hospital in client.get("/v1/hospitals", headers=desk).json()["hospitals"]
    upgraded = {**hospital, "level": 2}
    assert client.put("/v1/hospitals/T-H001", json=upgraded, headers=admin).status_code == 200
    assert client.get("/v1/hospitals/T-H001", headers=desk).json() == upgraded
    assert client.get("/v1/hospitals/NO-SUCH", headers=desk).status_code == 404

    written = client.put("/v1/people/T-P-0001", json=PERSON, headers=admin)
    assert written.status_code == 200
    expected = {"person_id": "T-P-0001", **PERSON}
    assert client.get("/v1/people/T-P-0001", headers=desk).json() == expected
    # Replacing a person replaces their periods too (here: none left, so in no category).
    moved = {**PERSON, "household_id": "T-HH-0002", "categories": []}
    assert client.put("/v1/people/T-P-0001", json=moved, headers=admin).status_code == 200
    assert client.get("/v1/people/T-P-0001", headers=desk).json() == {"person_id": "T-P-0001", **moved}
    assert client.get("/v1/people/NO-SUCH", headers=desk).status_code == 404
    # An open-ended period may leave valid_until out; it reads back as null.
    open_ended = {**PERSON, "categories": [{"category": "dibao", "valid_from": "2014-01-01"}]}
    assert client.put("/v1/people/T-P-0001", json=open_ended, headers=admin).status_code == 200
    periods = client.get("/v1/people/T-P-0001", headers=desk).json()["categories"]
    assert periods == [{"category": "dibao", "valid_from": "2014-01-01", "valid_until": None}]

    # The new person settles at once, under their own area's policy, on what was registered last.
    settled = client.post("/v1/settlements", json=stay("NEW-1", person_id="T-P-0001"), headers=desk)
    assert settled.status_code == 201, settled.text
    record = settled.json()
    assert (record["household_id"], record["category"], record["hospital_level"]) == ("T-HH-0001", "dibao", 3)
    assert record["policy"]["id"] == "jl-meihekou"


def test_bad_reference_data_is_refused_on_its_field_and_nothing_is_stored(service: Service) -> None:
    client, admin = service.client, service.auth("demo-admin")
    region = {"name": "测试县 (test)", "policy_id": "jl-meihekou"}
    hospital = {"name": "测试卫生院 (test)", "level": 1, "region": "220581"}
    person = {**PERSON, "region": "220581"}
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("/v1/regions/22058", region, "region"),  # five digits
        ("/v1/regions/2205821", region, "region"),
        ("/v1/regions/ABCDEF", region, "region"),
        (f"/v1/regions/{COUNTY}", {**region, "policy_id": ""}, "policy_id"),
        (f"/v1/regions/{COUNTY}", {"policy_id": "jl-meihekou"}, "name"),
        (f"/v1/regions/{COUNTY}", {**region, "governor": "x"}, "governor"),
        (f"/v1/regions/{COUNTY}", {**region, "region": "220583"}, "region"),  # differs from the address
        ("/v1/hospitals/T-H9", {**hospital, "level": 4}, "level"),
        ("/v1/hospitals/T-H9", {**hospital, "level": 0}, "level"),
        ("/v1/hospitals/T-H9", {**hospital, "region": "999999"}, "region"),  # not registered
        ("/v1/hospitals/T-H9", {**hospital, "region": "9999"}, "region"),
        ("/v1/hospitals/T-H9", {**hospital, "hospital_id": "T-H8"}, "hospital_id"),
        ("/v1/hospitals/T-H9", {**hospital, "beds": 40}, "beds"),
        ("/v1/people/T-P9", {**person, "region": "999999"}, "region"),  # not registered
        ("/v1/people/T-P9", {**person, "person_id": "T-P8"}, "person_id"),
        ("/v1/people/T-P9", {**person, "insurance_scheme": "private"}, "insurance_scheme"),
        ("/v1/people/T-P9", {**person, "nickname": "x"}, "nickname"),
        ("/v1/people/T-P9", {k: v for k, v in person.items() if k != "household_id"}, "household_id"),
        (
            "/v1/people/T-P9",
            {**person, "categories": [{"category": "rich", "valid_from": "2014-01-01"}]},
            "categories[0].category",
        ),
        (
            "/v1/people/T-P9",
            {**person, "categories": [{"category": "dibao", "valid_from": "2014-07-01", "valid_until": "2014-06-30"}]},
            "categories[0]",  # valid_until before valid_from
        ),
        (
            "/v1/people/T-P9",
            {**person, "categories": [{"category": "dibao", "valid_from": "2014-07-01", "until": "2015-01-01"}]},
            "categories[0].until",
        ),
    ]
    before = database_rows(engine_of(service))
    for url, body, field in cases:
        refused = client.put(url, json=body, headers=admin)
        assert refused.status_code == 422, (url, body, refused.text)
        assert field in fields_of(refused), (url, body, refused.text)
        assert refused.json()["detail"] == "the request has problems; nothing was recorded"
    for url in ("/v1/regions/220582", "/v1/hospitals/T-H9", "/v1/people/T-P9"):
        assert fields_of(client.put(url, json=[], headers=admin)) == ["body"]
        assert fields_of(client.put(url, content=b"{", headers=admin)) == ["body"]
    # Overlapping periods are refused too (on `categories`: see the test below).
    overlapping = [
        {"category": "low_income", "valid_from": "2013-01-01", "valid_until": "2014-06-30"},
        {"category": "dibao", "valid_from": "2014-06-30"},
    ]
    assert client.put("/v1/people/T-P9", json={**person, "categories": overlapping}, headers=admin).status_code == 422
    # Every problem at once, each on its own field.
    several = client.put("/v1/hospitals/T-H9", json={"name": "", "level": 9, "region": "x"}, headers=admin)
    assert sorted(fields_of(several)) == ["level", "name", "region"]
    assert database_rows(engine_of(service)) == before
    assert client.get("/v1/people/T-P9", headers=admin).status_code == 404
    assert client.get("/v1/hospitals/T-H9", headers=admin).status_code == 404


def test_overlapping_category_periods_are_refused_on_categories(service: Service) -> None:
    overlapping = {
        **PERSON,
        "region": "220581",
        "categories": [
            {"category": "low_income", "valid_from": "2013-01-01", "valid_until": "2014-06-30"},
            {"category": "dibao", "valid_from": "2014-06-30"},  # one day in both
        ],
    }
    before = database_rows(engine_of(service))
    refused = service.client.put("/v1/people/T-P9", json=overlapping, headers=service.auth("demo-admin"))
    assert refused.status_code == 422
    assert database_rows(engine_of(service)) == before
    assert all(f.startswith("categories") for f in fields_of(refused)), refused.text


def test_the_category_held_on_the_settlement_date_decides(service: Service) -> None:
    """MHK-P-0104 is low income until 2014-06-30 and 低保 from 2014-07-01 (demo register)."""
    client, desk = service.client, service.auth("demo-desk-mhk")
    june = client.post("/v1/settlements", json=stay("CAT-0630", day="2014-06-30"), headers=desk)
    july = client.post("/v1/settlements", json=stay("CAT-0701", day="2014-07-01"), headers=desk)
    assert june.status_code == july.status_code == 201
    assert june.json()["category"] == "low_income"
    assert july.json()["category"] == "dibao"
    for answer in (june, july):
        read = client.get(f"/v1/settlements/{answer.json()['setl_id']}", headers=desk).json()
        assert read["category"] == answer.json()["category"]

    # The same bill pays differently: 低保 has the lower deductible and the higher ratio in Meihekou.
    def assistance(answer: httpx.Response) -> Decimal:
        return next(Decimal(t["paid"]) for t in answer.json()["tiers"] if t["tier"] == "medical_assistance")

    assert assistance(july) > assistance(june) > 0

    # The settlement time's day decides, not the discharge day; without one, the discharge day does.
    straddling = stay("CAT-Q1", day="2014-06-30", settled_at="2014-07-01T08:00:00")
    assert client.post("/v1/quotes", json=straddling, headers=desk).json()["category"] == "dibao"
    unset = {k: v for k, v in stay("CAT-Q2", day="2014-07-01").items() if k != "settled_at"}
    assert client.post("/v1/quotes", json=unset, headers=desk).json()["category"] == "dibao"
    # Before any period (2012, still in 2013's Meihekou policy): no category.
    early = client.post("/v1/quotes", json=stay("CAT-Q3", day="2012-06-30"), headers=desk)
    assert early.status_code == 200 and early.json()["category"] == "none"

    # Stating the category held on the other date contradicts the register on that field.
    wrong = client.post("/v1/settlements", json=stay("CAT-X", day="2014-06-30", category="dibao"), headers=desk)
    assert_refused_on(wrong, "category")
    assert "low_income" in wrong.json()["errors"][0]["message"]

    # A person's year so far: every accumulator the two stays moved, as the latest record left it.
    year = client.get("/v1/people/MHK-P-0104/accumulators", params={"year": 2014}, headers=desk)
    assert year.status_code == 200
    body = year.json()
    assert (body["person_id"], body["household_id"], body["year"]) == ("MHK-P-0104", "MHK-H-0104", 2014)
    rows = {(r["key"], r["entity"]): r for r in body["accumulators"]}
    assert rows[("inpatient_admissions", "MHK-P-0104")]["claims"] == 2
    for tier in july.json()["tiers"]:
        acc = tier.get("accumulator")
        if acc is not None and (acc["key"], acc["entity"]) in rows:
            assert rows[(acc["key"], acc["entity"])]["paid"] == acc["paid_after"], tier["tier"]
    paid = sum(Decimal(rows[key]["paid"]) for key in rows if key[0] != "inpatient_admissions")
    both = [june.json(), july.json()]
    assert paid == sum(Decimal(t["paid"]) for r in both for t in r["tiers"] if t.get("accumulator"))
    assert (
        client.get("/v1/people/MHK-P-0104/accumulators", params={"year": 2013}, headers=desk).json()["accumulators"]
        == []
    )
    assert client.get("/v1/people/NO-SUCH/accumulators", params={"year": 2014}, headers=desk).status_code == 404
    assert_refused_on(client.get("/v1/people/MHK-P-0104/accumulators", headers=desk), "year")
    assert_refused_on(client.get("/v1/people/MHK-P-0104/accumulators", params={"year": 1800}, headers=desk), "year")


def test_a_claim_contradicting_the_register_or_naming_the_unregistered_is_refused(service: Service) -> None:
    client, desk = service.client, service.auth("demo-desk-mhk")  # MHK-H001 is a level-2 hospital
    cases: list[tuple[dict[str, Any], str]] = [
        (stay("R-1", category="tekun"), "category"),
        (stay("R-2", household_id="MHK-H-0001"), "household_id"),
        (stay("R-3", insurance_scheme="employee"), "insurance_scheme"),
        (stay("R-4", hospital_level=3), "hospital_level"),
        (stay("R-5", person_id="MHK-P-9999"), "person_id"),
        (stay("R-6", hospital_id="NO-SUCH-HOSPITAL"), "hospital_id"),
        (stay("R-7", hospital_id="MHK-H002"), "hospital_id"),  # registered, but not this desk's
    ]
    before = database_rows(engine_of(service))
    for claim, field in cases:
        for route in ("/v1/quotes", "/v1/settlements"):
            refused = client.post(route, json=claim, headers=desk)
            assert_refused_on(refused, field)
            assert set(fields_of(refused)) == {field}, refused.text
    # A claim agreeing with the register on every stated field is not refused for stating them.
    agreeing = stay(
        "R-8",
        household_id="MHK-H-0104",
        insurance_scheme="resident",
        category="low_income",
        hospital_level=2,
        hospital_id="MHK-H001",
    )
    assert client.post("/v1/quotes", json=agreeing, headers=desk).status_code == 200
    assert database_rows(engine_of(service)) == before


def test_a_claim_leaving_out_what_the_register_knows_settles_with_it_filled_in(service: Service) -> None:
    client, desk = service.client, service.auth("demo-desk")
    document = client.get("/openapi.json").json()
    example = document["paths"]["/v1/settlements"]["post"]["requestBody"]["content"]["application/json"]["example"]
    claim = {k: v for k, v in example.items() if k != "hospital_id"}
    for name in ("household_id", "insurance_scheme", "category", "hospital_level", "hospital_id"):
        assert name not in claim, f"the documented example states {name}"

    settled = client.post("/v1/settlements", json=claim, headers=desk)
    assert settled.status_code == 201, settled.text
    record = settled.json()
    person = client.get(f"/v1/people/{claim['person_id']}", headers=desk).json()
    hospital = client.get("/v1/hospitals/JL-PROV-H001", headers=desk).json()  # demo-desk's own
    day = dt.datetime.fromisoformat(claim["settled_at"]).date().isoformat()
    held = [
        p["category"]
        for p in person["categories"]
        if p["valid_from"] <= day and (p["valid_until"] is None or day <= p["valid_until"])
    ]
    assert record["household_id"] == person["household_id"]
    assert record["insurance_scheme"] == person["insurance_scheme"]
    assert record["category"] == (held[0] if held else "none")
    assert record["hospital_level"] == hospital["level"]
    listed = client.get("/v1/settlements", headers=desk).json()["settlements"]
    assert [(s["setl_id"], s["hospital_id"]) for s in listed] == [(record["setl_id"], "JL-PROV-H001")]
    # The region's policy, in the version in force on the discharge date.
    regions = {r["region"]: r["policy_id"] for r in client.get("/v1/regions", headers=desk).json()["regions"]}
    assert record["policy"]["id"] == regions[person["region"]]
    # Sending back what the register filled in is the same request: a repeat, not a conflict.
    completed = {
        **claim,
        "hospital_id": "JL-PROV-H001",
        "household_id": record["household_id"],
        "insurance_scheme": record["insurance_scheme"],
        "category": record["category"],
        "hospital_level": record["hospital_level"],
    }
    again = client.post("/v1/settlements", json=completed, headers=desk)
    assert again.status_code == 200 and again.json()["setl_id"] == record["setl_id"]
