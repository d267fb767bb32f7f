"""A real Doudi server for the browser tests: uvicorn serving `create_app` on a SQLite file with the demo
region seeded and fresh demo passwords, like `doudi serve --demo`, except that its clock is read from a file
the tests write (settlement months must be able to end, and a month to be closed).

    python -m tests.browser.server --database-url URL --port N --clock FILE --secrets FILE --archive DIR

It writes the demo users' tokens and passwords to --secrets (JSON) once it is ready to serve.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path

import uvicorn

from api.app import create_app
from doudi import demo, services


class FileClock:
    """The time written in a file (ISO 8601), read again whenever the file changes."""

    def __init__(self, path: Path):
        self.path = path
        self._seen: tuple[float, dt.datetime] | None = None

    def __call__(self) -> dt.datetime:
        stamp = os.stat(self.path).st_mtime
        if self._seen is None or self._seen[0] != stamp:
            self._seen = (stamp, dt.datetime.fromisoformat(self.path.read_text().strip()))
        return self._seen[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clock", type=Path, required=True)
    parser.add_argument("--secrets", type=Path, required=True)
    parser.add_argument("--archive", type=Path, required=True)
    args = parser.parse_args()
    files = services.open_library()
    clock = FileClock(args.clock)
    app = create_app(args.database_url, files, clock=clock, archive=args.archive)
    ctx = app.state.context
    tokens = demo.seed(ctx.engine, ctx.catalogue, files, clock())
    passwords = demo.set_passwords(ctx.engine, clock())
    partial = args.secrets.with_suffix(".part")
    partial.write_text(json.dumps({"tokens": tokens, "passwords": passwords}), encoding="utf-8")
    partial.rename(args.secrets)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
