"""Settlements recorded before 0003 come through the later migrations whole: 0003 fills the reconciliation
columns from each settlement's stored claim and record, 0004 turns SQLite's floating-point money into whole
fen, and every row then equals what the current code writes for the same settlements (SQLite and
PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import MetaData, Table, create_engine, select
from sqlalchemy.orm import Session

from doudi import services
from ledger.migrations import config, upgrade
from ledger.models import LedgerEntry, Settlement
from ledger.repository import append_settlement
from settlement.claims import parse_claim

ROOT = Path(__file__).resolve().parents[2]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]


def test_settlements_recorded_before_0003_get_the_columns_the_current_code_writes(
    database_url: str, tmp_path: Path
) -> None:
    # The reference: today's code writing a year of a family's settlements.
    reference_url = f"sqlite:///{tmp_path / 'reference.sqlite3'}"
    upgrade(reference_url)
    reference = create_engine(reference_url)
    library = services.open_library()
    claims = [parse_claim(c) for c in FAMILY]
    records, _ = services.quote_claims(library, "jl-meihekou", claims)
    with Session(reference) as session, session.begin():
        for i, (claim, record) in enumerate(zip(claims, records, strict=True)):
            append_settlement(session, f"S{i}", claim, record, dt.datetime(2014, 12, 1, 9, i))
    with Session(reference) as session:
        expected_settlements = [_values(s) for s in session.scalars(select(Settlement).order_by(Settlement.setl_id))]
        expected_entries = [_values(e) for e in session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))]

    # The same rows in a database at 0002 (money as that schema stored it), then the upgrade to head.
    upgrade(database_url, "0002")
    old = create_engine(database_url)
    with old.begin() as connection:
        for name, rows in (("settlements", expected_settlements), ("ledger_entries", expected_entries)):
            table = Table(name, MetaData(), autoload_with=connection)
            connection.execute(table.insert(), [{k: v for k, v in row.items() if k in table.c} for row in rows])
    old.dispose()
    command.upgrade(config(database_url), "head")

    upgraded = create_engine(database_url)
    with Session(upgraded) as session:
        assert [
            _values(s) for s in session.scalars(select(Settlement).order_by(Settlement.setl_id))
        ] == expected_settlements
        assert [_values(e) for e in session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))] == expected_entries
    upgraded.dispose()
    reference.dispose()


def _values(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}
