"""`doudi reconcile statement | match | close` as finance staff run them, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from doudi import demo, services
from doudi.cli import app

ROOT = Path(__file__).resolve().parents[2]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]


def test_statement_match_and_close_on_the_command_line(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = services.open_library()
    when = dt.datetime(2014, 6, 15, 9, 0)
    service = create_app(database_url, files, clock=lambda: when)
    ctx = service.state.context
    tokens = demo.seed(ctx.engine, ctx.catalogue, files, when)
    client = TestClient(service)
    desk = {"Authorization": f"Bearer {tokens['demo-desk']}"}
    for claim in FAMILY[1:3]:
        assert client.post("/v1/settlements", json=claim, headers=desk).status_code == 201

    runner = CliRunner()
    out = tmp_path / "june"
    done = runner.invoke(
        app, ["reconcile", "statement", "--month", "2014-06", "--out", str(out), "--database-url", database_url]
    )
    assert done.exit_code == 0, done.output
    manifest = json.loads((out / "manifest.json").read_text())
    for file in manifest["files"]:
        assert hashlib.sha256((out / file["name"]).read_bytes()).hexdigest() == file["sha256"]
    assert "balanced" in done.output

    national = out / "national" / "JL-PROV-H001.zip"
    args = ["reconcile", "match", "--month", "2014-06", "--hospital", "JL-PROV-H001", "--database-url", database_url]
    matched = runner.invoke(app, [*args, "--file", str(national), "--out", str(tmp_path / "m")])
    assert matched.exit_code == 0, matched.output
    assert "national (zipped), encoding UTF-8" in matched.output
    broken = tmp_path / "broken.csv"
    broken.write_text("setl_id,medfee_sumamt\nX,abc\n", encoding="utf-8")
    differs = runner.invoke(app, [*args, "--file", str(broken), "--out", str(tmp_path / "b")])
    assert differs.exit_code == 1 and "fund_pay_sumamt" in differs.output
    assert (tmp_path / "b" / "differences.xlsx").exists()

    monkeypatch.setenv("DOUDI_ARCHIVE_DIR", str(tmp_path / "archive"))
    close = ["reconcile", "close", "--month", "2014-06", "--database-url", database_url]
    closed = runner.invoke(app, close)
    assert closed.exit_code == 0 and "2014-06 closed" in closed.output, closed.output
    archived = tmp_path / "archive" / "2014-06"
    assert (archived / "statement.xlsx").read_bytes() == (out / "statement.xlsx").read_bytes()
    again = runner.invoke(app, close)
    assert again.exit_code == 0 and "was already closed" in again.output
    future = runner.invoke(app, ["reconcile", "close", "--month", "2099-01", "--database-url", database_url])
    assert future.exit_code == 1 and "not over yet" in future.output
    bad = runner.invoke(app, ["reconcile", "close", "--month", "June", "--database-url", database_url])
    assert bad.exit_code == 1 and "--month" in bad.output
