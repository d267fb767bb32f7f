"""Accounts, bearer tokens and the audit log.

A token is 32 random bytes shown once; only its SHA-256 is stored (a slow password hash buys nothing for a
256-bit random secret and would cost every request). Its first characters (`token_id`) are public: they
name the token in lists and in the audit log. Roles are fixed: `desk` (bound to one hospital), `finance`,
`policy` and `admin`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.models import ApiToken, AuditEntry, Hospital, User
from settlement.claims import Identifier
from settlement.errors import ClaimError, FieldError

Role = Literal["desk", "finance", "policy", "admin"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
TOKEN_PREFIX: Final = "doudi_"


@dataclass(frozen=True)
class Principal:
    """Who is asking: the user, their role, their hospital (desk only) and the token used."""

    user: str
    role: Role
    hospital_id: str | None
    token_id: str | None


SYSTEM = Principal("system", "admin", None, None)  # writes made by `doudi` commands on the server itself


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]*$")]
    role: Role
    hospital_id: Identifier | None = None


def create_user(session: Session, user: UserIn, now: dt.datetime) -> None:
    problems = []
    if user.role == "desk" and user.hospital_id is None:
        problems.append(FieldError("hospital_id", "a desk user is bound to one hospital: name it"))
    if user.role != "desk" and user.hospital_id is not None:
        problems.append(FieldError("hospital_id", f"only desk users are bound to a hospital, not {user.role!r}"))
    if user.hospital_id is not None and session.get(Hospital, user.hospital_id) is None:
        problems.append(FieldError("hospital_id", f"no hospital {user.hospital_id!r} is registered"))
    if session.get(User, user.name) is not None:
        problems.append(FieldError("name", f"a user {user.name!r} exists already"))
    if problems:
        raise ClaimError(problems)
    session.add(User(name=user.name, role=user.role, hospital_id=user.hospital_id, created_at=now))
    session.flush()


def issue_token(session: Session, user: str, now: dt.datetime, lifetime: dt.timedelta | None = None) -> str:
    """A new token for `user`, returned in full this once."""
    if session.get(User, user) is None:
        raise ClaimError([FieldError("user", f"no user {user!r}")])
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            token_id=token_id_of(token),
            user_name=user,
            token_sha256=_digest(token),
            created_at=now,
            expires_at=now + lifetime if lifetime else None,
        )
    )
    session.flush()
    return token


def token_id_of(token: str) -> str:
    """A token's public id: its first characters after the prefix."""
    return token[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 10]


def revoke(session: Session, user: str, now: dt.datetime, token_id: str | None = None) -> int:
    """Revoke one token of `user`, or all of them; the number revoked."""
    query = select(ApiToken).where(ApiToken.user_name == user, ApiToken.revoked_at.is_(None))
    if token_id is not None:
        query = query.where(ApiToken.token_id == token_id)
    tokens = session.scalars(query).all()
    for token in tokens:
        token.revoked_at = now
    return len(tokens)


def authenticate(session: Session, token: str, now: dt.datetime) -> Principal | None:
    """The principal a bearer token stands for, or None when it is unknown, revoked or expired."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.name == ApiToken.user_name)
        .where(ApiToken.token_sha256 == _digest(token))
    ).first()
    if row is None:
        return None
    found, user = row
    if found.revoked_at is not None or (found.expires_at is not None and found.expires_at <= now):
        return None
    role: Role = user.role  # type: ignore[assignment]  # written only through create_user
    return Principal(user.name, role, user.hospital_id, found.token_id)


def users_view(session: Session) -> list[dict[str, Any]]:
    out = []
    for user in session.scalars(select(User).order_by(User.name)):
        tokens = session.scalars(select(ApiToken).where(ApiToken.user_name == user.name)).all()
        out.append(
            {
                "name": user.name,
                "role": user.role,
                "hospital_id": user.hospital_id,
                "tokens": [
                    {
                        "token_id": t.token_id,
                        "created_at": t.created_at.isoformat(),
                        "expires_at": t.expires_at.isoformat() if t.expires_at else None,
                        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
                    }
                    for t in tokens
                ],
            }
        )
    return out


def audit(session: Session, who: Principal, action: str, target: str, detail: dict[str, Any], now: dt.datetime) -> None:
    """Record a write in the caller's transaction, so the record and the write commit together."""
    session.add(
        AuditEntry(
            at=now,
            user_name=who.user,
            token_id=who.token_id,
            action=action,
            target=target[:200],
            detail=json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str),
        )
    )
