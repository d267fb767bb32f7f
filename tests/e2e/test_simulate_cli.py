"""`doudi generate` and `doudi simulate` as policy staff run them: a synthetic province, Meihekou's 2014 rules
province-wide as the reform, and a refused reform naming its problems."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from doudi.cli import app

BASELINE = ["--baseline", "220581=jl-meihekou", "--baseline", "220100=jl-changchun", "--baseline", "220400=jl-liaoyuan"]


def test_generate_then_simulate_a_reform(tmp_path: Path) -> None:
    runner = CliRunner()
    claims = tmp_path / "claims.parquet"
    made = runner.invoke(app, ["generate", "--people", "20000", "--seed", "5", "--out", str(claims)])
    assert made.exit_code == 0, made.output
    out = tmp_path / "out"
    ran = runner.invoke(
        app, ["simulate", "--claims", str(claims), *BASELINE, "--reform", "jl-meihekou", "--out", str(out)]
    )
    assert ran.exit_code == 0, ran.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    funds = {row["fund"]: row for row in summary["funds"]}
    assert funds["basic_insurance"]["difference"] == "0.00"  # insurance is the same everywhere
    assert (out / "report.xlsx").stat().st_size > 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<svg" in page and "http" not in page.replace("http://www.w3.org", "")  # opens offline
    # The movers are named by masked numbers in every file: the dataset's own numbers appear in none.
    people = set(pd.read_parquet(claims, columns=["person_id"])["person_id"].astype(str))
    movers = [row["person_id"] for row in summary["movers"]]
    assert movers and all(m.startswith("*") and m not in people for m in movers)
    assert not any(p in page for p in people)

    same = runner.invoke(app, ["simulate", "--claims", str(claims), *BASELINE, "--out", str(tmp_path / "same")])
    assert same.exit_code == 0, same.output
    unchanged = json.loads((tmp_path / "same" / "summary.json").read_text(encoding="utf-8"))
    assert all(row["difference"] == "0.00" for row in unchanged["funds"])

    path = "jl-meihekou@2014:tiers.medical_assistance.buckets.general.caps.annual.default"
    raised = runner.invoke(
        app, ["simulate", "--claims", str(claims), *BASELINE, "--set", f"{path}=none", "--out", str(tmp_path / "r")]
    )
    assert raised.exit_code == 0, raised.output
    general = {r["fund"]: r for r in json.loads((tmp_path / "r" / "summary.json").read_text())["funds"]}
    assert not general["medical_assistance/general"]["difference"].startswith("-")

    refused = runner.invoke(
        app,
        [
            "simulate",
            "--claims",
            str(claims),
            *BASELINE,
            "--set",
            f"{path}=-5",
            "--set",
            "x",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert refused.exit_code == 1
    assert "--set 2" in refused.output and not (tmp_path / "x").exists()
    two_unreadable = ["--set", "a", "--set", "b"]
    both = runner.invoke(
        app, ["simulate", "--claims", str(claims), *BASELINE, *two_unreadable, "--out", str(tmp_path / "y")]
    )
    assert both.exit_code == 1 and "--set 1" in both.output and "--set 2" in both.output


def test_dask_on_a_local_cluster_of_two_processes_equals_the_single_machine_run(tmp_path: Path) -> None:
    runner = CliRunner()
    claims = tmp_path / "parts"  # a dataset partitioned by household, as generate writes a folder
    made = runner.invoke(
        app, ["generate", "--people", "16000", "--seed", "9", "--out", str(claims), "--part-claims", "4000"]
    )
    assert made.exit_code == 0, made.output
    assert len(list(claims.glob("part-*.parquet"))) >= 6
    reform = [
        "--reform",
        "jl-meihekou",
        "--set",
        "jl-meihekou@2014:tiers.medical_assistance.buckets.general.ratio.default=0.8",
    ]
    common = ["simulate", "--claims", str(claims), *BASELINE, *reform, "--part-claims", "4000"]
    alone = runner.invoke(app, [*common, "--out", str(tmp_path / "alone")])
    assert alone.exit_code == 0, alone.output
    assert "claims/s" in alone.output  # progress, on stderr
    spread = runner.invoke(app, [*common, "--out", str(tmp_path / "dask"), "--scheduler", "local:2"])
    assert spread.exit_code == 0, spread.output
    for name in ("summary.json", "report.xlsx", "report.html"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "alone" / name).read_bytes(), name
    summary = json.loads((tmp_path / "alone" / "summary.json").read_text(encoding="utf-8"))
    assert summary["claims"] > 25_000 and summary["funds"][-1]["difference"] != "0.00"


def test_a_bad_dataset_or_scheduler_is_named(tmp_path: Path) -> None:
    runner = CliRunner()
    claims = tmp_path / "claims.csv"
    made = runner.invoke(app, ["generate", "--people", "3000", "--seed", "2", "--out", str(claims)])
    assert made.exit_code == 0, made.output
    lines = claims.read_text(encoding="utf-8").splitlines()
    cells = lines[3000].split(",")
    cells[12] = "12.345"  # total, with a third decimal, on data row 3000 (CSV line 3001)
    lines[3000] = ",".join(cells)
    claims.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ran = runner.invoke(
        app, ["simulate", "--claims", str(claims), *BASELINE, "--part-claims", "500", "--out", str(tmp_path / "x")]
    )
    assert ran.exit_code == 1
    assert "row 3000, total: amount 12.345 has more than two decimal places" in ran.output
    assert not (tmp_path / "x").exists()
    wrong = runner.invoke(
        app, ["simulate", "--claims", str(claims), *BASELINE, "--scheduler", "local:x", "--out", str(tmp_path / "y")]
    )
    assert wrong.exit_code == 1 and "local:N" in wrong.output
    unknown = runner.invoke(
        app,
        [
            "simulate",
            "--claims",
            str(claims),
            "--baseline",
            "nope",
            "--reform",
            "also-nope",
            "--out",
            str(tmp_path / "z"),
        ],
    )
    assert unknown.exit_code == 1
    assert "no valid policy 'also-nope'" in unknown.output and "no policy 'nope'" in unknown.output
