"""Browser tests: headless Debian chromium (/usr/bin/chromium, installed by scripts/setup) driven by
Playwright against a real server on SQLite with the demo region. Nothing is downloaded: Playwright runs the
system's browser through `executable_path` and its own driver from the wheel.

Skipped, with the reason, where chromium or Playwright is missing. Screenshots of every main page go to
tests/browser/screenshots/ (git-ignored) for review.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import servers

CHROMIUM = Path(os.environ.get("DOUDI_CHROMIUM", "/usr/bin/chromium"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
ROOT = Path(__file__).resolve().parents[2]

try:
    from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
except ImportError:  # pragma: no cover - the dev extras install it
    sync_playwright = None  # type: ignore[assignment]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


def _missing() -> str | None:
    if sync_playwright is None:
        return "browser tests skipped: the Python package 'playwright' is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"browser tests skipped: {CHROMIUM} is missing (./scripts/setup installs Debian's chromium as root)"
    return None


_free_port = servers.free_port


@dataclass
class Server:
    base: str
    folder: Path
    tokens: dict[str, str]
    passwords: dict[str, str]
    clock_file: Path

    def set_clock(self, moment: dt.datetime) -> None:
        previous = self.clock_file.stat().st_mtime_ns if self.clock_file.exists() else 0
        self.clock_file.write_text(moment.isoformat())
        # The server notices a new time by the file's modification time: make sure it moved.
        os.utime(self.clock_file, ns=(previous + 1_000_000, max(previous + 1_000_000, time.time_ns())))

    def api(self, method: str, path: str, user: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.base + path, headers=headers, timeout=30, **kwargs)


def start_server(folder: Path, command: list[str]) -> subprocess.Popen[bytes]:
    """`command` in `folder` with a bare environment (the project on PYTHONPATH), its output in server.log."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder), "PYTHONPATH": str(ROOT)}
    return servers.launch(command, folder, env, folder / "server.log")


wait_until_up = servers.wait_until_up
stop = servers.stop


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("browser-server")
    clock = folder / "clock.txt"
    clock.write_text(dt.datetime(2014, 12, 1, 9, 0).isoformat())
    secrets = folder / "secrets.json"
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "tests.browser.server",
        "--database-url",
        f"sqlite:///{folder / 'doudi.sqlite3'}",
        "--port",
        str(port),
        "--clock",
        str(clock),
        "--secrets",
        str(secrets),
        "--archive",
        str(folder / "archive"),
    ]
    process = start_server(folder, command)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process)
        found = json.loads(secrets.read_text())
        yield Server(base, folder, found["tokens"], found["passwords"], clock)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser, server: Server) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) at 1366×768, the smallest screen the pages are made for."""
    made = browser.new_context(
        base_url=server.base, viewport={"width": 1366, "height": 768}, locale="zh-CN", accept_downloads=True
    )
    made.set_default_timeout(15_000)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, user: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label(re.compile("用户名|User name")).fill(user)
    page.get_by_label(re.compile("密码|Password")).fill(password)
    page.get_by_role("button", name=re.compile("^(登录|Sign in)$")).click()
    page.wait_for_load_state()
    assert "/login" not in page.url, page.inner_text("main")


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
