"""On PostgreSQL, POST /v1/settlements and /v1/quotes are answered by `api.desk_lane` before the app's
routing: every answer, refusals above all, must be the one the FastAPI route gives. Each case is sent twice,
once through the lane and once with the lane standing aside (the route answers), and the two compared."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api import desk_lane
from api.app import create_app
from doudi import demo, services
from tests.e2e.conftest import NOW, Clock
from tests.e2e.helpers import stay

pytestmark = pytest.mark.postgres

Send = Callable[[TestClient], httpx.Response]


@pytest.fixture
def lane(postgres_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    files = services.open_library()
    app = create_app(
        postgres_url, files, clock=Clock(), archive=tmp_path / "archive", simulations=tmp_path / "simulations"
    )
    ctx = app.state.context
    assert ctx.group is not None, "the lane is PostgreSQL's: this database has no group desk"
    tokens = demo.seed(ctx.engine, ctx.catalogue, files, NOW)
    with TestClient(app) as client:
        yield client, tokens
    ctx.close()


def _both(
    client: TestClient, send: Send, monkeypatch: pytest.MonkeyPatch, laned: bool = True
) -> tuple[httpx.Response, httpx.Response]:
    """`send`'s answer through the lane (checked to have answered it, unless `laned` is False: refused before
    it), then with the lane standing aside."""
    answered: list[str] = []

    def counted(path: str, answering: desk_lane.Answering) -> desk_lane.Answering:
        async def answer(request: Any, group: Any) -> Any:
            answered.append(path)
            return await answering(request, group)

        return answer

    with monkeypatch.context() as patched:
        patched.setattr(desk_lane, "LANES", {path: counted(path, a) for path, a in desk_lane.LANES.items()})
        through_lane = send(client)
    assert bool(answered) == laned
    with monkeypatch.context() as patched:
        patched.setattr(desk_lane, "LANES", {})
        through_route = send(client)
    return through_lane, through_route


def _same(a: httpx.Response, b: httpx.Response) -> None:
    assert (a.status_code, a.headers.get("content-type"), a.headers.get("www-authenticate")) == (
        b.status_code,
        b.headers.get("content-type"),
        b.headers.get("www-authenticate"),
    )
    assert a.headers.get("retry-after") == b.headers.get("retry-after")
    assert a.content == b.content, (a.text, b.text)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


REFUSALS: dict[str, Callable[[dict[str, str]], Send]] = {
    "no token": lambda t: lambda c: c.post("/v1/settlements", json=stay("L-1")),
    "a token of another shape": lambda t: lambda c: c.post("/v1/settlements", json=stay("L-1"), headers=_bearer("x")),
    "an unknown token": lambda t: (
        lambda c: c.post("/v1/settlements", json=stay("L-1"), headers=_bearer(t["demo-desk"][:-4] + "AAAA"))
    ),
    "another role": lambda t: lambda c: c.post("/v1/settlements", json=stay("L-1"), headers=_bearer(t["demo-finance"])),
    "a body that is not JSON": lambda t: (
        lambda c: c.post("/v1/settlements", content=b"{not json", headers=_bearer(t["demo-desk"]))
    ),
    "a key given twice": lambda t: (
        lambda c: c.post(
            "/v1/settlements",
            content=b'{"claim_id": "L-1", "claim_id": "L-2"}',
            headers={**_bearer(t["demo-desk"]), "content-type": "application/json"},
        )
    ),
    "a missing field": lambda t: (
        lambda c: c.post(
            "/v1/settlements",
            json={k: v for k, v in stay("L-1").items() if k != "total"},
            headers=_bearer(t["demo-desk"]),
        )
    ),
    "an unregistered person": lambda t: (
        lambda c: c.post("/v1/settlements", json=stay("L-1", person_id="NOBODY"), headers=_bearer(t["demo-desk"]))
    ),
    "a NUL in the query": lambda t: (
        lambda c: c.post("/v1/settlements?x=%00", json=stay("L-1"), headers=_bearer(t["demo-desk"]))
    ),
    "a body over the limit": lambda t: (
        lambda c: c.post(
            "/v1/settlements",
            content=b" " * (5 * 1024 * 1024),
            headers={**_bearer(t["demo-desk"]), "content-type": "application/json"},
        )
    ),
    "a chunked body over the limit": lambda t: (
        lambda c: c.post(
            "/v1/settlements",
            content=iter([b" " * (3 * 1024 * 1024), b" " * (2 * 1024 * 1024)]),
            headers={**_bearer(t["demo-desk"]), "content-type": "application/json"},
        )
    ),
    "a quote without a token": lambda t: lambda c: c.post("/v1/quotes", json=stay("L-1")),
    "a quote of an unregistered person": lambda t: (
        lambda c: c.post("/v1/quotes", json=stay("L-1", person_id="NOBODY"), headers=_bearer(t["demo-desk"]))
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refusal_through_the_lane_is_the_routes(
    lane: tuple[TestClient, dict[str, str]], case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, tokens = lane
    # LimitBody, outside the lane, refuses a body whose declared length is over the limit.
    through_lane, through_route = _both(client, REFUSALS[case](tokens), monkeypatch, case != "a body over the limit")
    assert through_lane.status_code >= 400
    _same(through_lane, through_route)


def test_a_settlement_through_the_lane_is_repeated_and_refused_by_the_route_and_back(
    lane: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, tokens = lane
    desk = _bearer(tokens["demo-desk"])

    def settle(claim: dict[str, Any]) -> Send:
        return lambda c: c.post("/v1/settlements", json=claim, headers=desk)

    first = stay("LANE-1")
    recorded, repeated = _both(client, settle(first), monkeypatch)
    assert (recorded.status_code, repeated.status_code) == (201, 200)
    assert repeated.content == recorded.content

    other = stay("LANE-2", day="2014-07-02")
    with monkeypatch.context() as patched:  # recorded through the route, repeated through the lane
        patched.setattr(desk_lane, "LANES", {})
        by_route = settle(other)(client)
    by_lane = settle(other)(client)
    assert (by_route.status_code, by_lane.status_code) == (201, 200)
    assert by_lane.content == by_route.content

    conflict_lane, conflict_route = _both(client, settle({**first, "total": "9000.00"}), monkeypatch)
    assert conflict_lane.status_code == 409
    _same(conflict_lane, conflict_route)

    quote: Send = lambda c: c.post("/v1/quotes", json=stay("LANE-Q"), headers=desk)  # noqa: E731
    quoted_lane, quoted_route = _both(client, quote, monkeypatch)
    assert (quoted_lane.status_code, quoted_route.status_code) == (200, 200)
    assert json.loads(quoted_lane.content) == json.loads(quoted_route.content)


def test_the_lane_takes_only_the_two_posts() -> None:
    assert set(desk_lane.LANES) == {"/v1/settlements", "/v1/quotes"}
    assert desk_lane._route_path({"path": "/doudi/v1/settlements", "root_path": "/doudi"}) == "/v1/settlements"
    assert desk_lane._route_path({"path": "/v1/settlements", "root_path": ""}) == "/v1/settlements"


def test_a_problem_is_answered_by_the_handler_of_its_nearest_class() -> None:
    class Base(Exception):
        pass

    class Near(Base):
        pass

    def handler(_request: Any, _err: Exception) -> Any:
        raise AssertionError("not called here")

    def other(_request: Any, _err: Exception) -> Any:
        raise AssertionError("not called here")

    handlers: dict[Any, Any] = {Base: handler, Exception: other, 500: other}
    assert desk_lane.handler_for(handlers, Near()) is handler
    assert desk_lane.handler_for(handlers, ValueError()) is None  # only the server-error middleware's
