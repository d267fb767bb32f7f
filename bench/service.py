"""Service benchmark: the real HTTP server under concurrent load, on SQLite and on PostgreSQL.

    .venv/bin/python -m bench.service [--database sqlite|postgresql|both] [--seconds N] [--clients 1,16,64]
                                      [--repeat R] [--endpoints healthz,quote,settle] [--workers W] [--out PATH]

What is measured, and why. The engine benchmark (bench/engine.py) times settlement in-process; a desk sees
the service: HTTP parsing, the bearer-token look-up, completing the claim from the register, the
year-to-date read under the person's and household's locks, the engine, the ledger append and the JSON answer. This
benchmark measures that path end to end, as a client sees it:

1. The server is the one operators run: `.venv/bin/doudi serve --demo --port P --database-url URL` (uvicorn,
   one process, no reload) started as a separate process, with its working directory in a scratch folder
   (so `var/demo-tokens/` is written there, not into the repository), on a fresh SQLite file and on a fresh
   PostgreSQL database (created for the run and dropped after). It is stopped with SIGINT at the end.
   `--workers W` passes `--workers W` to `doudi serve` (W uvicorn processes; default 1, not passed), and
   `--server-cpu N` passes `--cpu N` (the one server process kept on core N).
2. Before timing, 2,000 people (households of one to four, region 220581, every assistance category, some
   changing category mid-year) are registered through the admin API (`PUT /v1/people/{id}`).
3. Load comes from another process (multiprocessing, spawn): a closed loop of C concurrent clients, each
   with its own keep-alive connection, sending its next request as soon as the previous answer is read.
   By default (`--generator raw`) one uvloop event loop drives them all through a minimal HTTP/1.1 client
   (`_Connection`): about 0.04 ms of CPU a request, where a thread with an `httpx.Client` per client
   (`--generator threads`, the default until 2026-11-29) took about 0.5 ms and `httpx.AsyncClient`
   (`--generator async`) about twice that. On two cores whatever the generator spends is taken from the
   server and PostgreSQL, and more from a cheap endpoint than a dear one. After a warm-up, every request
   that completes inside the measured window counts:
   throughput = completions / window, latency = send to last byte of the answer, as the client saw it.
4. Endpoints: `GET /healthz` (no token, no database: the framework's ceiling on this machine),
   `POST /v1/quotes` and `POST /v1/settlements` with the demo desk token (demo-desk, JL-PROV-H001). Claims
   are shaped like examples/meihekou-leukaemia.json without household, scheme, category and level (the
   server fills them from the register), with a distinct claim_id per request, people drawn at random
   from those registered, and varied stays, amounts, diagnoses (about a third on the catastrophic list),
   approvals and grants; 90 % inpatient stays, 10 % chronic-outpatient visits (--chronic-share). Any
   answer other than 2xx (and, for settlements, other than 201) is an error; a run with errors exits with
   status 1. After the run, the settlements in the database are counted against the 201 answers.
5. Each cell (database x endpoint x clients) runs R times, interleaved (repeat 1 of every cell, then
   repeat 2, ...) so that the machine's drifting speed touches every cell alike; the table shows medians
   over the repeats. CPU used during each window is read from /proc: the server process, the generator
   processes, the PostgreSQL backends serving the benchmark's database, and everything else on the
   machine (other work, PostgreSQL's shared processes, the kernel; approximate, slightly negative when
   little runs). The server's figure includes its worker processes under --workers. The generator's share
   of a core shows whether it, rather than the server, was the limit (above ~85 % it is flagged).

Targets (issue): settle p99 <= 30 ms at 16 clients on PostgreSQL; settle throughput >= 40 % of the trivial
endpoint's (healthz), read at the same place (16 clients on PostgreSQL). The share at every other number of
clients and on SQLite is printed next to them for reference: at one client a settlement's time is mostly
its wait for the commit to reach the disk, and SQLite writes one settlement at a time (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import uvloop
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CLAIM = ROOT / "examples" / "meihekou-leukaemia.json"
DOUDI = Path(sys.executable).parent / "doudi"

TARGET_SETTLE_P99_MS = 30.0
TARGET_CLIENTS = 16
TARGET_DATABASE = "postgresql"
TARGET_SHARE_OF_HEALTHZ = 0.40
GENERATORS = {
    "raw": "one uvloop event loop; a minimal HTTP/1.1 connection (asyncio.Protocol) per client",
    "threads": "one thread and one httpx.Client per client",
    "async": "asyncio with one httpx.AsyncClient per client",
}
GENERATOR_SATURATED = 0.85  # share of one core above which the generator may be what limits throughput

ENDPOINTS: dict[str, tuple[str, str]] = {
    "healthz": ("GET", "/healthz"),
    "quote": ("POST", "/v1/quotes"),
    "settle": ("POST", "/v1/settlements"),
}
EXPECTED_STATUS = {"healthz": 200, "quote": 200, "settle": 201}
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# --------------------------------------------------------------------------------------------------------
# The people and the claims (deterministic: the same seed gives the same population and claim pool)
# --------------------------------------------------------------------------------------------------------

REGION = "220581"  # Meihekou: jl-meihekou@2014 from 2014-01-01
DESK_HOSPITAL = "JL-PROV-H001"
CATEGORY_MIX = {
    "none": 0.55,
    "dibao": 0.14,
    "low_income": 0.09,
    "illness_poverty": 0.07,
    "severe_disability": 0.07,
    "tekun": 0.05,
    "orphan": 0.03,
}
# Principal diagnoses: on meihekou-27-2014 (the catastrophic bucket) and common stays that are not.
ON_LIST = ["C91.0", "C92.0", "I63.9", "I63.5", "C50.9", "C34.1", "N18.5", "C16.9", "C18.7", "Q21.0", "I21.0", "D61.9"]
OFF_LIST = [
    "J18.9",
    "K80.2",
    "I10",
    "E11.9",
    "S72.0",
    "K35.8",
    "N20.0",
    "J44.1",
    "I50.0",
    "K29.7",
    "M17.1",
    "O80.0",
    "A09.9",
    "R10.4",
]
ON_LIST_SHARE = 0.30


@dataclass(frozen=True, slots=True)
class Person:
    person_id: str
    household_id: str
    categories: tuple[tuple[str, str, str | None], ...]  # (category, valid_from, valid_until)

    def body(self) -> dict[str, Any]:
        return {
            "household_id": self.household_id,
            "name": f"基准 {self.person_id} (bench)",
            "insurance_scheme": "resident",
            "region": REGION,
            "categories": [{"category": c, "valid_from": f, "valid_until": u} for c, f, u in self.categories],
        }


def population(n: int, seed: int) -> list[Person]:
    """`n` people in households of one to four; a household shares its category; one in ten with a
    category moved from low income to 低保 on 2014-07-01."""
    rng = random.Random(seed)
    names, weights = list(CATEGORY_MIX), list(CATEGORY_MIX.values())
    people: list[Person] = []
    household = 0
    while len(people) < n:
        household += 1
        size = rng.choices((1, 2, 3, 4), (0.35, 0.30, 0.20, 0.15))[0]
        category = rng.choices(names, weights)[0]
        periods: tuple[tuple[str, str, str | None], ...]
        if category == "none":
            periods = ()
        elif category == "dibao" and rng.random() < 0.3:
            periods = (("low_income", "2013-01-01", "2014-06-30"), ("dibao", "2014-07-01", None))
        else:
            periods = ((category, f"{rng.randint(2008, 2013)}-01-01", None),)
        for _ in range(min(size, n - len(people))):
            people.append(Person(f"BENCH-P-{len(people) + 1:05d}", f"BENCH-H-{household:05d}", periods))
    return people


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def claim_pool(
    people: Sequence[Person], size: int, seed: int | str, chronic_share: float = 0.0
) -> list[tuple[bytes, bytes]]:
    """`size` claim bodies as (text before the claim id, text after it): a request's body is the two
    around a fresh id. Based on examples/meihekou-leukaemia.json without the fields the register fills."""
    example = json.loads(EXAMPLE_CLAIM.read_text(encoding="utf-8"))
    for name in ("household_id", "insurance_scheme", "category", "hospital_level"):
        example.pop(name, None)
    rng = random.Random(seed)
    marker = "@@CLAIM-ID@@"
    pool: list[tuple[bytes, bytes]] = []
    first_day = dt.date(2014, 1, 3)
    for _ in range(size):
        person = rng.choice(people)
        inpatient = rng.random() >= chronic_share
        listed = rng.random() < ON_LIST_SHARE
        principal = rng.choice(ON_LIST if listed else OFF_LIST)
        others = rng.sample(OFF_LIST, rng.choices((0, 1, 2, 3), (0.45, 0.30, 0.15, 0.10))[0])
        diagnoses = [principal, *(d for d in others if d != principal)]
        discharged = first_day + dt.timedelta(days=rng.randrange(360))
        stay = min(1 + int(rng.expovariate(1 / 8)), 90) if inpatient else 0
        median = (7_000.0 if inpatient else 600.0) * (3.0 if listed else 1.0) * 1.6  # a provincial level-3
        total = max(300 * 100, min(round(median * 100 * rng.lognormvariate(0.0, 0.9)), 2_000_000 * 100))
        fully = int(total * rng.uniform(0.0, 0.12))
        over = int(total * rng.uniform(0.0, 0.05)) if rng.random() < 0.3 else 0
        pre = int(total * rng.uniform(0.0, 0.10))
        claim: dict[str, Any] = {
            **example,
            "claim_id": marker,
            "person_id": person.person_id,
            "hospital_id": DESK_HOSPITAL,
            "visit_type": "inpatient" if inpatient else "chronic_outpatient",
            "admitted_on": (discharged - dt.timedelta(days=stay)).isoformat(),
            "discharged_on": discharged.isoformat(),
            "settled_at": f"{discharged.isoformat()}T{rng.randint(8, 17):02d}:{rng.randint(0, 59):02d}:00",
            "diagnoses": diagnoses,
            "total": _yuan(total),
            "fully_self_paid": _yuan(fully),
            "over_limit_self_paid": _yuan(over),
            "pre_self_paid": _yuan(pre),
        }
        claim.pop("assistance_approval", None)
        claim.pop("grants", None)
        if person.categories and rng.random() < 0.2:
            claim["assistance_approval"] = f"MHK-MZ-2014-{rng.randint(1, 999):03d}"
        if inpatient and total > 20_000 * 100 and rng.random() < 0.1:
            grant = (int(total * rng.uniform(0.05, 0.4)) // 10_000) * 10_000
            if grant > 0:
                claim["grants"] = [{"payer": "梅河口市红十字会 (bench)", "amount": _yuan(grant)}]
        before, after = json.dumps(claim, ensure_ascii=False).split(marker)
        pool.append((before.encode("utf-8"), after.encode("utf-8")))
    return pool


# --------------------------------------------------------------------------------------------------------
# CPU accounting from /proc (Linux; None elsewhere)
# --------------------------------------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _process(pid: int) -> tuple[str, int, float] | None:
    """(command name, parent's pid, CPU seconds of every thread) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


@dataclass(frozen=True, slots=True)
class CpuSample:
    when: float
    machine_total: float  # CPU seconds of every core since boot
    machine_idle: float
    server: dict[int, float]  # CPU seconds of the server process and its children (--workers)
    postgres: dict[int, float]  # CPU seconds of each PostgreSQL backend serving the benchmark's database


def _serves(pid: int, database_name: str) -> bool:
    """Whether a postgres process is a backend connected to `database_name` (its title names the database)."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return f" {database_name} " in title


def cpu_sample(server_pid: int, database_name: str | None) -> CpuSample | None:
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in first]
    processes = {int(e.name): _process(int(e.name)) for e in os.scandir("/proc") if e.name.isdigit()}
    found = {pid: p for pid, p in processes.items() if p is not None}
    server = {server_pid}
    while True:  # the server's descendants (uvicorn's worker processes with --workers)
        more = {pid for pid, (_, parent, _) in found.items() if parent in server} - server
        if not more:
            break
        server |= more
    postgres = {
        pid: cpu
        for pid, (name, _, cpu) in found.items()
        if name == "postgres" and database_name is not None and _serves(pid, database_name)
    }
    return CpuSample(
        time.monotonic(),
        sum(ticks) / TICK,
        (ticks[3] + ticks[4]) / TICK,
        {pid: found[pid][2] for pid in server if pid in found},
        postgres,
    )


def _delta(a: dict[int, float], b: dict[int, float]) -> float:
    """CPU seconds used between two samples by the processes of `b` (a process that ended is not counted)."""
    return sum(cpu - a.get(pid, 0.0) for pid, cpu in b.items())


def cpu_used(a: CpuSample | None, b: CpuSample | None, generator_cpu_s: float) -> dict[str, float] | None:
    """Cores busy during the window, by whom (1.0 = one core all the time)."""
    if a is None or b is None:
        return None
    wall = b.when - a.when
    total = b.machine_total - a.machine_total
    cores = os.cpu_count() or 1
    busy = (total - (b.machine_idle - a.machine_idle)) / total * cores if total > 0 else math.nan
    server = _delta(a.server, b.server) / wall
    postgres = _delta(a.postgres, b.postgres) / wall
    generator = generator_cpu_s / wall
    return {
        "machine_busy": round(busy, 3),
        "server": round(server, 3),
        "generator": round(generator, 3),
        "postgres": round(postgres, 3),
        "other": round(busy - server - generator - postgres, 3),
    }


# --------------------------------------------------------------------------------------------------------
# The load generator (runs in its own process)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadSpec:
    base_url: str
    endpoint: str
    token: str | None
    clients: int
    tag: str  # unique per cell and generator process: claim ids are f"{tag}-{client}-{n}"
    people: int
    seed: int
    warmup_s: float
    seconds: float
    mode: str  # a key of GENERATORS
    chronic_share: float
    pool_size: int = 4_000


@dataclass
class LoadResult:
    latencies_us: list[int] = field(default_factory=list)  # requests completed inside the window
    statuses: Counter[int] = field(default_factory=Counter)  # every request, warm-up included (-1: no answer)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    cpu_s: float = 0.0  # this process's CPU time during the window
    sent: int = 0


class _Clock:
    """The window, on the system-wide monotonic clock that the parent process reads too."""

    def __init__(self, start_at: float, spec: LoadSpec):
        self.start_at = start_at
        self.window_start = start_at + spec.warmup_s
        self.window_end = self.window_start + spec.seconds


class _Requests:
    """Request bodies for one generator process: a fresh claim id around a pooled body."""

    def __init__(self, spec: LoadSpec):
        self.method, self.path = ENDPOINTS[spec.endpoint]
        self.expected = EXPECTED_STATUS[spec.endpoint]
        self.tag = spec.tag
        self.pool = (
            []
            if spec.endpoint == "healthz"
            else claim_pool(
                population(spec.people, spec.seed), spec.pool_size, f"{spec.seed}-{spec.tag}", spec.chronic_share
            )
        )
        self.headers = {"content-type": "application/json"}
        if spec.token is not None:
            self.headers["authorization"] = f"Bearer {spec.token}"

    def body(self, rng: random.Random, client: int, n: int) -> bytes | None:
        if not self.pool:
            return None
        before, after = self.pool[rng.randrange(len(self.pool))]
        return before + f"{self.tag}-{client}-{n}".encode() + after


def _record(result: LoadResult, clock: _Clock, requests: _Requests, status: int, t0: int, t1: int, detail: str) -> None:
    result.sent += 1
    result.statuses[status] += 1
    if status != requests.expected:
        result.errors += 1
        if len(result.error_samples) < 5:
            result.error_samples.append(f"{status}: {detail[:300]}")
    done = time.monotonic()
    if clock.window_start <= done <= clock.window_end:
        result.latencies_us.append((t1 - t0) // 1000)


async def _cpu_window(clock: _Clock, result: LoadResult) -> None:
    """This process's CPU time over the measured window, into `result.cpu_s`."""
    await asyncio.sleep(max(0.0, clock.window_start - time.monotonic()))
    start = time.process_time()
    await asyncio.sleep(max(0.0, clock.window_end - time.monotonic()))
    result.cpu_s = time.process_time() - start


async def _run_async(spec: LoadSpec, requests: _Requests, ready: Callable[[], float]) -> LoadResult:
    result = LoadResult()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(
            base_url=spec.base_url, headers=requests.headers, timeout=60.0, limits=limits, trust_env=False
        )
        for _ in range(spec.clients)
    ]
    try:
        await asyncio.gather(*(c.get("/healthz") for c in clients))  # connections open before the clock starts
        clock = _Clock(ready(), spec)

        async def client_loop(i: int, http: httpx.AsyncClient) -> None:
            rng = random.Random(f"{spec.tag}-{i}")
            await asyncio.sleep(max(0.0, clock.start_at - time.monotonic()))
            n = 0
            while time.monotonic() < clock.window_end:
                n += 1
                content = requests.body(rng, i, n)
                t0 = time.perf_counter_ns()
                try:
                    answer = await http.request(requests.method, requests.path, content=content)
                    status, detail = answer.status_code, answer.text if answer.status_code >= 300 else ""
                except httpx.HTTPError as err:
                    status, detail = -1, f"{type(err).__name__}: {err}"
                _record(result, clock, requests, status, t0, time.perf_counter_ns(), detail)

        await asyncio.gather(_cpu_window(clock, result), *(client_loop(i, c) for i, c in enumerate(clients)))
    finally:
        for c in clients:
            await c.aclose()
    return result


def _run_threads(spec: LoadSpec, requests: _Requests, ready: Callable[[], float]) -> LoadResult:
    result = LoadResult()
    lock = threading.Lock()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.Client(base_url=spec.base_url, headers=requests.headers, timeout=60.0, limits=limits, trust_env=False)
        for _ in range(spec.clients)
    ]
    with ThreadPoolExecutor(spec.clients) as pool:
        list(pool.map(lambda c: c.get("/healthz"), clients))
    clock = _Clock(ready(), spec)

    def client_loop(i: int, http: httpx.Client) -> None:
        rng = random.Random(f"{spec.tag}-{i}")
        time.sleep(max(0.0, clock.start_at - time.monotonic()))
        n = 0
        while time.monotonic() < clock.window_end:
            n += 1
            content = requests.body(rng, i, n)
            t0 = time.perf_counter_ns()
            try:
                answer = http.request(requests.method, requests.path, content=content)
                status, detail = answer.status_code, answer.text if answer.status_code >= 300 else ""
            except httpx.HTTPError as err:
                status, detail = -1, f"{type(err).__name__}: {err}"
            t1 = time.perf_counter_ns()
            with lock:
                _record(result, clock, requests, status, t0, t1, detail)

    threads = [threading.Thread(target=client_loop, args=(i, c), daemon=True) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, clock.window_start - time.monotonic()))
    start = time.process_time()
    time.sleep(max(0.0, clock.window_end - time.monotonic()))
    result.cpu_s = time.process_time() - start
    for t in threads:
        t.join()
    for c in clients:
        c.close()
    return result


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a request and reads the answer's status and body, and
    nothing more: the server's answers carry a Content-Length (a chunked answer is reported as an error).
    Kept this small because on two cores whatever the generator spends per request is taken from the
    server and PostgreSQL; httpx spends about 0.5 ms of CPU a request here."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiting: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is a Transport in all but name

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiting is None:
            return
        head = bytes(self.buffer[:end]).lower()
        found = head.find(b"\r\ncontent-length:")
        if found < 0:
            self._fail(ConnectionError(f"an answer without content-length: {bytes(self.buffer[:end])[:200]!r}"))
            return
        stop = head.find(b"\r\n", found + 2)
        length = int(head[found + 17 : stop if stop >= 0 else len(head)])
        if len(self.buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        waiting, self.waiting = self.waiting, None
        waiting.set_result((status, body))

    def _fail(self, err: BaseException) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_exception(err)
        self.waiting = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the server closed the connection"))

    async def request(self, message: bytes) -> tuple[int, bytes]:
        assert self.transport is not None and self.waiting is None
        if self.transport.is_closing():  # closed by the server between two requests
            raise ConnectionError("the server closed the connection")
        self.waiting = asyncio.get_running_loop().create_future()
        self.transport.write(message)
        return await self.waiting


async def _run_raw(spec: LoadSpec, requests: _Requests, ready: Callable[[], float]) -> LoadResult:
    result = LoadResult()
    host, port = spec.base_url.removeprefix("http://").rsplit(":", 1)
    head = f"{requests.method} {requests.path} HTTP/1.1\r\nhost: {host}:{port}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in requests.headers.items()
    )
    loop = asyncio.get_running_loop()
    connections = [(await loop.create_connection(_Connection, host, int(port)))[1] for _ in range(spec.clients)]
    for c in connections:  # each connection answers once before the clock starts
        status, _ = await c.request(f"GET /healthz HTTP/1.1\r\nhost: {host}:{port}\r\n\r\n".encode())
        if status != 200:
            raise RuntimeError(f"GET /healthz answered {status}")
    clock = _Clock(ready(), spec)

    def message(content: bytes | None) -> bytes:
        if content is None:
            return (head + "\r\n").encode()
        return (head + f"content-length: {len(content)}\r\n\r\n").encode() + content

    async def client_loop(i: int, http: _Connection) -> None:
        rng = random.Random(f"{spec.tag}-{i}")
        await asyncio.sleep(max(0.0, clock.start_at - time.monotonic()))
        n = 0
        while time.monotonic() < clock.window_end:
            n += 1
            data = message(requests.body(rng, i, n))
            t0 = time.perf_counter_ns()
            try:
                status, body = await asyncio.wait_for(http.request(data), 60.0)
                detail = body.decode(errors="replace") if status >= 300 else ""
            except (OSError, TimeoutError) as err:
                status, detail = -1, f"{type(err).__name__}: {err}"
            _record(result, clock, requests, status, t0, time.perf_counter_ns(), detail)
            if status < 0:
                return  # the connection is in an unknown state: this client stops

    try:
        await asyncio.gather(_cpu_window(clock, result), *(client_loop(i, c) for i, c in enumerate(connections)))
    finally:
        for c in connections:
            if c.transport is not None:
                c.transport.close()
    return result


def generator_main(spec: LoadSpec, go: Any, start_at: Any, results: Any) -> None:
    """Entry point of a generator process: prepare, say ready, wait for the common start, run, report."""
    try:
        requests = _Requests(spec)

        def ready() -> float:
            results.put(("ready", spec.tag, None))
            if not go.wait(120):
                raise TimeoutError("no start signal")
            return float(start_at.value)

        if spec.mode == "threads":
            result = _run_threads(spec, requests, ready)
        elif spec.mode == "async":
            result = asyncio.run(_run_async(spec, requests, ready))
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                result = runner.run(_run_raw(spec, requests, ready))
        results.put(("done", spec.tag, result))
    except BaseException as err:  # reported to the parent, which stops the run
        results.put(("failed", spec.tag, f"{type(err).__name__}: {err}"))


# --------------------------------------------------------------------------------------------------------
# The server and its database
# --------------------------------------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    command: list[str]
    base_url: str
    folder: Path
    log: Path
    tokens: dict[str, str]
    database_name: str | None  # PostgreSQL's name of the database (None on SQLite)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(url: str, folder: Path, workers: int = 1, timeout_s: float = 120.0, cpu: int | None = None) -> Server:
    """`doudi serve --demo` on `url`, run in `folder`; returns once /healthz answers and the tokens exist."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [str(DOUDI), "serve", "--demo", "--port", str(port), "--database-url", url]
    if workers > 1:
        command += ["--workers", str(workers)]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    log = folder / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "DOUDI_DATABASE_URL"} | {"PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=folder, stdout=out, stderr=subprocess.STDOUT, env=env)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2.0, trust_env=False).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_server_process(process)
            raise RuntimeError(f"the server did not answer /healthz within {timeout_s:.0f} s:\n{_tail(log)}")
        time.sleep(0.2)
    tokens_dir = folder / "var" / "demo-tokens"
    tokens = {path.name: path.read_text(encoding="utf-8").strip() for path in sorted(tokens_dir.iterdir())}
    database_name = make_url(url).database if url.startswith("postgresql") else None
    return Server(process, command, base_url, folder, log, tokens, database_name)


def stop_server_process(process: subprocess.Popen[bytes]) -> int | None:
    """SIGINT (uvicorn's graceful shutdown), then SIGTERM, then SIGKILL, to this process only."""
    for sig, wait_s in ((signal.SIGINT, 30.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            break
        process.send_signal(sig)
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
    return process.poll()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def database(kind: str, folder: Path, postgres_url: str) -> Iterator[str]:
    """A fresh, empty database of `kind` as a SQLAlchemy URL; a PostgreSQL one is dropped afterwards."""
    if kind == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "doudi.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        yield f"sqlite:///{path}"
        return
    server = make_url(postgres_url)
    name = f"doudi_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def register(server: Server, people: Sequence[Person], workers: int = 8) -> dict[str, Any]:
    """PUT every person through the admin API (not timed as part of any cell)."""
    headers = {"authorization": f"Bearer {server.tokens['demo-admin']}"}
    failures: list[str] = []
    local = threading.local()

    def put(person: Person) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=server.base_url, headers=headers, timeout=60.0, trust_env=False)
        answer = local.client.put(f"/v1/people/{person.person_id}", json=person.body())
        if answer.status_code != 200:
            failures.append(f"{person.person_id}: {answer.status_code} {answer.text[:300]}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, people))
    seconds = time.perf_counter() - t0
    if failures:
        raise RuntimeError("registering people failed:\n" + "\n".join(failures[:5]))
    households = len({p.household_id for p in people})
    categories = Counter(p.categories[-1][0] if p.categories else "none" for p in people)
    return {
        "people": len(people),
        "households": households,
        "categories": dict(categories.most_common()),
        "seconds": round(seconds, 2),
        "puts_per_s": round(len(people) / seconds, 1),
    }


def check_claims(server: Server, people: Sequence[Person], seed: int, chronic_share: float, n: int = 40) -> None:
    """A few pooled claims quoted once, so that a bad claim shape fails here and not as load errors."""
    headers = {"authorization": f"Bearer {server.tokens['demo-desk']}", "content-type": "application/json"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=60.0, trust_env=False) as client:
        for i, (before, after) in enumerate(claim_pool(people, n, seed, chronic_share)):
            answer = client.post("/v1/quotes", content=before + f"CHECK-{i}".encode() + after)
            if answer.status_code != 200:
                raise RuntimeError(f"a benchmark claim is refused: {answer.status_code} {answer.text[:500]}")


REGISTER_TABLES = ("people", "category_periods", "regions", "hospitals", "users", "api_tokens")
"""What the registration fills, and the first exchange of a settlement's group looks up."""


def analyze(url: str) -> bool:
    """On PostgreSQL, gather the planner's statistics on the register once it is filled, as autovacuum does
    after a bulk load on a server run as PostgreSQL ships. This project's machines run with autovacuum off,
    so a benchmark database is otherwise never analysed and the planner guesses the register's size from its
    pages (sequential scans of `people` for a group's sixteen). The ledger is left as it is: analysed while
    empty, its statistics would say empty for the whole run, where autovacuum would analyse it as it grows.
    Returns whether it ran."""
    if not url.startswith("postgresql"):
        return False
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f"ANALYZE {', '.join(REGISTER_TABLES)}"))
    finally:
        engine.dispose()
    return True


def count_settlements(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM settlements")).scalar_one())
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------------------
# One cell: an endpoint at C clients for the window
# --------------------------------------------------------------------------------------------------------


def percentile(ordered: Sequence[int], q: float) -> int:
    """Nearest-rank percentile of sorted values (not empty)."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency_ms(latencies_us: Sequence[int]) -> dict[str, float | None]:
    """p50, p90, p99, max and mean in ms of sorted latencies in µs (None when nothing completed)."""
    if not latencies_us:
        return dict.fromkeys(("p50", "p90", "p99", "max", "mean"))
    return {
        "p50": round(percentile(latencies_us, 0.50) / 1e3, 2),
        "p90": round(percentile(latencies_us, 0.90) / 1e3, 2),
        "p99": round(percentile(latencies_us, 0.99) / 1e3, 2),
        "max": round(latencies_us[-1] / 1e3, 2),
        "mean": round(statistics.fmean(latencies_us) / 1e3, 2),
    }


def run_cell(server: Server, spec: LoadSpec, processes: int) -> dict[str, Any]:
    """`spec.clients` clients shared by `processes` generator processes, started together; the figures of
    the window."""
    ctx = mp.get_context("spawn")
    go, start_at, results = ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
    shares = [spec.clients // processes + (1 if k < spec.clients % processes else 0) for k in range(processes)]
    specs = [replace(spec, clients=share, tag=f"{spec.tag}g{k}") for k, share in enumerate(shares) if share > 0]
    warmup_s, seconds = spec.warmup_s, spec.seconds
    workers = [ctx.Process(target=generator_main, args=(s, go, start_at, results), daemon=True) for s in specs]
    for w in workers:
        w.start()
    done: list[LoadResult] = []
    try:
        ready = 0
        while ready < len(specs):
            kind, who, payload = results.get(timeout=180)
            if kind == "failed":
                raise RuntimeError(f"generator {who} failed: {payload}")
            ready += kind == "ready"
        begin = time.monotonic() + 0.2
        start_at.value = begin
        go.set()
        time.sleep(max(0.0, begin + warmup_s - time.monotonic()))
        before = cpu_sample(server.process.pid, server.database_name)
        time.sleep(max(0.0, begin + warmup_s + seconds - time.monotonic()))
        after = cpu_sample(server.process.pid, server.database_name)
        while len(done) < len(specs):
            kind, who, payload = results.get(timeout=seconds + 180)
            if kind == "failed":
                raise RuntimeError(f"generator {who} failed: {payload}")
            if kind == "done":
                done.append(payload)
    finally:
        for w in workers:
            w.join(10)
            if w.is_alive():
                w.kill()
    latencies = sorted(x for r in done for x in r.latencies_us)
    statuses: Counter[int] = Counter()
    for r in done:
        statuses.update(r.statuses)
    errors = sum(r.errors for r in done)
    generator_cpu = sum(r.cpu_s for r in done)
    cpu = cpu_used(before, after, generator_cpu)
    return {
        "requests": len(latencies),
        "sent_including_warmup": sum(r.sent for r in done),
        "errors": errors,
        "error_samples": [s for r in done for s in r.error_samples][:5],
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "throughput_per_s": round(len(latencies) / seconds, 1),
        "latency_ms": latency_ms(latencies),
        "cpu_cores": cpu,
        "generator_core_share_per_process": round(generator_cpu / seconds / len(specs), 3),
    }


def _latency(q: str, run: dict[str, Any]) -> float | None:
    value: float | None = run["latency_ms"][q]
    return value


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repeats of a cell (requests and errors: totals)."""

    def med(get: Callable[[dict[str, Any]], float | None]) -> float | None:
        values = [v for v in map(get, runs) if v is not None]
        return round(statistics.median(values), 2) if values else None

    cpu = [r["cpu_cores"] for r in runs if r["cpu_cores"] is not None]
    return {
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "throughput_per_s": med(lambda r: r["throughput_per_s"]),
        "throughput_per_s_runs": [r["throughput_per_s"] for r in runs],
        "latency_ms": {q: med(partial(_latency, q)) for q in ("p50", "p90", "p99", "max", "mean")},
        "p99_ms_runs": [r["latency_ms"]["p99"] for r in runs],
        "cpu_cores": {k: round(statistics.median(c[k] for c in cpu), 3) for k in cpu[0]} if cpu else None,
        "generator_core_share_per_process": med(lambda r: r["generator_core_share_per_process"]),
    }


# --------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------


def machine_speed() -> float:
    """A reference timing (seconds for a 10-million-step Python loop): this machine's speed drifts."""
    t0 = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return round(time.perf_counter() - t0, 3)


def git_head() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    diff = git("diff", "HEAD")
    return {
        "head": git("rev-parse", "HEAD"),
        "uncommitted_changes": status.splitlines() if status else [],
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:16] if diff else None,
    }


def bench_database(
    kind: str, args: argparse.Namespace, scratch: Path, clients: list[int], endpoints: list[str]
) -> dict[str, Any]:
    people = population(args.people, args.seed)
    folder = scratch / kind
    with database(kind, folder, args.postgres_url) as url:
        print(f"\n[{kind}] starting the server on a fresh database ...", flush=True)
        git_at_start = git_head()
        server = start_server(url, folder, args.workers, cpu=args.server_cpu)
        stopped: int | None = None
        try:
            print(f"[{kind}] {shlex.join(server.command)}  (cwd {folder})", flush=True)
            registration = register(server, people)
            print(
                f"[{kind}] registered {registration['people']:,} people in {registration['households']:,} households "
                f"through PUT /v1/people in {registration['seconds']} s ({registration['puts_per_s']}/s)",
                flush=True,
            )
            registration["analyzed"] = analyze(url)
            check_claims(server, people, args.seed + 1, args.chronic_share)
            cells: dict[tuple[str, int], list[dict[str, Any]]] = {(e, c): [] for c in clients for e in endpoints}
            for repeat in range(args.repeat):
                for c in clients:
                    for endpoint in endpoints:
                        spec = LoadSpec(
                            base_url=server.base_url,
                            endpoint=endpoint,
                            token=None if endpoint == "healthz" else server.tokens["demo-desk"],
                            clients=c,
                            tag=f"BN{args.seed % 1000}{kind[0]}{repeat}-{endpoint[0]}{c}",
                            people=args.people,
                            seed=args.seed,
                            warmup_s=args.warmup,
                            seconds=args.seconds,
                            mode=args.generator,
                            chronic_share=args.chronic_share,
                        )
                        run = run_cell(server, spec, args.generator_processes)
                        run["repeat"] = repeat + 1
                        cells[(endpoint, c)].append(run)
                        cpu = run["cpu_cores"] or {}
                        print(
                            f"[{kind}] repeat {repeat + 1}/{args.repeat} {endpoint:<8} {c:>3} clients: "
                            f"{run['throughput_per_s']:>8.1f} req/s  p50 {_ms(run['latency_ms']['p50']):>7} ms  "
                            f"p99 {_ms(run['latency_ms']['p99']):>7} ms  errors {run['errors']}  cores: "
                            + " ".join(f"{k} {v:.2f}" for k, v in cpu.items()),
                            flush=True,
                        )
                        for sample in run["error_samples"]:
                            print(f"    error: {sample}", flush=True)
        finally:
            stopped = stop_server_process(server.process)
        created = sum(r["statuses"].get("201", 0) for e, c in cells if e == "settle" for r in cells[(e, c)])
        recorded = count_settlements(url)
        server_log_errors = [
            line
            for line in server.log.read_text(encoding="utf-8", errors="replace").splitlines()
            if "Traceback" in line
        ]
    return {
        "git_at_server_start": git_at_start,
        "server_command": server.command,
        "server_exit_status": stopped,
        "server_tracebacks_in_log": len(server_log_errors),
        "registration": registration,
        "settlements": {"answered_201": created, "in_database_after_run": recorded, "agree": created == recorded},
        "cells": [
            {"endpoint": e, "clients": c, "median": summarise(runs), "runs": runs} for (e, c), runs in cells.items()
        ],
    }


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets (settle p99 and settle / healthz throughput at 16 clients on PostgreSQL), and the
    share at every other database and number of clients, for reference (`target` false)."""
    targets: list[dict[str, Any]] = []
    for kind, found in results.items():
        by = {(c["endpoint"], c["clients"]): c["median"] for c in found["cells"]}
        for (endpoint, clients), median in by.items():
            if endpoint != "settle":
                continue
            target = kind == TARGET_DATABASE and clients == TARGET_CLIENTS
            if target:
                p99 = median["latency_ms"]["p99"]
                targets.append(
                    {
                        "name": f"settle p99 <= {TARGET_SETTLE_P99_MS:g} ms at {clients} clients on {kind}",
                        "value_ms": p99,
                        "met": p99 is not None and p99 <= TARGET_SETTLE_P99_MS,
                        "target": True,
                    }
                )
            if ("healthz", clients) not in by:
                continue
            share = median["throughput_per_s"] / by[("healthz", clients)]["throughput_per_s"]
            targets.append(
                {
                    "name": "settle throughput "
                    + (f">= {TARGET_SHARE_OF_HEALTHZ:.0%} of healthz" if target else "as a share of healthz")
                    + f" at {clients} clients on {kind}",
                    "value": round(share, 3),
                    "met": share >= TARGET_SHARE_OF_HEALTHZ,
                    "target": target,
                }
            )
    return targets


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(results: dict[str, Any]) -> None:
    print("\nMedians over the repeats (latency as the client saw it; cores: server / generator / postgres / other)")
    head = (
        f"  {'database':<10} {'endpoint':<8} {'clients':>7} {'requests':>9} {'errors':>6} {'req/s':>8} "
        f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'/healthz':>8}   cores"
    )
    print(head)
    print("  " + "-" * (len(head) + 20))
    for kind, found in results.items():
        by = {(c["endpoint"], c["clients"]): c["median"] for c in found["cells"]}
        for cell in found["cells"]:
            m = cell["median"]
            healthz = by.get(("healthz", cell["clients"]))
            share = (
                f"{m['throughput_per_s'] / healthz['throughput_per_s']:.0%}"
                if healthz is not None and cell["endpoint"] != "healthz"
                else ""
            )
            cpu = m["cpu_cores"]
            cores = (
                f"{cpu['server']:.2f} / {cpu['generator']:.2f} / {cpu['postgres']:.2f} / {cpu['other']:.2f}"
                if cpu
                else "n/a"
            )
            lat = m["latency_ms"]
            print(
                f"  {kind:<10} {cell['endpoint']:<8} {cell['clients']:>7} {m['requests']:>9,} {m['errors']:>6} "
                f"{m['throughput_per_s']:>8.1f} {_ms(lat['p50']):>8} {_ms(lat['p90']):>8} {_ms(lat['p99']):>8} "
                f"{share:>8}   {cores}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.service", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per cell (default 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each window (default 2)")
    parser.add_argument("--clients", default="1,16,64", help="concurrent clients, comma-separated (default 1,16,64)")
    parser.add_argument(
        "--endpoints", default=",".join(ENDPOINTS), help="endpoints to load, comma-separated (default: all three)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell, interleaved; medians (default 3)")
    parser.add_argument("--people", type=int, default=2_000, help="people registered before the run (default 2,000)")
    parser.add_argument("--seed", type=int, default=20140612)
    parser.add_argument(
        "--chronic-share",
        type=float,
        default=0.1,
        help="share of chronic-outpatient claims, the rest inpatient (default 0.1)",
    )
    parser.add_argument(
        "--generator",
        choices=tuple(GENERATORS),
        default="raw",
        help="load generator: one uvloop event loop with a minimal HTTP/1.1 connection per client (default), a "
        "thread and an httpx.Client per client, or asyncio and an httpx.AsyncClient per client",
    )
    parser.add_argument("--generator-processes", type=int, default=1, help="processes sharing the clients")
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (`doudi serve --workers`, default 1: not passed)"
    )
    parser.add_argument(
        "--server-cpu", type=int, help="keep the (one) server process on this core (`doudi serve --cpu`)"
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="server to create a scratch database on")
    parser.add_argument("--scratch", type=Path, help="scratch folder (default: a new temporary folder, removed)")
    parser.add_argument("--out", default="bench/results/service.json", help="JSON output file")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    endpoints = [e for e in args.endpoints.split(",") if e.strip()]
    if unknown := [e for e in endpoints if e not in ENDPOINTS]:
        parser.error(f"--endpoints: unknown {unknown}; known: {list(ENDPOINTS)}")

    load_start = os.getloadavg()
    speed_start = machine_speed()
    git_start = git_head()
    print(
        f"Doudi service benchmark: {', '.join(kinds)}; clients {clients}; {args.seconds:g} s per cell after "
        f"{args.warmup:g} s warm-up, {args.repeat} repeats; {args.people:,} people; generator {args.generator} x "
        f"{args.generator_processes} process(es); server workers {args.workers}; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average {load_start[0]:.2f}; 10M-step loop {speed_start:.2f} s"
    )
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="doudi-bench-service-"))
    started = time.perf_counter()
    results: dict[str, Any] = {}
    try:
        for kind in kinds:
            results[kind] = bench_database(kind, args, scratch, clients, endpoints)
    finally:
        if args.scratch is None:
            shutil.rmtree(scratch, ignore_errors=True)

    print_table(results)
    targets = evaluate(results)
    print("\nTargets")
    for t in targets:
        value = f"{_ms(t['value_ms'])} ms" if "value_ms" in t else f"{t['value']:.0%}"
        verdict = ("met" if t["met"] else "NOT MET") if t["target"] else "(for reference)"
        print(f"  {t['name']:<70} {value:>10}   {verdict}")
    errors = sum(c["median"]["errors"] for r in results.values() for c in r["cells"])
    busiest = max(
        (c["median"]["generator_core_share_per_process"], kind, c["endpoint"], c["clients"])
        for kind, r in results.items()
        for c in r["cells"]
    )
    print(
        f"\ngenerator: busiest at {busiest[0]:.0%} of a core per process ({busiest[1]} {busiest[2]}, "
        f"{busiest[3]} clients)"
        + (
            "  -- ABOVE THE SATURATION MARK: the generator may be the limit there"
            if busiest[0] > GENERATOR_SATURATED
            else ""
        )
    )
    for kind, r in results.items():
        s = r["settlements"]
        print(
            f"{kind}: {s['answered_201']:,} settlements answered 201, {s['in_database_after_run']:,} in the database"
            f"{'' if s['agree'] else '  -- DISAGREE'}; server exit status {r['server_exit_status']}, "
            f"{r['server_tracebacks_in_log']} tracebacks in its log"
        )

    load_end = os.getloadavg()
    speed_end = machine_speed()
    git_end = git_head()
    git_changed = any(r["git_at_server_start"] != git_start for r in results.values()) or git_end != git_start
    if git_changed:
        print("NOTE: the repository changed during the run (git HEAD or tracked files): see the JSON's git fields")
    report: dict[str, Any] = {
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "cwd": os.getcwd(),
        "when": dt.datetime.now().isoformat(timespec="seconds"),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "httpx": httpx.__version__,
            "load_average_1_5_15_min_at_start": [round(x, 2) for x in load_start],
            "load_average_1_5_15_min_at_end": [round(x, 2) for x in load_end],
            "python_loop_10m_s_at_start": speed_start,
            "python_loop_10m_s_at_end": speed_end,
        },
        "git": {"at_start": git_start, "at_end": git_end, "changed_during_run": git_changed},
        "settings": {
            "databases": kinds,
            "clients": clients,
            "seconds": args.seconds,
            "warmup_seconds": args.warmup,
            "repeat": args.repeat,
            "people": args.people,
            "seed": args.seed,
            "server_workers": args.workers,
            "server_cpu": args.server_cpu,
            "generator": {
                "kind": args.generator,
                "processes": args.generator_processes,
                "description": "closed loop; one keep-alive connection per client; " + GENERATORS[args.generator],
                "saturation_mark_core_share": GENERATOR_SATURATED,
            },
            "endpoints": {k: f"{m} {p}" for k, (m, p) in ENDPOINTS.items() if k in endpoints},
            "desk": {"user": "demo-desk", "hospital": DESK_HOSPITAL},
            "claims": "examples/meihekou-leukaemia.json without household/scheme/category/level; distinct claim_id "
            f"per request; random registered person; {ON_LIST_SHARE:.0%} principal diagnoses on the "
            "catastrophic list; log-normal totals; "
            f"{1 - args.chronic_share:.0%} inpatient, {args.chronic_share:.0%} chronic outpatient",
        },
        "results": results,
        "targets": targets,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"load average {load_start[0]:.2f} at start, {load_end[0]:.2f} at end; wrote {out}")
    settlements_ok = all(r["settlements"]["agree"] for r in results.values())
    return 0 if errors == 0 and settlements_ok else 1


if __name__ == "__main__":
    sys.exit(main())
