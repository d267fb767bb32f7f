"""Crashes: the server (one process, or `--workers 2`, on PostgreSQL; one process on SQLite) killed with
SIGKILL, and the PostgreSQL connection cut, in the middle of a burst of settlements and reversals. The
client retries every request with the same settlement key until it is acknowledged; afterwards every
acknowledged settlement and reversal is recorded exactly once, nothing is half-recorded, the year-to-date
figures equal what the recorded settlements paid, and every cap holds (tests/reliability/ledger_check.py)."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, event, text

from tests.e2e.conftest import Service
from tests.reliability import ledger_check, workload
from tests.reliability.conftest import LONG, results_dir, sized
from tests.servers import Server

# Few people, so that settlements contend for the same person's and household's caps.
CROWD = ["MHK-P-0001", "MHK-P-0002", "MHK-P-0104", "MHK-P-0105", "LY-P-0057", "CC-P-0417"]


@dataclass
class Client:
    """One desk sending settlements and reversals of its own settlements, each retried until acknowledged."""

    server: Server
    name: str
    seed: int
    acked: ledger_check.Acknowledged
    lock: threading.Lock
    stop: threading.Event
    answers: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    sent: int = 0
    errors: list[str] = field(default_factory=list)

    def send(self, http: httpx.Client, method: str, path: str, body: dict[str, Any]) -> httpx.Response:
        """The same request until the server answers it with something other than 503 (a killed server
        refuses connections or drops them; a cut database connection answers 503)."""
        while True:
            try:
                answer = http.request(method, path, json=body)
            except httpx.TransportError:
                answer = None
            if answer is not None:
                self.answers[answer.status_code] += 1
                if answer.status_code != 503:
                    return answer
            self.retries += 1
            time.sleep(0.05)

    def run(self, settlements: int) -> None:
        """At least `settlements`, and on until told to stop (so that every kill lands in the burst)."""
        rng = random.Random(self.seed)
        mine: list[str] = []
        headers = self.server.headers("demo-desk")
        with httpx.Client(base_url=self.server.base_url, headers=headers, timeout=30) as http:
            for n in itertools.count():
                if n >= settlements and self.stop.is_set():
                    return
                self.sent += 1
                claim = workload.stay(rng, f"CRASH-{self.name}-{n:05d}", person_id=rng.choice(CROWD))
                answer = self.send(http, "POST", "/v1/settlements", claim)
                if answer.status_code not in (200, 201):
                    self.errors.append(f"settle {claim['claim_id']}: {answer.status_code} {answer.text[:300]}")
                    continue
                with self.lock:
                    self.acked.settlements[("JL-PROV-H001", claim["claim_id"])] = answer.json()["setl_id"]
                mine.append(answer.json()["setl_id"])
                if rng.random() < 0.3 and mine:
                    setl_id = mine.pop(rng.randrange(len(mine)))
                    reversal = self.send(http, "POST", f"/v1/settlements/{setl_id}/reversal", {"reason": "crash test"})
                    # 409 "already reversed" on a retry: the first attempt committed and its answer was lost.
                    if reversal.status_code == 201 or (
                        reversal.status_code == 409 and "already reversed" in reversal.text
                    ):
                        with self.lock:
                            self.acked.reversals.add(setl_id)
                    else:
                        self.errors.append(f"reverse {setl_id}: {reversal.status_code} {reversal.text[:300]}")


def _burst(server: Server, clients: int, per_client: int, seed: int) -> tuple[list[Client], list[threading.Thread]]:
    acked, lock, stop = ledger_check.Acknowledged(), threading.Lock(), threading.Event()
    crowd = [Client(server, f"C{i}", seed * 100 + i, acked, lock, stop) for i in range(clients)]
    threads = [threading.Thread(target=c.run, args=(per_client,), daemon=True) for c in crowd]
    for thread in threads:
        thread.start()
    return crowd, threads


def _report(tmp_path: Path, name: str, figures: dict[str, Any]) -> None:
    path = results_dir(tmp_path) / "reliability_crash.json"
    runs: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    runs[name] = {"long": LONG, **figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(runs, indent=1, sort_keys=True) + "\n")


def _sigkill_run(url: str, tmp_path: Path, name: str, kills: int, seed: int, workers: int = 1) -> dict[str, Any]:
    """The burst, the server's process group killed `kills` times at random moments and restarted, then
    the ledger checked; the figures are reported under `name` and returned."""
    server = Server(url, tmp_path, workers=workers)
    server.start()
    rng = random.Random(None if LONG else seed)
    started = time.monotonic()
    per_client = sized(10, 50)
    crowd, threads = _burst(server, clients=4, per_client=per_client, seed=rng.randrange(1000))
    downtime: list[float] = []
    wal_bytes: list[int] = []  # SQLite: what each kill left in the write-ahead log
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(0.2, 1.5))
            server.kill()
            down = time.monotonic()
            if url.startswith("sqlite"):
                wal = Path(url.removeprefix("sqlite:///") + "-wal")
                wal_bytes.append(wal.stat().st_size if wal.exists() else 0)
            server.start()
            downtime.append(time.monotonic() - down)
        time.sleep(0.5)  # a last stretch of acknowledged work after the final restart
        crowd[0].stop.set()
        for thread in threads:
            thread.join(timeout=600)
        assert not any(t.is_alive() for t in threads), "a client never got its answer"
    finally:
        crowd[0].stop.set()
        server.stop()
    errors = [e for c in crowd for e in c.errors]
    assert errors == [], errors[:5]
    engine = create_engine(url)
    try:
        counts = ledger_check.check(engine, crowd[0].acked)
        if url.startswith("sqlite"):
            with engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
    finally:
        engine.dispose()
    answers = sum((c.answers for c in crowd), Counter())
    assert not [s for s in answers if s >= 500 and s != 503], f"answers: {answers}"
    assert len(crowd[0].acked.settlements) == sum(c.sent for c in crowd), "every settlement was acknowledged"
    figures = {
        "workers": workers,
        "kills": len(downtime),
        "restart_seconds_median": sorted(downtime)[len(downtime) // 2] if downtime else None,
        "acknowledged_settlements": len(crowd[0].acked.settlements),
        "acknowledged_reversals": len(crowd[0].acked.reversals),
        "retries": sum(c.retries for c in crowd),
        "answers": {str(k): v for k, v in sorted(answers.items())},
        "seconds": round(time.monotonic() - started, 1),
        **counts,
    }
    if wal_bytes:
        figures["wal_bytes_at_kill_median"] = sorted(wal_bytes)[len(wal_bytes) // 2]
    _report(tmp_path, name, figures)
    return figures


@pytest.mark.postgres
def test_sigkill_at_random_points_loses_nothing_and_records_nothing_twice(postgres_url: str, tmp_path: Path) -> None:
    _sigkill_run(postgres_url, tmp_path, "sigkill", kills=sized(3, 40), seed=5)


@pytest.mark.postgres
def test_sigkill_of_the_supervisor_and_both_workers_loses_nothing(postgres_url: str, tmp_path: Path) -> None:
    """`doudi serve --workers 2`: the uvicorn supervisor and its two worker processes killed together, so
    that two processes' transactions are cut at once, each holding its own connections."""
    _sigkill_run(postgres_url, tmp_path, "sigkill_workers_2", kills=sized(3, 20), seed=6, workers=2)


def test_sigkill_of_a_sqlite_writer_leaves_a_recoverable_write_ahead_log(tmp_path: Path) -> None:
    """On SQLite the killed server is the database's only writer: what it committed is in the write-ahead
    log beside the file, not yet in the file itself. The restarted server must replay it: every acknowledged
    settlement present exactly once, nothing half-written, the file whole (PRAGMA integrity_check)."""
    figures = _sigkill_run(f"sqlite:///{tmp_path / 'doudi.sqlite3'}", tmp_path, "sigkill_sqlite", sized(3, 20), 7)
    assert figures["wal_bytes_at_kill_median"] > 0, "no kill left a write-ahead log: the test did not test"


@pytest.mark.postgres
def test_database_connections_cut_during_a_burst_give_503_and_nothing_partial(
    postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL ends the server's connections (pg_terminate_backend, as on a database restart or a network
    fault) again and again while settlements and reversals are in flight: the client sees 503 and retries,
    never a 500, and the ledger is whole."""
    server = Server(postgres_url, tmp_path)
    server.start()
    database = postgres_url.rsplit("/", 1)[1]
    killer = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    rng = random.Random(None if LONG else 9)
    crowd, threads = _burst(server, clients=4, per_client=sized(25, 250), seed=rng.randrange(1000))
    terminated = 0
    try:
        crowd[0].stop.set()  # each client stops after its share
        with killer.connect() as connection:
            while any(t.is_alive() for t in threads):
                time.sleep(rng.uniform(0.05, 0.4))
                terminated += connection.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE datname = :db AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).scalar_one()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        crowd[0].stop.set()
        server.stop()
        killer.dispose()
    errors = [e for c in crowd for e in c.errors]
    assert errors == [], errors[:5]
    answers = sum((c.answers for c in crowd), Counter())
    assert answers[503] > 0, "no request was caught by a cut connection: the test did not test"
    assert not [s for s in answers if s >= 500 and s != 503], f"answers: {answers}; log:\n{server.log_tail()}"
    engine = create_engine(postgres_url)
    try:
        counts = ledger_check.check(engine, crowd[0].acked)
    finally:
        engine.dispose()
    _report(
        tmp_path,
        "connections_cut",
        {
            "backends_terminated": terminated,
            "acknowledged_settlements": len(crowd[0].acked.settlements),
            "acknowledged_reversals": len(crowd[0].acked.reversals),
            "answers": {str(k): v for k, v in sorted(answers.items())},
            **counts,
        },
    )


@pytest.mark.postgres
def test_a_connection_killed_mid_reversal_is_a_503_and_the_retry_reverses_once(service: Service) -> None:
    """The worst moment, chosen exactly: after the reversal row is written and before its negative entries
    (the settlement's own case is tests/e2e/test_faults.py)."""
    engine = service.client.app.state.context.engine  # type: ignore[attr-defined]
    desk = service.auth("demo-desk")
    settled = service.client.post("/v1/settlements", json=workload.stay(random.Random(3), "REV-1"), headers=desk)
    assert settled.status_code == 201
    setl_id = settled.json()["setl_id"]
    killer = create_engine(engine.url, isolation_level="AUTOCOMMIT")
    armed = {"on": True}

    @event.listens_for(engine, "before_cursor_execute")
    def _kill_own_backend(connection: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if armed["on"] and statement.lstrip().upper().startswith("INSERT INTO LEDGER_ENTRIES"):
            armed["on"] = False
            pid = connection.connection.dbapi_connection.info.backend_pid
            with killer.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    acked = ledger_check.Acknowledged({("JL-PROV-H001", "REV-1"): setl_id})
    before = ledger_check.check(engine, acked)
    cut = service.client.post(f"/v1/settlements/{setl_id}/reversal", json={"reason": "cut"}, headers=desk)
    assert not armed["on"]
    assert cut.status_code == 503 and cut.headers["content-type"].startswith("application/problem+json")
    assert ledger_check.check(engine, acked) == before, "a cut reversal left something behind"
    retried = service.client.post(f"/v1/settlements/{setl_id}/reversal", json={"reason": "cut"}, headers=desk)
    assert retried.status_code == 201
    acked.reversals.add(setl_id)
    after = ledger_check.check(engine, acked)
    assert after["reversals"] == before["reversals"] + 1
    killer.dispose()


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """The `service` fixture on PostgreSQL only: the fault is a server ending a connection."""
    return postgres_url
