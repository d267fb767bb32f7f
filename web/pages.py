"""What every page shares: rendering, who is signed in, CSRF, and turning failures into pages.

A page is a route of an APIRouter built with `PageRoute`: whatever it raises becomes an HTML page in plain
words (sign-in needed: a redirect to /login; a role that may not: 403; not found: 404; the database down:
503; anything unforeseen: 500, logged, with no trace shown). Roles are the API's: each page depends on
`signed_in(...)` with the roles of the API route it stands for.
"""

from __future__ import annotations

import hmac
import logging
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Final

import jinja2
from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from api.context import BodyTooLarge, context
from doudi import accounts
from doudi.accounts import Role, WebSignIn
from doudi.desk import Conflict, NotFound
from settlement.errors import ClaimError, FieldError
from web import i18n

log = logging.getLogger("doudi.web")

SESSION_COOKIE: Final = "doudi_session"
MAX_FORM_FILE_BYTES: Final = 200 * 1024 * 1024  # a hospital's monthly file, a claims dataset
MAX_FORM_FIELDS: Final = 200

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a misspelt name fails the page's test, not silently blank
    trim_blocks=True,
    lstrip_blocks=True,
)


def yuan(value: object) -> str:
    """Decimal yuan text with thousands separators, exact (`236000.00` -> `236,000.00`); anything else as
    it is."""
    if value is None:
        return ""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return f"{amount:,.2f}" if amount == amount.quantize(Decimal("0.01")) else str(value)


def percent(value: object) -> str:
    """A ratio as written in a record (`0.5500`) as a percentage (`55%`), exactly."""
    if value is None:
        return ""
    try:
        scaled = (Decimal(str(value)) * 100).normalize()
    except InvalidOperation:
        return str(value)
    return f"{scaled:f}%"


_templates.filters["yuan"] = yuan
_templates.filters["percent"] = percent


class PageError(Exception):
    """A page to show instead: the status and a message key (or plain words) with its values."""

    def __init__(self, status: int, key: str, text: str | None = None, **values: Any):
        super().__init__(key)
        self.status, self.key, self.text, self.values = status, key, text, values


class SignInNeeded(Exception):
    pass


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    lang = i18n.language(request)
    signin: WebSignIn | None = getattr(request.state, "signin", None)
    page = _templates.get_template(template).render(
        request=request,
        t=i18n.Translator(lang),
        lang=lang,
        html_lang=i18n.HTML_LANG[lang],
        user=signin.principal if signin else None,
        csrf_token=signin.csrf_token if signin else "",
        here=_here(request),
        **values,
    )
    return HTMLResponse(page, status_code=status)


def _here(request: Request) -> str:
    """This page's address without `lang`, for the language switch's links."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    return request.url.path + ("?" + urllib.parse.urlencode(query) if query else "")


def error_page(request: Request, status: int, key: str, text: str | None = None, **values: Any) -> HTMLResponse:
    return render(request, "error.html", status=status, status_code=status, key=key, text=text, values=values)


def field_errors(errors: list[FieldError]) -> dict[str, list[str]]:
    """The service's problems by field, for showing each next to its input ("body" and unknown fields go
    in the list at the top of the form)."""
    found: dict[str, list[str]] = {}
    for error in errors:
        found.setdefault(error.field, []).append(error.message)
    return found


def _secure_headers(response: Response) -> None:
    # Every asset is served from here; nothing inline runs, nothing frames the pages.
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")  # settlements and people are personal data


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    """HttpOnly, SameSite=Lax, and Secure whenever the page came over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


class PageRoute(APIRoute):
    """A route whose failures are pages in plain words, never a stack trace or a JSON problem."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInNeeded:
                target = urllib.parse.quote(_here(request), safe="/")
                response = RedirectResponse(f"/login?next={target}", status_code=303)
            except PageError as err:
                response = error_page(request, err.status, err.key, err.text, **err.values)
            except NotFound as err:
                response = error_page(request, 404, "error.not_found", str(err))
            except Conflict as err:
                response = error_page(request, 409, "error.conflict", str(err))
            except ClaimError as err:
                text = "; ".join(f"{e.field}: {e.message}" for e in err.errors)
                response = error_page(request, 422, "error.invalid", text)
            except PoolTimeout:
                response = error_page(request, 503, "error.busy")
            except DBAPIError as err:
                if not (isinstance(err, OperationalError) or err.connection_invalidated):
                    log.exception("page %s failed", request.url.path)
                    response = error_page(request, 500, "error.internal")
                else:
                    response = error_page(request, 503, "error.database")
            except Exception:
                log.exception("page %s failed", request.url.path)
                response = error_page(request, 500, "error.internal")
            chosen = i18n.requested(request)
            if chosen is not None:
                set_cookie(request, response, i18n.COOKIE, chosen, max_age=365 * 24 * 3600)
            _secure_headers(response)
            return response

        return page


def current(request: Request) -> WebSignIn | None:
    """Who this browser is signed in as (None: nobody); moves the session's idle expiry on."""
    ctx = context(request)
    now = ctx.clock()
    with Session(ctx.reader) as session:
        found, due = accounts.web_sign_in(session, request.cookies.get(SESSION_COOKIE, ""), now)
    if found is not None and due:
        with Session(ctx.engine) as session, session.begin():
            accounts.touch_web_session(session, found.session_sha256, now)
    request.state.signin = found
    return found


def signed_in(*roles: Role) -> Callable[[Request], WebSignIn]:
    """A dependency: the signed-in browser, when its role is one of `roles`; otherwise to /login, or 403."""

    def dependency(request: Request) -> WebSignIn:
        found = current(request)
        if found is None:
            raise SignInNeeded()
        if found.principal.role not in roles:
            raise PageError(403, "error.forbidden", role=found.principal.role)
        return found

    return dependency


async def read_form(request: Request) -> FormData:
    """The posted form (fields and uploaded files)."""
    try:
        return await request.form(max_files=4, max_fields=MAX_FORM_FIELDS)
    except BodyTooLarge as err:
        raise PageError(413, "error.too_large", str(err)) from None
    except Exception as err:  # a malformed multipart body
        raise PageError(400, "error.bad_form", str(err)) from None


Form = Annotated[FormData, Depends(read_form)]


def check_csrf(signin: WebSignIn, form: Mapping[str, Any], request: Request) -> None:
    """Every POST carries the session's CSRF token, in the form or in X-CSRF-Token (the pages' scripts)."""
    sent = form.get("csrf_token") or request.headers.get("x-csrf-token") or ""
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), signin.csrf_token.encode()):
        raise PageError(403, "error.csrf")


def posting(*roles: Role) -> Callable[..., Awaitable[tuple[WebSignIn, FormData]]]:
    """A dependency for POST pages: the signed-in browser in one of `roles` and its form, CSRF checked."""
    who = signed_in(*roles)

    # A default rather than Annotated: the annotation is a string (postponed), and `who` is local.
    async def dependency(request: Request, form: Form, signin: WebSignIn = Depends(who)) -> tuple[WebSignIn, FormData]:  # noqa: B008
        check_csrf(signin, form, request)
        return signin, form

    return dependency


def text_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def file_field(form: FormData, name: str) -> tuple[str, bytes] | None:
    """An uploaded file's (name, bytes), or None when none was chosen. Synchronous: pages that take files
    run in the thread pool, where the spooled file is read directly."""
    value = form.get(name)
    if not isinstance(value, UploadFile) or not value.filename:
        return None
    value.file.seek(0)
    data = value.file.read(MAX_FORM_FILE_BYTES + 1)
    if len(data) > MAX_FORM_FILE_BYTES:
        raise ClaimError([FieldError(name, f"the file is larger than {MAX_FORM_FILE_BYTES} bytes")])
    return value.filename, data
