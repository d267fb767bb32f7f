"""Monthly reconciliation through HTTP on SQLite and PostgreSQL: a statement that balances and matches the
settlements to the fen, its files, a month closed once and frozen (a later reversal lands in the month it
was made, as a prior-period adjustment), a negative balance carried forward, and the roles."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import zipfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from doudi import demo, services

ROOT = Path(__file__).resolve().parents[2]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2014, 6, 15, 9, 0)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> tuple[TestClient, dict[str, dict[str, str]], Clock]:
    files = services.open_library()
    clock = Clock()
    app = create_app(database_url, files, clock=clock, archive=tmp_path / "archive")
    ctx = app.state.context
    tokens = demo.seed(ctx.engine, ctx.catalogue, files, clock.now)
    auth = {user: {"Authorization": f"Bearer {token}"} for user, token in tokens.items()}
    return TestClient(app), auth, clock


def _yuan(text: str) -> int:
    return int(Decimal(text) * 100) if text else 0


def test_a_month_balances_closes_once_and_a_late_reversal_lands_in_the_next_month(
    world: tuple[TestClient, dict[str, dict[str, str]], Clock],
) -> None:
    client, auth, clock = world
    desk, finance = auth["demo-desk"], auth["demo-finance"]
    june = [client.post("/v1/settlements", json=FAMILY[i], headers=desk).json() for i in (1, 2)]
    assert all("setl_id" in s for s in june)

    statement = client.get("/v1/reconciliation/2014-06", headers=finance).json()
    assert statement["balanced"] and not statement["closed"]
    paid = sum(_yuan(s["fund_paid"]) for s in june)
    assert sum(_yuan(r["net"]) for r in statement["summary"]) == paid
    assert _yuan(statement["hospitals"][0]["fund_pay_sumamt"]) == paid

    # Not over yet: it cannot be closed.
    early = client.post("/v1/reconciliation/2014-06/close", headers=finance)
    assert early.status_code == 422 and early.json()["errors"][0]["field"] == "month"

    clock.now = dt.datetime(2014, 7, 3, 10, 0)
    closed = client.post("/v1/reconciliation/2014-06/close", headers=finance)
    assert closed.status_code == 201, closed.text
    manifest = closed.json()["manifest"]
    hashes = {f["name"]: f["sha256"] for f in manifest["files"]}
    assert {"summary.csv", "detail.csv", "statement.xlsx", "national/JL-PROV-H001.zip"} <= set(hashes)
    again = client.post("/v1/reconciliation/2014-06/close", headers=finance)
    assert again.status_code == 200 and again.json()["manifest"]["files"] == manifest["files"]

    # A reversal in July of a June settlement: June is unchanged (byte for byte), July carries it.
    reversed_ = client.post(f"/v1/settlements/{june[1]['setl_id']}/reversal", json={"reason": "x"}, headers=desk)
    assert reversed_.status_code == 201
    for name, digest in hashes.items():
        download = client.get(f"/v1/reconciliation/2014-06/files/{name}", headers=finance)
        assert download.status_code == 200, name
        assert hashlib.sha256(download.content).hexdigest() == digest, name
    july = client.get("/v1/reconciliation/2014-07", headers=finance).json()
    assert july["balanced"]
    detail = client.get("/v1/reconciliation/2014-07/detail", headers=finance).json()["rows"]
    assert [(r["setl_id"], r["row_kind"], r["prior_period"], r["original_month"]) for r in detail] == [
        (june[1]["setl_id"], "reversal", True, "2014-06")
    ]
    assert _yuan(detail[0]["fund_paid"]) == -_yuan(june[1]["fund_paid"])
    # Nothing settled in July to set it against: the hospital owes it back, carried into August.
    summary = july["summary"]
    assert all(_yuan(r["due"]) == 0 for r in summary)
    assert sum(_yuan(r["carried_out"]) for r in summary) == -_yuan(june[1]["fund_paid"])
    clock.now = dt.datetime(2014, 8, 5, 9, 0)
    august_claim = {**FAMILY[2], "claim_id": "MHK-2014-0805-LATE", "settled_at": "2014-08-05T09:00:00"}
    assert client.post("/v1/settlements", json=august_claim, headers=desk).status_code == 201
    august = client.get("/v1/reconciliation/2014-08", headers=finance).json()
    assert august["balanced"]
    assert sum(_yuan(r["carried_in"]) for r in august["summary"]) == -_yuan(june[1]["fund_paid"])
    months = client.get("/v1/reconciliation/months", headers=finance).json()["months"]
    assert [(m["month"], m["closed"]) for m in months] == [("2014-08", False), ("2014-07", False), ("2014-06", True)]


def test_statement_files_are_readable_and_agree(
    world: tuple[TestClient, dict[str, dict[str, str]], Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, auth, _clock = world
    monkeypatch.setenv("DOUDI_FULL_IDENTIFIERS", "1")  # as a county exchanging national files runs it
    settled = client.post("/v1/settlements", json=FAMILY[2], headers=auth["demo-desk"]).json()
    finance = auth["demo-finance"]
    raw = client.get("/v1/reconciliation/2014-06/files/detail.csv", headers=finance)
    assert raw.headers["content-type"].startswith("text/csv")
    assert raw.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(raw.content.decode("utf-8-sig"))))
    assert rows[0]["结算ID(setl_id)"] == settled["setl_id"]
    assert rows[0]["基金支付总额(fund_pay_sumamt)"] == settled["fund_paid"]
    book = openpyxl.load_workbook(
        io.BytesIO(client.get("/v1/reconciliation/2014-06/files/statement.xlsx", headers=finance).content)
    )
    assert book.sheetnames == ["汇总 summary", "医疗机构 hospitals", "明细 detail", "平衡校验 checks"]
    assert book["明细 detail"].freeze_panes == "A3"
    national = client.get("/v1/reconciliation/2014-06/files/national/JL-PROV-H001.zip", headers=finance)
    with zipfile.ZipFile(io.BytesIO(national.content)) as archive:
        (name,) = archive.namelist()
        lines = archive.read(name).decode("utf-8").splitlines()
    assert lines[0].split("\t") == [
        "setl_id",
        "mdtrt_id",
        "psn_no",
        "medfee_sumamt",
        "fund_pay_sumamt",
        "acct_pay",
        "refd_setl_flag",
        "exp_content",
    ]
    assert lines[1].split("\t")[:5] == [
        settled["setl_id"],
        settled["claim_id"],
        "MHK-P-0001",
        settled["amounts"]["total"],
        settled["fund_paid"],
    ]
    assert client.get("/v1/reconciliation/2014-06/files/nope.csv", headers=finance).status_code == 404
    assert client.get("/v1/reconciliation/2014-13", headers=finance).status_code == 422


def test_only_finance_and_admins_reconcile(world: tuple[TestClient, dict[str, dict[str, str]], Clock]) -> None:
    client, auth, _clock = world
    for user, status in (("demo-desk", 403), ("demo-policy", 403), ("demo-finance", 200), ("demo-admin", 200)):
        assert client.get("/v1/reconciliation/months", headers=auth[user]).status_code == status, user
    assert client.post("/v1/reconciliation/2014-05/close", headers=auth["demo-desk"]).status_code == 403


def test_a_hospitals_file_is_matched_and_every_difference_named(
    world: tuple[TestClient, dict[str, dict[str, str]], Clock],
) -> None:
    client, auth, clock = world
    desk, finance = auth["demo-desk"], auth["demo-finance"]
    settled = [client.post("/v1/settlements", json=FAMILY[i], headers=desk).json() for i in (0, 1, 2)]
    clock.now = dt.datetime(2014, 6, 20, 9, 0)
    assert client.post(f"/v1/settlements/{settled[0]['setl_id']}/reversal", json={"reason": "x"}, headers=desk)
    ours = client.get("/v1/reconciliation/2014-06/files/national/JL-PROV-H001.zip", headers=finance).content
    url = "/v1/reconciliation/2014-06/match"
    params = {"hospital_id": "JL-PROV-H001"}
    same = client.post(url, params=params, content=ours, headers={**finance, "X-Filename": "../../etc/JL.zip"})
    assert same.status_code == 200, same.text
    body = same.json()
    assert body["verdict"]["balanced"] and body["differences"] == []
    assert body["file"] == {**body["file"], "name": "JL.zip", "format": "national", "zipped": True}
    assert body["counts"]["matched"] == 4  # three settlements and one reverse row

    # The hospital's own file as a GBK CSV: one row missing, one amount off by a fen, one unknown row.
    with zipfile.ZipFile(io.BytesIO(ours)) as archive:
        lines = archive.read(archive.namelist()[0]).decode("utf-8").splitlines()
    header, rows = lines[0].split("\t"), [line.split("\t") for line in lines[1:]]
    missing = rows.pop(2)
    rows[0][4] = str(Decimal(rows[0][4]) + Decimal("0.01"))
    rows.append(["F" * 32, "HIS-X", "MHK-P-0001", "100.00", "50.00", "0.00", "0", "null"])
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    theirs = client.post(url, params=params, content=text.encode("gbk"), headers={**finance, "X-Filename": "h.csv"})
    found = theirs.json()
    assert not found["verdict"]["balanced"] and found["verdict"]["stmt_rslt"] != "0"
    kinds = sorted((d["kind"], d["setl_id"], d["field"]) for d in found["differences"])
    assert kinds == sorted(
        [
            ("amount_differs", rows[0][0], "fund_pay_sumamt"),
            ("doudi_only", missing[0], "medfee_sumamt"),
            ("hospital_only", "F" * 32, "medfee_sumamt"),
        ]
    )
    fen = next(d for d in found["differences"] if d["kind"] == "amount_differs")
    assert fen["difference"] == "0.01"
    report = client.post(url, params={**params, "format": "xlsx"}, content=text.encode("gbk"), headers=finance)
    assert report.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert len(openpyxl.load_workbook(io.BytesIO(report.content)).sheetnames) == 2

    junk = client.post(url, params=params, content=b"\x00\x01not a file", headers=finance).json()
    assert not junk["verdict"]["balanced"] and junk["differences"][0]["kind"] == "bad_row"
    statement = client.get("/v1/reconciliation/2014-06", headers=finance).json()
    assert statement["balanced"]  # matching never touches the ledger
