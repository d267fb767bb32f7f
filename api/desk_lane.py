"""The billing desk's two busiest requests taken straight to the group desk, past the app's routing.

On PostgreSQL, `POST /v1/settlements` and `POST /v1/quotes` are answered by the group desk
(doudi/group_desk.py); all their route does is read the token and the body, queue them and send the answer.
Between the server and that route stand the app's route table and FastAPI's handling of a request (the
route looked up among some hundred, its dependencies solved, an exit stack and an exception wrapper set up
and torn down): measured under 16 desks, some 30 % of the event loop's busy time per settlement, with the
group thread waiting for the requests it is to settle (BENCHMARKS.md).

`DeskLane` sits in the app's middleware, inside `LimitBody` (which refuses an oversized body as it does
for every route), and answers those two requests itself with the functions their routes use
(`routes_desk.queued_settlement`, `routes_desk.queued_quote`); a problem is answered by the app's own
exception handlers, through Starlette's own exception middleware as on the app's way to its routes, and
anything they do not handle goes on to the server-error middleware as it would from the route. Every other
request, and these two on SQLite (no group desk), goes to the app. The routes in `routes_desk.py` stay
what the OpenAPI document describes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.routes_desk import queued_quote, queued_settlement
from doudi.group_desk import GroupDesk

Answering = Callable[[Request, GroupDesk], Awaitable[Response]]

LANES: dict[str, Answering] = {"/v1/settlements": queued_settlement, "/v1/quotes": queued_quote}
"""The paths taken past the app (their method: POST)."""


class DeskLane:
    def __init__(self, app: ASGIApp, group: GroupDesk | None) -> None:
        self.app = app
        self.group = group
        self._answering: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lane = scope["type"] == "http" and scope["method"] == "POST" and route_path(scope) in LANES
        if not lane or self.group is None:
            await self.app(scope, receive, send)
            return
        if self._answering is None:
            # The app's handlers as its own exception middleware holds them (built, like the app's middleware,
            # at the first request): all but the server-error middleware's (500, Exception), so that what they
            # do not answer goes on to it, as from the route.
            app = scope["app"]
            handlers = {k: h for k, h in app.exception_handlers.items() if k not in (500, Exception)}
            self._answering = ExceptionMiddleware(self._answer, handlers=handlers, debug=app.debug)
        await self._answering(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.group is not None  # checked before coming here
        response = await LANES[route_path(scope)](Request(scope, receive), self.group)
        await response(scope, receive, send)


def route_path(scope: Scope) -> str:
    """The path the app's router matches: without the prefix a proxy serves the app under (`root_path`), when
    the path starts with it as a whole segment."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    rest = path[len(root) :]
    return rest if rest.startswith("/") or not rest else path
