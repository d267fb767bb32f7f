"""Published policies through HTTP, on SQLite and PostgreSQL, and the OpenAPI document that describes the
service.

Why: a policy is law as dated data, and the desk settles with whatever is published. So a draft is checked
against everything published before it can settle anything; a new version takes over on its date; and a
version that settled a claim (itself or through a policy including it) can never be changed under the
settlements it made. The OpenAPI document is what hospital integrators build against: every operation must
say what it does, that it needs a bearer token, what its errors look like, and what its body looks like.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from tests.e2e.conftest import Service
from tests.e2e.helpers import database_rows, engine_of, fields_of, stay
from tests.e2e.test_access import TABLE, Row

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {
    f"{data['id']}@{data['version']}": path.read_text(encoding="utf-8")
    for path in sorted((ROOT / "policies/library").glob("*.yaml"))
    if isinstance(data := yaml.safe_load(path.read_text(encoding="utf-8")), dict) and "id" in data
}
MEIHEKOU_2014 = SHIPPED["jl-meihekou@2014"]
MEIHEKOU_INCLUDES = {"jl-resident-insurance@2012", "jl-temporary-aid@2014", "grants@2012"}
COUNTY = "220582"  # an insured area the demo region does not have
PROBLEM = "application/problem+json"


def edited(document: str, **top: str) -> str:
    """`document` with top-level scalar fields replaced (or added after valid_from)."""
    for name, value in top.items():
        line = f"{name}: {value}"
        document, count = re.subn(rf"(?m)^{name}: .*$", line, document)
        if count == 0:
            document = re.sub(r"(?m)^(valid_from: .*)$", rf"\1\n{line}", document)
    return document


def county_policy(**top: str) -> str:
    """A copy of Meihekou 2014 as the policy of a new county, so that it overlaps nothing published."""
    return edited(MEIHEKOU_2014, **{"id": "jl-test-county", "version": '"2016"', "region": f'"{COUNTY}"', **top})


def listing(service: Service) -> dict[str, dict[str, Any]]:
    policies = service.client.get("/v1/policies", headers=service.auth("demo-desk")).json()["policies"]
    return {p["policy"]: p for p in policies}


def publish(service: Service, document: str) -> httpx.Response:
    answer: httpx.Response = service.client.post("/v1/policies", content=document, headers=service.auth("demo-admin"))
    return answer


def settled_policy(service: Service, claim: dict[str, Any], user: str = "demo-desk-mhk") -> str:
    settled = service.client.post("/v1/settlements", json=claim, headers=service.auth(user))
    assert settled.status_code == 201, settled.text
    policy = settled.json()["policy"]
    return f"{policy['id']}@{policy['version']}"


def register_county_person(service: Service) -> None:
    client, admin = service.client, service.auth("demo-admin")
    region = {"name": "测试县 (test)", "policy_id": "jl-test-county"}
    assert client.put(f"/v1/regions/{COUNTY}", json=region, headers=admin).status_code == 200
    person = {
        "household_id": "T-HH-0001",
        "name": "测试甲 (test)",
        "insurance_scheme": "resident",
        "region": COUNTY,
        "categories": [{"category": "dibao", "valid_from": "2014-01-01"}],
    }
    assert client.put("/v1/people/T-P-0001", json=person, headers=admin).status_code == 200


def test_the_shipped_policies_are_listed_and_shown_as_they_settle(service: Service) -> None:
    client, desk = service.client, service.auth("demo-desk")
    before = listing(service)
    assert set(before) == set(SHIPPED)
    for key, row in before.items():
        data = yaml.safe_load(SHIPPED[key])
        assert row["region"] == data["region"]
        assert row["valid_from"] == data["valid_from"].isoformat()
        assert row["valid_until"] == (data["valid_until"].isoformat() if "valid_until" in data else None)
        assert row["document_sha256"] == hashlib.sha256(SHIPPED[key].encode("utf-8")).hexdigest()
        assert row["published_by"] == "system"
        assert row["used"] is False

    # A Meihekou stay in 2014 uses jl-meihekou@2014 and, through it, every policy it includes.
    assert settled_policy(service, stay("USED-1", day="2014-07-01")) == "jl-meihekou@2014"
    used = {key for key, row in listing(service).items() if row["used"]}
    assert used == {"jl-meihekou@2014", *MEIHEKOU_INCLUDES}
    # A quote records nothing, so it uses nothing.
    quoted = client.post("/v1/quotes", json=stay("QUOTE-1", person_id="CC-P-0417", day="2014-07-01"), headers=desk)
    assert quoted.status_code == 200 and quoted.json()["policy"]["id"] == "jl-changchun"
    assert {key for key, row in listing(service).items() if row["used"]} == used

    # One policy as it settles: every fund, included ones too, with references, and its document.
    shown = client.get("/v1/policies/jl-meihekou@2014", headers=desk)
    assert shown.status_code == 200
    view = shown.json()
    assert view["policy"] == "jl-meihekou@2014"
    assert (view["region"], view["valid_from"], view["valid_until"]) == ("220581", "2014-01-01", None)
    assert view["document"] == MEIHEKOU_2014
    assert {tier: body["from"] for tier, body in view["tiers"].items()} == {
        "resident_basic": "jl-resident-insurance@2012",
        "resident_critical_illness": "jl-resident-insurance@2012",
        "medical_assistance": "jl-meihekou@2014",
        "temporary_aid": "jl-temporary-aid@2014",
        "grants": "grants@2012",
    }
    assistance = view["tiers"]["medical_assistance"]
    assert "measures-28-29" in assistance["references"]
    general = next(b for b in assistance["buckets"] if b["id"] == "general")
    assert general["ratio"]["by_category"]["dibao"] == "0.6000"
    # The id alone is the newest version; an included policy is shown on its own too.
    assert client.get("/v1/policies/jl-meihekou", headers=desk).json()["policy"] == "jl-meihekou@2014"
    older = client.get("/v1/policies/jl-meihekou@2013", headers=service.auth("demo-policy")).json()
    assert (older["valid_from"], older["valid_until"]) == ("2012-01-01", "2013-12-31")
    assert client.get("/v1/policies/grants@2012", headers=desk).json()["document"] == SHIPPED["grants@2012"]
    for missing in ("jl-meihekou@2099", "no-such-policy", "jl-meihekou@"):
        answer = client.get(f"/v1/policies/{missing}", headers=desk)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith(PROBLEM)


def test_a_draft_is_checked_against_everything_published_and_nothing_is_stored(service: Service) -> None:
    client, policy_staff = service.client, service.auth("demo-policy")
    drafts: list[tuple[str, str | None, list[str]]] = [
        (county_policy(), "jl-test-county@2016", []),
        # The next version of Meihekou, open-ended from 2016, while 2014's is open-ended too.
        (edited(MEIHEKOU_2014, version='"2016"', valid_from="2016-01-01"), "jl-meihekou@2016", ["valid_from"]),
        (county_policy().replace('default: "1.0"', 'default: "1.5"'), None, ["tiers[0].buckets[0].ratio.default"]),
        (re.sub(r"(?m)^title: .*\n", "", county_policy()), None, ["title"]),
        (county_policy().replace("grants@2012", "grants@2099"), None, ["includes[2]"]),
        (county_policy(region='"22058"'), None, ["region"]),
        (county_policy(governor="x"), None, ["governor"]),
        (
            county_policy().replace("disease_list: meihekou-27-2014", "disease_list: no-such-list"),
            None,
            ["tiers[0].buckets[0].disease_list"],
        ),
        ("[unclosed", None, ["(document)"]),
        ("", None, ["(document)"]),
    ]
    before = database_rows(engine_of(service))
    for document, key, fields in drafts:
        checked = client.post("/v1/policies/validate", content=document, headers=policy_staff)
        assert checked.status_code == 200, checked.text
        body = checked.json()
        assert body["valid"] is (not fields), body
        assert [e["field"] for e in body["errors"]] == fields, body
        if key is not None:
            assert body["policy"] == key
    ending_early = county_policy(valid_until="2013-12-31")  # on valid_until: see the test below
    assert client.post("/v1/policies/validate", content=ending_early, headers=policy_staff).json()["valid"] is False
    assert database_rows(engine_of(service)) == before
    assert "jl-test-county@2016" not in listing(service)
    not_text = client.post("/v1/policies/validate", content=b"\xff\xfe", headers=policy_staff)
    assert not_text.status_code == 422 and fields_of(not_text) == ["body"]


def test_a_draft_ending_before_it_starts_is_refused_on_valid_until(service: Service) -> None:
    draft = county_policy(valid_until="2013-12-31")  # it starts on 2014-01-01
    checked = service.client.post("/v1/policies/validate", content=draft, headers=service.auth("demo-policy"))
    assert checked.json()["valid"] is False
    assert [e["field"] for e in checked.json()["errors"]] == ["valid_until"], checked.text


def test_a_new_version_is_published_once_and_takes_over_on_its_date(service: Service) -> None:
    client, desk = service.client, service.auth("demo-desk-mhk")
    service.clock.now = dt.datetime(2016, 6, 1, 9, 0)  # the stays below are settled in 2015 and 2016
    before = database_rows(engine_of(service))

    # Meihekou 2016 from 2016-01-01 overlaps 2014's, which is in force until further notice.
    meihekou_2016 = edited(MEIHEKOU_2014, version='"2016"', valid_from="2016-01-01")
    overlapping = publish(service, meihekou_2016)
    assert overlapping.status_code == 422 and overlapping.headers["content-type"].startswith(PROBLEM)
    assert fields_of(overlapping) == ["valid_from"]
    assert "jl-meihekou@2014" in overlapping.json()["errors"][0]["message"]
    invalid = publish(service, county_policy().replace('default: "1.0"', 'default: "1.5"'))
    assert invalid.status_code == 422 and fields_of(invalid) == ["tiers[0].buckets[0].ratio.default"]
    assert fields_of(publish(service, "[unclosed")) == ["(document)"]
    assert database_rows(engine_of(service)) == before

    # Closing 2014's at the end of 2015 (it settled nothing yet, so it may change) makes room for 2016's.
    closed_2014 = edited(MEIHEKOU_2014, valid_until="2015-12-31")
    assert publish(service, closed_2014).status_code == 201
    published = publish(service, meihekou_2016)
    assert published.status_code == 201 and published.json() == {"policy": "jl-meihekou@2016", "published": True}
    again = publish(service, meihekou_2016)
    assert again.status_code == 200 and again.json() == {"policy": "jl-meihekou@2016", "published": False}
    rows = listing(service)
    assert rows["jl-meihekou@2014"]["valid_until"] == "2015-12-31"
    assert rows["jl-meihekou@2016"]["published_by"] == "demo-admin" and not rows["jl-meihekou@2016"]["used"]
    assert client.get("/v1/policies/jl-meihekou@2016", headers=desk).json()["document"] == meihekou_2016
    # Each stay is settled under the version in force on its discharge date.
    assert settled_policy(service, stay("V-2015", day="2015-12-31")) == "jl-meihekou@2014"
    assert settled_policy(service, stay("V-2016", day="2016-01-01")) == "jl-meihekou@2016"
    assert listing(service)["jl-meihekou@2016"]["used"] is True

    # A new county's policy: 201, then 200 for the same document; changed while unused: replaced (201).
    county = county_policy()
    assert publish(service, county).status_code == 201
    assert publish(service, county).json()["published"] is False
    changed = county.replace("no cap", "no assistance cap")
    replaced = publish(service, changed)
    assert replaced.status_code == 201 and replaced.json() == {"policy": "jl-test-county@2016", "published": True}
    assert client.get("/v1/policies/jl-test-county@2016", headers=desk).json()["document"] == changed
    # Once the county is registered with it, its people's stays settle under it.
    register_county_person(service)
    assert settled_policy(service, stay("COUNTY-1", person_id="T-P-0001", day="2016-03-01")) == "jl-test-county@2016"
    refused = publish(service, county)
    assert refused.status_code == 409 and fields_of(refused) == ["version"]


def test_a_version_that_settled_a_claim_is_never_replaced(service: Service) -> None:
    assert settled_policy(service, stay("USED-1", day="2014-07-01")) == "jl-meihekou@2014"
    before = database_rows(engine_of(service))
    # Directly, and through each policy it includes.
    for key in ("jl-meihekou@2014", *sorted(MEIHEKOU_INCLUDES)):
        refused = publish(service, SHIPPED[key] + "\n# an edit\n")
        assert refused.status_code == 409, (key, refused.text)
        assert refused.headers["content-type"].startswith(PROBLEM)
        assert fields_of(refused) == ["version"] and key in refused.json()["errors"][0]["message"]
        same = publish(service, SHIPPED[key])  # the identical document is no change
        assert same.status_code == 200 and same.json() == {"policy": key, "published": False}
    closing = publish(service, edited(MEIHEKOU_2014, valid_until="2015-12-31"))
    assert closing.status_code == 409  # not even to close it: publish a new version from a later date
    assert database_rows(engine_of(service)) == before
    # An unused version stays open to change.
    changchun = SHIPPED["jl-changchun@2014"]
    assert publish(service, changchun + "\n# an edit\n").status_code == 201


def test_a_replaced_version_settles_with_its_new_parameters(service: Service) -> None:
    client, desk = service.client, service.auth("demo-desk-mhk")
    service.clock.now = dt.datetime(2016, 6, 1, 9, 0)  # the stays below are settled in 2016
    assert publish(service, county_policy()).status_code == 201
    register_county_person(service)
    claim = stay("COUNTY-1", person_id="T-P-0001", day="2016-03-01")
    old = client.post("/v1/quotes", json=claim, headers=desk).json()
    generous = county_policy().replace('dibao: "0.60"', 'dibao: "0.90"')
    assert publish(service, generous).status_code == 201
    shown = client.get("/v1/policies/jl-test-county@2016", headers=desk).json()
    assert shown["document"] == generous  # stored...
    general = next(b for b in shown["tiers"]["medical_assistance"]["buckets"] if b["id"] == "general")
    new = client.post("/v1/quotes", json=claim, headers=desk).json()

    def assistance(record: dict[str, Any]) -> Decimal:
        return next(Decimal(t["paid"]) for t in record["tiers"] if t["tier"] == "medical_assistance")

    assert general["ratio"]["by_category"]["dibao"] == "0.9000"  # ...but not what is shown
    assert assistance(new) > assistance(old)  # ...nor what settles


def test_the_documented_examples_are_accepted_as_they_stand(service: Service) -> None:
    client, admin = service.client, service.auth("demo-admin")
    paths = client.get("/openapi.json").json()["paths"]

    def example(path: str, method: str) -> Any:
        return paths[path][method]["requestBody"]["content"]["application/json"]["example"]

    region = example("/v1/regions/{region}", "put")
    assert client.put(f"/v1/regions/{region['region']}", json=region, headers=admin).status_code == 200
    hospital = example("/v1/hospitals/{hospital_id}", "put")
    assert client.put(f"/v1/hospitals/{hospital['hospital_id']}", json=hospital, headers=admin).status_code == 200
    person = example("/v1/people/{person_id}", "put")
    assert client.put(f"/v1/people/{person['person_id']}", json=person, headers=admin).status_code == 200
    assert client.post("/v1/users", json=example("/v1/users", "post"), headers=admin).status_code == 201
    claim = example("/v1/settlements", "post")
    desk = {"JL-PROV-H001": "demo-desk", "MHK-H001": "demo-desk-mhk"}[claim["hospital_id"]]
    assert client.post("/v1/quotes", json=example("/v1/quotes", "post"), headers=service.auth(desk)).status_code == 200
    assert client.post("/v1/settlements", json=claim, headers=service.auth(desk)).status_code == 201
    reversal = example("/v1/settlements/{setl_id}/reversal", "post")
    setl_id = client.get("/v1/settlements", headers=service.auth(desk)).json()["settlements"][0]["setl_id"]
    answer = client.post(f"/v1/settlements/{setl_id}/reversal", json=reversal, headers=service.auth(desk))
    assert answer.status_code == 201


# The OpenAPI document needs no database content: one app on an empty SQLite file serves it. Its operations
# are checked against the hand-written route table of test_access.py (a body there is a body here).

DEFAULT_422 = (
    "FastAPI adds its own 422 (application/json, HTTPValidationError) to an operation with parameters that "
    "declares no 422 itself; the service answers 422 as application/problem+json"
)
KNOWN_GAPS: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def openapi_document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'doudi.sqlite3'}"
    with TestClient(create_app(url)) as client:
        answer = client.get("/openapi.json")
        assert answer.status_code == 200
        yield answer.json()


def documented_path(row: Row) -> str:
    return row.path.replace(":path}", "}")  # OpenAPI writes {name:path} as {name}


def body_type(row: Row) -> str | None:
    if row.media is not None:
        return row.media
    if row.json is not None:
        return "application/json"
    return "application/yaml" if row.content is not None else None


DOCUMENTED = [row for row in TABLE if row.path != "/openapi.json"]


def test_the_document_describes_exactly_the_routes_of_the_table(openapi_document: dict[str, Any]) -> None:
    documented = {(m.upper(), path) for path, ops in openapi_document["paths"].items() for m in ops}
    assert documented == {(row.method, documented_path(row)) for row in DOCUMENTED}


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(
            row,
            id=f"{row.method} {row.path}",
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[(row.method, row.path)])]
            if (row.method, row.path) in KNOWN_GAPS
            else [],
        )
        for row in DOCUMENTED
    ],
)
def test_the_operation_is_documented(openapi_document: dict[str, Any], row: Row) -> None:
    """A summary; a bearer requirement (none for /healthz); errors as problems with a fitting example;
    a required request body with an example exactly when the route reads one."""
    operation = openapi_document["paths"][documented_path(row)][row.method.lower()]
    assert operation.get("summary", "").strip()
    bearer = {
        name
        for name, scheme in openapi_document["components"]["securitySchemes"].items()
        if scheme["type"] == "http" and scheme["scheme"] == "bearer"
    }
    requirements = {name for requirement in operation.get("security", []) for name in requirement}
    if "public" in row.allowed:
        assert not requirements
        return
    assert requirements and requirements <= bearer
    responses = operation["responses"]
    assert {"401", "403"} <= set(responses)
    national = row.path.startswith("/v1/nhsa/")
    for status, response in responses.items():
        if national and status[0] in "45" and status not in ("401", "403", "413"):
            # The national transactions answer their own errors in the platform's envelope (docs/interop.md);
            # only the token check and the size limit, before the envelope is read, answer as problems.
            schema = response["content"]["application/json"]["schema"]
            assert {"infcode", "err_msg"} <= set(schema["required"]), f"{status}: {response}"
        elif status[0] in "45":
            assert list(response.get("content", {})) == [PROBLEM], f"{status}: {response}"
            assert response["content"][PROBLEM]["example"]["status"] == int(status)
    media_type = body_type(row)
    if media_type is None:
        assert "requestBody" not in operation
        return
    body = operation["requestBody"]
    assert body.get("required") is True
    assert list(body["content"]) == [media_type]
    assert "422" in responses
    if media_type == "application/octet-stream":  # an uploaded file: its bytes, no example
        assert body["content"][media_type]["schema"] == {"type": "string", "format": "binary"}
        return
    assert body["content"][media_type].get("example")
    reference = body["content"][media_type]["schema"].get("$ref")
    if reference is not None:
        assert reference.removeprefix("#/components/schemas/") in openapi_document["components"]["schemas"]


def test_the_claim_schema_leaves_to_the_register_what_it_fills_in(openapi_document: dict[str, Any]) -> None:
    body = openapi_document["paths"]["/v1/settlements"]["post"]["requestBody"]["content"]["application/json"]
    claim = openapi_document["components"]["schemas"][body["schema"]["$ref"].removeprefix("#/components/schemas/")]
    required = set(claim["required"])
    assert {"claim_id", "person_id", "visit_type", "admitted_on", "discharged_on", "total"} <= required
    assert not required & {"household_id", "insurance_scheme", "category", "hospital_level", "hospital_id"}
