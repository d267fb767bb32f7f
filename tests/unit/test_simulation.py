"""The simulator's core: settling a population under a scenario equals the desk path claim by claim; a
reform identical to the baseline changes nothing; raising a cap never lowers that fund's spending; reforms
are validated in full and refused with every problem named; the report's figures add up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doudi import services
from settlement.claims import Claim, ClaimBatch, parse_claim
from simulation.reform import ReformError, apply_overrides, parse_override
from simulation.report import compare
from simulation.run import Scenario, settle_scenario

ROOT = Path(__file__).resolve().parents[2]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]
LIBRARY = services.open_library()
JILIN = {"220581": "jl-meihekou", "220100": "jl-changchun", "220400": "jl-liaoyuan"}
REGION_OF_PREFIX = {"M": "220581", "C": "220100", "L": "220400"}


@st.composite
def populations(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Stays of a few people in a few households across the three areas, varied from the family's claims."""
    claims = []
    for i in range(draw(st.integers(1, 14))):
        template = dict(FAMILY[draw(st.integers(0, len(FAMILY) - 1))])
        area = draw(st.sampled_from("MCL"))
        person = draw(st.integers(0, 3))
        total = draw(st.integers(100, 40_000_000))
        self_paid = draw(st.integers(0, total // 3))
        month = draw(st.integers(1, 12))
        day = draw(st.integers(1, 28))
        template.update(
            claim_id=f"SIM-{i}",
            person_id=f"{area}-P{person}",
            household_id=f"{area}-H{person // 2}",
            category=draw(st.sampled_from(["none", "dibao", "tekun", "low_income", "orphan"])),
            admitted_on=f"2014-{month:02d}-{max(1, day - 3):02d}",
            discharged_on=f"2014-{month:02d}-{day:02d}",
            settled_at=f"2014-{month:02d}-{day:02d}T{draw(st.integers(8, 17)):02d}:00:00",
            total=f"{total // 100}.{total % 100:02d}",
            fully_self_paid=f"{self_paid // 100}.{self_paid % 100:02d}",
            over_limit_self_paid="0.00",
            pre_self_paid="0.00",
            grants=[],
        )
        template.pop("line_items", None)
        claims.append(template)
    return claims


def _batch(raw: list[dict[str, Any]]) -> tuple[list[Claim], np.ndarray, ClaimBatch]:
    claims = [parse_claim(c) for c in raw]
    regions = np.array([REGION_OF_PREFIX[c.person_id[0]] for c in claims], dtype=object)
    return claims, regions, ClaimBatch.from_claims(claims)


def _frame(claims: list[Claim], regions: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "person_id": [c.person_id for c in claims],
            "household_id": [c.household_id for c in claims],
            "category": [c.category for c in claims],
            "hospital_level": [c.hospital_level for c in claims],
            "region": regions,
            "total": [int(c.total * 100) for c in claims],
            "household_income": 3_000_000,
        }
    )


@settings(max_examples=40, deadline=None)
@given(populations())
def test_a_population_settles_exactly_as_the_desk_would(raw: list[dict[str, Any]]) -> None:
    claims, regions, batch = _batch(raw)
    settled = settle_scenario(Scenario("baseline", LIBRARY, JILIN), regions, batch)
    for region, policy in JILIN.items():
        here = [i for i, r in enumerate(regions) if r == region]
        if not here:
            continue
        records, _ = services.quote_claims(LIBRARY, policy, [claims[i] for i in here])
        for i, record in zip(here, records, strict=True):
            assert int(settled.fund_paid[i]) == int(record["fund_paid"].replace(".", ""))
            paid = {t["tier"]: int(t["paid"].replace(".", "")) for t in record["tiers"]}
            assert int(settled.column("basic_insurance")[i]) == paid["resident_basic"]
            assert int(settled.column("temporary_aid")[i]) == paid["temporary_aid"]


@settings(max_examples=25, deadline=None)
@given(populations())
def test_a_reform_identical_to_the_baseline_changes_nothing(raw: list[dict[str, Any]]) -> None:
    claims, regions, batch = _batch(raw)
    same = apply_overrides(LIBRARY, [])
    baseline = settle_scenario(Scenario("baseline", LIBRARY, JILIN), regions, batch)
    reform = settle_scenario(Scenario("reform", same, JILIN), regions, batch)
    comparison = compare(_frame(claims, regions), baseline, reform)
    assert (comparison.funds["difference"] == 0).all()
    assert all((table["difference"] == 0).all() for table in comparison.by_group.values())
    assert comparison.catastrophic["baseline"] == comparison.catastrophic["reform"]
    assert comparison.movers.empty


@settings(max_examples=25, deadline=None)
@given(populations(), st.integers(0, 200_000))
def test_raising_a_cap_never_lowers_that_funds_spending(raw: list[dict[str, Any]], raise_by: int) -> None:
    claims, regions, batch = _batch(raw)
    path = "tiers.medical_assistance.buckets.general.caps.annual.default"
    higher = apply_overrides(LIBRARY, [parse_override(f'jl-meihekou@2014:{path}="{10_000 + raise_by}"', "test")])
    baseline = settle_scenario(Scenario("baseline", LIBRARY, JILIN), regions, batch)
    reform = settle_scenario(Scenario("reform", higher, JILIN), regions, batch)
    fund = "medical_assistance/general"
    assert reform.column(fund).sum() >= baseline.column(fund).sum()
    people = pd.Series([c.person_id for c in claims])
    before = pd.Series(baseline.column(fund)).groupby(people).sum()
    after = pd.Series(reform.column(fund)).groupby(people).sum()
    assert (after >= before).all()


def test_meihekou_2014_province_wide_pays_more_assistance_than_the_baseline() -> None:
    in_2014 = [c for c in FAMILY if c["discharged_on"].startswith("2014")]  # Changchun has no 2013 policy
    claims, regions, batch = _batch([{**c, "person_id": f"C-{c['person_id']}"} for c in in_2014])
    reform = Scenario("reform", LIBRARY, {"*": "jl-meihekou"})
    baseline = settle_scenario(Scenario("baseline", LIBRARY, JILIN), regions, batch)
    changed = settle_scenario(reform, regions, batch)
    comparison = compare(_frame(claims, regions), baseline, changed)
    total = comparison.funds.set_index("fund").loc["total"]
    assert total["difference"] == int(changed.fund_paid.sum() - baseline.fund_paid.sum())
    assert set(changed.policy) <= {"jl-meihekou@2013", "jl-meihekou@2014"}


def test_an_invalid_reform_is_refused_with_every_problem_named() -> None:
    overrides = [
        parse_override('jl-meihekou@2014:tiers.medical_assistance.buckets.general.ratio.default="1.5"', "--set 1"),
        parse_override("jl-meihekou@2014:tiers.medical_assistance.buckets.nowhere.caps=none", "--set 2"),
        parse_override("nope@1:tiers=[]", "--set 3"),
    ]
    with pytest.raises(ReformError) as refused:
        apply_overrides(LIBRARY, overrides)
    text = str(refused.value)
    assert "--set 2" in text and "no item 'nowhere'" in text and "--set 3" in text
    with pytest.raises(ReformError, match=r"ratio 1\.5 must be between 0 and 1"):
        apply_overrides(LIBRARY, overrides[:1])
    with pytest.raises(ReformError, match=r"POLICY@VERSION:PATH=VALUE"):
        parse_override("caps=none", "--set 4")


def test_ten_thousand_claims_settle_as_the_desk_settles_them_one_by_one(tmp_path: Path) -> None:
    """A generated province of 10,000 claims: each claim's simulated payments, fund by fund, equal what the
    desk path pays when the claims arrive one at a time (each household's in settlement order, its
    year-to-date figures carried from claim to claim), and the partitioned run's totals are their sums."""
    import csv

    from reconciliation.frames import fund_key
    from simulation.dataset import batch_of, load_claims, write_claims
    from simulation.generate import generate
    from simulation.partitions import partition
    from simulation.runner import Job, run
    from tests.unit.test_dataset import claim_from_text

    generated = generate(6_000, seed=31)
    households = generated.frame["household_id"].to_numpy()
    cut = 10_000 + int(np.argmax(households[10_000:] != households[9_999]))  # whole households
    path = tmp_path / "claims.csv"
    write_claims(generated.frame.iloc[:cut].reset_index(drop=True), path)
    dataset = load_claims(path)
    assert len(dataset) >= 10_000
    regions = dataset.frame["region"].to_numpy(dtype=object)
    settled = settle_scenario(Scenario("baseline", LIBRARY, JILIN), regions, batch_of(dataset))

    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_household: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_household.setdefault(row["household_id"], []).append(i)
    desk_totals: dict[str, int] = {}
    checked = 0
    for members in by_household.values():
        state: dict[Any, Any] = {}
        for i in sorted(members, key=lambda i: (rows[i]["settled_at"], rows[i]["claim_id"])):
            claim = parse_claim(claim_from_text(rows[i]))
            records, state = services.quote_claims(LIBRARY, JILIN[rows[i]["region"]], [claim], state)
            record = records[0]
            paid: dict[str, int] = {}
            for tier in record["tiers"]:
                fund = fund_key(tier["stage"], tier.get("bucket", ""))
                paid[fund] = paid.get(fund, 0) + int(tier["paid"].replace(".", ""))
            for fund in set(paid) | set(settled.funds):
                assert int(settled.column(fund)[i]) == paid.get(fund, 0), (rows[i]["claim_id"], fund)
                desk_totals[fund] = desk_totals.get(fund, 0) + paid.get(fund, 0)
            assert int(settled.fund_paid[i]) == int(record["fund_paid"].replace(".", ""))
            checked += 1
    assert checked == len(rows)

    found = run(partition(path, 1_500), Job(Scenario("b", LIBRARY, JILIN), Scenario("r", LIBRARY, JILIN)))
    assert {f: figures[0] for f, figures in found.funds.items() if f != "total"} == desk_totals
    assert found.funds["total"][0] == sum(desk_totals.values())
