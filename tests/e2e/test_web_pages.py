"""The web pages through HTTP, without a browser, on SQLite and PostgreSQL: the desk's forms (errors next to
their fields, a double click that pays once, a pasted claim, a reversal that needs confirming), finance's
downloads, matching and closing, a reform's overrides checked in the command line's words, the language
switch and its catalogues, and pages that never show a stack trace.

The `web` fixture here is shared by tests/e2e/test_web_access.py and test_web_sign_in.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import io
import json
import logging
import re
import secrets
import zipfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from api.app import create_app
from doudi import demo, reconcile, services
from doudi.cli import app as doudi_cli
from ledger.models import Reversal, Settlement, User
from tests.e2e.conftest import Clock

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]
NOW = dt.datetime(2014, 12, 1, 9, 0)


def cheap_hash(password: str) -> str:
    """A password hash in the stored format with a small scrypt cost, so that the tests sign in quickly;
    the format keeps each hash's own parameters, and one test signs in with the real cost."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=2**10, r=8, p=1, dklen=32)

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode().rstrip("=")

    return f"scrypt${2**10}$8$1${b64(salt)}${b64(key)}"


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def field_error(page: str, name: str) -> str:
    """The error shown next to the input `name` (empty when none)."""
    found = re.search(rf'<p class="error" id="e-{re.escape(name)}">(.*?)</p>', page, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip() if found else ""


@dataclass
class Web:
    app: FastAPI
    clock: Clock
    tokens: dict[str, str]
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self) -> Any:
        return self.app.state.context.engine

    def client(self, **kwargs: Any) -> TestClient:
        return TestClient(self.app, follow_redirects=False, **kwargs)

    def sign_in(self, user: str, client: TestClient | None = None, password: str | None = None) -> TestClient:
        client = client or self.client()
        token = csrf_of(client.get("/login").text)
        answer = client.post(
            "/login", data={"name": user, "password": password or self.passwords[user], "csrf_token": token}
        )
        assert answer.status_code == 303, answer.text
        return client

    def api(self, method: str, path: str, user: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return TestClient(self.app).request(method, path, headers=headers, **kwargs)

    def count(self, model: Any) -> int:
        with Session(self.engine) as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def web(database_url: str, tmp_path: Path) -> Web:
    files = services.open_library()
    clock = Clock(NOW)
    app = create_app(database_url, files, clock=clock, archive=tmp_path / "archive", simulations=tmp_path / "sim")
    ctx = app.state.context
    tokens = demo.seed(ctx.engine, ctx.catalogue, files, NOW)
    passwords = {name: f"pw-{name}-{secrets.token_hex(4)}" for name, _role, _hospital in demo.USERS}
    with Session(ctx.engine) as session, session.begin():
        for name, password in passwords.items():
            user = session.get(User, name)
            assert user is not None
            user.password_hash = cheap_hash(password)
    return Web(app, clock, tokens, passwords)


STAY = {
    "claim_id": "WEB-T-1",
    "person_id": "MHK-P-0001",
    "visit_type": "inpatient",
    "admitted_on": "2014-05-06",
    "discharged_on": "2014-06-12",
    "settled_at": "2014-06-12T10:20",
    "diagnoses": "C91.0",
    "total": "236000.00",
    "fully_self_paid": "21000.00",
    "over_limit_self_paid": "0.00",
    "pre_self_paid": "9000.00",
}


def test_a_stay_with_problems_shows_each_next_to_its_field_and_records_nothing(web: Web) -> None:
    desk = web.sign_in("demo-desk")
    token = csrf_of(desk.get("/desk/stay").text)
    bad = {**STAY, "csrf_token": token, "total": "12,5", "admitted_on": "2014-07-01", "diagnoses": "X"}
    before = web.count(Settlement)
    for route in ("/desk/quote", "/desk/settle"):
        answer = desk.post(route, data=bad)
        assert answer.status_code == 422, answer.text
        page = answer.text
        assert "12,5" in field_error(page, "total")
        assert "admitted_on" in field_error(page, "discharged_on")
        assert field_error(page, "diagnoses")
        assert 'id="f-total" name="total" type="text" value="12,5" aria-invalid="true"' in page
        assert "Traceback" not in page
    missing = desk.post("/desk/quote", data={"csrf_token": token, "person_id": "MHK-P-0001"})
    assert field_error(missing.text, "total") == "is required"
    unknown = desk.post("/desk/quote", data={**STAY, "csrf_token": token, "person_id": "NOBODY"})
    assert "NOBODY" in field_error(unknown.text, "person_id")
    elsewhere = desk.post(
        "/desk/quote",
        data={**STAY, "csrf_token": token, "claim_json": json.dumps({**FAMILY[2], "hospital_id": "MHK-H001"})},
    )
    assert "MHK-H001" in html.unescape(elsewhere.text) and elsewhere.status_code == 422
    assert web.count(Settlement) == before


def test_quote_then_settle_twice_pays_once_and_the_slip_is_the_record(web: Web) -> None:
    desk = web.sign_in("demo-desk")
    token = csrf_of(desk.get("/desk/stay").text)
    quote = desk.post("/desk/quote", data={**STAY, "csrf_token": token})
    assert quote.status_code == 200 and web.count(Settlement) == 0
    # The same amounts through the API's quote: the page shows what the engine computed, fund by fund.
    api = web.api("POST", "/v1/quotes", "demo-desk", json={**FAMILY[2], "claim_id": "WEB-T-1"}).json()
    for tier in api["tiers"]:
        paid = f"{Decimal(tier['paid']):,.2f}"
        assert re.search(
            rf"{re.escape(tier['fund_name'])}.*?<td class=\"num\">{re.escape(paid)}</td>", quote.text, re.S
        )
    claim = html.unescape(re.search(r'name="claim_json" value="([^"]+)"', quote.text).group(1))  # type: ignore[union-attr]
    first = desk.post("/desk/settle", data={"csrf_token": token, "claim_json": claim})
    again = desk.post("/desk/settle", data={"csrf_token": token, "claim_json": claim})
    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert web.count(Settlement) == 1
    slip = desk.get(first.headers["location"])
    setl_id = first.headers["location"].rsplit("/", 1)[1]
    recorded = web.api("GET", f"/v1/settlements/{setl_id}", "demo-desk").json()
    assert setl_id in slip.text and f"{Decimal(recorded['patient_burden']):,.2f}" in slip.text
    for tier in recorded["tiers"]:
        assert tier["fund_name"] in slip.text
    assert "@media print" in desk.get("/static/doudi.css").text

    # Reversing needs the box ticked and a reason; then it is recorded once, with the reason.
    form = desk.get(f"/desk/settlements/{setl_id}/reverse")
    assert form.status_code == 200
    unticked = desk.post(f"/desk/settlements/{setl_id}/reverse", data={"csrf_token": token, "reason": "x"})
    assert unticked.status_code == 422 and field_error(unticked.text, "confirm")
    blank = desk.post(f"/desk/settlements/{setl_id}/reverse", data={"csrf_token": token, "confirm": "on"})
    assert blank.status_code == 422 and "is required" in field_error(blank.text, "reason")
    assert web.count(Reversal) == 0
    done = desk.post(
        f"/desk/settlements/{setl_id}/reverse", data={"csrf_token": token, "confirm": "on", "reason": "wrong patient"}
    )
    assert done.status_code == 303 and web.count(Reversal) == 1
    twice = desk.post(
        f"/desk/settlements/{setl_id}/reverse", data={"csrf_token": token, "confirm": "on", "reason": "again"}
    )
    assert twice.status_code == 409 and web.count(Reversal) == 1
    today = desk.get("/desk/today").text
    assert "WEB-T-1" in today and "已撤销" in today


def test_a_pasted_claim_settles_like_the_api(web: Web) -> None:
    desk = web.sign_in("demo-desk")
    token = csrf_of(desk.get("/desk/stay").text)
    pasted = json.dumps(FAMILY[1])
    quote = desk.post("/desk/quote", data={"csrf_token": token, "claim_json": pasted})
    assert quote.status_code == 200, quote.text
    broken = desk.post("/desk/quote", data={"csrf_token": token, "claim_json": '{"total": 1e3,'})
    assert broken.status_code == 422 and "not valid JSON" in field_error(broken.text, "claim_json")
    settled = desk.post("/desk/settle", data={"csrf_token": token, "claim_json": pasted})
    setl_id = settled.headers["location"].rsplit("/", 1)[1]
    through_api = web.api("POST", "/v1/settlements", "demo-desk", json=FAMILY[1])
    assert through_api.status_code == 200 and through_api.json()["setl_id"] == setl_id  # the same settlement


def test_the_person_page_shows_periods_and_caps_left(web: Web) -> None:
    desk = web.sign_in("demo-desk-mhk")
    web.api("POST", "/v1/settlements", "demo-desk-mhk", json={**FAMILY[3]})  # MHK-P-0002 at MHK-H001
    page = desk.get("/desk/people", params={"person_id": "MHK-P-0104", "year": 2014}).text
    assert "低保边缘（低收入）" in page and "2014-06-30" in page and "低保对象" in page
    assert "10,000.00" in page  # Meihekou's general assistance cap for a dibao person (no tilt)
    lookup = desk.get("/desk/people", params={"person_id": "NOBODY"})
    assert lookup.status_code == 404 and field_error(lookup.text, "person_id")


def test_finance_downloads_match_and_close(web: Web) -> None:
    web.clock.now = dt.datetime(2014, 6, 15, 9, 0)
    settled = [web.api("POST", "/v1/settlements", "demo-desk", json=FAMILY[i]).json() for i in (0, 1, 2)]
    web.clock.now = dt.datetime(2014, 7, 2, 9, 0)
    finance = web.sign_in("demo-finance")
    month = finance.get("/finance/2014-06")
    assert month.status_code == 200 and "JL-PROV-H001" in month.text
    page_file = finance.get("/finance/2014-06/files/statement.xlsx")
    api_file = web.api("GET", "/v1/reconciliation/2014-06/files/statement.xlsx", "demo-finance")
    assert page_file.status_code == 200 and page_file.content == api_file.content
    national = finance.get("/finance/2014-06/files/national/JL-PROV-H001.zip?hospital_id=JL-PROV-H001").content
    with zipfile.ZipFile(io.BytesIO(national)) as archive:
        lines = archive.read(archive.namelist()[0]).decode("utf-8").splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    rows[0][4] = str(Decimal(rows[0][4]) + Decimal("0.01"))
    changed = "\n".join(["\t".join(lines[0].split("\t")), *("\t".join(r) for r in rows)]) + "\n"
    token = csrf_of(finance.get("/finance/2014-06/hospitals/JL-PROV-H001").text)
    matched = finance.post(
        "/finance/2014-06/hospitals/JL-PROV-H001/match",
        data={"csrf_token": token},
        files={"file": ("their.txt", changed.encode("utf-8"), "text/plain")},
    )
    assert matched.status_code == 200
    assert 'data-kind="amount_differs"' in matched.text
    assert f'href="/settlements/{rows[0][0]}"' in matched.text
    assert rows[0][0] in {s["setl_id"] for s in settled}
    nothing = finance.post("/finance/2014-06/hospitals/JL-PROV-H001/match", data={"csrf_token": token})
    assert nothing.status_code == 422 and field_error(nothing.text, "file")

    # The difference report, as a file: the API's own bytes for the same upload.
    upload = {"file": ("their.txt", changed.encode("utf-8"), "text/plain")}
    for kind, media in (("csv", "text/csv"), ("xlsx", "application/vnd.openxmlformats")):
        report = finance.post(
            "/finance/2014-06/hospitals/JL-PROV-H001/match", data={"csrf_token": token, "format": kind}, files=upload
        )
        assert report.status_code == 200 and report.headers["content-type"].startswith(media), report.text[:300]
        assert f'filename="2014-06-JL-PROV-H001-differences.{kind}"' in report.headers["content-disposition"]
        from_api = TestClient(web.app).post(
            f"/v1/reconciliation/2014-06/match?hospital_id=JL-PROV-H001&format={kind}",
            content=changed.encode("utf-8"),
            headers={"X-Filename": "their.txt", "Authorization": f"Bearer {web.tokens['demo-finance']}"},
        )
        assert from_api.status_code == 200 and report.content == from_api.content
    csv_report = finance.post(
        "/finance/2014-06/hospitals/JL-PROV-H001/match", data={"csrf_token": token, "format": "csv"}, files=upload
    )
    assert rows[0][0] in csv_report.content.decode("utf-8-sig")  # the changed settlement is in the report
    odd = finance.post(
        "/finance/2014-06/hospitals/JL-PROV-H001/match", data={"csrf_token": token, "format": "pdf"}, files=upload
    )
    assert odd.status_code == 422 and field_error(odd.text, "file")
    forged = finance.post(
        "/finance/2014-06/hospitals/JL-PROV-H001/match", data={"csrf_token": "forged", "format": "csv"}, files=upload
    )
    assert forged.status_code == 403 and "differences" not in forged.headers.get("content-disposition", "")
    desk = web.sign_in("demo-desk")
    desk_token = csrf_of(desk.get("/desk").text)
    refused = desk.post(
        "/finance/2014-06/hospitals/JL-PROV-H001/match", data={"csrf_token": desk_token, "format": "csv"}, files=upload
    )
    assert refused.status_code == 403 and "differences" not in refused.headers.get("content-disposition", "")

    unconfirmed = finance.post("/finance/2014-06/close", data={"csrf_token": token, "month_again": "2014-06"})
    assert unconfirmed.status_code == 422 and field_error(unconfirmed.text, "month_again")
    mistyped = finance.post("/finance/2014-06/close", data={"csrf_token": token, "confirm": "on", "month_again": "06"})
    assert mistyped.status_code == 422
    assert web.api("GET", "/v1/reconciliation/months", "demo-finance").json()["months"][0]["closed"] is False
    closed = finance.post(
        "/finance/2014-06/close", data={"csrf_token": token, "confirm": "on", "month_again": "2014-06"}
    )
    assert closed.status_code == 303
    months = web.api("GET", "/v1/reconciliation/months", "demo-finance").json()["months"]
    assert next(m for m in months if m["month"] == "2014-06")["closed_by"] == "demo-finance"
    frozen = finance.get("/finance/2014-06").text
    assert "本月已月结并冻结" in frozen and 'action="/finance/2014-06/close"' not in frozen
    not_over = finance.post(
        "/finance/2014-07/close", data={"csrf_token": token, "confirm": "on", "month_again": "2014-07"}
    )
    assert not_over.status_code == 409 and "not over" in field_error(not_over.text, "month_again")


def test_overrides_are_checked_in_the_command_lines_words(web: Web, tmp_path: Path) -> None:
    policy = web.sign_in("demo-policy")
    token = csrf_of(policy.get("/policy/reform").text)
    lines = [
        "jl-meihekou@2014:tiers.medical_assistance.buckets.general.caps.annual.default=none",
        "not an override",
        "jl-meihekou@2014:tiers.nothing_here.ratio=1",
    ]
    answer = policy.post(
        "/policy/reform/check", data={"overrides": "\n".join(lines[:2])}, headers={"X-CSRF-Token": token}
    )
    found = answer.json()
    assert not found["ok"] and [p["line"] for p in found["problems"]] == [2]
    # The command line, refusing the same override before reading any claims, says the same thing.
    code = CliRunner().invoke(
        doudi_cli,
        [
            "simulate",
            "--claims",
            str(tmp_path / "none.csv"),
            "--baseline",
            "jl-meihekou",
            "--out",
            str(tmp_path),
            "--set",
            lines[1],
        ],
    )
    assert code.exit_code == 1
    assert found["problems"][0]["message"].replace("--set 2", "--set 1") in code.stderr
    unknown = policy.post("/policy/reform/check", data={"overrides": lines[2]}, headers={"X-CSRF-Token": token}).json()
    assert not unknown["ok"] and "nothing_here" in unknown["problems"][0]["message"]
    fine = policy.post("/policy/reform/check", data={"overrides": lines[0]}, headers={"X-CSRF-Token": token}).json()
    assert fine == {"ok": True, "problems": [], "checked": 1}

    # Submitted, a bad reform is refused with every problem next to its field; nothing is queued.
    refused = policy.post(
        "/policy/reform",
        data={
            "csrf_token": token,
            "dataset": "nope",
            "baseline": "jl-meihekou",
            "overrides": lines[2],
            "catastrophic_share": "2",
        },
    )
    assert refused.status_code == 422
    assert "nope" in field_error(refused.text, "dataset")
    assert "nothing_here" in field_error(refused.text, "overrides")
    assert field_error(refused.text, "catastrophic_share")
    assert policy.get("/policy/jobs").text.count('href="/policy/jobs/') == 0


def test_languages_catalogues_and_plain_error_pages(web: Web) -> None:
    zh = yaml_keys(WEB / "messages/zh.yaml")
    en = yaml_keys(WEB / "messages/en.yaml")
    assert zh == en, f"keys only in one language: {sorted(zh ^ en)}"
    used = set()
    for template in WEB.glob("templates/**/*.html"):
        used |= set(re.findall(r"\bt\('([a-z_]+(?:\.[a-z_]+)+)'", template.read_text(encoding="utf-8")))
    for module in set(WEB.glob("*.py")) - {WEB / "i18n.py"}:
        used |= set(re.findall(r'"((?:error|login|desk|finance|policy)\.[a-z_]+)"', module.read_text(encoding="utf-8")))
    # Prefixes a template completes, and template names that look like keys.
    dynamic = {key for key in used if key.endswith(("_", ".", ".html"))}
    assert sorted(used - dynamic - zh) == [], "keys used but not in the catalogues"

    desk = web.sign_in("demo-desk")
    chinese = desk.get("/desk")
    assert '<html lang="zh-CN">' in chinese.text and "结算窗口" in chinese.text
    english = desk.get("/desk?lang=en")
    assert '<html lang="en">' in english.text and "Billing desk" in english.text
    assert "doudi_lang=en" in english.headers["set-cookie"]
    assert "Billing desk" in desk.get("/desk").text  # the cookie keeps it
    for header in ("content-security-policy", "x-content-type-options", "referrer-policy"):
        assert header in chinese.headers
    assert "script-src 'self'" in chinese.headers["content-security-policy"]

    missing = desk.get("/desk/nothing-here", headers={"Accept": "text/html"})
    assert missing.status_code == 404 and "<h1>" in missing.text and "Traceback" not in missing.text
    api_missing = desk.get("/v1/nothing-here")
    assert api_missing.status_code == 404 and api_missing.headers["content-type"].startswith("application/problem+json")
    bad_month = web.sign_in("demo-finance").get("/finance/2014-13")
    assert bad_month.status_code == 404 and "Traceback" not in bad_month.text


def yaml_keys(path: Path) -> set[str]:
    import yaml

    def walk(data: dict[str, Any], prefix: str = "") -> set[str]:
        keys: set[str] = set()
        for key, value in data.items():
            keys |= walk(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"}
        return keys

    return walk(yaml.safe_load(path.read_text(encoding="utf-8")))


def test_an_unexpected_failure_is_a_plain_page_with_no_trace(
    web: Web, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    finance = web.sign_in("demo-finance")

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret-internal-detail: months table exploded")

    monkeypatch.setattr(reconcile, "months", broken)
    with caplog.at_level(logging.ERROR):
        failed = finance.get("/finance", headers={"Accept": "text/html"})
    assert failed.status_code == 500 and failed.headers["content-type"].startswith("text/html")
    assert "<h1>" in failed.text and "服务器出错" in failed.text  # the catalogue's plain words
    for leak in ("Traceback", "secret-internal-detail", "RuntimeError", "routes_finance", 'File "'):
        assert leak not in failed.text, leak
    assert "content-security-policy" in failed.headers  # still a page like every other
    # The trace goes to the log, for the administrator.
    assert any(r.exc_info and "secret-internal-detail" in str(r.exc_info[1]) for r in caplog.records)
    assert finance.get("/finance/2014-06").status_code == 200  # and the next page works as before
