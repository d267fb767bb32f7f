"""The service benchmark analyses the register once it is filled (as autovacuum would after a bulk load) and
leaves the ledger, which grows during the run, to the planner's own estimate."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bench.service import REGISTER_TABLES, analyze
from ledger.migrations import upgrade


@pytest.mark.postgres
def test_the_register_is_analysed_and_the_ledger_is_not(postgres_url: str) -> None:
    upgrade(postgres_url)
    assert analyze(postgres_url)
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT relname, reltuples FROM pg_class WHERE relname = ANY(:names)"),
                {"names": [*REGISTER_TABLES, "ledger_entries", "settlements"]},
            ).all()
    finally:
        engine.dispose()
    never_analysed = {name for name, tuples in rows if tuples < 0}  # PostgreSQL's -1: no statistics yet
    assert {name for name, _ in rows} == {*REGISTER_TABLES, "ledger_entries", "settlements"}
    assert never_analysed == {"ledger_entries", "settlements"}


def test_on_sqlite_nothing_is_analysed(tmp_path: Path) -> None:
    assert not analyze(f"sqlite:///{tmp_path / 'doudi.sqlite3'}")
