"""Token lifetimes through HTTP, on SQLite and PostgreSQL: a token stops working at the very moment it
expires (api_tokens.expires_at) and on the very next request after it is revoked, whichever way it was
revoked (the API, the command line, another connection writing the table), and a refused token writes
nothing. tests/e2e/test_access.py holds the role x route matrix; this is its time dimension."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update
from sqlalchemy.orm import Session

from doudi import accounts
from ledger.models import ApiToken
from tests.e2e.conftest import NOW, Service
from tests.e2e.helpers import database_rows, engine_of, stay
from tests.e2e.test_access import TABLE, bearer, call

IDS = {"person_id": "MHK-P-0104", "hospital_id": "MHK-H001", "region": "220581", "policy": "jl-meihekou@2014"}


def issue(service: Service, user: str, lifetime: dt.timedelta | None) -> str:
    with Session(engine_of(service)) as session, session.begin():
        return accounts.issue_token(session, user, service.clock(), lifetime)


def test_a_token_works_until_the_instant_it_expires_and_never_after(service: Service) -> None:
    client = service.client
    token = issue(service, "demo-desk", dt.timedelta(hours=8))
    expires = NOW + dt.timedelta(hours=8)
    assert client.get("/v1/settlements", headers=bearer(token)).status_code == 200
    service.clock.now = expires - dt.timedelta(microseconds=1)
    assert client.get("/v1/settlements", headers=bearer(token)).status_code == 200
    service.clock.now = expires
    answer = client.get("/v1/settlements", headers=bearer(token))
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert answer.headers["content-type"].startswith("application/problem+json")
    service.clock.now = expires + dt.timedelta(days=365)
    assert client.get("/v1/settlements", headers=bearer(token)).status_code == 401
    # A token without an end date still works a year on; the expired one writes nothing.
    assert client.get("/v1/settlements", headers=service.auth("demo-desk")).status_code == 200
    before = database_rows(engine_of(service))
    refused = client.post("/v1/settlements", json=stay("EXPIRED-1"), headers=bearer(token))
    assert refused.status_code == 401
    assert database_rows(engine_of(service)) == before


def test_an_expired_token_is_refused_on_every_route_that_needs_one(service: Service) -> None:
    """Every route of the matrix, with an admin's and a desk's expired token: 401, and nothing written."""
    admin = issue(service, "demo-admin", dt.timedelta(minutes=5))
    desk = issue(service, "demo-desk", dt.timedelta(minutes=5))
    service.clock.now = NOW + dt.timedelta(minutes=5)
    ids = {**IDS, "setl_id": "0" * 32, "name": "demo-policy", "month": "2014-11"}
    before = database_rows(engine_of(service))
    wrong = []
    for row in TABLE:
        if "public" in row.allowed:
            continue
        for token in (admin, desk):
            answer = call(service, row, bearer(token), ids)
            if answer.status_code != 401:
                wrong.append(f"{row.method} {row.path}: {answer.status_code}")
    assert wrong == []
    assert database_rows(engine_of(service)) == before


def test_revocation_by_any_route_takes_effect_on_the_next_request(service: Service) -> None:
    client, admin = service.client, service.auth("demo-admin")
    # Through the API: one token by id.
    one = issue(service, "demo-finance", None)
    assert client.get("/v1/reconciliation/months", headers=bearer(one)).status_code == 200
    revoked = client.post("/v1/users/demo-finance/revoke", json={"token_id": accounts.token_id_of(one)}, headers=admin)
    assert revoked.json()["revoked"] == 1
    assert client.get("/v1/reconciliation/months", headers=bearer(one)).status_code == 401
    # Another connection writes revoked_at (as `doudi users revoke` on the server does): no cache to wait out.
    other = issue(service, "demo-desk", None)
    assert client.get("/v1/settlements", headers=bearer(other)).status_code == 200
    with Session(engine_of(service)) as session, session.begin():
        session.execute(
            update(ApiToken).where(ApiToken.token_id == accounts.token_id_of(other)).values(revoked_at=service.clock())
        )
    assert client.get("/v1/settlements", headers=bearer(other)).status_code == 401
    # An admin revoking their own tokens locks themselves out at once, and the revocation is recorded.
    mine = issue(service, "demo-admin", None)
    assert client.post("/v1/users/demo-admin/revoke", json={}, headers=bearer(mine)).json()["revoked"] == 2
    assert client.get("/v1/users", headers=bearer(mine)).status_code == 401
    assert client.get("/v1/users", headers=admin).status_code == 401


def test_a_revoked_token_cannot_be_revived_by_a_new_one(service: Service) -> None:
    """Issuing a user a new token leaves the revoked one revoked; expiry and revocation are per token."""
    client, admin = service.client, service.auth("demo-admin")
    old = issue(service, "demo-policy", None)
    client.post("/v1/users/demo-policy/revoke", json={"token_id": accounts.token_id_of(old)}, headers=admin)
    new = client.post("/v1/users/demo-policy/tokens", headers=admin).json()["token"]
    assert client.get("/v1/policies", headers=bearer(new)).status_code == 200
    assert client.get("/v1/policies", headers=bearer(old)).status_code == 401
