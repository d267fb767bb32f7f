"""The reliability suite: fuzzing, crash recovery, load, hostile input and token lifetimes.

Every test here runs in two sizes. The bounded size is part of the normal test run (a few minutes of CI in
all); the long size (`./scripts/reliability --long`, or DOUDI_RELIABILITY_LONG=1) is what RELIABILITY.md
quotes. `sized(bounded, long)` picks the one in force.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from doudi import demo, services
from tests.conftest import _postgres_database
from tests.e2e.conftest import (
    NOW,
    Clock,
    Service,
    service,  # noqa: F401  (the HTTP service on each database, with demo tokens)
)

LONG = os.environ.get("DOUDI_RELIABILITY_LONG", "") not in ("", "0")
ROOT = Path(__file__).resolve().parents[2]


def sized(bounded: int, long: int) -> int:
    return long if LONG else bounded


def results_dir(tmp_path: Path) -> Path:
    """Where figures go: bench/results/ when DOUDI_RELIABILITY_RESULTS names it (./scripts/reliability does),
    else the test's scratch folder (a CI run does not rewrite the repository's figures)."""
    named = os.environ.get("DOUDI_RELIABILITY_RESULTS")
    return Path(named) if named else tmp_path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One demo service per database for a whole module, for tests that each leave the database as they
    found it (or check only what they add): seeding a database costs seconds."""
    folder = tmp_path_factory.mktemp("shared")
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{folder / 'doudi.sqlite3'}"])
    else:
        urls = _postgres_database()
    url = next(urls)
    files = services.open_library()
    clock = Clock()
    app = create_app(url, files, clock=clock, archive=folder / "archive")
    ctx = app.state.context
    tokens = demo.seed(ctx.engine, ctx.catalogue, files, NOW)
    yield Service(TestClient(app), tokens, clock)
    ctx.close()
    for _ in urls:  # drops the PostgreSQL database
        pass
