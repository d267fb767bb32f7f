"""The synthetic province-year (simulation/generate.py, docs/claims-dataset.md): calibrated to the seed's
Jilin 2014 catastrophic medical assistance, the same for the same seed, valid by the dataset's own checks,
and every parameter of the profile says where it comes from.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from doudi.cli import app
from policies.compile import compile_policy
from policies.library import Library, load_library
from simulation.dataset import Dataset, batch_of, load_claims, write_claims
from simulation.generate import JILIN_2014, PROFILES, Profile, calibrate, generate

CALIBRATION_PEOPLE = 2_000_000
"""Large enough that the sample's noise stays well inside the tolerance (over ten seeds at this size the
figures moved by at most 7 %; docs/claims-dataset.md), small enough to run in about ten seconds."""
TOLERANCE = 0.10


@pytest.fixture(scope="module")
def library() -> Library:
    library, problems = load_library()
    assert problems == []
    return library


@pytest.fixture(scope="module")
def small() -> Dataset:
    return generate(20_000, seed=7)


def test_the_default_profile_reproduces_the_seeds_catastrophic_assistance(library: Library) -> None:
    """10,441 recipients at Jilin's population and 5,139 yuan each, within 10 %, for 2014 up to the report's
    date, each area's claims settled under its own 2014 sample policy."""
    figures = calibrate(generate(CALIBRATION_PEOPLE, seed=1), CALIBRATION_PEOPLE, JILIN_2014, library)
    assert figures.until.isoformat() == "2014-09-23"
    assert set(figures.by_region) == {"220581", "220100", "220400"}
    assert all(recipients > 0 and paid > 0 for recipients, paid in figures.by_region.values())
    scaled = figures.recipients_at_province
    assert abs(scaled / 10_441 - 1) <= TOLERANCE, f"{scaled:,.0f} recipients at Jilin's population"
    assert abs(figures.per_recipient / 5_139 - 1) <= TOLERANCE, f"{figures.per_recipient:,.0f} yuan per recipient"


def test_the_same_seed_gives_the_same_claims(small: Dataset) -> None:
    again = generate(20_000, seed=7)
    pd.testing.assert_frame_equal(again.frame, small.frame)
    assert again.dx_codes == small.dx_codes
    assert np.array_equal(again.dx_code, small.dx_code)
    other = generate(20_000, seed=8)
    assert not other.frame["total"].equals(small.frame["total"])


def test_the_generated_file_loads_without_problems(small: Dataset, tmp_path: Path) -> None:
    for name in ("claims.parquet", "claims.csv"):
        write_claims(small, tmp_path / name)
        loaded = load_claims(tmp_path / name)
        pd.testing.assert_frame_equal(loaded.frame, small.frame)


def test_claims_are_in_area_household_person_and_settlement_order(small: Dataset) -> None:
    frame = small.frame
    region_rank = {r.code: i for i, r in enumerate(JILIN_2014.regions)}
    key = pd.DataFrame(
        {
            "region": frame["region"].map(region_rank),
            "household": frame["household_id"],
            "person": frame["person_id"],
            "time": frame["settled_at"],
        }
    )
    assert key.equals(key.sort_values(["region", "household", "person", "time"]))
    same_person = frame["person_id"].to_numpy(dtype=object)[1:] == frame["person_id"].to_numpy(dtype=object)[:-1]
    times = frame["settled_at"].to_numpy()
    assert (times[1:][same_person] > times[:-1][same_person]).all(), "a person's claims have no ties"
    # So the engine takes each area's batch as it comes, without sorting persons.
    batch = batch_of(small, np.flatnonzero(frame["region"].to_numpy(dtype=object) == "220100"))
    assert (np.diff(batch.person) >= 0).all()


def test_dates_and_amounts_are_those_of_a_2014_claim(small: Dataset) -> None:
    frame = small.frame
    assert (frame["admitted_on"] <= frame["discharged_on"]).all()
    assert (frame["settled_at"] >= frame["discharged_on"]).all()
    assert (frame["settled_at"].dt.year == 2014).all()
    assert (frame["admitted_on"].dt.year == 2014).all()
    outside = frame["fully_self_paid"] + frame["over_limit_self_paid"] + frame["pre_self_paid"]
    assert (outside <= frame["total"]).all()
    assert (frame["grant_total"] <= frame["total"]).all()
    assert frame.groupby("household_id")["household_income"].nunique().eq(1).all()
    assert frame.groupby("household_id")["region"].nunique().eq(1).all()
    assert frame.groupby("person_id")["category"].nunique().eq(1).all()
    assert set(frame["visit_type"].unique()) == {"inpatient", "chronic_outpatient", "outpatient"}
    assert set(frame["region"].unique()) == {"220581", "220100", "220400"}


def test_every_claim_settles_under_its_areas_policy(small: Dataset, library: Library) -> None:
    from settlement.waterfall import settle

    region = small.frame["region"].to_numpy(dtype=object)
    for area in JILIN_2014.regions:
        rows = np.flatnonzero(region == area.code)
        plan = compile_policy(library.get(area.policy, pd.Timestamp("2014-01-01").date()), library)
        result = settle(plan, batch_of(small, rows), None, trace=False)
        assert (result.fund_paid <= small.frame["total"].to_numpy()[rows]).all()
        assert result.fund_paid.sum() > 0


def test_listed_diseases_are_those_of_the_sample_lists(library: Library) -> None:
    """A disease marked listed has principal codes on Meihekou's 27 or the 22-disease list; the others,
    and every secondary diagnosis, on neither (so the catastrophic bucket is the listed diseases')."""
    plans = [compile_policy(library.get(area.policy), library) for area in JILIN_2014.regions]
    lists = {list_.id: list_ for plan in plans for list_ in plan.disease_lists.values()}
    assert set(lists) == {"meihekou-27-2014", "ma-22-local"}
    for disease in JILIN_2014.diseases:
        for code in disease.codes:
            on_a_list = any(list_.matches(code) for list_ in lists.values())
            assert on_a_list == disease.listed, f"{disease.key}: {code}"
    for code in JILIN_2014.comorbidities:
        assert not any(list_.matches(code) for list_ in lists.values()), code


def test_every_parameter_says_where_it_comes_from() -> None:
    fields = {f.name for f in dataclasses.fields(Profile)} - {"name", "sources"}
    for profile in PROFILES.values():
        assert fields <= set(profile.sources), fields - set(profile.sources)
        assert all(text.strip() for text in profile.sources.values())
        assert all(region.source for region in profile.regions)
        assert all(disease.source for disease in profile.diseases)


def test_the_guide_lists_every_disease_of_the_profile() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "claims-dataset.md").read_text(encoding="utf-8")
    for disease in JILIN_2014.diseases:
        assert f"| {disease.name} | {' '.join(disease.codes)} |" in guide, disease.key


def test_the_command_writes_a_dataset(tmp_path: Path) -> None:
    out = tmp_path / "claims.parquet"
    result = CliRunner().invoke(app, ["generate", "--people", "3000", "--seed", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "written to" in result.output
    pd.testing.assert_frame_equal(load_claims(out).frame, generate(3_000, seed=4).frame)
    refused = CliRunner().invoke(app, ["generate", "--people", "10", "--seed", "1", "--out", str(tmp_path / "x.json")])
    assert refused.exit_code == 1
