"""The web pages for desk clerks, finance and policy staff, served by the same FastAPI app as the API.

Rendered on the server (Jinja2) with a little plain JavaScript where it helps; every asset ships in this
package (hospitals' networks are closed). `install(app)` mounts the pages at `/` and the assets at
`/static`; the API stays under `/v1`.
"""

from __future__ import annotations

import inspect
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.responses import Response


def install(app: FastAPI) -> None:
    from web import routes_admin, routes_auth, routes_desk, routes_finance, routes_policy
    from web.pages import error_page

    for module in (routes_auth, routes_admin, routes_desk, routes_finance, routes_policy):
        app.include_router(module.router)
    static = resources.files("web").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    # An address nobody serves, or a method a page does not take: a page for a browser, a problem for a program.
    answer_api = app.exception_handlers.get(HTTPException)

    async def _http(request: Request, err: Any) -> Response:
        wants_page = not request.url.path.startswith("/v1") and "text/html" in request.headers.get("accept", "")
        if wants_page or answer_api is None:
            key = "error.not_found" if err.status_code == 404 else "error.http"
            return error_page(request, err.status_code, key, None, code=err.status_code)
        answered = answer_api(request, err)
        response: Response = await answered if inspect.isawaitable(answered) else answered
        return response

    app.add_exception_handler(HTTPException, _http)
