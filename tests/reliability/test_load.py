"""Sustained mixed load on PostgreSQL (tests/reliability/load.py, from a separate process) against a real
`doudi serve`: no error of any kind, latency percentiles per kind of request, and the server's resident
memory sampled every second and shown flat. The figures go to reliability_load.json (bench/results/ when
run by ./scripts/reliability)."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from ledger.models import Reversal, Settlement
from tests.reliability import ledger_check
from tests.reliability.conftest import LONG, results_dir, sized
from tests.reliability.load import generate
from tests.servers import Server

pytestmark = pytest.mark.postgres

CLIENTS = 6


def percentiles(values: list[float]) -> dict[str, float | int]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"count": len(ordered), "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1], 1)}


def test_a_sustained_mixed_load_has_no_error_and_flat_memory(postgres_url: str, tmp_path: Path) -> None:
    seconds = sized(12, 300)
    server = Server(postgres_url, tmp_path)
    server.start()
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    generator = context.Process(
        target=generate, args=(server.base_url, server.tokens, seconds, CLIENTS, 1, out), daemon=True
    )
    rss: list[tuple[float, int]] = []
    try:
        started = time.monotonic()
        generator.start()
        while generator.is_alive() and time.monotonic() - started < seconds + 120:
            rss.append((round(time.monotonic() - started, 1), server.rss_kib()))
            time.sleep(1.0)
            if not out.empty():
                break
        result: dict[str, Any] = out.get(timeout=180)
        generator.join(timeout=30)
    finally:
        server.stop()
    assert result["errors"] == [], result["errors"][:10]
    assert result["statement_done"], "the reconciliation in the middle did not run"
    assert server.tracebacks() == 0, server.log_tail()

    # Memory: the statement in the middle takes one step up (a month's frames and workbook; the allocator
    # keeps the pages). Either side of it, under the desks' load alone, resident memory must stay flat: the
    # last quarter's median within 10 % (+16 MiB) of the first quarter's.
    halves = {
        "before_statement": [kib for t, kib in rss if seconds / 5 <= t < seconds / 2],
        "after_statement": [kib for t, kib in rss if t >= seconds / 2 + max(4, seconds / 10)],
    }
    memory: dict[str, Any] = {}
    for name, samples in halves.items():
        quarter = max(1, len(samples) // 4)
        first, last = statistics.median(samples[:quarter]), statistics.median(samples[-quarter:])
        memory[name] = {"samples": len(samples), "first_quarter_median": first, "last_quarter_median": last}
        assert last <= first * 1.1 + 16 * 1024, f"{name}: resident memory grew from {first} KiB to {last} KiB"

    engine = create_engine(postgres_url)
    try:
        with Session(engine) as session:
            settled = session.scalar(select(func.count()).select_from(Settlement)) or 0
            reversed_ = session.scalar(select(func.count()).select_from(Reversal)) or 0
        whole = ledger_check.check(engine, ledger_check.Acknowledged())
    finally:
        engine.dispose()
    latencies = result["latencies_ms"]
    assert settled == len(latencies.get("settle", [])) and reversed_ == len(latencies.get("reverse", []))
    total = sum(len(v) for v in latencies.values())
    figures = {
        "when": dt.datetime.now().isoformat(timespec="seconds"),
        "long": LONG,
        "database": "postgresql",
        "server": "doudi serve (one process)",
        "clients": CLIENTS,
        "seconds": round(result["seconds"], 1),
        "requests": total,
        "requests_per_second": round(total / result["seconds"], 1),
        "errors": len(result["errors"]),
        "latency_ms": {kind: percentiles(values) for kind, values in sorted(latencies.items())},
        "rss_kib": {
            "samples": len(rss),
            **memory,
            "min": min(kib for _, kib in rss),
            "max": max(kib for _, kib in rss),
            "series": rss,
        },
        "ledger": whole,
    }
    path = results_dir(tmp_path) / "reliability_load.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k != "rss_kib"}, indent=1))
