"""The desk's settle and reverse on SQLite and PostgreSQL: a retry never pays twice, a key with other
content is refused, a reversal gives back every accumulator and cannot be repeated, and concurrent desks
never spend the same cap twice."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from doudi import services
from doudi.desk import (
    Conflict,
    NotFound,
    reverse_settlement,
    settle_claim,
)
from ledger.models import LedgerEntry, Settlement
from ledger.repository import snapshot
from settlement.claims import parse_claim

ROOT = Path(__file__).resolve().parents[2]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]
NOW = dt.datetime(2014, 12, 1, 9, 0)


def _rows(engine) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with Session(engine) as session:
        return session.scalar(select(func.count(Settlement.setl_id))), session.scalar(
            select(func.count(LedgerEntry.id))
        )


def test_a_retry_returns_the_first_result_and_records_nothing(engine) -> None:  # type: ignore[no-untyped-def]
    library = services.open_library()
    claim = parse_claim(FAMILY[2])
    first = settle_claim(engine, library, "jl-meihekou", claim, NOW)
    rows = _rows(engine)
    again = settle_claim(engine, library, "jl-meihekou", claim, NOW)
    assert first.created and not again.created
    assert again.setl_id == first.setl_id and again.record == first.record
    assert _rows(engine) == rows
    changed = parse_claim({**FAMILY[2], "total": "236000.01"})
    with pytest.raises(Conflict, match="already used for a different claim"):
        settle_claim(engine, library, "jl-meihekou", changed, NOW)
    assert _rows(engine) == rows


def test_a_reversal_gives_back_every_accumulator_once(engine) -> None:  # type: ignore[no-untyped-def]
    library = services.open_library()
    claim = parse_claim(FAMILY[2])
    people = [claim.person_id, claim.household_id]
    with Session(engine) as session:
        before = snapshot(session, people, [2014])
    outcome = settle_claim(engine, library, "jl-meihekou", claim, NOW)
    with Session(engine) as session:
        assert snapshot(session, people, [2014]) != before
    reverse_settlement(engine, outcome.setl_id, "wrong stay", NOW)
    with Session(engine) as session:
        after = {k: v for k, v in snapshot(session, people, [2014]).items() if v != (0, 0, 0)}
    assert after == before
    with pytest.raises(Conflict, match="already reversed"):
        reverse_settlement(engine, outcome.setl_id, "again", NOW)
    with pytest.raises(NotFound):
        reverse_settlement(engine, "nope", "x", NOW)


def test_concurrent_desks_never_spend_a_cap_twice(engine) -> None:  # type: ignore[no-untyped-def]
    """Eight stays of one person settled at once from eight threads: the basic-insurance annual cap
    (100,000 yuan in jl-resident-insurance@2012) holds, and every stay is recorded exactly once."""
    library = services.open_library()
    template = FAMILY[2]
    claims = [
        parse_claim({**template, "claim_id": f"MHK-CONC-{i}", "settled_at": f"2014-06-12T10:2{i}:00", "grants": []})
        for i in range(8)
    ]
    errors: list[BaseException] = []

    def desk(i: int) -> None:
        try:
            settle_claim(engine, library, "jl-meihekou", claims[i], NOW)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=desk, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Session(engine) as session:
        paid = session.scalar(select(func.sum(LedgerEntry.amount)).where(LedgerEntry.tier == "resident_basic"))
        assert paid == 100_000
        assert session.scalar(select(func.count(Settlement.setl_id))) == 8
