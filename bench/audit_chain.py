"""What chaining the audit log costs on the desk path, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.audit_chain [--settlements N] [--threads T] [--rounds R] [--out PATH]

The desk's use case (`doudi.desk.settle_claim`: the person's and household's locks, year-to-date figures,
the engine, the ledger append, the audit entry, commit) is timed in-process, with the audit entry written
two ways, alternately, R rounds each:

- `chained`: what Doudi does (doudi/audit.py): flush, lock the chain's head row until commit, hash, insert
  the entry, update the head.
- `plain`: what it did before the chain: insert the entry, nothing locked (its chain columns filled with
  placeholders so that the schema's constraints hold).

Sequential: 2N settlements of distinct people one after the other, every other one written each way
(latency per settlement, as a single desk sees it). Parallel, PostgreSQL only: T threads settling N
settlements of distinct people between them, each way in turn (throughput, and latency under contention:
the chain's lock is the one thing they all take). Figures are medians over the R rounds. PostgreSQL is
DOUDI_TEST_POSTGRES_URL's server (a fresh database, dropped after). Writes
bench/results/audit_chain.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from bench.service import database
from doudi import audit, services
from doudi.desk import serialise_sqlite_writes, settle_claim
from ledger.migrations import upgrade
from ledger.models import AuditEntry
from settlement.claims import Claim, parse_claim

ROOT = Path(__file__).resolve().parents[1]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]
NOW = dt.datetime(2014, 12, 1, 9, 0)


def plain_append(
    session: Session, at: dt.datetime, user: str, token: str | None, action: str, target: str, detail: str
) -> None:
    seq = next(_PLAIN_SEQ)
    session.add(
        AuditEntry(
            at=at,
            user_name=user,
            token_id=token,
            action=action,
            target=target,
            detail=detail,
            seq=seq,
            prev_sha256="-",
            entry_sha256="-",
        )
    )


_PLAIN_SEQ = itertools.count(10_000_000)


@contextmanager
def writing(way: str) -> Iterator[None]:
    chained = audit.append
    if way == "plain":
        audit.append = plain_append  # type: ignore[assignment]
    try:
        yield
    finally:
        audit.append = chained


def claims(tag: str, count: int) -> list[Claim]:
    return [
        parse_claim(
            {
                **FAMILY[1],
                "claim_id": f"{tag}-{i:05d}",
                "person_id": f"{tag}-P-{i:05d}",
                "household_id": f"{tag}-H-{i:05d}",
            }
        )
        for i in range(count)
    ]


def sequential(engine: Engine, library: Any, batch: list[Claim]) -> dict[str, dict[str, float]]:
    """Every other settlement written each way, so that the machine's drifting speed touches both alike."""
    times: dict[str, list[float]] = {"plain": [], "chained": []}
    for i, claim in enumerate(batch):
        way = ("plain", "chained")[i % 2]
        with writing(way):
            started = time.perf_counter()
            settle_claim(engine, library, "jl-meihekou", claim, NOW)
            times[way].append(time.perf_counter() - started)
    return {way: _latency(found, sum(found)) for way, found in times.items()}


def parallel(engine: Engine, library: Any, batch: list[Claim], threads: int) -> dict[str, float]:
    times: list[float] = []
    lock = threading.Lock()
    parts = [batch[i::threads] for i in range(threads)]
    barrier = threading.Barrier(threads)

    def desk(part: list[Claim]) -> None:
        barrier.wait()
        for claim in part:
            started = time.perf_counter()
            settle_claim(engine, library, "jl-meihekou", claim, NOW)
            with lock:
                times.append(time.perf_counter() - started)

    workers = [threading.Thread(target=desk, args=(part,)) for part in parts]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return _latency(times, time.perf_counter() - started)


def _latency(times: list[float], wall: float) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "settlements": len(times),
        "per_second": round(len(times) / wall, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


def measure(name: str, url: str, args: argparse.Namespace, library: Any) -> dict[str, Any]:
    upgrade(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        serialise_sqlite_writes(engine)
    else:
        engine = create_engine(url, pool_size=args.threads + 2)
    runs: dict[str, list[dict[str, float]]] = {}
    try:
        sequential(engine, library, claims(f"{name}-warm", 20))  # caches, plans, connections
        for round_ in range(args.rounds):
            for way, found in sequential(engine, library, claims(f"{name}-{round_}-s", 2 * args.settlements)).items():
                runs.setdefault(f"sequential {way}", []).append(found)
            if name != "postgresql":
                continue
            for way in ("plain", "chained") if round_ % 2 == 0 else ("chained", "plain"):
                with writing(way):
                    batch = claims(f"{name}-{way}-{round_}-p", args.settlements)
                    runs.setdefault(f"parallel {way}", []).append(parallel(engine, library, batch, args.threads))
    finally:
        engine.dispose()
    return {key: _median_of(values) for key, values in runs.items()}


def _median_of(values: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(v[key] for v in values), 2) for key in values[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settlements", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/audit_chain.json")
    args = parser.parse_args(argv)
    library = services.open_library()
    results: dict[str, Any] = {}
    server = os.environ.get("DOUDI_TEST_POSTGRES_URL")
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("sqlite", "postgresql") if server else ("sqlite",):
            with database(kind, Path(folder), server or "") as url:
                results[kind] = measure(kind, url, args, library)
    report = {
        "command": "python -m bench.audit_chain "
        + f"--settlements {args.settlements} --threads {args.threads} --rounds {args.rounds}",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "results": results,
    }
    show: Callable[[str, dict[str, float]], str] = lambda key, r: (  # noqa: E731
        f"  {key:<20} {r['per_second']:>8} /s  p50 {r['p50_ms']:>7} ms  p95 {r['p95_ms']:>7} ms"
    )
    for kind, found in results.items():
        print(kind)
        for key, result in found.items():
            print(show(key, result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
