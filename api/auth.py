"""Bearer tokens on every route but /healthz, and the role each route needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.context import context, read_session
from doudi.accounts import Principal, Role, authenticate

bearer = HTTPBearer(auto_error=False, description="A token from `doudi users create` or POST /v1/users.")


class Unauthenticated(Exception):
    pass


class Forbidden(Exception):
    pass


def require(*roles: Role) -> Callable[..., Principal]:
    """A dependency giving the caller, refused with 401 without a valid token and 403 in another role."""

    def caller(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        session: Annotated[Session, Depends(read_session)],
    ) -> Principal:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthenticated("send 'Authorization: Bearer <token>'")
        try:
            principal = authenticate(session, credentials.credentials, context(request).clock())
        finally:
            # Give the connection back now: the route runs in another pool thread, and a connection held
            # across that hop lets a burst of requests stall, each waiting for a connection another holds.
            # The route's reads take one again through the same session.
            session.close()
        if principal is None:
            raise Unauthenticated("the token is unknown, expired or revoked")
        if principal.role not in roles:
            raise Forbidden(f"the {principal.role!r} role cannot do this; it needs {' or '.join(roles)}")
        return principal

    return caller
