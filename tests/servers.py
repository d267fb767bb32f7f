"""Real server processes for the tests that need one (tests/e2e/test_serve.py, tests/browser/, the crash,
load and hostile-input tests of tests/reliability/): started on a free port, waited for until /healthz
answers, stopped, or killed with SIGKILL and restarted.

Every server gets a session of its own (so a process group of its own): `doudi serve --workers N` is a
uvicorn supervisor with N worker processes, and killing the group kills them all at once, as a power cut or
the kernel's out-of-memory killer would. bench/service.py keeps its own copy: bench/ does not import tests/.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from pathlib import Path

import httpx

DOUDI = Path(sys.executable).parent / "doudi"
# Where each launched process writes, so that a failure to start can show the end of it.
_LOGS: weakref.WeakKeyDictionary[subprocess.Popen[bytes], Path] = weakref.WeakKeyDictionary()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def launch(command: list[str], folder: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`command` run in `folder`, its output appended to `log` (a file, not a pipe that nobody reads and
    that would stall a talkative server once full)."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=folder, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    _LOGS[process] = log
    return process


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def wait_until_up(base_url: str, process: subprocess.Popen[bytes], timeout_s: float = 90.0) -> None:
    """Until GET /healthz answers 200; a server that exits or takes longer than `timeout_s` is killed and
    fails the test with the end of its log."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            kill_group(process)
            raise AssertionError(f"the server did not start:\n{tail(_LOGS[process])}")
        time.sleep(0.1)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the server's whole process group (the supervisor and its workers): no shutdown handler
    runs, open transactions are cut where they stand."""
    with contextlib.suppress(ProcessLookupError):  # the group is already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def stop(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGINT (uvicorn's graceful shutdown, which also stops its workers), else SIGKILL to the group."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout_s)
    kill_group(process)  # workers a supervisor left behind, if any


class Server:
    """`doudi serve` on database `url`, run in `folder` (its var/, archive/ and server.log stay there), with
    `workers` processes. The first start seeds the demo region (`--demo`) and reads the demo tokens; a
    restart does not seed again, so the tokens, stored in the database, keep working across a crash."""

    def __init__(self, url: str, folder: Path, workers: int = 1) -> None:
        self.url = url
        self.folder = folder
        self.workers = workers
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.tokens: dict[str, str] = {}
        self.starts = 0

    def start(self, timeout_s: float = 90.0) -> None:
        command = [str(DOUDI), "serve", "--port", str(self.port), "--database-url", self.url]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        if self.starts == 0:
            command.append("--demo")
        env = {**os.environ, "DOUDI_ARCHIVE_DIR": str(self.folder / "archive"), "PYTHONUNBUFFERED": "1"}
        env.pop("DOUDI_DATABASE_URL", None)
        self.process = launch(command, self.folder, env, self.log)
        wait_until_up(self.base_url, self.process, timeout_s)
        if self.starts == 0:
            folder = self.folder / "var" / "demo-tokens"
            self.tokens = {path.name: path.read_text().strip() for path in folder.iterdir()}
        self.starts += 1

    def kill(self) -> None:
        assert self.process is not None
        kill_group(self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def rss_kib(self) -> int:
        """The server's resident memory (its main process), from /proc."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log, lines)

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback") if self.log.exists() else 0

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}
