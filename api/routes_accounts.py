"""Accounts (admins only): users, their tokens (shown once), revocation. The audit log: routes_audit.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api import openapi
from api.auth import require
from api.context import context, json_body, json_object
from doudi import accounts, registry
from doudi.accounts import Principal
from doudi.desk import NotFound
from ledger.models import User
from settlement.errors import ClaimError, FieldError

router = APIRouter(prefix="/v1", tags=["accounts"])

Admin = Annotated[Principal, Depends(require("admin"))]
Body = Annotated[Any, Depends(json_body)]
_USER_LINKS = {
    "NewToken": openapi.link("/v1/users/{name}/tokens", "post", name="name"),
    "Revoke": openapi.link("/v1/users/{name}/revoke", "post", name="name"),
}


@router.get(
    "/users",
    summary="Users and their tokens (ids only)",
    responses={200: openapi.ok(openapi.USERS), **openapi.problems(401, 403, 503)},
)
def list_users(request: Request, _who: Admin) -> JSONResponse:
    with Session(context(request).reader) as session:
        return JSONResponse({"users": accounts.users_view(session)})


@router.post(
    "/users",
    summary="Create a user; the answer holds their first token, shown this once",
    openapi_extra=openapi.json_body(accounts.UserIn, openapi.USER_EXAMPLE),
    responses={
        201: openapi.ok(openapi.USER_CREATED, "Created", _USER_LINKS),
        **openapi.problems(401, 403, 413, 422, 503),
    },
    status_code=201,
)
def create_user(request: Request, who: Admin, body: Body) -> JSONResponse:
    user = registry.validated(accounts.UserIn, json_object(body))
    ctx = context(request)
    now = ctx.clock()
    with Session(ctx.engine) as session, session.begin():
        accounts.create_user(session, user, now)
        token = accounts.issue_token(session, user.name, now)
        accounts.audit(session, who, "user.create", user.name, user.model_dump(), now)
    body = {**user.model_dump(), "token": token, "token_id": accounts.token_id_of(token)}
    return JSONResponse(body, status_code=201)


@router.post(
    "/users/{name}/tokens",
    summary="A new token for a user, shown this once",
    responses={201: openapi.ok(openapi.TOKEN_CREATED, "Issued"), **openapi.problems(401, 403, 404, 422, 503)},
    status_code=201,
)
def new_token(request: Request, name: str, who: Admin) -> JSONResponse:
    ctx = context(request)
    now = ctx.clock()
    with Session(ctx.engine) as session, session.begin():
        if session.get(User, name) is None:
            raise NotFound(f"no user {name!r}")
        token = accounts.issue_token(session, name, now)
        accounts.audit(session, who, "token.create", name, {}, now)
    return JSONResponse({"name": name, "token": token, "token_id": accounts.token_id_of(token)}, status_code=201)


@router.post(
    "/users/{name}/revoke",
    summary="Revoke one of a user's tokens (body {token_id}) or all of them (empty object)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "properties": {"token_id": {"type": "string"}}},
                    "example": {"token_id": "Xb3kP0qLm2"},
                }
            },
        }
    },
    responses={200: openapi.ok(openapi.REVOKED, "Revoked"), **openapi.problems(401, 403, 404, 413, 422, 503)},
)
def revoke(request: Request, name: str, who: Admin, body: Body) -> JSONResponse:
    token_id = json_object(body).get("token_id")
    if token_id is not None and not isinstance(token_id, str):
        raise ClaimError([FieldError("token_id", "must be text")])
    ctx = context(request)
    now = ctx.clock()
    with Session(ctx.engine) as session, session.begin():
        if session.get(User, name) is None:
            raise NotFound(f"no user {name!r}")
        count = accounts.revoke(session, name, now, token_id)
        if token_id is not None and count == 0:
            raise NotFound(f"user {name!r} has no active token {token_id!r}")
        if count:  # nothing revoked, nothing to record
            accounts.audit(session, who, "token.revoke", name, {"token_id": token_id, "revoked": count}, now)
    return JSONResponse({"name": name, "revoked": count})
