"""Bearer tokens on every route but /healthz, and the role each route needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.context import context, read_session, unsafe_text
from doudi.accounts import NO_TOKEN, Principal, Role, Unauthenticated, allowed, authenticate
from settlement.errors import ClaimError, FieldError

bearer = HTTPBearer(auto_error=False, description="A token from `doudi users create` or POST /v1/users.")

BEARER_SECURITY: dict[str, Any] = {"security": [{bearer.scheme_name: []}]}
"""The OpenAPI security requirement of a route that reads its token with `bearer_token` (no dependency)."""


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, as `bearer` reads it; None without one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def require(*roles: Role) -> Callable[..., Principal]:
    """A dependency giving the caller, refused with 401 without a valid token and 403 in another role."""

    def caller(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        session: Annotated[Session, Depends(read_session)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthenticated(NO_TOKEN)
        try:
            found = authenticate(session, credentials.credentials, context(request).clock())
        finally:
            # Give the connection back now: the route runs in another pool thread, and a connection held
            # across that hop lets a burst of requests stall, each waiting for a connection another holds.
            # The route's reads take one again through the same session.
            session.close()
        principal = allowed(found, roles)
        refuse_unsafe_parameters(request)
        return principal

    return caller


def refuse_unsafe_parameters(request: Request) -> None:
    """ClaimError on each path or query parameter holding a refused character."""
    # Path and query values reach lookups and filters as given; a control character (NUL above all,
    # which PostgreSQL refuses to read) or an invisible one is refused here, on its parameter's name.
    if not request.scope.get("query_string") and not request.path_params:
        return  # nothing to look at (a settlement's POST): parsing an empty query costs a busy desk's loop
    parameters = [*request.path_params.items(), *request.query_params.multi_items()]
    refused = [FieldError(name, reason) for name, value in parameters if (reason := unsafe_text(str(value)))]
    if refused:
        raise ClaimError(refused)
