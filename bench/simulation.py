"""Simulation benchmark: a synthetic province of N claims from Parquet to the finished report, baseline and
reform, as policy staff run it (`doudi simulate`), timed and with the memory of every process it starts.

    .venv/bin/python -m bench.simulation [--sizes 100k,1m,5m] [--out-of-core CLAIMS] [--memory-cap-gb G]
                                         [--scheduler local:2] [--out PATH]

For each size a dataset is generated once with `doudi generate` (about 1.83 claims a person) and kept under
var/bench/ for the next run: one .parquet file for the in-memory sizes, a folder of Parquet parts
partitioned by household for `--out-of-core` (generated and written half a million persons at a time).
Each run is `doudi simulate` in a child process: the three Jilin areas under their own 2014 policies as the
baseline, Meihekou's 2014 rules province-wide as the reform. Measured: wall time (the child's whole life:
start-up, reading, settling both scenarios, the report), peak resident memory of the whole process tree
(the child and any workers it starts, summed, sampled every 50 ms), CPU time, and the machine's load average
before and after (the machine's two cores are shared with other work). `--memory-cap-gb` runs the child
under an address-space limit (RLIMIT_AS), so that a run that needed more memory would fail, not swap.

Targets on 2 cores (issue 5): 5,000,000 claims in at most 60 s with peak memory at most 4 GB; a
50,000,000-claim dataset partitioned by household with bounded memory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "var" / "bench"
DOUDI = str(Path(sys.executable).with_name("doudi"))
CLAIMS_PER_PERSON = 1.82  # the jilin-2014 profile gives 1.826 (5,022,505 claims of 2,750,000 people, seed 1)
SEED = 1
BASELINE = ["--baseline", "220581=jl-meihekou", "--baseline", "220100=jl-changchun", "--baseline", "220400=jl-liaoyuan"]
REFORM = ["--reform", "jl-meihekou"]
TARGET_SECONDS, TARGET_BYTES, TARGET_CLAIMS = 60.0, 4 * 1024**3, 5_000_000


def size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


def tree_rss(root: int) -> int:
    """Resident bytes of `root` and every process descended from it."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def measured(command: list[str], cap_bytes: int | None = None) -> dict[str, Any]:
    """Run `command`, sampling its process tree's memory; wall and CPU seconds, peak bytes, its output."""

    def limit() -> None:
        if cap_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (cap_bytes, cap_bytes))

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit, cwd=ROOT)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(child.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = child.communicate()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "exit_code": child.returncode,
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2),
        "peak_tree_rss_bytes": peak[0],
        "largest_process_max_rss_bytes": after.ru_maxrss * 1024,  # the largest child so far (Linux: KiB)
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "stdout": out.decode("utf-8", "replace").strip().splitlines()[-4:],
        "stderr": err.decode("utf-8", "replace").strip().splitlines()[-3:],
    }


def dataset(claims: int, partitioned: bool) -> tuple[Path, dict[str, Any] | None]:
    """The cached dataset of about `claims` claims (generated, and timed, when missing)."""
    people = max(1, -(-claims * 100 // round(CLAIMS_PER_PERSON * 100)))  # enough people for at least `claims`
    path = CACHE / (f"jilin-{people}-{SEED}-parts" if partitioned else f"jilin-{people}-{SEED}.parquet")
    if path.exists():
        return path, None
    CACHE.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".tmp-{path.name}")  # keeps the suffix that says file or folder
    made = measured([DOUDI, "generate", "--people", str(people), "--seed", str(SEED), "--out", str(staged)])
    if made["exit_code"] != 0:
        raise SystemExit(f"generating {path} failed: {made['stderr']}")
    staged.rename(path)
    return path, made


def simulate(path: Path, scheduler: str | None, cap_bytes: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="doudi-bench-sim-") as out:
        command = [DOUDI, "simulate", "--claims", str(path), *BASELINE, *REFORM, "--out", out]
        if scheduler:
            command += ["--scheduler", scheduler]
        result = measured(command, cap_bytes)
        summary_path = Path(out) / "summary.json"
        if result["exit_code"] == 0:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            result["claims"] = summary["claims"]
            result["households"] = summary["households"]
            result["fund_spending_difference_yuan"] = summary["funds"][-1]["difference"]
            result["claims_per_second"] = round(summary["claims"] / result["wall_seconds"])
    result["command"] = " ".join(command)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k,1m,5m", help="Claims per in-memory run, e.g. 100k,1m,5m.")
    parser.add_argument("--out-of-core", type=size, default=0, help="Also a partitioned dataset of this many claims.")
    parser.add_argument("--memory-cap-gb", type=float, default=0.0, help="Address-space limit of each run (0: none).")
    parser.add_argument("--scheduler", default=None, help="Run on Dask too: local:N or a scheduler's address.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/simulation.json")
    args = parser.parse_args(argv)
    cap = int(args.memory_cap_gb * 1024**3) or None
    plan = [(size(s), False) for s in args.sizes.split(",") if s.strip()]
    if args.out_of_core:
        plan.append((args.out_of_core, True))
    runs = []
    for claims, partitioned in plan:
        path, generated = dataset(claims, partitioned)
        for scheduler in [None, args.scheduler] if args.scheduler else [None]:
            run = simulate(path, scheduler, cap)
            run.update(dataset=str(path.relative_to(ROOT)), partitioned=partitioned, scheduler=scheduler)
            run["memory_cap_bytes"] = cap
            if generated:
                run["generated"] = {k: generated[k] for k in ("wall_seconds", "peak_tree_rss_bytes")}
            runs.append(run)
            peak_gb = run["peak_tree_rss_bytes"] / 1024**3
            print(
                f"{run.get('claims', claims):>12,} claims{' (partitioned)' if partitioned else ''}"
                f"{' on ' + scheduler if scheduler else ''}: {run['wall_seconds']:7.1f} s, peak {peak_gb:5.2f} GB "
                f"(process tree), {run.get('claims_per_second', 0):>9,} claims/s, CPU {run['cpu_seconds']:.0f} s, "
                f"load {run['load_average_before'][0]:.1f} -> {run['load_average_after'][0]:.1f}"
                + ("" if run["exit_code"] == 0 else f"  FAILED: {run['stderr']}")
            )
    target = [r for r in runs if r.get("claims", 0) >= TARGET_CLAIMS and not r["partitioned"] and not r["scheduler"]]
    result = {
        "benchmark": "simulation",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "note": "2 cores shared with other work running at the same time: see each run's load average",
        "runs": runs,
        "targets": {
            "claims": TARGET_CLAIMS,
            "seconds": TARGET_SECONDS,
            "peak_bytes": TARGET_BYTES,
            "met": bool(target)
            and all(r["wall_seconds"] <= TARGET_SECONDS and r["peak_tree_rss_bytes"] <= TARGET_BYTES for r in target),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written to {args.out}")
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
