"""Signing in and out, and the start page of each role."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from api.context import context
from doudi import accounts
from doudi.accounts import ROLES, WebSignIn
from web.pages import (
    SESSION_COOKIE,
    Form,
    PageRoute,
    current,
    posting,
    render,
    set_cookie,
    text_field,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

LOGIN_CSRF_COOKIE: Final = "doudi_login_csrf"
HOME: Final = {"desk": "/desk", "finance": "/finance", "policy": "/policy", "admin": "/admin"}


def _safe_next(target: str, role: str) -> str:
    """Where to go after signing in: a path on this site only (never another host), else the role's home."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and not target.startswith("/login"):
        return target
    return HOME[role]


@router.get("/")
def start(request: Request) -> Response:
    found = current(request)
    return RedirectResponse(HOME[found.principal.role] if found else "/login", status_code=303)


def _login_page(request: Request, status: int = 200, **values: object) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    values = {"name": "", "errors": {}, "next": request.query_params.get("next", ""), **values}
    response = render(request, "login.html", status=status, login_csrf=token, **values)
    set_cookie(request, response, LOGIN_CSRF_COOKIE, token)
    return response


@router.get("/login")
def login_form(request: Request) -> Response:
    found = current(request)
    if found is not None:
        return RedirectResponse(HOME[found.principal.role], status_code=303)
    return _login_page(request)


@router.post("/login")
def login(request: Request, form: Form) -> Response:
    ctx = context(request)
    name, password, target = text_field(form, "name"), str(form.get("password") or ""), text_field(form, "next")
    sent, expected = text_field(form, "csrf_token"), request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        # No cookie or another one: a form from elsewhere, or one left open past a restart. Nothing is tried.
        return _login_page(request, 400, name=name, next=target, errors={"form": ["login.expired"]})
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["login.name_missing"]
    if not password:
        errors["password"] = ["login.password_missing"]
    if errors:
        return _login_page(request, 400, name=name, next=target, errors=errors)
    remote = request.client.host if request.client else "unknown"
    now = ctx.clock()
    with Session(ctx.reader) as session:
        if accounts.sign_in_refused(session, name, remote, now):
            return _login_page(request, 429, name=name, next=target, errors={"form": ["login.too_many"]})
        principal = accounts.check_password(session, name, password)  # about half a second, outside any lock
    with Session(ctx.engine) as session, session.begin():
        accounts.record_sign_in(session, name, remote, principal is not None, now)
        if principal is None:
            cookie = None
        else:
            old = request.cookies.get(SESSION_COOKIE)
            if old:  # a new session id on every sign-in: a planted cookie never becomes a signed-in one
                found, _ = accounts.web_sign_in(session, old, now)
                if found is not None:
                    accounts.end_web_session(session, found.session_sha256, now)
            cookie = accounts.open_web_session(session, principal, now)
    if principal is None or cookie is None:
        return _login_page(request, 401, name=name, next=target, errors={"form": ["login.wrong"]})
    response = RedirectResponse(_safe_next(target, principal.role), status_code=303)
    set_cookie(request, response, SESSION_COOKIE, cookie)  # a browser-session cookie; the server expires it
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


Anyone = Annotated[tuple[WebSignIn, object], Depends(posting(*ROLES))]


@router.post("/logout")
def logout(request: Request, posted: Anyone) -> Response:
    signin, _form = posted
    ctx = context(request)
    with Session(ctx.engine) as session, session.begin():
        accounts.sign_out(session, signin, ctx.clock())
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
