"""The ledger's database for integration tests: migrated, and its writers serialised as the service
serialises them (on SQLite, queued in the process first: `doudi.desk.sqlite_connect_args`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine

from doudi.desk import serialise_sqlite_writes, sqlite_connect_args
from ledger.migrations import upgrade


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on `database_url` (each kind of database) at the newest schema."""
    upgrade(database_url)
    queued = sqlite_connect_args(busy_seconds=30) if database_url.startswith("sqlite") else {}
    engine = create_engine(database_url, connect_args=queued)
    serialise_sqlite_writes(engine)
    yield engine
    engine.dispose()
