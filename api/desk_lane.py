"""The billing desk's two busiest requests taken straight to the group desk, past the app's routing.

On PostgreSQL, `POST /v1/settlements` and `POST /v1/quotes` are answered by the group desk
(doudi/group_desk.py); all their route does is read the token and the body, queue them and send the answer.
Between the server and that route stand the app's route table and FastAPI's handling of a request (the
route looked up among some hundred, its dependencies solved, an exit stack and an exception wrapper set up
and torn down): measured under 16 desks, about a quarter of the event loop's time per settlement, with the
group thread waiting for the requests it is to settle (BENCHMARKS.md).

`DeskLane` sits in the app's middleware, inside `LimitBody` (which refuses an oversized body as it does
for every route), and answers those two requests itself with the functions their routes use
(`routes_desk.queued_settlement`, `routes_desk.queued_quote`); a problem is answered by the app's own
exception handlers, looked up as Starlette's exception middleware looks them up, and anything they do not
handle goes on to the server-error middleware as it would from the route. Every other request, and these
two on SQLite (no group desk), goes to the app. The routes in `routes_desk.py` stay what the OpenAPI
document describes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.routes_desk import queued_quote, queued_settlement
from doudi.group_desk import GroupDesk

Answering = Callable[[Request, GroupDesk], Awaitable[Response]]

LANES: dict[str, Answering] = {"/v1/settlements": queued_settlement, "/v1/quotes": queued_quote}
"""The paths taken past the app (their method: POST)."""

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


class DeskLane:
    def __init__(self, app: ASGIApp, group: GroupDesk | None) -> None:
        self.app = app
        self.group = group

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answering = LANES.get(_route_path(scope)) if scope["type"] == "http" and scope["method"] == "POST" else None
        if answering is None or self.group is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await answering(request, self.group)
        except Exception as err:
            handler = handler_for(scope["app"].exception_handlers, err)
            if handler is None:
                raise  # to the server-error middleware, as from the route
            response = await handler(request, err)
        await response(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the app's router would match: without the prefix a proxy serves the app under."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def handler_for(handlers: Mapping[Any, ExceptionHandler], err: Exception) -> ExceptionHandler | None:
    """The app's handler for `err`: the one registered for the nearest of its classes, as Starlette's exception
    middleware finds it. None for what only the server-error middleware answers (`Exception`, 500)."""
    for kind in type(err).__mro__:
        if kind is Exception:
            return None
        if kind in handlers:
            return handlers[kind]
    return None
