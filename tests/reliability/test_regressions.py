"""One test per fault the reliability suite found in the service, each reproducing the request that failed.

1. A month with no settlements: its statement files (and closing it) raised while summing an empty column
   of the workbook's totals row (500).
2. A download or a match whose hospital_id was not Latin-1 text raised building the Content-Disposition
   header (500); a hospital id is now checked against the register's id pattern (422).
3. NUL in a path or query parameter reached PostgreSQL, which cannot read it (500); NUL and other
   control or invisible characters in any parameter or JSON text are refused on their field (422).
4. A statement read while desks were settling could come out unbalanced on PostgreSQL (409 on the files,
   "balanced": false), its three queries seeing three different moments; they now share one snapshot.
5. The audit log's `before` cursor took any integer; past 2**31 - 1 PostgreSQL refused it (500).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import create_engine, event
from sqlalchemy.orm import Session

from doudi.desk import settle_claim
from doudi.registry import complete_claim
from settlement.claims import parse_claim
from tests.e2e.conftest import Service
from tests.e2e.helpers import engine_of
from tests.reliability import workload


def test_an_empty_months_statement_files_and_close(service: Service) -> None:
    finance = service.auth("demo-finance")
    for name in ("summary.csv", "statement.xlsx", "detail.csv"):
        answer = service.client.get(f"/v1/reconciliation/2013-02/files/{name}", headers=finance)
        assert answer.status_code == 200, (name, answer.text[:300])
    by_hospital = service.client.get(
        "/v1/reconciliation/2014-12/files/statement.xlsx", params={"hospital_id": "LY-H002"}, headers=finance
    )
    assert by_hospital.status_code == 200
    closed = service.client.post("/v1/reconciliation/2013-02/close", headers=finance)
    assert closed.status_code == 201, closed.text


def test_a_hospital_id_that_is_not_an_id_is_refused_not_a_500(service: Service) -> None:
    finance = service.auth("demo-finance")
    for value in ("°\U00033e560/?±F5P", "医院", "a/b"):
        download = service.client.get(
            "/v1/reconciliation/2014-12/files/summary.csv", params={"hospital_id": value}, headers=finance
        )
        assert download.status_code == 422 and download.json()["errors"][0]["field"] == "hospital_id"
        match = service.client.post(
            "/v1/reconciliation/2014-11/match",
            params={"hospital_id": value, "format": "csv"},
            content=b"x",
            headers=finance,
        )
        assert match.status_code == 422 and match.json()["errors"][0]["field"] == "hospital_id"


def test_nul_in_a_path_or_query_parameter_is_refused_on_it(service: Service) -> None:
    admin, desk, finance = service.auth("demo-admin"), service.auth("demo-desk"), service.auth("demo-finance")
    for url, headers, field in (
        ("/v1/people/%00", admin, "person_id"),
        ("/v1/settlements/a%00b", desk, "setl_id"),
        ("/v1/settlements?hospital_id=%00", finance, "hospital_id"),
        ("/v1/hospitals/MHK%00", admin, "hospital_id"),
    ):
        answer = service.client.get(url, headers=headers)
        assert answer.status_code == 422, (url, answer.text)
        assert [e["field"] for e in answer.json()["errors"]] == [field]
    person = {"household_id": "H", "name": "a\x00b", "insurance_scheme": "resident", "region": "220581"}
    stored = service.client.put("/v1/people/NUL-P", json=person, headers=admin)
    assert stored.status_code == 422 and stored.json()["errors"][0]["field"] == "name"


@pytest.mark.postgres
def test_a_statement_read_while_a_desk_settles_still_balances(service: Service, database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite read transactions are snapshots already")
    app = service.client.app
    ctx = app.state.context  # type: ignore[attr-defined]
    other = create_engine(database_url)
    armed = {"on": True}

    def settle_elsewhere() -> None:
        with Session(other) as session:
            claim = workload.stay(random.Random(1), "BETWEEN-QUERIES")
            completed, policy_id = complete_claim(session, claim, "JL-PROV-H001", service.clock())
            library = ctx.catalogue.library(session)
        settle_claim(other, library, policy_id, parse_claim(completed), service.clock())

    @event.listens_for(engine_of(service), "before_cursor_execute")
    def _between(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The month's settlements are read; before its ledger entries are, another desk settles.
        if armed["on"] and "FROM ledger_entries" in statement and "settled_at" in statement:
            armed["on"] = False
            settle_elsewhere()

    desk = service.auth("demo-desk")
    first = service.client.post("/v1/settlements", json=workload.stay(random.Random(2), "BEFORE"), headers=desk)
    assert first.status_code == 201
    answer = service.client.get("/v1/reconciliation/2014-12/files/summary.csv", headers=service.auth("demo-finance"))
    assert not armed["on"], "the settlement between the statement's queries did not happen"
    assert answer.status_code == 200, answer.text[:500]
    other.dispose()


def test_an_audit_cursor_past_the_column_is_refused_not_a_500(service: Service) -> None:
    admin = service.auth("demo-admin")
    answer = service.client.get("/v1/audit", params={"before": 355687428096000}, headers=admin)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "before"
    assert service.client.get("/v1/audit", params={"before": 2**31 - 1}, headers=admin).status_code == 200
