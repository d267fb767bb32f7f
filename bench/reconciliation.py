"""Reconciliation benchmark: a month of settlements across many hospitals, statements for all of them with
every file, then one large hospital's own detail file read back and matched.

    .venv/bin/python -m bench.reconciliation [--settlements N] [--hospitals H] [--out PATH]

The month's ledger frames (reconciliation/frames.py) are generated as numpy columns: N settlements (5 % of
them reversed, a third of those from the month before, i.e. prior-period adjustments), four fund entries
each, and the ledger's sums per hospital and fund. Reading them from a database is not counted (the
service reads a month with three SQL queries; see BENCHMARKS.md). Timed: `build_statement`, the statement
files (CSV, XLSX, national detail zips), and reading + matching the largest hospital's national file. Peak
memory is the process's maximum resident set size.

Targets on 2 cores (issue 4): 1,000,000 settlements in 200 hospitals in at most 30 s, peak memory at most
3 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reconciliation.files import statement_files
from reconciliation.frames import ENTRY_COLUMNS, LEDGER_TOTAL_COLUMNS, Month
from reconciliation.national import detail_rows, zipped_detail
from reconciliation.statement import build_statement

MONTH = Month(2014, 7)
STAGES = (
    ("basic_insurance", "resident_basic", "390100"),
    ("supplementary_insurance", "resident_critical_illness", "390200"),
    ("medical_assistance", "catastrophic", "610100"),
    ("temporary_aid", "temporary_aid", "TA0001"),
)


def generate(count: int, hospitals: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(settlements, entries, ledger totals) of a month, as the database adapter would give them."""
    rng = np.random.default_rng(seed)
    ids = np.char.add("S", np.arange(count).astype(str)).astype(object)
    # Hospital sizes are skewed: a few large hospitals, many small ones.
    weights = rng.pareto(1.2, hospitals) + 0.05
    hospital = rng.choice(hospitals, size=count, p=weights / weights.sum())
    reversed_ = rng.random(count) < 0.05
    prior = reversed_ & (rng.random(count) < 1 / 3)
    month_seconds = int((MONTH.end - MONTH.start).total_seconds())
    settled = pd.Timestamp(MONTH.start) + pd.to_timedelta(rng.integers(0, month_seconds, count), unit="s")
    settled = settled.where(~prior, settled - pd.Timedelta(days=31))
    reversed_at = (settled + pd.to_timedelta(rng.integers(3600, 10 * 86400, count), unit="s")).where(reversed_)
    reversed_at = reversed_at.where(
        reversed_at < pd.Timestamp(MONTH.end), pd.Timestamp(MONTH.end) - pd.Timedelta(1, "s")
    )
    reversed_at = reversed_at.where(reversed_)
    paid = rng.integers(0, 3_000_000, size=(count, len(STAGES)))
    paid[:, 2] *= rng.random(count) < 0.3  # assistance for about a third
    burden = rng.integers(0, 2_000_000, count)
    fund_paid = paid.sum(axis=1)
    total = fund_paid + burden
    fully = rng.integers(0, 200_000, count)
    total = total + fully
    burden = burden + fully
    settlements = pd.DataFrame(
        {
            "setl_id": ids,
            "medins_setl_id": np.char.add("HIS-", ids.astype(str)).astype(object),
            "hospital_id": np.char.add("H", hospital.astype(str)).astype(object),
            "person_id": np.char.add("P", rng.integers(0, count // 2 + 1, count).astype(str)).astype(object),
            "category": rng.choice(np.array(["dibao", "tekun", "low_income", "none"], dtype=object), count),
            "diagnosis": rng.choice(np.array(["C91.0", "I63.9", "N18.5", "J18.9"], dtype=object), count),
            "admitted_on": (settled - pd.Timedelta(days=10)).date,
            "discharged_on": settled.date,
            "settled_at": settled,
            "reversed_at": reversed_at,
            "policy": "jl-meihekou@2014",
            "total": total,
            "fully_self_paid": fully,
            "over_limit_self_paid": 0,
            "pre_self_paid": 0,
            "in_scope": total - fully,
            "fund_paid": fund_paid,
            "patient_burden": burden,
        }
    )
    forward_kind = np.repeat(np.array(["settlement"], dtype=object), count)
    parts = []
    for j, (stage, bucket, code) in enumerate(STAGES):
        parts.append(
            pd.DataFrame(
                {
                    "setl_id": ids,
                    "kind": forward_kind,
                    "stage": stage,
                    "bucket": bucket,
                    "fund_pay_type": code,
                    "amount": paid[:, j],
                    "base": paid[:, j],
                    "quota_used": paid[:, j],
                    "quota_left": pd.array([pd.NA] * count, dtype="Int64") if j == 2 else 10_000_000 - paid[:, j],
                }
            )
        )
        parts.append(
            pd.DataFrame(
                {
                    "setl_id": ids[reversed_],
                    "kind": "reversal",
                    "stage": stage,
                    "bucket": bucket,
                    "fund_pay_type": code,
                    "amount": -paid[reversed_, j],
                    "base": -paid[reversed_, j],
                    "quota_used": pd.array([pd.NA] * int(reversed_.sum()), dtype="Int64"),
                    "quota_left": pd.array([pd.NA] * int(reversed_.sum()), dtype="Int64"),
                }
            )
        )
    entries = pd.concat(parts, ignore_index=True)[list(ENTRY_COLUMNS)]
    entries = entries.astype({"quota_used": "Int64", "quota_left": "Int64"})
    # The ledger's own sums of the month's entries, as the database computes them.
    by_id = settlements.set_index("setl_id")
    booked_at = np.where(
        entries["kind"] == "settlement",
        by_id["settled_at"].reindex(entries["setl_id"]).to_numpy(),
        by_id["reversed_at"].reindex(entries["setl_id"]).to_numpy(),
    )
    in_month = (booked_at >= np.datetime64(MONTH.start)) & (booked_at < np.datetime64(MONTH.end))
    booked = entries[in_month].assign(hospital_id=by_id["hospital_id"].reindex(entries["setl_id"][in_month]).to_numpy())
    totals: pd.DataFrame = booked.groupby(["hospital_id", "stage", "bucket"])["amount"].sum().reset_index()
    totals = totals[list(LEDGER_TOTAL_COLUMNS)]
    in_month_settlements = MONTH.holds(settlements["settled_at"]) | MONTH.holds(settlements["reversed_at"])
    return settlements[in_month_settlements].reset_index(drop=True), entries, totals


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(count: int, hospitals: int) -> dict[str, Any]:
    from reconciliation.hospital_file import read_hospital_file
    from reconciliation.matching import match

    started = time.perf_counter()
    settlements, entries, totals = generate(count, hospitals)
    generated = time.perf_counter() - started
    print(f"generated {len(settlements):,} settlement rows, {len(entries):,} entries in {generated:.1f} s", flush=True)
    figures: dict[str, Any] = {"settlement_rows": len(settlements), "entries": len(entries), "generate_s": generated}

    t0 = time.perf_counter()
    statement = build_statement(MONTH, settlements, entries, totals)
    figures["build_statement_s"] = time.perf_counter() - t0
    assert statement.balanced, statement.checks[~statement.checks["ok"]].head()
    figures["detail_rows"] = len(statement.detail)
    print(f"statement: {figures['build_statement_s']:.1f} s, {len(statement.detail):,} detail rows", flush=True)

    t0 = time.perf_counter()
    files = statement_files(statement)
    figures["files_s"] = time.perf_counter() - t0
    figures["files"] = len(files)
    figures["files_mb"] = sum(len(v) for v in files.values()) / 1e6
    print(f"files: {figures['files_s']:.1f} s, {len(files)} files, {figures['files_mb']:.0f} MB", flush=True)

    largest = statement.detail["hospital_id"].value_counts().index[0]
    ours = detail_rows(statement)[statement.detail["hospital_id"].to_numpy() == largest]
    theirs_bytes = zipped_detail(ours, MONTH, f"{largest}.txt")
    t0 = time.perf_counter()
    theirs = read_hospital_file(theirs_bytes, f"{largest}.zip")
    matching = match(ours, theirs, MONTH)
    figures["match_s"] = time.perf_counter() - t0
    figures["match_rows"] = len(ours)
    counts = getattr(matching, "counts", {})
    print(f"match {largest}: {figures['match_s']:.1f} s over {len(ours):,} rows; {counts}", flush=True)

    figures["total_s"] = figures["build_statement_s"] + figures["files_s"] + figures["match_s"]
    figures["peak_rss_mb"] = peak_rss_mb()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settlements", type=int, default=1_000_000)
    parser.add_argument("--hospitals", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/results/reconciliation.json"))
    args = parser.parse_args(argv)
    figures = run(args.settlements, args.hospitals)
    target = {"total_s": 30.0, "peak_rss_mb": 3072.0}
    met = figures["total_s"] <= target["total_s"] and figures["peak_rss_mb"] <= target["peak_rss_mb"]
    print(
        f"timed total {figures['total_s']:.1f} s (target ≤ 30 s), peak memory {figures['peak_rss_mb']:.0f} MB "
        f"(target ≤ 3072 MB): {'met' if met else 'MISSED'}"
    )
    result = {
        "command": shlex.join([sys.executable.split("/")[-1], "-m", "bench.reconciliation", *(argv or sys.argv[1:])]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settlements": args.settlements,
        "hospitals": args.hospitals,
        "figures": figures,
        "targets": target,
        "met": met,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
