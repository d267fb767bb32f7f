"""The service benchmark's verdict: the issue's two targets are judged at 16 clients on PostgreSQL; the
share of /healthz elsewhere is printed for reference only."""

from __future__ import annotations

from typing import Any

from bench.service import evaluate


def _cell(endpoint: str, clients: int, per_s: float, p99: float) -> dict[str, Any]:
    return {"endpoint": endpoint, "clients": clients, "median": {"throughput_per_s": per_s, "latency_ms": {"p99": p99}}}


def test_only_sixteen_clients_on_postgresql_are_judged() -> None:
    cells = [
        _cell("healthz", 1, 1000.0, 1.0),
        _cell("settle", 1, 100.0, 9.0),
        _cell("healthz", 16, 2000.0, 9.0),
        _cell("settle", 16, 900.0, 31.0),
    ]
    found = evaluate({"sqlite": {"cells": cells}, "postgresql": {"cells": cells}})
    judged = {(t["name"], t["met"]) for t in found if t["target"]}
    assert judged == {
        ("settle p99 <= 30 ms at 16 clients on postgresql", False),
        ("settle throughput >= 40% of healthz at 16 clients on postgresql", True),
    }
    shares = sorted((t["name"], t["value"]) for t in found if not t["target"])
    assert shares == [
        ("settle throughput as a share of healthz at 1 clients on postgresql", 0.1),
        ("settle throughput as a share of healthz at 1 clients on sqlite", 0.1),
        ("settle throughput as a share of healthz at 16 clients on sqlite", 0.45),
    ]
