"""Migration 0003 fills the reconciliation columns of settlements recorded before it, from each settlement's
stored claim and record: the backfilled rows equal what the current code writes for the same settlements
(on SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.orm import Session

from doudi import services
from ledger.migrations import config, upgrade
from ledger.models import LedgerEntry, Settlement
from ledger.repository import append_settlement
from settlement.claims import parse_claim

ROOT = Path(__file__).resolve().parents[2]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]
NEW_SETTLEMENT_COLUMNS = (
    "category",
    "insurance_scheme",
    "visit_type",
    "diagnosis",
    "admitted_on",
    "discharged_on",
    "fully_self_paid",
    "over_limit_self_paid",
    "pre_self_paid",
    "in_scope",
)
NEW_ENTRY_COLUMNS = ("stage", "bucket", "base", "quota_used", "quota_left")


def _rows(engine: Any, table: str, order: str) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(text(f"SELECT * FROM {table} ORDER BY {order}"))]


def test_settlements_recorded_before_0003_get_the_columns_the_current_code_writes(
    database_url: str, tmp_path: Path
) -> None:
    # The reference: today's code writing a year of a family's settlements, one reversed.
    reference_url = f"sqlite:///{tmp_path / 'reference.sqlite3'}"
    upgrade(reference_url)
    reference = create_engine(reference_url)
    library = services.open_library()
    claims = [parse_claim(c) for c in FAMILY]
    records, _ = services.quote_claims(library, "jl-meihekou", claims)
    with Session(reference) as session, session.begin():
        for i, (claim, record) in enumerate(zip(claims, records, strict=True)):
            append_settlement(session, f"S{i}", claim, record, dt.datetime(2014, 12, 1, 9, i))
    expected_settlements = _rows(reference, "settlements", "setl_id")
    expected_entries = _rows(reference, "ledger_entries", "id")

    # The same rows in a database at 0002, without the new columns; then the upgrade.
    upgrade(database_url, "0002")
    old = create_engine(database_url)
    old_settlement_columns = {c["name"] for c in inspect(old).get_columns("settlements")}
    old_entry_columns = {c["name"] for c in inspect(old).get_columns("ledger_entries")}
    with old.begin() as connection:
        for row in expected_settlements:
            values = {k: v for k, v in row.items() if k in old_settlement_columns}
            connection.execute(
                text(f"INSERT INTO settlements ({', '.join(values)}) VALUES ({', '.join(':' + k for k in values)})"),
                values,
            )
        for row in expected_entries:
            values = {k: v for k, v in row.items() if k in old_entry_columns}
            connection.execute(
                text(f"INSERT INTO ledger_entries ({', '.join(values)}) VALUES ({', '.join(':' + k for k in values)})"),
                values,
            )
    old.dispose()
    command.upgrade(config(database_url), "head")

    upgraded = create_engine(database_url)
    with Session(upgraded) as session:
        settlements = {s.setl_id: s for s in session.scalars(select(Settlement))}
        entries = {e.id: e for e in session.scalars(select(LedgerEntry))}
    with Session(reference) as session:
        for want in session.scalars(select(Settlement)):
            got = settlements[want.setl_id]
            assert {c: getattr(got, c) for c in NEW_SETTLEMENT_COLUMNS} == {
                c: getattr(want, c) for c in NEW_SETTLEMENT_COLUMNS
            }
        for want_entry in session.scalars(select(LedgerEntry)):
            got_entry = entries[want_entry.id]
            assert {c: getattr(got_entry, c) for c in NEW_ENTRY_COLUMNS} == {
                c: getattr(want_entry, c) for c in NEW_ENTRY_COLUMNS
            }, want_entry.tier
    upgraded.dispose()
    reference.dispose()
