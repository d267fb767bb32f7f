"""Policy simulations through HTTP: a dataset and a parameter sheet uploaded, a job run in the background to
the end, its files downloaded and equal byte for byte to what `doudi simulate` writes for the same inputs;
a refused reform naming every problem; a bad dataset named row by row; who sees which job; a restart."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner

from doudi import services
from doudi.cli import app as doudi_cli
from doudi.simulations import JobStatus, SimulationJobs
from simulation.dataset import write_claims
from simulation.generate import generate
from tests.e2e.conftest import Service

OVERRIDE = "jl-meihekou@2014:tiers.medical_assistance.buckets.general.ratio.default=0.75"
SHEET_ROW = ("jl-meihekou@2014", "tiers.medical_assistance.buckets.general.caps.annual.default", "none")


@pytest.fixture(autouse=True)
def simulations_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The service's simulation folder, in this test's own directory (on either database)."""
    folder = tmp_path / "simulations"
    monkeypatch.setenv("DOUDI_SIMULATIONS_DIR", str(folder))
    return folder


def sheet_bytes(*rows: tuple[str, str, str]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["policy", "path", "value"])
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def wait(service: Service, job_id: str, user: str = "demo-policy", timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        status: dict[str, Any] = service.client.get(f"/v1/simulations/{job_id}", headers=service.auth(user)).json()
        seen.append(status["progress"])
        if status["state"] in ("done", "failed"):
            assert seen == sorted(seen)  # progress never goes back
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def test_a_job_runs_to_the_end_and_its_files_equal_the_commands(
    service: Service, tmp_path: Path, simulations_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, policy = service.client, service.auth("demo-policy")
    csv_path = tmp_path / "province.csv"
    write_claims(generate(4_000, seed=17), csv_path)
    uploaded = client.post(
        "/v1/simulations/datasets",
        params={"name": "province-4000"},
        content=csv_path.read_bytes(),
        headers={**policy, "X-Filename": "province.csv", "Content-Type": "application/octet-stream"},
    )
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["claims"] > 6_000
    names = [d["name"] for d in client.get("/v1/simulations/datasets", headers=policy).json()["datasets"]]
    assert names == ["jilin-synthetic-2014", "province-4000"]
    sheet = client.post(
        "/v1/simulations/sheets",
        content=sheet_bytes(SHEET_ROW),
        headers={**policy, "Content-Type": "application/octet-stream"},
    )
    assert sheet.status_code == 201, sheet.text
    sheet_id = sheet.json()["sheet"]

    request = {
        "dataset": "province-4000",
        "baseline": "jl-changchun",
        "reform": "jl-meihekou",
        "overrides": [OVERRIDE],
        "sheet": sheet_id,
    }
    submitted = client.post("/v1/simulations", json=request, headers=policy)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert submitted.headers["Location"] == f"/v1/simulations/{job_id}"
    assert submitted.json()["state"] in ("queued", "running")
    status = wait(service, job_id)
    assert status["state"] == "done", status["problems"]
    assert status["progress"] == 1.0 and status["claims_done"] == status["claims_total"] == uploaded.json()["claims"]
    assert status["files"] == ["summary.json", "report.xlsx", "report.html"]
    assert status["summary"]["claims"] == status["claims_total"]

    # The same inputs through the command line, on the stored dataset, with the sheet under its id's name.
    monkeypatch.chdir(simulations_dir / "sheets")
    out = tmp_path / "cli"
    ran = CliRunner().invoke(
        doudi_cli,
        [
            "simulate",
            "--claims",
            str(simulations_dir / "datasets" / "province-4000.parquet"),
            "--baseline",
            "jl-changchun",
            "--reform",
            "jl-meihekou",
            "--set",
            OVERRIDE,
            "--sheet",
            f"{sheet_id}.xlsx",
            "--out",
            str(out),
        ],
    )
    assert ran.exit_code == 0, ran.output
    for name in status["files"]:
        got = client.get(f"/v1/simulations/{job_id}/files/{name}", headers=policy)
        assert got.status_code == 200, name
        assert got.content == (out / name).read_bytes(), name
    assert "jl-meihekou" in got.text and "<svg" in got.text
    movers = status["summary"]["movers"]  # masked here as in the command's files, compared above
    assert movers and all(row["person_id"].startswith("*") for row in movers)

    # Only the job's own files; only its owner (and admins) see it.
    for name in ("job.json", "../job.json", "job.pickle", "nothing.txt"):
        assert client.get(f"/v1/simulations/{job_id}/files/{name}", headers=policy).status_code == 404, name
    other = client.post("/v1/users", json={"name": "policy-two", "role": "policy"}, headers=service.auth("demo-admin"))
    stranger = {"Authorization": f"Bearer {other.json()['token']}"}
    assert client.get(f"/v1/simulations/{job_id}", headers=stranger).status_code == 404
    assert client.get("/v1/simulations", headers=stranger).json()["simulations"] == []
    listed = client.get("/v1/simulations", headers=service.auth("demo-admin")).json()["simulations"]
    assert [s["id"] for s in listed] == [job_id] and listed[0]["owner"] == "demo-policy"
    assert client.get(f"/v1/simulations/{job_id}", headers=service.auth("demo-desk")).status_code == 403


def test_a_refused_reform_names_every_problem_and_nothing_is_queued(service: Service) -> None:
    client, policy = service.client, service.auth("demo-policy")
    sheet = client.post(
        "/v1/simulations/sheets",
        content=sheet_bytes(("jl-meihekou@2014", "tiers.medical_assistance.buckets.general.ratio.default", "1.5")),
        headers={**policy, "Content-Type": "application/octet-stream"},
    )
    assert sheet.status_code == 201  # its rows read as overrides; the value is checked with the reform
    request = {
        "dataset": "nowhere",
        "baseline": "jl-unknown",
        "reform": "jl-meihekou@2099",
        "overrides": ["not an override", "jl-meihekou@2014:tiers.medical_assistance.buckets.nobody.caps=none"],
        "sheet": sheet.json()["sheet"],
        "catastrophic_share": "0",
    }
    refused = client.post("/v1/simulations", json=request, headers=policy)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    errors = refused.json()["errors"]
    messages = "\n".join(f"{e['field']}: {e['message']}" for e in errors)
    assert "dataset: no dataset 'nowhere'" in messages
    assert "baseline: baseline: no policy 'jl-unknown'" in messages
    assert "overrides: overrides[0]: not an override: write POLICY@VERSION:PATH=VALUE" in messages
    assert "no item 'nobody'" in messages
    assert "reform: reform: jl-meihekou@2099: no valid policy 'jl-meihekou@2099'" in messages
    assert "catastrophic_share: the catastrophic share 0 must be above 0" in messages
    assert len(errors) == 6
    alone = client.post(
        "/v1/simulations",
        json={
            **request,
            "dataset": "jilin-synthetic-2014",
            "baseline": "jl-changchun",
            "reform": None,
            "overrides": [],
            "catastrophic_share": "0.4",
        },
        headers=policy,
    )
    assert alone.status_code == 422  # the sheet's ratio 1.5, named with its row once the document is checked
    assert "between 0 and 1" in alone.text and "row 2" in alone.text
    unknown_field = client.post("/v1/simulations", json={"dataset": "x", "baseline": "y", "colour": 1}, headers=policy)
    assert unknown_field.status_code == 422 and "colour" in unknown_field.text
    assert client.get("/v1/simulations", headers=policy).json()["simulations"] == []


def test_a_bad_dataset_upload_is_named_row_by_row_and_not_stored(service: Service, tmp_path: Path) -> None:
    client, policy = service.client, service.auth("demo-policy")
    path = tmp_path / "bad.csv"
    write_claims(generate(300, seed=3), path)
    lines = path.read_text(encoding="utf-8").splitlines()
    first = lines[1].split(",")
    first[12] = "-5.00"  # total, row 1
    lines[1] = ",".join(first)
    third = lines[3].split(",")
    third[4] = "rich"  # category, row 3
    lines[3] = ",".join(third)
    answer = client.post(
        "/v1/simulations/datasets",
        params={"name": "bad"},
        content="\n".join(lines).encode("utf-8"),
        headers={**policy, "X-Filename": "bad.csv", "Content-Type": "application/octet-stream"},
    )
    assert answer.status_code == 422
    errors = [(e["field"], e["message"]) for e in answer.json()["errors"]]
    assert errors[0][0] == "dataset" and errors[0][1].startswith("row 1, total:")
    assert errors[1][1].startswith("row 3, category: 'rich' is not one of")
    names = [d["name"] for d in client.get("/v1/simulations/datasets", headers=policy).json()["datasets"]]
    assert "bad" not in names
    not_a_file = client.post(
        "/v1/simulations/datasets",
        params={"name": "junk"},
        content=b"\x00\x01 not a table",
        headers={**policy, "X-Filename": "junk.bin", "Content-Type": "application/octet-stream"},
    )
    assert not_a_file.status_code == 422 and "neither Parquet nor CSV" in not_a_file.text
    bad_name = client.post(
        "/v1/simulations/datasets",
        params={"name": "../etc"},
        content=path.read_bytes(),
        headers={**policy, "X-Filename": "bad.csv", "Content-Type": "application/octet-stream"},
    )
    assert bad_name.status_code == 422 and "not a dataset name" in bad_name.text


def test_after_a_restart_an_interrupted_job_is_failed_and_finished_ones_remain(tmp_path: Path) -> None:
    library = services.open_library()
    folder = tmp_path / "jobs"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs
    for job_id, state, extra in (
        ("00000000000000a1", "running", {"pid": gone.pid, "stage": "settling"}),
        ("00000000000000a2", "queued", {"server_pid": gone.pid}),
        ("00000000000000a3", "running", {"pid": os.getpid(), "stage": "settling"}),  # still alive
        ("00000000000000a4", "done", {"files": ["summary.json"], "summary": {"claims": 3}}),
    ):
        status = JobStatus(id=job_id, owner="someone", state=state, submitted_at=f"2026-01-0{job_id[-1]}")
        path = folder / "jobs" / job_id / "job.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({**status.model_dump(mode="json"), **extra}), encoding="utf-8")
        if state == "done":
            (path.parent / "out").mkdir()
            (path.parent / "out" / "summary.json").write_text('{"claims": 3}', encoding="utf-8")
    jobs = SimulationJobs(folder, lambda: library)
    interrupted = jobs.get("00000000000000a1")
    assert interrupted.state == "failed" and "stopped while this simulation ran" in interrupted.problems[0]
    assert jobs.get("00000000000000a2").state == "failed"
    assert jobs.get("00000000000000a3").state == "running"
    assert jobs.get("00000000000000a4").summary == {"claims": 3}
    assert jobs.file_path("00000000000000a4", "summary.json").read_text(encoding="utf-8") == '{"claims": 3}'
    assert [s.id for s in jobs.list("someone")][:2] == ["00000000000000a4", "00000000000000a3"]
    with pytest.raises(KeyError):
        jobs.get("../../etc")
