"""The HTTP service on a fresh database of each kind, with the demo region seeded and a token per demo user."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from doudi import demo, services

NOW = dt.datetime(2014, 12, 1, 9, 0)


class Clock:
    """The service's clock, which a test may move (settlement times may not lie in its future)."""

    def __init__(self, now: dt.datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Service:
    client: TestClient
    tokens: dict[str, str]  # demo user -> token
    clock: Clock

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Service:
    files = services.open_library()
    clock = Clock()
    # Archive and simulation folders of the test's own: never the checkout's var/ (on PostgreSQL there is no
    # database file beside which they would go).
    app = create_app(
        database_url, files, clock=clock, archive=tmp_path / "archive", simulations=tmp_path / "simulations"
    )
    ctx = app.state.context
    tokens = demo.seed(ctx.engine, ctx.catalogue, files, NOW)
    return Service(TestClient(app), tokens, clock)
