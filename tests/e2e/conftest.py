"""The HTTP service on a fresh database of each kind, with the demo region seeded and a token per demo user."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from doudi import demo, services

NOW = dt.datetime(2014, 12, 1, 9, 0)


@dataclass
class Service:
    client: TestClient
    tokens: dict[str, str]  # demo user -> token

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


@pytest.fixture
def service(database_url: str) -> Service:
    files = services.open_library()
    app = create_app(database_url, files, clock=lambda: NOW)
    ctx = app.state.context
    tokens = demo.seed(ctx.engine, ctx.catalogue, files, NOW)
    return Service(TestClient(app), tokens)
