"""Accounts, bearer tokens and the audit log.

A token is 32 random bytes shown once; only its SHA-256 is stored (a slow password hash buys nothing for a
256-bit random secret and would cost every request). Its first characters (`token_id`) are public: they
name the token in lists and in the audit log. Roles are fixed: `desk` (bound to one hospital), `finance`,
`policy` and `admin`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from doudi import audit as audit_chain
from ledger.models import ApiToken, Hospital, LoginAttempt, User, WebSession
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


class Unauthenticated(Exception):
    """No token, or one that is unknown, expired or revoked (HTTP 401)."""


NO_TOKEN = "send 'Authorization: Bearer <token>'"  # what a request without a bearer token is told


class Forbidden(Exception):
    """A valid token of a role that cannot do what was asked (HTTP 403)."""


def allowed(principal: Principal | None, roles: Iterable[str]) -> Principal:
    """`principal` if it may act in one of `roles`; Unauthenticated when there is none, else Forbidden."""
    if principal is None:
        raise Unauthenticated("the token is unknown, expired or revoked")
    roles = tuple(roles)
    if principal.role not in roles:
        raise Forbidden(f"the {principal.role!r} role cannot do this; it needs {' or '.join(roles)}")
    return principal


SYSTEM = Principal("system", "admin", None, None)  # writes made by `doudi` commands on the server itself


def token_digest(token: str) -> str:
    """What is stored of a token: its SHA-256."""
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
            token_sha256=token_digest(token),
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
    """Revoke one token of `user`, or all of them (and then their browser sessions too); the number of
    tokens revoked."""
    if token_id is None:
        end_web_sessions(session, user, now)
    query = select(ApiToken).where(ApiToken.user_name == user, ApiToken.revoked_at.is_(None))
    if token_id is not None:
        query = query.where(ApiToken.token_id == token_id)
    tokens = session.scalars(query).all()
    for token in tokens:
        token.revoked_at = now
    return len(tokens)


def authenticate(session: Session, token: str, now: dt.datetime) -> Principal | None:
    """The principal a bearer token stands for, or None when it is unknown, revoked or expired."""
    if not token_shape_ok(token):
        return None
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.name == ApiToken.user_name)
        .where(ApiToken.token_sha256 == token_digest(token))
    ).first()
    if row is None:
        return None
    found, user = row
    return principal_of(found.token_id, found.expires_at, found.revoked_at, user.name, user.role, user.hospital_id, now)


def token_shape_ok(token: str) -> bool:
    """Whether `token` can be one of ours at all (checked before any look-up)."""
    return token.startswith(TOKEN_PREFIX) and len(token) <= 200


def principal_of(
    token_id: str,
    expires_at: dt.datetime | None,
    revoked_at: dt.datetime | None,
    user: str,
    role: str,
    hospital_id: str | None,
    now: dt.datetime,
) -> Principal | None:
    """The principal of a stored token as of `now`: None once it is revoked or has expired."""
    if revoked_at is not None or (expires_at is not None and expires_at <= now):
        return None
    return Principal(user, role, hospital_id, token_id)  # type: ignore[arg-type]  # roles written only by create_user


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
    """Record a write in the caller's transaction, so the record and the write commit together. Call it as
    the transaction's last step: from here to the commit the transaction holds the audit chain, which every
    other writer waits for (doudi/audit.py)."""
    audit_chain.append(session, *audit_entry(who, action, target, detail, now))


def audit_entry(
    who: Principal, action: str, target: str, detail: dict[str, Any], now: dt.datetime
) -> audit_chain.Entry:
    """What the audit log says of a write: (at, user, token id, action, target, detail as JSON text)."""
    return (now, who.user, who.token_id, action, target[:200], _DETAIL_JSON.encode(detail))


# `json.dumps` with these options builds an encoder for each call: a group of settlements writes one entry each.
_DETAIL_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, default=str)


# Passwords, for signing in to the web pages (tokens stay the way programs authenticate).
#
# scrypt from the standard library rather than argon2-cffi: no compiled dependency to install on a hospital's
# closed network, and scrypt is memory-hard like Argon2. Parameters are OWASP's password-storage figures
# for scrypt (N=2^16, r=8, p=2: 64 MiB and about half a second here), stored in each hash with its own
# random salt, so they can be raised later and old hashes still verify.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**16, 8, 2
_SCRYPT_MAXMEM = 256 * 1024 * 1024
PASSWORD_MIN, PASSWORD_MAX = 10, 200


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash` (salt and hash in unpadded base64)."""
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_SCRYPT_MAXMEM, dklen=32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


_UNUSABLE: list[str] = []  # a hash nobody's password matches, made once, for names with no password


def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`. A missing or malformed hash still costs one scrypt, so that the
    time taken does not tell whether a user exists or has a password."""
    if len(password) > PASSWORD_MAX:
        return False
    if stored is None or stored.count("$") != 5 or not stored.startswith("scrypt$"):
        if not _UNUSABLE:
            _UNUSABLE.append(hash_password(secrets.token_urlsafe(16)))
        stored, usable = _UNUSABLE[0], False
    else:
        usable = True
    _, n, r, p, salt, expected = stored.split("$")
    try:
        key = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except ValueError:  # parameters out of range: a corrupt hash never matches
        return False
    return usable and hmac.compare_digest(key, _unb64(expected))


def password_problems(password: str) -> list[FieldError]:
    problems = []
    if len(password) < PASSWORD_MIN:
        problems.append(FieldError("password", f"is shorter than {PASSWORD_MIN} characters"))
    if len(password) > PASSWORD_MAX:
        problems.append(FieldError("password", f"is longer than {PASSWORD_MAX} characters"))
    if password != password.strip():
        problems.append(FieldError("password", "begins or ends with a space"))
    return problems


def set_password(session: Session, user: str, password: str) -> None:
    """Give `user` a new password (the old one stops working at once). Web sessions are not ended here:
    the caller decides (changing one's own password keeps the current session)."""
    found = session.get(User, user)
    if found is None:
        raise ClaimError([FieldError("user", f"no user {user!r}")])
    problems = password_problems(password)
    if problems:
        raise ClaimError(problems)
    found.password_hash = hash_password(password)


def check_password(session: Session, name: str, password: str) -> Principal | None:
    """The user `name` signs in with `password`: their principal, or None (unknown name or wrong password,
    told apart by nothing)."""
    user = session.get(User, name) if len(name) <= 64 else None
    if not verify_password(user.password_hash if user is not None else None, password) or user is None:
        return None
    role: Role = user.role  # type: ignore[assignment]  # written only through create_user
    return Principal(user.name, role, user.hospital_id, None)


# Browser sessions and sign-in attempts (the web pages' side of accounts).
#
# A session is a random cookie value; only its SHA-256 is stored, like a token's. It ends after
# SESSION_IDLE without a request, after SESSION_LIMIT in any case (a working day), on signing out, and when
# the user's tokens are all revoked or their password is set again.
SESSION_IDLE: Final = dt.timedelta(minutes=30)
SESSION_LIMIT: Final = dt.timedelta(hours=10)
_SESSION_REFRESH: Final = dt.timedelta(minutes=1)  # write the sliding expiry at most once a minute
ATTEMPT_WINDOW: Final = dt.timedelta(minutes=15)
FAILURES_PER_NAME: Final = 5  # in the window, since the name's last success
FAILURES_PER_ADDRESS: Final = 20  # in the window, whatever names were tried


@dataclass(frozen=True)
class WebSignIn:
    """A signed-in browser: who, the CSRF token its forms carry, and the session's stored hash."""

    principal: Principal
    csrf_token: str
    session_sha256: str


def open_web_session(session: Session, principal: Principal, now: dt.datetime) -> str:
    """A new browser session for `principal`: the cookie value, returned this once. The sign-in is audited
    (failed attempts are not: they are counted in login_attempts), so call it as the transaction's last step."""
    cookie = secrets.token_urlsafe(32)
    digest = token_digest(cookie)
    expires = min(now + SESSION_IDLE, now + SESSION_LIMIT)
    session.add(
        WebSession(
            session_sha256=digest,
            user_name=principal.user,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=expires,
        )
    )
    session.flush()
    signed_in = Principal(principal.user, principal.role, principal.hospital_id, _web_session_id(digest))
    audit(session, signed_in, "session.sign_in", principal.user, {"expires_at": expires.isoformat()}, now)
    return cookie


def _web_session_id(session_sha256: str) -> str:
    # Audit entries name the session by the first characters of its hash, as they name a token by its id.
    return "web-" + session_sha256[:10]


def web_sign_in(session: Session, cookie: str, now: dt.datetime) -> tuple[WebSignIn | None, bool]:
    """The signed-in browser a session cookie stands for, or None when it is unknown, ended or expired; and
    whether its sliding expiry is due to be moved on (`touch_web_session`, in a writing transaction)."""
    if not cookie or len(cookie) > 100:
        return None, False
    row = session.execute(
        select(WebSession, User)
        .join(User, User.name == WebSession.user_name)
        .where(WebSession.session_sha256 == token_digest(cookie))
    ).first()
    if row is None:
        return None, False
    found, user = row
    if found.revoked_at is not None or found.expires_at <= now:
        return None, False
    role: Role = user.role  # type: ignore[assignment]  # written only through create_user
    principal = Principal(user.name, role, user.hospital_id, _web_session_id(found.session_sha256))
    due = _next_expiry(found, now) - found.expires_at >= _SESSION_REFRESH
    return WebSignIn(principal, found.csrf_token, found.session_sha256), due


def _next_expiry(found: WebSession, now: dt.datetime) -> dt.datetime:
    return min(now + SESSION_IDLE, found.created_at + SESSION_LIMIT)


def touch_web_session(session: Session, session_sha256: str, now: dt.datetime) -> None:
    found = session.get(WebSession, session_sha256)
    if found is not None and found.revoked_at is None and found.expires_at > now:
        found.expires_at = max(found.expires_at, _next_expiry(found, now))


def end_web_session(session: Session, session_sha256: str, now: dt.datetime) -> None:
    found = session.get(WebSession, session_sha256)
    if found is not None and found.revoked_at is None:
        found.revoked_at = now


def sign_out(session: Session, signin: WebSignIn, now: dt.datetime) -> None:
    """End the browser session `signin` stands for, audited (call it as the transaction's last step)."""
    end_web_session(session, signin.session_sha256, now)
    audit(session, signin.principal, "session.sign_out", signin.principal.user, {}, now)


def end_web_sessions(session: Session, user: str, now: dt.datetime) -> int:
    """End every open browser session of `user`; how many."""
    found = session.scalars(
        select(WebSession).where(WebSession.user_name == user, WebSession.revoked_at.is_(None))
    ).all()
    for web in found:
        web.revoked_at = now
    return len(found)


def sign_in_refused(session: Session, name: str, remote: str, now: dt.datetime) -> bool:
    """Whether to refuse a sign-in attempt without checking the password: too many failures for this name
    since its last success, or from this address, within ATTEMPT_WINDOW."""
    since = now - ATTEMPT_WINDOW
    last_success = session.scalar(
        select(func.max(LoginAttempt.at)).where(LoginAttempt.user_name == name[:64], LoginAttempt.succeeded)
    )
    cutoff = since if last_success is None else max(since, last_success)
    by_name = session.scalar(
        select(func.count()).where(
            LoginAttempt.user_name == name[:64], ~LoginAttempt.succeeded, LoginAttempt.at > cutoff
        )
    )
    by_address = session.scalar(
        select(func.count()).where(
            LoginAttempt.remote == remote[:64], ~LoginAttempt.succeeded, LoginAttempt.at >= since
        )
    )
    return (by_name or 0) >= FAILURES_PER_NAME or (by_address or 0) >= FAILURES_PER_ADDRESS


def record_sign_in(session: Session, name: str, remote: str, succeeded: bool, now: dt.datetime) -> None:
    session.add(LoginAttempt(at=now, user_name=name[:64], remote=remote[:64], succeeded=succeeded))
