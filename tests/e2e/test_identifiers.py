"""People's identifiers and names kept out of what does not need them, end to end: a real `doudi serve`
process writes no identity number or name to its log while people are registered and read by their
numbers, and the statement files finance downloads carry person numbers masked, except the national detail
files when DOUDI_FULL_IDENTIFIERS is set; a month closed under one setting downloads byte for byte as
archived under another."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import zipfile
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from doudi import demo, services
from tests.e2e.test_serve import server  # noqa: F401 - the fixture: a real `doudi serve --demo`

ROOT = Path(__file__).resolve().parents[2]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]
NUMBER = "220581199001011234"  # shaped like a resident identity number, used as the person's number
NAME = "欧阳测试"


def test_the_server_log_carries_no_identity_number_or_name(
    server: tuple[str, Path, subprocess.Popen[bytes]],  # noqa: F811
) -> None:
    base, folder, process = server
    tokens = {path.name: path.read_text().strip() for path in (folder / "var/demo-tokens").iterdir()}
    admin = {"Authorization": f"Bearer {tokens['demo-admin']}"}
    person = {
        "household_id": f"H{NUMBER}",
        "name": NAME,
        "insurance_scheme": "resident",
        "region": "220581",
        "categories": [{"category": "dibao", "valid_from": "2014-01-01"}],
    }
    assert httpx.put(f"{base}/v1/people/{NUMBER}", json=person, headers=admin, timeout=10).status_code == 200
    assert httpx.get(f"{base}/v1/people/{NUMBER}", headers=admin, timeout=10).json()["name"] == NAME
    desk = {"Authorization": f"Bearer {tokens['demo-desk']}"}
    found = httpx.get(f"{base}/v1/people/{NUMBER}/accumulators", params={"year": 2014}, headers=desk, timeout=10)
    assert found.status_code == 200, found.text
    process.terminate()
    process.wait(timeout=20)
    log = (folder / "server.log").read_text(encoding="utf-8", errors="replace")  # where the fixture sends its output
    assert f"/v1/people/{'*' * 14}1234" in log  # the requests were logged, masked
    assert NUMBER not in log and NUMBER[:14] not in log and NAME not in log


def download(client: TestClient, month: str, name: str, finance: dict[str, str]) -> bytes:
    answer = client.get(f"/v1/reconciliation/{month}/files/{name}", headers=finance)
    assert answer.status_code == 200, answer.text
    return bytes(answer.content)


def national_text(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read(archive.namelist()[0]).decode("utf-8")


def test_statement_files_mask_person_numbers_unless_the_national_file_must_carry_them(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DOUDI_FULL_IDENTIFIERS", raising=False)
    files = services.open_library()
    now = [dt.datetime(2014, 12, 1, 9, 0)]
    app = create_app(database_url, files, clock=lambda: now[0], archive=tmp_path / "archive")
    ctx = app.state.context
    tokens = demo.seed(ctx.engine, ctx.catalogue, files, now[0])
    client = TestClient(app)
    desk = {"Authorization": f"Bearer {tokens['demo-desk']}"}
    finance = {"Authorization": f"Bearer {tokens['demo-finance']}"}
    for claim in FAMILY[1:3]:
        assert client.post("/v1/settlements", json=claim, headers=desk).status_code == 201
    person = FAMILY[1]["person_id"]
    national = "national/JL-PROV-H001.zip"

    detail = download(client, "2014-12", "detail.csv", finance).decode("utf-8-sig")
    assert person not in detail and f'"*******{person[-3:]}"' in detail
    assert person not in national_text(download(client, "2014-12", national, finance))

    monkeypatch.setenv("DOUDI_FULL_IDENTIFIERS", "1")
    assert f"\t{person}\t" in national_text(download(client, "2014-12", national, finance))
    assert person not in download(client, "2014-12", "detail.csv", finance).decode("utf-8-sig")

    # Closed with full national identifiers, downloaded after the setting was switched off: as archived.
    now[0] = dt.datetime(2015, 1, 2, 9, 0)
    assert client.post("/v1/reconciliation/2014-12/close", headers=finance).status_code in (200, 201)
    archived = tmp_path / "archive" / "2014-12"
    assert json.loads((archived / "manifest.json").read_text())["identifiers"] == "national"
    monkeypatch.delenv("DOUDI_FULL_IDENTIFIERS")
    again = download(client, "2014-12", national, finance)
    assert again == (archived / national).read_bytes() and f"\t{person}\t" in national_text(again)
    assert download(client, "2014-12", "detail.csv", finance) == (archived / "detail.csv").read_bytes()
    ctx.close()
