"""Who may call what, through HTTP, on SQLite and PostgreSQL.

The role matrix below is written out by hand from the service's contract (docs/service.md), not derived
from the routes' code: a route whose guard drifts from the contract fails here, and so does a new route
that nobody added a row for. Around the matrix: a desk is confined to its own hospital, revocation takes
effect on the very next request (through HTTP and through `doudi users revoke`), every write is in the
audit log with the user and token that made it, and a refused request leaves the database as it was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from typer.testing import CliRunner

from api.app import create_app
from doudi.cli import app as doudi_cli
from tests.e2e.conftest import Service
from tests.e2e.helpers import database_rows, engine_of, fields_of, stay

ROOT = Path(__file__).resolve().parents[2]
MEIHEKOU_2014 = (ROOT / "policies/library/jl-meihekou-2014.yaml").read_text(encoding="utf-8")
ROLES = ("desk", "finance", "policy", "admin")
DEMO_USER = {"desk": "demo-desk", "finance": "demo-finance", "policy": "demo-policy", "admin": "demo-admin"}
ANYONE = frozenset(ROLES)
PUBLIC = frozenset({*ROLES, "public"})
GARBAGE_TOKEN = "doudi_" + "x" * 43  # shaped like a token, issued to nobody


def national(infno: str, msgid: str, day: str = "2014-06-30", **data: Any) -> dict[str, Any]:
    """The same stay as `stay`, as the national platform's request for transaction `infno`."""
    return {
        "infno": infno,
        "msgid": msgid,
        "inf_time": f"{day} 10:00:00",
        "input": {
            "data": {
                "psn_no": "MHK-P-0104",
                "mdtrt_id": f"V-{msgid}",
                "insutype": "390",
                "medfee_sumamt": "8000.00",
                "fulamt_ownpay_amt": "0.00",
                "overlmt_selfpay": "0.00",
                "preselfpay_amt": "0.00",
                **data,
            },
            "mdtrtinfo": {"begntime": f"{day} 08:00:00", "endtime": f"{day} 09:00:00"},
            "diseinfo": [{"diag_code": "J18.9", "maindiag_flag": "1"}],
        },
    }


@dataclass(frozen=True)
class Row:
    """One endpoint: who may call it, and what an allowed caller gets for this request."""

    method: str
    path: str  # the route's template, as the app declares it; {names} are filled from IDS
    allowed: frozenset[str]  # roles, plus "public" when no token is needed at all
    expect: int  # the status an allowed caller gets (every allowed role gets the same)
    json: Any = None  # a JSON body
    content: str | bytes | None = None  # a YAML body, or a file's bytes (with `media`)
    media: str | None = None  # the body's media type when it is neither JSON nor YAML
    params: dict[str, Any] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # this row's own values for the path's {names}

    def url(self, ids: dict[str, str]) -> str:
        values = {**ids, **self.ids}
        return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values[m.group(1)], self.path)


# The identifiers the matrix's URLs refer to; `setl_id` is a settlement made by demo-desk during setup.
IDS = {
    "person_id": "MHK-P-0104",
    "hospital_id": "MHK-H001",
    "region": "220599",
    "policy": "jl-meihekou@2014",
    "name": "matrix-target",
    "month": "2014-12",  # the month the matrix's settlements are recorded in (the clock's)
}

TABLE: list[Row] = [
    # The billing desk.
    Row("POST", "/v1/quotes", frozenset({"desk"}), 200, json=stay("ACCESS-Q")),
    Row("POST", "/v1/settlements", frozenset({"desk"}), 201, json=stay("ACCESS-2", day="2014-07-01")),
    Row("GET", "/v1/settlements", frozenset({"desk", "finance"}), 200),
    Row("GET", "/v1/settlements/{setl_id}", frozenset({"desk", "finance"}), 200),
    Row("POST", "/v1/settlements/{setl_id}/reversal", frozenset({"desk"}), 201, json={"reason": "role matrix"}),
    Row("GET", "/v1/people/{person_id}/accumulators", frozenset({"desk", "finance"}), 200, params={"year": 2014}),
    # Reference data: everyone reads areas and hospitals; people are not for policy staff; admins write.
    Row("GET", "/v1/regions", ANYONE, 200),
    Row("GET", "/v1/regions/{region}", ANYONE, 200, ids={"region": "220581"}),
    Row(
        "PUT",
        "/v1/regions/{region}",
        frozenset({"admin"}),
        200,
        json={"name": "矩阵县 (test)", "policy_id": "jl-meihekou"},
    ),
    Row("GET", "/v1/hospitals", ANYONE, 200),
    Row("GET", "/v1/hospitals/{hospital_id}", ANYONE, 200),
    Row(
        "PUT",
        "/v1/hospitals/{hospital_id}",
        frozenset({"admin"}),
        200,
        json={"name": "梅河口市二级医院（示例）Meihekou hospital (demo)", "level": 2, "region": "220581"},
    ),
    Row("GET", "/v1/people/{person_id}", frozenset({"desk", "finance", "admin"}), 200),
    Row(
        "PUT",
        "/v1/people/{person_id}",
        frozenset({"admin"}),
        200,
        json={
            "household_id": "MHK-H-0104",
            "name": "示例辛 (demo)",
            "insurance_scheme": "resident",
            "region": "220581",
            "categories": [
                {"category": "low_income", "valid_from": "2013-01-01", "valid_until": "2014-06-30"},
                {"category": "dibao", "valid_from": "2014-07-01"},
            ],
        },
    ),
    # Policies: everyone reads; policy staff and admins validate; admins publish (the same document: 200).
    Row("GET", "/v1/policies", ANYONE, 200),
    Row("GET", "/v1/policies/{policy}", ANYONE, 200),
    Row("POST", "/v1/policies/validate", frozenset({"policy", "admin"}), 200, content=MEIHEKOU_2014),
    Row("POST", "/v1/policies", frozenset({"admin"}), 200, content=MEIHEKOU_2014),
    # Accounts and the audit log: admins only.
    Row("GET", "/v1/users", frozenset({"admin"}), 200),
    Row("POST", "/v1/users", frozenset({"admin"}), 201, json={"name": "matrix-new", "role": "finance"}),
    Row("POST", "/v1/users/{name}/tokens", frozenset({"admin"}), 201),
    Row("POST", "/v1/users/{name}/revoke", frozenset({"admin"}), 200, json={}),
    Row("GET", "/v1/audit", frozenset({"admin"}), 200),
    Row("GET", "/v1/audit/verify", frozenset({"admin"}), 200),
    # Monthly reconciliation: finance and admins. The clock's month is not over, so it cannot be closed
    # (and no statement files are written anywhere).
    Row("GET", "/v1/reconciliation/months", frozenset({"finance", "admin"}), 200),
    Row("GET", "/v1/reconciliation/{month}", frozenset({"finance", "admin"}), 200),
    Row("GET", "/v1/reconciliation/{month}/detail", frozenset({"finance", "admin"}), 200),
    Row(
        "GET",
        "/v1/reconciliation/{month}/files/{name:path}",
        frozenset({"finance", "admin"}),
        200,
        ids={"name": "summary.csv"},
    ),
    Row("POST", "/v1/reconciliation/{month}/close", frozenset({"finance", "admin"}), 422),
    Row(
        "POST",
        "/v1/reconciliation/{month}/match",
        frozenset({"finance", "admin"}),
        200,  # an unreadable file is a verdict ("not balanced"), not an error
        content=b"not a hospital's file",
        media="application/octet-stream",
        params={"hospital_id": "JL-PROV-H001"},
    ),
    # The national platform's transactions (docs/interop.md): settling ones for the desk, bound to its hospital
    # (a reversal of a settlement it cannot see is "not found"); 5206 like the year-to-date figures; a month's
    # totals and details (3201, 3202) for finance and admins. An unreadable 3202 file is a verdict, not an error.
    Row("POST", "/v1/nhsa/2303", frozenset({"desk"}), 200, json=national("2303", "ACCESS-N1")),
    Row("POST", "/v1/nhsa/2304", frozenset({"desk"}), 200, json=national("2304", "ACCESS-N2", day="2014-07-02")),
    Row("POST", "/v1/nhsa/2305", frozenset({"desk"}), 404, json=national("2305", "ACCESS-N3", setl_id="ACCESS-NONE")),
    Row("POST", "/v1/nhsa/2206", frozenset({"desk"}), 200, json=national("2206", "ACCESS-N4", med_type="11")),
    Row("POST", "/v1/nhsa/2207", frozenset({"desk"}), 200, json=national("2207", "ACCESS-N5", med_type="11")),
    Row("POST", "/v1/nhsa/2208", frozenset({"desk"}), 404, json=national("2208", "ACCESS-N6", setl_id="ACCESS-NONE")),
    Row("POST", "/v1/nhsa/5206", frozenset({"desk", "finance"}), 200, json=national("5206", "ACCESS-N7")),
    Row(
        "POST",
        "/v1/nhsa/3201",
        frozenset({"finance", "admin"}),
        200,
        json={
            "infno": "3201",
            "msgid": "ACCESS-N8",
            "fixmedins_code": "JL-PROV-H001",
            "input": {
                "data": {
                    "stmt_begndate": "2014-12-01",
                    "stmt_enddate": "2014-12-31",
                    "medfee_sumamt": "0.00",
                    "fund_pay_sumamt": "0.00",
                    "fixmedins_setl_cnt": 0,
                }
            },
        },
    ),
    Row(
        "POST",
        "/v1/nhsa/3202",
        frozenset({"finance", "admin"}),
        200,
        json={
            "infno": "3202",
            "msgid": "ACCESS-N9",
            "fixmedins_code": "JL-PROV-H001",
            "input": {
                "data": {"stmt_begndate": "2014-12-01", "stmt_enddate": "2014-12-31"},
                "fsUploadIn": {"filename": "x.txt", "in": "bm90IGEgZGV0YWlsIGZpbGU="},
            },
        },
    ),
    # FHIR: a settlement as an EOB (a desk sees its own hospital's), a month's remittance for finance.
    Row("GET", "/v1/fhir/ExplanationOfBenefit/{setl_id}", frozenset({"desk", "finance"}), 200),
    Row("GET", "/v1/fhir/PaymentReconciliation", frozenset({"finance", "admin"}), 200, params={"month": "2014-12"}),
    # Policy simulations: policy staff and admins. Nothing here starts a job or stores a file: the request
    # names no dataset there is, the uploads are junk (each refused with its problems), the job id is nobody's.
    Row("GET", "/v1/simulations/datasets", frozenset({"policy", "admin"}), 200),
    Row(
        "POST",
        "/v1/simulations/datasets",
        frozenset({"policy", "admin"}),
        422,
        content=b"not a claims dataset",
        media="application/octet-stream",
        params={"name": "matrix-dataset"},
    ),
    Row(
        "POST",
        "/v1/simulations/sheets",
        frozenset({"policy", "admin"}),
        422,
        content=b"not a workbook",
        media="application/octet-stream",
    ),
    Row(
        "POST",
        "/v1/simulations",
        frozenset({"policy", "admin"}),
        422,
        json={"dataset": "no-such-dataset", "baseline": "jl-meihekou"},
    ),
    Row("GET", "/v1/simulations", frozenset({"policy", "admin"}), 200),
    Row("GET", "/v1/simulations/{job_id}", frozenset({"policy", "admin"}), 404, ids={"job_id": "0123456789abcdef"}),
    Row(
        "GET",
        "/v1/simulations/{job_id}/files/{name}",
        frozenset({"policy", "admin"}),
        404,
        ids={"job_id": "0123456789abcdef", "name": "summary.json"},
    ),
    # No token needed.
    Row("GET", "/healthz", PUBLIC, 200),
    Row("GET", "/openapi.json", PUBLIC, 200),
]

# Callers other than the four roles, and the status each gets from a route that needs a token.
UNAUTHENTICATED = ("no token", "revoked token", "garbage token")


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route the app answers, HEAD aside."""
    try:  # FastAPI ≥ 0.160 keeps included routers lazily; this walks into them
        from fastapi.routing import iter_route_contexts

        routes: Iterable[Any] = iter_route_contexts(app.routes)
    except ImportError:  # pragma: no cover - older FastAPI: app.routes is flat
        routes = app.routes
    # The web pages sign in with a browser session, not a token: tests/e2e/test_web_access.py is their matrix.
    routes = [r for r in routes if not getattr(getattr(r, "endpoint", None), "__module__", "").startswith("web.")]
    return {(method, route.path) for route in routes for method in (route.methods or ()) if method != "HEAD"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def call(service: Service, row: Row, headers: dict[str, str], ids: dict[str, str]) -> httpx.Response:
    answer: httpx.Response = service.client.request(
        row.method,
        row.url(ids),
        json=row.json,
        content=row.content,
        params=row.params,
        headers=headers,
    )
    return answer


def token_id_of(service: Service, user: str, token: str) -> str:
    """The public id of `token` (its first characters name it in lists and in the audit log)."""
    users = service.client.get("/v1/users", headers=service.auth("demo-admin")).json()["users"]
    tokens = next(u["tokens"] for u in users if u["name"] == user)
    found: str = next(t["token_id"] for t in tokens if t["token_id"] in token)
    return found


def create_user(service: Service, name: str, role: str, hospital_id: str | None = None) -> str:
    body = {"name": name, "role": role, **({"hospital_id": hospital_id} if hospital_id else {})}
    created = service.client.post("/v1/users", json=body, headers=service.auth("demo-admin"))
    assert created.status_code == 201, created.text
    token: str = created.json()["token"]
    return token


def settle(service: Service, user: str, claim: dict[str, Any]) -> str:
    settled = service.client.post("/v1/settlements", json=claim, headers=service.auth(user))
    assert settled.status_code == 201, settled.text
    setl_id: str = settled.json()["setl_id"]
    return setl_id


def audit_entries(service: Service) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = service.client.get(
        "/v1/audit", params={"limit": 1000}, headers=service.auth("demo-admin")
    ).json()["entries"]
    return entries


def test_the_table_has_a_row_for_every_route_the_app_serves(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'routes.sqlite3'}")
    served = served_routes(app)
    table = {(row.method, row.path) for row in TABLE}
    assert len(table) == len(TABLE), "a route has two rows"
    assert sorted(served - table) == [], "routes with no row in TABLE: say who may call them"
    assert sorted(table - served) == [], "rows in TABLE for routes the app does not serve"


def test_every_route_answers_every_caller_as_the_table_says(service: Service) -> None:
    client, admin = service.client, service.auth("demo-admin")
    ids = {**IDS, "setl_id": settle(service, "demo-desk", stay("ACCESS-1"))}
    create_user(service, IDS["name"], "desk", "MHK-H002")
    revoked = create_user(service, "matrix-revoked-admin", "admin")
    assert client.post("/v1/users/matrix-revoked-admin/revoke", json={}, headers=admin).json()["revoked"] == 1
    headers = {
        **{role: service.auth(DEMO_USER[role]) for role in ROLES},
        "no token": {},
        "revoked token": bearer(revoked),
        "garbage token": bearer(GARBAGE_TOKEN),
    }
    wrong: list[str] = []

    # First every refused call: each is 401 or 403 as a problem, and together they change nothing.
    before = database_rows(engine_of(service))
    for row in TABLE:
        for caller in (*ROLES, *UNAUTHENTICATED):
            if caller in row.allowed or "public" in row.allowed:
                continue
            answer = call(service, row, headers[caller], ids)
            expected = 401 if caller in UNAUTHENTICATED else 403
            if answer.status_code != expected:
                wrong.append(f"{row.method} {row.path} as {caller}: {answer.status_code}, expected {expected}")
            elif not answer.headers["content-type"].startswith("application/problem+json"):
                wrong.append(f"{row.method} {row.path} as {caller}: not a problem ({answer.headers['content-type']})")
            elif expected == 401 and answer.headers.get("www-authenticate") != "Bearer":
                wrong.append(f"{row.method} {row.path} as {caller}: 401 without WWW-Authenticate: Bearer")
    assert database_rows(engine_of(service)) == before, "a refused call wrote something"

    # Then every allowed call, which gets the row's answer (public routes: whatever token comes along).
    for row in TABLE:
        callers = (*ROLES, *UNAUTHENTICATED) if "public" in row.allowed else sorted(row.allowed)
        for caller in callers:
            answer = call(service, row, headers[caller], ids)
            if answer.status_code != row.expect:
                wrong.append(
                    f"{row.method} {row.path} as {caller}: {answer.status_code}, expected {row.expect}: "
                    f"{answer.text[:200]}"
                )
    assert wrong == [], "\n".join(wrong)


def test_settling_checks_the_token_before_a_refused_query_parameter(service: Service) -> None:
    # POST /v1/settlements reads its own body and parameters (to check the token with the claim, in its
    # group on PostgreSQL); as on every route, who asks is answered first, then what is wrong with the request.
    url, claim = "/v1/settlements?note=a%00b", stay("ACCESS-PARAM")
    before = database_rows(engine_of(service))
    assert service.client.post(url, json=claim).status_code == 401
    assert service.client.post(url, json=claim, headers=service.auth("demo-finance")).status_code == 403
    refused = service.client.post(url, json=claim, headers=service.auth("demo-desk"))
    assert refused.status_code == 422 and fields_of(refused) == ["note"], refused.text
    assert database_rows(engine_of(service)) == before


def test_a_desk_sees_and_touches_its_own_hospitals_settlements_only(service: Service) -> None:
    client = service.client
    provincial, meihekou = service.auth("demo-desk"), service.auth("demo-desk-mhk")
    theirs = settle(service, "demo-desk", stay("PROV-0001"))
    ours = settle(service, "demo-desk-mhk", stay("MHK-0001", person_id="MHK-P-0101"))

    assert client.get(f"/v1/settlements/{theirs}", headers=meihekou).status_code == 404
    assert client.get(f"/v1/settlements/{ours}", headers=provincial).status_code == 404
    assert client.get(f"/v1/settlements/{ours}", headers=meihekou).status_code == 200
    listed = client.get("/v1/settlements", headers=meihekou).json()["settlements"]
    assert [s["setl_id"] for s in listed] == [ours]
    other = client.get("/v1/settlements", params={"hospital_id": "JL-PROV-H001"}, headers=meihekou)
    assert other.status_code == 422 and fields_of(other) == ["hospital_id"]
    own = client.get("/v1/settlements", params={"hospital_id": "MHK-H001"}, headers=meihekou).json()
    assert [s["setl_id"] for s in own["settlements"]] == [ours]
    everything = client.get("/v1/settlements", headers=service.auth("demo-finance")).json()["settlements"]
    assert {s["setl_id"] for s in everything} == {theirs, ours}

    # Reversing another hospital's settlement: not found, and it stays unreversed.
    reversal = client.post(f"/v1/settlements/{theirs}/reversal", json={"reason": "not ours"}, headers=meihekou)
    assert reversal.status_code == 404
    assert client.get(f"/v1/settlements/{theirs}", headers=provincial).json()["reversed"] is None

    # Settling or quoting a stay at another hospital is refused on hospital_id, and records nothing.
    before = database_rows(engine_of(service))
    for route in ("/v1/settlements", "/v1/quotes"):
        elsewhere = stay("MHK-0002", person_id="MHK-P-0101", hospital_id="JL-PROV-H001")
        refused = client.post(route, json=elsewhere, headers=meihekou)
        assert refused.status_code == 422, refused.text
        assert fields_of(refused) == ["hospital_id"]
        assert "JL-PROV-H001" in refused.json()["errors"][0]["message"]
    assert database_rows(engine_of(service)) == before


def test_a_settlement_key_another_hospital_used_does_not_reveal_its_settlement(service: Service) -> None:
    theirs = settle(service, "demo-desk", stay("2014-0001"))
    same_key = service.client.post(
        "/v1/settlements", json=stay("2014-0001", person_id="MHK-P-0101"), headers=service.auth("demo-desk-mhk")
    )
    assert theirs not in same_key.text


def test_revocation_takes_effect_at_once_and_an_admin_created_user_works(service: Service) -> None:
    client, admin = service.client, service.auth("demo-admin")
    first = create_user(service, "night-desk", "desk", "MHK-H001")
    second = client.post("/v1/users/night-desk/tokens", headers=admin).json()["token"]
    assert first != second
    assert client.post("/v1/settlements", json=stay("NIGHT-1"), headers=bearer(first)).status_code == 201
    assert client.get("/v1/settlements", headers=bearer(second)).status_code == 200
    assert client.get("/v1/users", headers=bearer(first)).status_code == 403  # a desk, not an admin

    # One token by its id: that one is refused from the next request on, the other still works.
    first_id = token_id_of(service, "night-desk", first)
    one = client.post("/v1/users/night-desk/revoke", json={"token_id": first_id}, headers=admin)
    assert one.status_code == 200 and one.json() == {"name": "night-desk", "revoked": 1}
    assert client.get("/v1/settlements", headers=bearer(first)).status_code == 401
    assert client.get("/v1/settlements", headers=bearer(second)).status_code == 200
    # All of them (an empty object).
    assert client.post("/v1/users/night-desk/revoke", json={}, headers=admin).json()["revoked"] == 1
    assert client.get("/v1/settlements", headers=bearer(second)).status_code == 401
    listed = next(u for u in client.get("/v1/users", headers=admin).json()["users"] if u["name"] == "night-desk")
    assert listed["role"] == "desk" and listed["hospital_id"] == "MHK-H001"
    assert all(t["revoked_at"] is not None for t in listed["tokens"]) and len(listed["tokens"]) == 2

    # A demo user's only token, revoked by an admin: refused at once.
    assert client.get("/v1/settlements", headers=service.auth("demo-finance")).status_code == 200
    assert client.post("/v1/users/demo-finance/revoke", json={}, headers=admin).json()["revoked"] == 1
    assert client.get("/v1/settlements", headers=service.auth("demo-finance")).status_code == 401

    # An unknown user is not found; a non-text token_id is refused on its field.
    assert client.post("/v1/users/nobody/revoke", json={}, headers=admin).status_code == 404
    assert client.post("/v1/users/nobody/tokens", headers=admin).status_code == 404
    bad = client.post("/v1/users/night-desk/revoke", json={"token_id": 7}, headers=admin)
    assert bad.status_code == 422 and fields_of(bad) == ["token_id"]

    # What a user cannot be created as: each refused on its field.
    for body, field_name in [
        ({"name": "d2", "role": "desk"}, "hospital_id"),
        ({"name": "f2", "role": "finance", "hospital_id": "MHK-H001"}, "hospital_id"),
        ({"name": "d3", "role": "desk", "hospital_id": "NOWHERE"}, "hospital_id"),
        ({"name": "demo-admin", "role": "admin"}, "name"),
        ({"name": "b2", "role": "boss"}, "role"),
        ({"name": "with space", "role": "admin"}, "name"),
        ({"name": "x2", "role": "admin", "password": "secret"}, "password"),
    ]:
        refused = client.post("/v1/users", json=body, headers=admin)
        assert refused.status_code == 422 and fields_of(refused) == [field_name], (body, refused.text)

    # Malformed Authorization headers are unauthenticated, like no header at all.
    admin_token = service.tokens["demo-admin"]
    for header in ("Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer ", f"Token {admin_token}", "Bearer doudi_" + "x" * 300):
        answer = client.get("/v1/users", headers={"Authorization": header})
        assert answer.status_code == 401, header
    assert client.get("/v1/users", headers={"Authorization": f"bearer {admin_token}"}).status_code == 200


def doudi(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(doudi_cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_users_create_and_revoke_on_the_command_line(service: Service, database_url: str) -> None:
    client, admin = service.client, service.auth("demo-admin")
    code, out, err = doudi(
        "users", "create", "cli-desk", "--role", "desk", "--hospital", "MHK-H001", "--database-url", database_url
    )
    assert code == 0, err
    token = out.strip()
    assert token.startswith("doudi_")
    assert client.get("/v1/settlements", headers=bearer(token)).status_code == 200
    assert client.post("/v1/settlements", json=stay("CLI-1"), headers=bearer(token)).status_code == 201

    # A user that cannot be: exit 1 naming the field, and nobody is created.
    code, _, err = doudi("users", "create", "cli-bad", "--role", "desk", "--database-url", database_url)
    assert code == 1 and err.startswith("hospital_id:")
    names = [u["name"] for u in client.get("/v1/users", headers=admin).json()["users"]]
    assert "cli-desk" in names and "cli-bad" not in names

    code, out, err = doudi("users", "revoke", "cli-desk", "--database-url", database_url)
    assert code == 0, err
    assert out.strip() == "revoked 1 token(s) of cli-desk"
    assert client.get("/v1/settlements", headers=bearer(token)).status_code == 401

    # The command line writes as `system`, with no token.
    done = [(e["action"], e["target"], e["user"], e["token_id"]) for e in audit_entries(service)]
    assert ("user.create", "cli-desk", "system", None) in done
    assert ("token.revoke", "cli-desk", "system", None) in done


def test_a_failed_command_line_revoke_writes_nothing(service: Service, database_url: str) -> None:
    before = database_rows(engine_of(service))
    code, _, err = doudi("users", "revoke", "nobody", "--database-url", database_url)
    assert code == 1 and "nobody" in err
    assert database_rows(engine_of(service)) == before


def test_every_write_is_in_the_audit_log_with_its_user_and_token(service: Service) -> None:
    client = service.client
    desk, admin = service.auth("demo-desk"), service.auth("demo-admin")
    desk_token = token_id_of(service, "demo-desk", service.tokens["demo-desk"])
    admin_token = token_id_of(service, "demo-admin", service.tokens["demo-admin"])
    start = max(e["id"] for e in audit_entries(service))

    setl_id = settle(service, "demo-desk", stay("AUDIT-1"))
    assert client.post("/v1/settlements", json=stay("AUDIT-1"), headers=desk).status_code == 200  # a repeat
    assert client.post(f"/v1/settlements/{setl_id}/reversal", json={"reason": "audit"}, headers=desk).status_code == 201
    region = {"name": "审计县 (test)", "policy_id": "jl-meihekou"}
    assert client.put("/v1/regions/220598", json=region, headers=admin).status_code == 200
    hospital = {"name": "审计医院 (test)", "level": 1, "region": "220598"}
    assert client.put("/v1/hospitals/AUD-H1", json=hospital, headers=admin).status_code == 200
    person = {"household_id": "AUD-HH1", "name": "审计 (test)", "insurance_scheme": "resident", "region": "220598"}
    assert client.put("/v1/people/AUD-P1", json=person, headers=admin).status_code == 200
    county = MEIHEKOU_2014.replace("id: jl-meihekou", "id: jl-audit-county").replace('"220581"', '"220598"')
    assert client.post("/v1/policies", content=county, headers=admin).status_code == 201
    assert client.post("/v1/policies", content=county, headers=admin).status_code == 200  # the same again
    create_user(service, "audit-user", "policy")
    assert client.post("/v1/users/audit-user/tokens", headers=admin).status_code == 201
    assert client.post("/v1/users/audit-user/revoke", json={}, headers=admin).status_code == 200

    written = [
        (e["action"], e["target"], e["user"], e["token_id"])
        for e in reversed(audit_entries(service))
        if e["id"] > start
    ]
    assert written == [
        ("settlement.create", setl_id, "demo-desk", desk_token),
        ("settlement.reverse", setl_id, "demo-desk", desk_token),
        ("region.put", "220598", "demo-admin", admin_token),
        ("hospital.put", "AUD-H1", "demo-admin", admin_token),
        ("person.put", "AUD-P1", "demo-admin", admin_token),
        ("policy.publish", "jl-audit-county@2014", "demo-admin", admin_token),
        ("user.create", "audit-user", "demo-admin", admin_token),
        ("token.create", "audit-user", "demo-admin", admin_token),
        ("token.revoke", "audit-user", "demo-admin", admin_token),
    ]
    entries = {e["action"]: e for e in audit_entries(service) if e["id"] > start}
    assert entries["settlement.create"]["detail"] == {"medins_setl_id": "AUDIT-1"}
    assert entries["settlement.reverse"]["detail"] == {"reason": "audit"}
    assert entries["token.revoke"]["detail"] == {"token_id": None, "revoked": 2}
    assert "token" not in json.dumps(entries["user.create"]["detail"])  # the secret is never logged


def test_a_request_that_is_refused_or_records_nothing_leaves_the_database_as_it_was(service: Service) -> None:
    client = service.client
    desk, admin = service.auth("demo-desk"), service.auth("demo-admin")
    reversed_id = settle(service, "demo-desk", stay("KEEP-1"))
    client.post(f"/v1/settlements/{reversed_id}/reversal", json={"reason": "setup"}, headers=desk)
    kept = stay("KEEP-2", day="2014-07-01")
    kept_id = settle(service, "demo-desk", kept)
    used_policy = MEIHEKOU_2014.replace("no cap", "no cap whatsoever")
    overlapping = MEIHEKOU_2014.replace('version: "2014"', 'version: "2016"').replace("2014-01-01", "2016-01-01")
    person = {"household_id": "HH-X", "name": "x", "insurance_scheme": "resident", "region": "220581"}

    before = database_rows(engine_of(service))
    requests: list[tuple[str, str, dict[str, Any], dict[str, str], int]] = [
        ("POST", "/v1/settlements", {"json": {"claim_id": "BAD", "total": "1e3"}}, desk, 422),
        ("POST", "/v1/settlements", {"content": "{not json"}, desk, 422),
        ("POST", "/v1/settlements", {"json": stay("BAD-2", category="tekun")}, desk, 422),
        ("POST", "/v1/settlements", {"json": stay("BAD-3", person_id="NOBODY")}, desk, 422),
        ("POST", "/v1/settlements", {"json": {**kept, "total": "8000.01"}}, desk, 409),
        ("POST", "/v1/settlements", {"json": kept}, desk, 200),  # a repeat: nothing new
        ("POST", "/v1/quotes", {"json": stay("QUOTE-1")}, desk, 200),  # a quote records nothing
        ("POST", f"/v1/settlements/{reversed_id}/reversal", {"json": {"reason": "twice"}}, desk, 409),
        ("POST", f"/v1/settlements/{kept_id}/reversal", {"json": {"reason": " "}}, desk, 422),
        ("POST", f"/v1/settlements/{kept_id}/reversal", {"json": {"reason": "x" * 501}}, desk, 422),
        ("POST", "/v1/settlements/nope/reversal", {"json": {"reason": "x"}}, desk, 404),
        ("GET", "/v1/settlements", {"params": {"limit": 0}}, desk, 422),
        ("PUT", "/v1/regions/2205", {"json": {"name": "x", "policy_id": "jl-meihekou"}}, admin, 422),
        ("PUT", "/v1/hospitals/X-H", {"json": {"name": "x", "level": 4, "region": "220581"}}, admin, 422),
        ("PUT", "/v1/people/X-P", {"json": {**person, "region": "999999"}}, admin, 422),
        ("POST", "/v1/policies", {"content": overlapping}, admin, 422),
        ("POST", "/v1/policies", {"content": used_policy}, admin, 409),
        ("POST", "/v1/policies", {"content": MEIHEKOU_2014}, admin, 200),  # the same document: nothing new
        ("POST", "/v1/policies/validate", {"content": overlapping}, admin, 200),
        ("POST", "/v1/users", {"json": {"name": "demo-desk", "role": "desk", "hospital_id": "MHK-H001"}}, admin, 422),
        ("POST", "/v1/users/nobody/tokens", {}, admin, 404),
        ("POST", "/v1/users/nobody/revoke", {"json": {}}, admin, 404),
        ("POST", "/v1/users/demo-policy/revoke", {"content": ""}, admin, 422),
        ("GET", "/v1/audit", {"params": {"limit": 5000}}, admin, 422),
        ("POST", "/v1/reconciliation/2014-12/close", {}, admin, 422),  # not over yet
        ("POST", "/v1/reconciliation/2014-13/close", {}, admin, 422),
        (
            "POST",
            "/v1/reconciliation/2014-12/match",
            {"content": b"x", "params": {"hospital_id": "MHK-H001"}},
            admin,
            200,
        ),
        ("POST", "/v1/reconciliation/2014-12/match", {"content": b"x"}, admin, 422),  # whose file?
    ]
    for method, url, body, headers, status in requests:
        answer = client.request(method, url, headers=headers, **body)
        assert answer.status_code == status, (method, url, answer.text)
        if status >= 400:
            assert answer.headers["content-type"].startswith("application/problem+json")
    assert database_rows(engine_of(service)) == before
