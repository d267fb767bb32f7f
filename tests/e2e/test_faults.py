"""The database connection dropped in the middle of a settlement (PostgreSQL kills the backend, as it does
when the server restarts or a network path fails): the desk gets 503 with Retry-After, nothing of the
settlement is recorded, and the retry with the same settlement key settles it once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.orm import Session

from ledger.models import AuditEntry, LedgerEntry, Settlement
from tests.e2e.conftest import Service

ROOT = Path(__file__).resolve().parents[2]
LEUKAEMIA = (ROOT / "examples/meihekou-leukaemia.json").read_text(encoding="utf-8")

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """Only PostgreSQL: the fault is a server killing a connection."""
    return postgres_url


def _recorded(engine: Any) -> tuple[int, int, int]:
    with Session(engine) as session:
        return (
            session.scalar(select(func.count()).select_from(Settlement)) or 0,
            session.scalar(select(func.count()).select_from(LedgerEntry)) or 0,
            session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action.like("settlement%")))
            or 0,
        )


def test_a_connection_killed_mid_settlement_is_a_503_and_the_retry_settles_once(
    service: Service, database_url: str
) -> None:
    context = service.client.app.state.context  # type: ignore[attr-defined]
    engine = context.engine
    killer = create_engine(database_url, isolation_level="AUTOCOMMIT")
    armed = {"on": True}

    def kill(pid: int) -> None:
        armed["on"] = False
        with killer.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    # POST /v1/settlements on PostgreSQL goes through the group desk (doudi/group_desk.py): the connection
    # is cut once the settlement and its ledger entries are written and before the audit entry and commit.
    def _kill_before_chain(step: str, connection: Any) -> None:
        if armed["on"] and step == "chain":
            kill(connection.info.backend_pid)

    context.group.before_step = _kill_before_chain

    @event.listens_for(engine, "before_cursor_execute")
    def _kill_own_backend(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # One at a time (the national 2304, the pages): after the settlement row and before its entries.
        if armed["on"] and statement.lstrip().upper().startswith("INSERT INTO LEDGER_ENTRIES"):
            kill(connection.connection.dbapi_connection.info.backend_pid)

    before = _recorded(engine)
    desk = service.auth("demo-desk")
    dropped = service.client.post("/v1/settlements", content=LEUKAEMIA, headers=desk)
    assert not armed["on"], "the connection was killed"
    assert dropped.status_code == 503, dropped.text
    assert dropped.headers["content-type"].startswith("application/problem+json")
    assert dropped.headers["retry-after"] == "1"
    assert "nothing was recorded" in dropped.json()["detail"]
    assert _recorded(engine) == before

    retried = service.client.post("/v1/settlements", content=LEUKAEMIA, headers=desk)
    assert retried.status_code == 201
    again = service.client.post("/v1/settlements", content=LEUKAEMIA, headers=desk)
    assert again.status_code == 200 and again.json() == retried.json()
    settlements, entries, audited = _recorded(engine)
    assert (settlements, audited) == (before[0] + 1, before[2] + 1)
    assert entries > before[1]
    assert json.loads(LEUKAEMIA)["claim_id"] == retried.json()["claim_id"]
    context.group.before_step = None
    killer.dispose()
