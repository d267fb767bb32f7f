"""Who may open which page, through HTTP, on SQLite and PostgreSQL.

Like tests/e2e/test_access.py for the API, the matrix is written by hand from the roles the API gives each
use (docs/web.md says which page stands for which route), and every page the app serves must have a row.
Around it: nobody signed in is sent to /login; a role that may not gets a 403 page; a desk clerk sees and
reverses their own hospital's settlements only (another's is "not found"); and every form that writes
refuses a request without the session's CSRF token, writing nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from tests.e2e.helpers import database_rows
from tests.e2e.test_access import served_routes
from tests.e2e.test_web_pages import FAMILY, Web, csrf_of, web  # noqa: F401  (the fixture)

ROLES = ("desk", "finance", "policy", "admin")
USER = {"desk": "demo-desk", "finance": "demo-finance", "policy": "demo-policy", "admin": "demo-admin"}
ANYONE = frozenset(ROLES)
DESK = frozenset({"desk"})
FINANCE = frozenset({"finance", "admin"})
STAFF = frozenset({"policy", "admin"})


@dataclass(frozen=True)
class Page:
    method: str
    path: str  # the route's template; {names} are filled from IDS
    allowed: frozenset[str]
    expect: int  # what an allowed role gets (303: a redirect after a write, or to the role's home)
    data: dict[str, str] = field(default_factory=dict)  # a POST's form (the CSRF token is added)
    public: bool = False  # no sign-in needed

    def url(self, ids: dict[str, str]) -> str:
        return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: ids[m.group(1)], self.path)


IDS = {"month": "2014-06", "hospital_id": "JL-PROV-H001", "policy": "jl-meihekou@2014", "name": "summary.csv"}

TABLE: list[Page] = [
    Page("GET", "/", ANYONE, 303, public=True),  # to one's home, or to /login
    Page("GET", "/login", ANYONE, 303, public=True),  # signed in: on to one's home
    Page("POST", "/login", ANYONE, 400, public=True),  # no sign-in cookie of its own: refused, nothing tried
    Page("POST", "/logout", ANYONE, 303),
    Page("GET", "/admin", frozenset({"admin"}), 200),
    # The billing desk: the API's desk role (quotes, settlements, reversals).
    Page("GET", "/desk", DESK, 200),
    Page("GET", "/desk/today", DESK, 200),
    Page("GET", "/desk/people", DESK, 422),  # no person id given
    Page("GET", "/desk/stay", DESK, 200),
    Page("POST", "/desk/quote", DESK, 422),
    Page("POST", "/desk/settle", DESK, 422),
    Page("GET", "/desk/diseases", DESK, 200),
    Page("GET", "/desk/settlements/{setl_id}/reverse", DESK, 200),
    Page("POST", "/desk/settlements/{setl_id}/reverse", DESK, 422, data={"reason": "matrix"}),  # not confirmed
    # A slip: desks (their own hospital's) and finance, as GET /v1/settlements/{id}.
    Page("GET", "/settlements/{setl_id}", frozenset({"desk", "finance"}), 200),
    # Finance: as /v1/reconciliation (finance and admins).
    Page("GET", "/finance", FINANCE, 200),
    Page("GET", "/finance/{month}", FINANCE, 200),
    Page("GET", "/finance/{month}/hospitals/{hospital_id}", FINANCE, 200),
    Page("GET", "/finance/{month}/files/{name:path}", FINANCE, 200),
    Page("POST", "/finance/{month}/hospitals/{hospital_id}/match", FINANCE, 422),  # no file chosen
    Page("POST", "/finance/{month}/close", FINANCE, 422),  # not confirmed
    # Policies: everyone reads the library; policy staff and admins simulate (as /v1/simulations).
    Page("GET", "/policy", ANYONE, 200),
    Page("GET", "/policy/show/{policy}", ANYONE, 200),
    Page("GET", "/policy/diff", ANYONE, 200),
    Page("GET", "/policy/reform", STAFF, 200),
    Page("POST", "/policy/reform/check", STAFF, 200),
    Page("POST", "/policy/reform", STAFF, 422, data={"dataset": "nope", "baseline": "jl-meihekou"}),
    Page("POST", "/policy/datasets/upload", STAFF, 422),  # no file chosen
    Page("GET", "/policy/jobs", STAFF, 200),
    Page("GET", "/policy/jobs/{job_id}", STAFF, 404),  # no such job
    Page("GET", "/policy/jobs/{job_id}/status", STAFF, 404),
    Page("GET", "/policy/jobs/{job_id}/files/{name}", STAFF, 404),
]


def page_routes(found: Web) -> set[tuple[str, str]]:
    """(method, path) of every route the web pages serve."""
    from fastapi.routing import iter_route_contexts

    return {
        (method, context.path)
        for context in iter_route_contexts(found.app.routes)
        if getattr(context, "endpoint", None) is not None and context.endpoint.__module__.startswith("web.")
        for method in (getattr(context.route, "methods", None) or ())
        if method != "HEAD"
    }


def test_the_table_has_a_row_for_every_page(web: Web) -> None:  # noqa: F811
    table = {(row.method, row.path) for row in TABLE}
    assert len(table) == len(TABLE), "a page has two rows"
    served = page_routes(web)
    assert sorted(served - table) == [], "pages with no row in TABLE: say who may open them"
    assert sorted(table - served) == [], "rows in TABLE for pages the app does not serve"
    assert not any(path.startswith("/v1") for _, path in served)
    assert not served & served_routes(web.app)  # the API's matrix leaves them to this one


def _call(client: TestClient, row: Page, ids: dict[str, str], token: str | None) -> Any:
    url = row.url(ids)
    if row.method == "GET":
        return client.get(url, headers={"Accept": "text/html"})
    data = dict(row.data)
    if token is not None:
        data["csrf_token"] = token
    return client.post(url, data=data, headers={"Accept": "text/html"})


def test_every_page_answers_every_role_as_the_table_says(web: Web) -> None:  # noqa: F811
    web.clock.now = web.clock.now.replace(year=2014, month=6, day=15)
    setl_id = web.api("POST", "/v1/settlements", "demo-desk", json=FAMILY[2]).json()["setl_id"]
    web.clock.now = web.clock.now.replace(month=7, day=2)
    ids = {**IDS, "setl_id": setl_id, "job_id": "0" * 16}
    clients = {role: web.sign_in(USER[role]) for role in ROLES}
    tokens = {role: csrf_of(clients[role].get("/policy").text) for role in ROLES}
    wrong: list[str] = []

    # Nobody signed in: to /login (with the page to come back to), and nothing is written.
    before = database_rows(web.engine)
    anonymous = web.client()
    for row in TABLE:
        if row.public:
            continue
        answer = _call(anonymous, row, ids, None)
        if answer.status_code != 303 or not answer.headers["location"].startswith("/login?next="):
            wrong.append(f"{row.method} {row.path} signed out: {answer.status_code} {answer.headers.get('location')}")
    # A role that may not: a 403 page in plain words.
    for row in TABLE:
        for role in sorted(set(ROLES) - row.allowed):
            answer = _call(clients[role], row, ids, tokens[role])
            if answer.status_code != 403 or "<h1>" not in answer.text:
                wrong.append(f"{row.method} {row.path} as {role}: {answer.status_code}, expected a 403 page")
    assert database_rows(web.engine) == before, "a refused page wrote something"

    # The roles that may: the row's answer. Signing out last, so that each session lasts the whole table.
    for row in sorted(TABLE, key=lambda r: r.path == "/logout"):
        for role in sorted(row.allowed):
            answer = _call(clients[role], row, ids, tokens[role])
            if answer.status_code != row.expect:
                wrong.append(f"{row.method} {row.path} as {role}: {answer.status_code}, expected {row.expect}")
    assert wrong == [], "\n".join(wrong)


def test_a_desk_sees_its_own_hospitals_settlements_only(web: Web) -> None:  # noqa: F811
    theirs = web.api("POST", "/v1/settlements", "demo-desk", json=FAMILY[2]).json()["setl_id"]
    meihekou = web.sign_in("demo-desk-mhk")
    token = csrf_of(meihekou.get("/desk").text)
    assert meihekou.get(f"/settlements/{theirs}").status_code == 404
    assert meihekou.get(f"/desk/settlements/{theirs}/reverse").status_code == 404
    refused = meihekou.post(
        f"/desk/settlements/{theirs}/reverse", data={"csrf_token": token, "confirm": "on", "reason": "not ours"}
    )
    assert refused.status_code == 404
    assert web.api("GET", f"/v1/settlements/{theirs}", "demo-desk").json()["reversed"] is None
    assert "MHK-2014-0612-001" not in meihekou.get("/desk/today").text
    assert web.sign_in("demo-finance").get(f"/settlements/{theirs}").status_code == 200
    assert web.sign_in("demo-desk").get(f"/settlements/{theirs}").status_code == 200


def test_every_form_refuses_a_missing_or_wrong_csrf_token(web: Web) -> None:  # noqa: F811
    setl_id = web.api("POST", "/v1/settlements", "demo-desk", json=FAMILY[2]).json()["setl_id"]
    ids = {**IDS, "setl_id": setl_id}
    before = database_rows(web.engine)
    for row in TABLE:
        if row.method != "POST" or row.public:
            continue
        role = sorted(row.allowed)[0]
        client = web.sign_in(USER[role])
        for token in (None, "forged", csrf_of(web.sign_in(USER[role]).get("/policy").text)):  # another session's
            answer = _call(client, row, ids, token)
            assert answer.status_code == 403, (row.path, token, answer.status_code)
            assert "<h1>" in answer.text
    # Even a valid form: a reversal with everything but the token reverses nothing.
    desk = web.sign_in("demo-desk")
    url = f"/desk/settlements/{setl_id}/reverse"
    assert desk.post(url, data={"confirm": "on", "reason": "forged"}).status_code == 403
    rows = database_rows(web.engine)
    # Signing in wrote sessions, attempts and its audit entries (moving the chain's head); nothing else changed.
    changed = {table for table in rows if rows[table] != before.get(table)}
    assert changed <= {"web_sessions", "login_attempts", "audit_log", "audit_chain"}, changed
    assert rows.get("reversals") == before.get("reversals")
