"""The ledger on SQLite and PostgreSQL: migrations, exact money, append-only entries, and year-to-date
figures derived from the entries that equal the engine's own."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from doudi import services
from ledger.migrations import upgrade
from ledger.models import LedgerEntry, Reversal, Settlement
from ledger.repository import append_settlement, request_digest, snapshot
from policies.compile import compile_policy
from settlement.claims import ClaimBatch, parse_claims
from settlement.explain import explain
from settlement.waterfall import settle

ROOT = Path(__file__).resolve().parents[2]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]
WHEN = dt.datetime(2014, 12, 31, 12, 0)


def test_migrations_create_the_ledger(database_url: str) -> None:
    upgrade(database_url)
    engine = create_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"hospitals", "people", "category_periods", "settlements", "reversals", "ledger_entries"} <= tables


def test_settling_one_by_one_from_the_ledger_equals_the_engines_year(database_url: str) -> None:
    """Each claim is settled with the year-to-date figures read back from the ledger, as a desk will; the
    sums in the ledger then equal what the engine computes for the whole family's year at once."""
    upgrade(database_url)
    library = services.open_library()
    claims, errors = parse_claims(FAMILY)
    assert errors == []
    engine = create_engine(database_url)
    records = []
    for claim in claims:
        policy = library.get("jl-meihekou", claim.discharged_on)
        plan = compile_policy(policy, library)
        year = claim.discharged_on.year
        with Session(engine) as session, session.begin():
            start = snapshot(session, [claim.person_id, claim.household_id], [year])
            record = explain(settle(plan, ClaimBatch.from_claims([claim]), start), 0)
            append_settlement(session, uuid.uuid4().hex, claim, record, WHEN)
        records.append(record)
    expected_records, expected_state = services.quote_claims(library, "jl-meihekou", claims)
    assert [r["tiers"] for r in records] == [r["tiers"] for r in expected_records]
    with Session(engine) as session:
        people = {c.person_id for c in claims} | {c.household_id for c in claims}
        assert snapshot(session, people, [2013, 2014]) == expected_state
        total_paid = session.scalar(select(LedgerEntry.amount).where(LedgerEntry.tier == "grants").limit(1))
        assert isinstance(total_paid, Decimal)  # money comes back exact, never as a float
        stored = session.scalars(select(Settlement.fund_paid)).all()
        assert sum(stored, Decimal(0)) == sum((Decimal(r["fund_paid"]) for r in records), Decimal(0))
    engine.dispose()


def test_a_settlement_key_is_recorded_once_and_a_failed_write_leaves_nothing(database_url: str) -> None:
    upgrade(database_url)
    library = services.open_library()
    claims, _ = parse_claims(FAMILY[1:2])
    claim = claims[0]
    plan = compile_policy(library.get("jl-meihekou@2014"), library)
    record = explain(settle(plan, ClaimBatch.from_claims([claim])), 0)
    engine = create_engine(database_url)
    with Session(engine) as session, session.begin():
        append_settlement(session, "S1", claim, record, WHEN)
    with pytest.raises(IntegrityError), Session(engine) as session, session.begin():
        append_settlement(session, "S2", claim, record, WHEN)  # same medins_setl_id
    with Session(engine) as session:
        assert session.scalars(select(Settlement.setl_id)).all() == ["S1"]
        assert set(session.scalars(select(LedgerEntry.setl_id)).all()) == {"S1"}
        assert session.scalar(select(Settlement.request_sha256)) == request_digest(claim)
    with Session(engine) as session, session.begin():
        session.add(Reversal(setl_id="S1", reason="wrong stay", reversed_at=WHEN))
    with pytest.raises(IntegrityError), Session(engine) as session, session.begin():
        session.add(Reversal(setl_id="S1", reason="again", reversed_at=WHEN))  # a second reversal is refused
    engine.dispose()
