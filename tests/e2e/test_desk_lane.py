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
from fastapi import HTTPException
from fastapi.testclient import TestClient
from starlette.responses import Response

from api import desk_lane, routes_desk
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
    assert a.status_code == b.status_code
    assert _headers(a) == _headers(b)
    assert a.content == b.content, (a.text, b.text)


def _headers(answer: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in answer.headers.multi_items() if k != "date"]


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


ELSEWHERE = [
    *((method, path) for method in ("GET", "HEAD", "OPTIONS", "PUT") for path in ("/v1/settlements", "/v1/quotes")),
    ("POST", "/v1/settlements/"),  # a trailing slash: the app's redirect
    ("GET", "/v1/settlements/"),
]


@pytest.mark.parametrize(("method", "path"), ELSEWHERE)
def test_the_lane_leaves_other_methods_and_paths_to_the_app(
    lane: tuple[TestClient, dict[str, str]], method: str, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, tokens = lane
    desk = _bearer(tokens["demo-desk"])
    send: Send = lambda c: c.request(method, path, json=stay("L-1"), headers=desk, follow_redirects=False)  # noqa: E731
    through_lane, through_route = _both(client, send, monkeypatch, laned=False)
    _same(through_lane, through_route)


def test_a_stopped_desk_is_answered_503_alike(
    lane: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, tokens = lane
    group = client.app.state.context.group  # type: ignore[attr-defined]
    group.close()  # as at shutdown: every later request is refused, nothing recorded
    send: Send = lambda c: c.post("/v1/settlements", json=stay("L-503"), headers=_bearer(tokens["demo-desk"]))  # noqa: E731
    through_lane, through_route = _both(client, send, monkeypatch)
    assert through_lane.status_code == 503 and through_lane.headers["retry-after"] == "1"
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
    route_path = desk_lane.route_path
    assert route_path({"path": "/doudi/v1/settlements", "root_path": "/doudi"}) == "/v1/settlements"
    assert route_path({"path": "/v1/settlements", "root_path": ""}) == "/v1/settlements"
    assert route_path({"path": "/v1/settlements", "root_path": "/v"}) == "/v1/settlements"  # not a whole segment
    assert route_path({"path": "/other/v1/settlements", "root_path": "/doudi"}) == "/other/v1/settlements"


class _Teapot(Exception):
    pass


class _Near(_Teapot):
    pass


def test_the_apps_handlers_answer_through_the_lane_as_through_the_route(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handlers as Starlette finds them: by the nearest class, by status code for an HTTPException, and
    synchronous ones (run in a thread); what none handles is the server-error middleware's 500."""
    files = services.open_library()
    app = create_app(postgres_url, files, clock=Clock(), archive=tmp_path / "a", simulations=tmp_path / "s")
    tokens = demo.seed(app.state.context.engine, app.state.context.catalogue, files, NOW)

    def teapot(_request: Any, _err: Exception) -> Response:  # synchronous
        return Response(b"base", status_code=418, headers={"x-handler": "base"})

    async def near(_request: Any, _err: Exception) -> Response:
        return Response(b"near", status_code=418, headers={"x-handler": "near"})

    async def by_status(_request: Any, _err: Exception) -> Response:
        return Response(b"by status", status_code=418, headers={"x-handler": "status"})

    app.add_exception_handler(_Teapot, teapot)
    app.add_exception_handler(_Near, near)
    app.add_exception_handler(418, by_status)
    raised: list[Exception] = []

    async def raising(_request: Any, _group: Any) -> Response:
        raise raised[-1]

    monkeypatch.setattr(desk_lane, "LANES", {"/v1/settlements": raising, "/v1/quotes": raising})
    monkeypatch.setattr(routes_desk, "queued_settlement", raising)
    with TestClient(app, raise_server_exceptions=False) as client:
        for err, expected in [
            (_Teapot(), b"base"),
            (_Near(), b"near"),
            (HTTPException(418), b"by status"),
            (RuntimeError("unhandled"), None),
        ]:
            raised.append(err)
            send: Send = lambda c: c.post("/v1/settlements", json=stay("L-1"), headers=_bearer(tokens["demo-desk"]))  # noqa: E731
            through_lane = send(client)
            with monkeypatch.context() as patched:
                patched.setattr(desk_lane, "LANES", {})
                through_route = send(client)
            _same(through_lane, through_route)
            assert through_lane.content == expected if expected else through_lane.status_code == 500
    app.state.context.close()
