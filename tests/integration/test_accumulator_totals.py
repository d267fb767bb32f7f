"""The year-to-date totals the database keeps as ledger entries are appended (revision 0009), on SQLite and
PostgreSQL: they equal the entries' sums after settlements, a failed one and reversals, whoever appends; a
database migrated with a ledger already in it starts from those sums; and a total changed behind the
ledger's back is found."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.orm import Session

from doudi import services
from doudi.desk import reverse_settlement, settle_claim
from ledger.migrations import config, upgrade
from ledger.models import AccumulatorTotal, LedgerEntry
from ledger.repository import ENTRIES, ledger_sums, snapshot, totals_differences
from settlement.claims import parse_claim

ROOT = Path(__file__).resolve().parents[2]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]
NOW = dt.datetime(2014, 12, 1, 9, 0)
POLICY = "jl-meihekou"


def _entities() -> list[str]:
    return sorted({c["person_id"] for c in FAMILY} | {c["household_id"] for c in FAMILY})


def _settle_the_family(engine: Engine) -> list[str]:
    library = services.open_library()
    return [settle_claim(engine, library, POLICY, parse_claim(c), NOW).setl_id for c in FAMILY]


def _read(engine: Engine) -> tuple[dict, dict, list[str]]:  # type: ignore[type-arg]
    with Session(engine) as session:
        return (
            snapshot(session, _entities(), [2013, 2014, 2015]),
            ledger_sums(session, _entities(), [2013, 2014, 2015]),
            totals_differences(session),
        )


def test_the_totals_are_the_entries_sums_after_settlements_and_reversals(engine: Engine) -> None:
    setl_ids = _settle_the_family(engine)
    kept, summed, differences = _read(engine)
    assert kept and kept == summed and differences == []
    assert any(value.paid > 0 for value in kept.values())

    for setl_id in setl_ids[::2]:
        reverse_settlement(engine, setl_id, "entered twice", NOW)
    kept, summed, differences = _read(engine)
    assert kept == summed and differences == []

    for setl_id in setl_ids[1::2]:
        reverse_settlement(engine, setl_id, "entered twice", NOW)
    kept, _, differences = _read(engine)
    assert differences == []
    assert set(kept.values()) == {(0, 0, 0)}  # every stay given back: each row kept, at nothing


def test_an_entry_appended_outside_the_desk_is_counted_and_one_rolled_back_is_not(engine: Engine) -> None:
    setl_id = _settle_the_family(engine)[0]
    with Session(engine) as session:
        entry = session.scalars(select(LedgerEntry).where(LedgerEntry.accumulator.is_not(None))).first()
        assert entry is not None
        key = (entry.entity, entry.accumulator, entry.policy_year)
        before = session.get(AccumulatorTotal, key)
        assert before is not None
        paid_before = before.paid
    row = {c.name: getattr(entry, c.key) for c in ENTRIES.columns if c.name != "id"}
    row.update(setl_id=setl_id, kind="settlement", paid_delta=entry.paid_delta + 1, claims_delta=1)

    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        session.execute(insert(ENTRIES), row)
        raise RuntimeError("the transaction fails after the entry")
    with Session(engine) as session:
        assert session.get(AccumulatorTotal, key).paid == paid_before  # type: ignore[union-attr]
        assert totals_differences(session) == []

    with Session(engine) as session, session.begin():
        session.execute(insert(ENTRIES), [row, row])  # one statement of two entries of one accumulator
    with Session(engine) as session:
        total = session.get(AccumulatorTotal, key)
        assert total is not None and total.paid == paid_before + 2 * row["paid_delta"]
        assert totals_differences(session) == []


def test_a_total_changed_behind_the_ledgers_back_is_found(engine: Engine) -> None:
    _settle_the_family(engine)
    with Session(engine) as session, session.begin():
        total = session.scalars(select(AccumulatorTotal).order_by(AccumulatorTotal.entity)).first()
        assert total is not None
        key = (total.entity, total.accumulator, total.policy_year)
        session.execute(
            update(AccumulatorTotal)
            .where(
                AccumulatorTotal.entity == key[0],
                AccumulatorTotal.accumulator == key[1],
                AccumulatorTotal.policy_year == key[2],
            )
            .values(paid=AccumulatorTotal.paid + 1)
        )
    with Session(engine) as session:
        differences = totals_differences(session)
    assert len(differences) == 1
    assert f"{key[1]} of {key[0]} in {key[2]}" in differences[0]


def test_a_ledger_migrated_to_the_totals_starts_from_its_sums(database_url: str, engine: Engine) -> None:
    _settle_the_family(engine)
    kept, _, _ = _read(engine)
    engine.dispose()
    command.downgrade(config(database_url), "0008")  # the totals and their trigger gone; the ledger stays
    with engine.connect() as connection:
        tables = set(connection.execute(text(_TABLES[engine.dialect.name])).scalars())
    assert "accumulator_totals" not in tables and "ledger_entries" in tables
    engine.dispose()
    upgrade(database_url)
    again, summed, differences = _read(engine)
    assert again == kept == summed and differences == []


_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()",
}
