"""A real `doudi serve` process for the crash and load tests: started, killed with SIGKILL, restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.service import free_port

DOUDI = Path(sys.executable).parent / "doudi"


class Server:
    """`doudi serve` on `url`, run in `folder` (its var/ and archive stay there). The first start seeds the
    demo region (`--demo`) and reads the demo tokens; a restart does not seed again, so the tokens, stored
    in the database, keep working across a crash."""

    def __init__(self, url: str, folder: Path) -> None:
        self.url = url
        self.folder = folder
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.tokens: dict[str, str] = {}
        self.starts = 0

    def start(self, timeout_s: float = 90.0) -> None:
        command = [str(DOUDI), "serve", "--port", str(self.port), "--database-url", self.url]
        if self.starts == 0:
            command.append("--demo")
        env = {
            **os.environ,
            "DOUDI_ARCHIVE_DIR": str(self.folder / "archive"),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("DOUDI_DATABASE_URL", None)
        log = (self.folder / "server.log").open("ab")
        self.process = subprocess.Popen(command, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        if self.starts == 0:
            folder = self.folder / "var" / "demo-tokens"
            self.tokens = {path.name: path.read_text().strip() for path in folder.iterdir()}
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, open transactions are cut where they stand."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_kib(self) -> int:
        """The server's resident memory, from /proc."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def log_tail(self, lines: int = 40) -> str:
        path = self.folder / "server.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def tracebacks(self) -> int:
        path = self.folder / "server.log"
        return path.read_text(errors="replace").count("Traceback") if path.exists() else 0

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}
