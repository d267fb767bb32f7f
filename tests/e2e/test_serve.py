"""The README's main job as a newcomer meets it: `doudi serve --demo` in a fresh folder starts a real server
on a SQLite file, prints a token per demo user and writes them to var/demo-tokens/, and the README's curl
settlement of the leukaemia case answers 201, then 200 for the same request."""

from __future__ import annotations

import gc
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app, served_app
from tests.servers import DOUDI, free_port, launch, stop, wait_until_up

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    port = free_port()
    process = launch(
        [str(DOUDI), "serve", "--demo", "--port", str(port)],
        tmp_path,
        {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},  # no DOUDI_DATABASE_URL: the default
        tmp_path / "server.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process, timeout_s=60)
        yield base, tmp_path, process
    finally:
        stop(process)


def test_serve_demo_settles_the_readme_example(server: tuple[str, Path, subprocess.Popen[bytes]]) -> None:
    base, folder, _process = server
    assert (folder / "var/doudi.sqlite3").exists()
    tokens = {path.name: path.read_text().strip() for path in (folder / "var/demo-tokens").iterdir()}
    assert {"demo-desk", "demo-finance", "demo-policy", "demo-admin"} <= set(tokens)
    assert all(oct(path.stat().st_mode)[-3:] == "600" for path in (folder / "var/demo-tokens").iterdir())
    claim = (ROOT / "examples/meihekou-leukaemia.json").read_bytes()
    desk = {"Authorization": f"Bearer {tokens['demo-desk']}"}
    first = httpx.post(f"{base}/v1/settlements", content=claim, headers=desk, timeout=10)
    assert first.status_code == 201, first.text
    again = httpx.post(f"{base}/v1/settlements", content=claim, headers=desk, timeout=10)
    assert again.status_code == 200 and again.json() == first.json()
    assert httpx.post(f"{base}/v1/settlements", content=claim, timeout=10).status_code == 401
    document = httpx.get(f"{base}/openapi.json", timeout=10).json()
    assert "/v1/settlements" in document["paths"]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="keeping a process on a core needs Linux")
def test_serve_on_one_core_keeps_every_thread_there(tmp_path: Path) -> None:
    core = max(os.sched_getaffinity(0))
    port = free_port()
    command = [str(DOUDI), "serve", "--port", str(port), "--cpu", str(core)]
    process = launch(command, tmp_path, {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process, timeout_s=60)
        for _ in range(20):  # the request threads start with the first requests
            assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        threads = list(Path(f"/proc/{process.pid}/task").iterdir())
        assert len(threads) > 1
        for thread in threads:
            status = (thread / "status").read_text()
            assert f"Cpus_allowed_list:\t{core}\n" in status, status
    finally:
        stop(process)


def test_serve_refuses_a_core_it_cannot_use_and_workers_on_one_core(tmp_path: Path) -> None:
    run = {"capture_output": True, "text": True, "timeout": 60, "cwd": tmp_path}
    taken = subprocess.run([str(DOUDI), "serve", "--cpu", "4096"], **run)  # type: ignore[call-overload]
    assert taken.returncode == 1 and "--cpu: core 4096 is not one this process may use" in taken.stderr
    both = subprocess.run([str(DOUDI), "serve", "--cpu", "0", "--workers", "2"], **run)  # type: ignore[call-overload]
    assert both.returncode == 1 and "--cpu" in both.stderr and "--workers" in both.stderr


def test_serve_with_two_processes_answers_from_each_app(tmp_path: Path) -> None:
    port = free_port()
    command = [str(DOUDI), "serve", "--port", str(port), "--workers", "2"]
    process = launch(command, tmp_path, {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process, timeout_s=60)
        assert all(httpx.get(f"{base}/healthz", timeout=10).status_code == 200 for _ in range(10))
        assert httpx.get(f"{base}/v1/policies", timeout=10).status_code == 401  # the whole app, not a stub
    finally:
        stop(process)


def test_a_served_app_sets_its_startup_objects_aside_and_create_app_does_not(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'doudi.sqlite3'}"
    gc.unfreeze()
    try:
        with TestClient(create_app(url)) as client:
            assert client.get("/healthz").status_code == 200
            assert gc.get_freeze_count() == 0  # a test's apps and objects stay collectable
        with TestClient(served_app(url)) as client:
            assert client.get("/healthz").status_code == 200
            assert gc.get_freeze_count() > 10_000  # the policies, plans and framework, built before the start
    finally:
        gc.unfreeze()
