"""Golden: Meihekou before and after its 2014 reform (5 diseases and a cap, then 27 diseases and none) on six
fixed claims, against totals worked out by hand from the policy files (the arithmetic is in
golden/simulation-meihekou/expected.yaml). Checked claim by claim, and through the whole simulator — the
partitioned run, the report's figures and summary.json — in one partition and in one per household."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from doudi import services
from simulation.dataset import batch_of, load_claims
from simulation.run import Scenario, settle_scenario
from simulation.runner import Job, labels, simulate

GOLDEN = Path(__file__).parent / "golden" / "simulation-meihekou"
EXPECTED: dict[str, Any] = yaml.safe_load((GOLDEN / "expected.yaml").read_text(encoding="utf-8"))
LIBRARY = services.open_library()


def fen(yuan: str) -> int:
    return int(Decimal(yuan) * 100)


def job() -> Job:
    return Job(
        Scenario("baseline", LIBRARY, {"*": EXPECTED["baseline"]}),
        Scenario("reform", LIBRARY, {"*": EXPECTED["reform"]}),
    )


def test_each_claim_is_paid_as_worked_out_by_hand() -> None:
    dataset = load_claims(GOLDEN / "claims.csv")
    batch = batch_of(dataset)
    regions = dataset.frame["region"].to_numpy(dtype=object)
    ids = dataset.frame["claim_id"].tolist()
    total = dataset.frame["total"].to_numpy(np.int64)
    for side, scenario in (("baseline", job().baseline), ("reform", job().reform)):
        settled = settle_scenario(scenario, regions, batch)
        assert set(settled.policy) == {EXPECTED[side]}
        for i, claim_id in enumerate(ids):
            expected = EXPECTED["claims"][claim_id][side]
            for fund, amount in expected.items():
                found = total[i] - settled.fund_paid[i] if fund == "burden" else settled.column(fund)[i]
                assert int(found) == fen(amount), f"{claim_id} {side} {fund}"
            assert int(settled.column("grants")[i]) == 0


@pytest.mark.parametrize("part_claims", [100, 1])  # one partition; one per household (never split)
def test_the_report_has_the_hand_checked_totals(tmp_path: Path, part_claims: int) -> None:
    out = tmp_path / "out"
    claims = GOLDEN / "claims.csv"
    simulate(
        claims, job(), out, labels(claims, {"*": EXPECTED["baseline"]}, EXPECTED["reform"]), part_claims=part_claims
    )
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))

    funds = {row["fund"]: row for row in summary["funds"]}
    assert list(funds) == [*EXPECTED["funds"]]  # payment order, the total last
    for fund, figures in EXPECTED["funds"].items():
        row = funds[fund]
        assert [row["baseline"], row["reform"]] == figures[:2], fund
        assert [row["recipients_baseline"], row["recipients_reform"]] == figures[2:4], fund
        assert row["difference"] == f"{(fen(figures[1]) - fen(figures[0])) / 100:.2f}"
    caps = {row["fund"]: [row["baseline"], row["reform"]] for row in summary["caps_reached"]}
    assert caps == {fund: figures[4:6] for fund, figures in EXPECTED["funds"].items() if fund != "total"}

    by_category = {row["group"]: [row["baseline"], row["reform"], row["claims"]] for row in summary["by"]["category"]}
    assert by_category == EXPECTED["by_category"]
    assert {row["group"]: row["claims"] for row in summary["by"]["disease"]} == {"catastrophic": 5, "none": 1}

    che = summary["catastrophic_health_expenditure"]
    assert [che["baseline"], che["reform"], che["households"]] == EXPECTED["catastrophic_households"]
    percentiles = {row["percentile"]: [row["baseline"], row["reform"]] for row in summary["burden_percentiles"]}
    assert percentiles == EXPECTED["burden_percentiles"]
    gains = {row["person_id"]: row["change"] for row in summary["movers"] if row["side"] == "gains"}
    assert gains == EXPECTED["gains"]
    assert list(gains) == list(EXPECTED["gains"])  # largest gain first
    assert not [row for row in summary["movers"] if row["side"] == "loses"]
    assert (summary["claims"], summary["people"], summary["households"]) == (6, 4, 4)
