"""The load generator of test_load.py, run in its own process: a closed loop of desk and finance clients,
each a thread with a keep-alive connection sending its next request as soon as the last answer is read.

The mix, per request: 35 % quotes, 30 % settlements (a fresh settlement key each), 10 % reversals of this
client's own settlements, 25 % reads (a settlement, the hospital's list of the day, a person's year so far,
the insured areas). Halfway through, a finance client reads the month's statement and downloads its
summary and workbook once: the reconciliation in the middle of the desk's day."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from typing import Any

import httpx

from tests.reliability import workload

EXPECTED = {"quote": 200, "settle": 201, "reverse": 201, "read": 200, "statement": 200, "files": 200}


def generate(base_url: str, tokens: dict[str, str], seconds: float, clients: int, seed: int, out: Any) -> None:
    """Run the load for `seconds` and put {kind: [latency_ms, ...]}, the errors and counts on `out`."""
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    lock = threading.Lock()
    start = time.monotonic()
    end = start + seconds
    statement_done = threading.Event()

    def timed(http: httpx.Client, kind: str, method: str, path: str, **request: Any) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            answer = http.request(method, path, **request)
        except httpx.HTTPError as err:
            with lock:
                errors.append(f"{kind} {path}: {err!r}")
            return None
        elapsed = (time.perf_counter() - t0) * 1000
        with lock:
            if answer.status_code != EXPECTED[kind]:
                errors.append(f"{kind} {path}: {answer.status_code} {answer.text[:200]}")
            else:
                latencies[kind].append(elapsed)
        return answer

    def desk(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        mine: list[str] = []
        headers = {"Authorization": f"Bearer {tokens['demo-desk']}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
            n = 0
            while time.monotonic() < end:
                n += 1
                roll = rng.random()
                if roll < 0.35:
                    timed(http, "quote", "POST", "/v1/quotes", json=workload.stay(rng, f"LOAD-Q-{index}-{n}"))
                elif roll < 0.65:
                    answer = timed(
                        http, "settle", "POST", "/v1/settlements", json=workload.stay(rng, f"LOAD-{seed}-{index}-{n}")
                    )
                    if answer is not None and answer.status_code == 201:
                        mine.append(answer.json()["setl_id"])
                elif roll < 0.75 and mine:
                    setl_id = mine.pop(rng.randrange(len(mine)))
                    timed(http, "reverse", "POST", f"/v1/settlements/{setl_id}/reversal", json={"reason": "load"})
                else:
                    choice = rng.randrange(4)
                    if choice == 0 and mine:
                        timed(http, "read", "GET", f"/v1/settlements/{rng.choice(mine)}")
                    elif choice == 1:
                        timed(http, "read", "GET", "/v1/settlements", params={"limit": 50})
                    elif choice == 2:
                        person = rng.choice(workload.PEOPLE)
                        timed(http, "read", "GET", f"/v1/people/{person}/accumulators", params={"year": 2014})
                    else:
                        timed(http, "read", "GET", "/v1/regions")

    def finance() -> None:
        headers = {"Authorization": f"Bearer {tokens['demo-finance']}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=300) as http:
            time.sleep(seconds / 2)
            months = http.get("/v1/reconciliation/months").json()["months"]
            month = months[0]["month"]
            timed(http, "statement", "GET", f"/v1/reconciliation/{month}")
            for name in ("summary.csv", "statement.xlsx"):
                timed(http, "files", "GET", f"/v1/reconciliation/{month}/files/{name}")
            statement_done.set()

    threads = [threading.Thread(target=desk, args=(i,)) for i in range(clients)]
    threads.append(threading.Thread(target=finance))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(
        {
            "latencies_ms": dict(latencies),
            "errors": errors,
            "seconds": time.monotonic() - start,
            "statement_done": statement_done.is_set(),
        }
    )
