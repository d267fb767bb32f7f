"""Signing in to the pages, through HTTP, on SQLite and PostgreSQL: the session cookie's flags, sessions
that end (idle, after a working day, on signing out, when the user's tokens are revoked or the password
is set again), sign-in attempts limited by name and by address, passwords set with `doudi users`, and a
`next` page that is never another site."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from doudi import accounts
from doudi import audit as audit_chain
from doudi.cli import app as doudi_cli
from ledger.models import AuditEntry, LoginAttempt, User
from tests.e2e.test_web_pages import NOW, Web, csrf_of, field_error, web  # noqa: F401  (the fixture)


def _attempt(web: Web, name: str, password: str, client_address: str = "testclient") -> int:  # noqa: F811
    client = web.client(client=(client_address, 50000))
    token = csrf_of(client.get("/login").text)
    status: int = client.post("/login", data={"name": name, "password": password, "csrf_token": token}).status_code
    return status


def test_the_session_cookie_is_httponly_samesite_and_secure_over_https(web: Web) -> None:  # noqa: F811
    plain = web.client()
    token = csrf_of(plain.get("/login").text)
    answer = plain.post(
        "/login", data={"name": "demo-desk", "password": web.passwords["demo-desk"], "csrf_token": token}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/desk"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("doudi_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    secure = web.client(base_url="https://testserver")
    token = csrf_of(secure.get("/login").text)
    answer = secure.post(
        "/login", data={"name": "demo-desk", "password": web.passwords["demo-desk"], "csrf_token": token}
    )
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("doudi_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie

    # Signing out revokes the session on the server: its cookie, sent again, opens nothing.
    kept = plain.cookies.get("doudi_session")
    assert plain.get("/desk").status_code == 200
    assert plain.post("/logout", data={"csrf_token": csrf_of(plain.get("/desk").text)}).status_code == 303
    replay = web.client(cookies={"doudi_session": kept})
    assert replay.get("/desk").headers["location"] == "/login?next=/desk"


def test_refusals_say_why_in_plain_words_and_tell_no_names_apart(web: Web) -> None:  # noqa: F811
    client = web.client()
    token = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"name": "demo-desk", "password": "nope-nope-nope", "csrf_token": token})
    nobody = client.post("/login", data={"name": "nobody", "password": "nope-nope-nope", "csrf_token": token})
    assert wrong.status_code == nobody.status_code == 401
    assert "用户名或密码错误" in wrong.text and "用户名或密码错误" in nobody.text
    empty = client.post("/login", data={"name": "", "password": "", "csrf_token": token})
    assert empty.status_code == 400
    assert field_error(empty.text, "name") == "请输入用户名。" and field_error(empty.text, "password") == "请输入密码。"
    # A form from elsewhere (no sign-in cookie of this browser's): nothing is even tried.
    with Session(web.engine) as session:
        before = len(session.scalars(select(LoginAttempt)).all())
    forged = web.client().post(
        "/login", data={"name": "demo-desk", "password": web.passwords["demo-desk"], "csrf_token": "x"}
    )
    assert forged.status_code == 400 and "doudi_session" not in forged.headers.get("set-cookie", "")
    with Session(web.engine) as session:
        assert len(session.scalars(select(LoginAttempt)).all()) == before


def test_sessions_end_when_idle_and_after_a_working_day(web: Web) -> None:  # noqa: F811
    desk = web.sign_in("demo-desk")
    web.clock.now = NOW + dt.timedelta(minutes=29)
    assert desk.get("/desk").status_code == 200  # each page moves the idle limit on
    web.clock.now = NOW + dt.timedelta(minutes=29 + 29)
    assert desk.get("/desk").status_code == 200
    web.clock.now = NOW + dt.timedelta(minutes=29 + 29 + 31)
    assert desk.get("/desk").headers["location"] == "/login?next=/desk"

    start = web.clock.now
    desk = web.sign_in("demo-desk")
    for step in range(1, 30):  # busy all day, a page every 20 minutes
        web.clock.now = start + dt.timedelta(minutes=20 * step)
        expected = 200 if web.clock.now < start + accounts.SESSION_LIMIT else 303
        assert desk.get("/desk").status_code == expected, web.clock.now


def test_sign_in_attempts_are_limited_by_name_and_by_address(web: Web) -> None:  # noqa: F811
    password = web.passwords["demo-desk"]
    for _ in range(accounts.FAILURES_PER_NAME):
        assert _attempt(web, "demo-desk", "wrong-password-1") == 401
    assert _attempt(web, "demo-desk", password) == 429  # even the right password, from anywhere
    assert _attempt(web, "demo-desk", password, "10.0.0.9") == 429
    assert _attempt(web, "demo-finance", web.passwords["demo-finance"]) == 303  # other names are not held up
    web.clock.now = NOW + accounts.ATTEMPT_WINDOW + dt.timedelta(seconds=1)
    assert _attempt(web, "demo-desk", password) == 303
    assert _attempt(web, "demo-desk", "wrong-password-1") == 401  # a success starts the count again

    # One address trying many names (known ones: an unknown name costs a full-strength hash, on purpose).
    names = ["demo-desk-mhk", "demo-admin", "demo-finance", "demo-policy", "demo-desk"]
    for i in range(accounts.FAILURES_PER_ADDRESS):
        assert _attempt(web, names[i % len(names)], "wrong-password-1", "10.0.0.66") == 401
    assert _attempt(web, "demo-policy", web.passwords["demo-policy"], "10.0.0.66") == 429
    assert _attempt(web, "demo-policy", web.passwords["demo-policy"], "10.0.0.67") == 303


def test_passwords_from_the_command_line_with_the_real_hash(web: Web, database_url: str) -> None:  # noqa: F811
    runner = CliRunner()
    made = runner.invoke(
        doudi_cli,
        [
            "users",
            "create",
            "clerk-web",
            "--role",
            "desk",
            "--hospital",
            "MHK-H001",
            "--password-stdin",
            "--database-url",
            database_url,
        ],
        input="a long enough secret\n",
    )
    assert made.exit_code == 0, made.stderr
    with Session(web.engine) as session:
        stored = session.get(User, "clerk-web")
        assert stored is not None and stored.password_hash is not None
        assert stored.password_hash.startswith("scrypt$65536$8$2$") and "a long enough" not in stored.password_hash
    clerk = web.sign_in("clerk-web", password="a long enough secret")
    assert clerk.get("/desk").status_code == 200

    short = runner.invoke(
        doudi_cli, ["users", "passwd", "clerk-web", "--password-stdin", "--database-url", database_url], input="short\n"
    )
    assert short.exit_code == 1 and "shorter than" in short.stderr
    changed = runner.invoke(
        doudi_cli,
        ["users", "passwd", "clerk-web", "--password-stdin", "--database-url", database_url],
        input="another long secret\n",
    )
    assert changed.exit_code == 0 and "1 browser session(s) ended" in changed.stdout
    assert clerk.get("/desk").status_code == 303  # the old session ended with the old password
    assert _attempt(web, "clerk-web", "a long enough secret") == 401
    web.sign_in("clerk-web", password="another long secret")


def test_revoking_a_users_tokens_ends_their_browser_sessions(web: Web) -> None:  # noqa: F811
    desk = web.sign_in("demo-desk")
    assert desk.get("/desk").status_code == 200
    revoked = web.api("POST", "/v1/users/demo-desk/revoke", "demo-admin", json={})
    assert revoked.status_code == 200
    assert desk.get("/desk").status_code == 303


def test_after_sign_in_the_next_page_is_never_another_site(web: Web) -> None:  # noqa: F811
    for target, landing in (("/desk/today", "/desk/today"), ("//evil.example/x", "/desk"), ("https://x.y", "/desk")):
        client = web.client()
        token = csrf_of(client.get("/login").text)
        answer = client.post(
            "/login",
            data={"name": "demo-desk", "password": web.passwords["demo-desk"], "csrf_token": token, "next": target},
        )
        assert answer.headers["location"] == landing


def test_signing_in_and_out_is_audited_and_failed_attempts_are_not(web: Web) -> None:  # noqa: F811
    def entries() -> list[tuple[str, str, str | None, dt.datetime]]:
        with Session(web.engine) as session:
            rows = session.execute(
                select(AuditEntry.action, AuditEntry.user_name, AuditEntry.token_id, AuditEntry.at)
                .where(AuditEntry.action.like("session.%"))
                .order_by(AuditEntry.id)
            ).all()
        return [tuple(row) for row in rows]  # type: ignore[misc]

    assert _attempt(web, "demo-finance", "not-the-password") == 401
    assert _attempt(web, "nobody", "not-the-password") == 401
    assert entries() == []  # failed attempts are counted in login_attempts only
    with Session(web.engine) as session:
        assert session.scalar(select(func.count()).select_from(LoginAttempt)) == 2

    client = web.sign_in("demo-finance")
    web.clock.now = NOW + dt.timedelta(minutes=5)
    assert client.post("/logout", data={"csrf_token": csrf_of(client.get("/finance").text)}).status_code == 303
    found = entries()
    assert [(action, user) for action, user, _token, _at in found] == [
        ("session.sign_in", "demo-finance"),
        ("session.sign_out", "demo-finance"),
    ]
    # Both name the same browser session, as a token's writes name the token; each at its own time.
    assert found[0][2] == found[1][2] and str(found[0][2]).startswith("web-")
    assert found[0][3] == NOW and found[1][3] == NOW + dt.timedelta(minutes=5)
    assert audit_chain.verify(web.engine).intact  # appended to the hash chain, which still holds
