"""Hand-computed settlements through the whole engine (parse -> compile -> settle -> explain).

The policy is tests/unit/data/unit-engine-policy.yaml (invented numbers, half-up rounding), in short:

  basic        in_scope, per claim, resident inpatients, no third-party liability; deductible by level
               1/2/3 = 200/500/1000, later admissions x 0.5; ratio by level 0.8/0.7/0.6; annual cap 20,000
  critical     in_scope, annual, resident inpatients, no third-party liability; annual deductible 10,000;
               bands 0–20,000 at 50 %, above at 60 %; annual cap 50,000. 低保 tilt: deductible x 0.5,
               ratio + 5 points, no cap
  assistance   in_scope, per claim, categories tekun/dibao/low_income, no third-party liability; one
               accumulator for both buckets: catastrophic (list unit-catastrophic: C91, C92, Q20–Q26):
               deductible 0, ratio 0.7, annual cap 30,000; general: deductible 500, ratio 0.5, cap 5,000
  temp. aid    total, per claim, categories tekun/dibao or an approval reference; threshold 3,000;
               ratio 0.5; annual cap 5,000 per household
  grants       what the claim lists, never more than is left

Amounts in the expectations are fen. Each expectation has its arithmetic next to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from policies.compile import compile_policy
from policies.library import load_library
from settlement.claims import Claim, ClaimBatch, parse_claim
from settlement.codes import REASONS
from settlement.explain import explain, identity_problems
from settlement.plan import Plan
from settlement.waterfall import BatchResult, settle

DATA = Path(__file__).parent / "data"
TIERS = ("basic", "critical_illness", "medical_assistance", "temporary_aid", "grants")


@pytest.fixture(scope="module")
def plan() -> Plan:
    library, problems = load_library([DATA / "unit-engine-policy.yaml", DATA / "diseases" / "unit-catastrophic.yaml"])
    assert problems == []
    compiled = compile_policy(library.get("unit-engine@1"), library)
    assert tuple(t.id for t in compiled.tiers) == TIERS
    return compiled


def claim(claim_id: str, **fields: object) -> Claim:
    data: dict[str, object] = {
        "claim_id": claim_id,
        "person_id": "P1",
        "household_id": "H1",
        "insurance_scheme": "resident",
        "category": "none",
        "hospital_id": "HOS1",
        "hospital_level": 2,
        "visit_type": "inpatient",
        "admitted_on": "2014-03-01",
        "discharged_on": "2014-03-10",
        "diagnoses": ["J18.9"],  # pneumonia: not on the catastrophic list
        "total": "1000.00",
    }
    data.update(fields)
    return parse_claim(data)


def run(plan: Plan, claims: Sequence[Claim]) -> BatchResult:
    return settle(plan, ClaimBatch.from_claims(list(claims)))


def paid(result: BatchResult, i: int) -> dict[str, int]:
    return {tier.id: int(c.paid[i]) for tier, c in zip(result.plan.tiers, result.tiers, strict=True)}


def reasons(result: BatchResult, i: int) -> dict[str, str]:
    return {tier.id: REASONS[int(c.reason[i])] for tier, c in zip(result.plan.tiers, result.tiers, strict=True)}


def tier_record(record: dict[str, Any], tier_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in record["tiers"] if t["tier"] == tier_id)
    return found


def check_record(result: BatchResult, i: int) -> dict[str, Any]:
    """The settlement record of claim i: national identities, references, accumulators consistent."""
    record = explain(result, i)
    setlinfo = record["nhsa"]["setlinfo"]
    assert identity_problems(setlinfo) == []
    total = Decimal(record["amounts"]["total"])
    assert Decimal(record["fund_paid"]) + Decimal(record["patient_burden"]) == total
    assert Decimal(setlinfo["fund_pay_sumamt"]) == sum(Decimal(t["paid"]) for t in record["tiers"])
    in_scope_paid = Decimal(0)
    for t in record["tiers"]:
        amount = Decimal(t["paid"])
        assert amount >= 0
        if "base" in t:
            assert amount <= Decimal(t["base"])
        if t.get("scope") == "in_scope":
            in_scope_paid += amount
        if amount > 0:
            assert t["references"], f"{t['tier']} paid without a clause reference"
            assert all(r["document"] for r in t["references"])
        if "accumulator" in t:
            acc = t["accumulator"]
            assert Decimal(acc["paid_after"]) - Decimal(acc["paid_before"]) == amount
    assert in_scope_paid <= Decimal(record["amounts"]["in_scope"])
    paying = [d["fund_pay_type"] for d in record["nhsa"]["setldetail"]]
    assert paying == [t["fund_pay_type"] for t in record["tiers"] if Decimal(t["paid"]) > 0]
    return record


# ---------------------------------------------------------------------------------------------------------
# A: one big bill through every fund


def test_every_fund_on_one_dibao_leukaemia_bill(plan: Plan) -> None:
    bill = claim(
        "A1",
        person_id="PA",
        household_id="HA",
        category="dibao",
        diagnoses=["C91.0"],
        total="60000.00",
        fully_self_paid="2000.00",
        over_limit_self_paid="1000.00",
        pre_self_paid="2000.00",
        grants=[{"payer": "Red Cross", "amount": "3000"}, {"payer": "Angel fund", "amount": "4000"}],
    )
    result = run(plan, [bill])
    # in_scope = 60000 − 2000 − 1000 − 2000 = 55000
    assert paid(result, 0) == {
        # base 55000, level-2 deductible 500: (55000 − 500) × 0.7 = 38150 > annual cap 20000
        "basic": 2_000_000,
        # base 55000 − 20000 = 35000; 低保 tilt: deductible 10000 × 0.5 = 5000, bands 55 % / 65 %, no cap
        # P(35000) = 20000 × 0.55 + (30000 − 20000) × 0.65 = 11000 + 6500 = 17500
        "critical_illness": 1_750_000,
        # C91.0 is on the list: catastrophic bucket; base 55000 − 37500 = 17500; 17500 × 0.7 = 12250
        "medical_assistance": 1_225_000,
        # scope total: 60000 − 49750 = 10250 ≥ 3000; 10250 × 0.5 = 5125 > household cap 5000
        "temporary_aid": 500_000,
        # left 60000 − 54750 = 5250: Red Cross 3000 in full, Angel fund 2250 of its 4000
        "grants": 525_000,
    }
    assert reasons(result, 0) == {
        "basic": "capped",
        "critical_illness": "paid",
        "medical_assistance": "paid",
        "temporary_aid": "capped",
        "grants": "capped",
    }
    assert int(result.patient_burden[0]) == 0

    record = check_record(result, 0)
    assert record["policy"]["id"] == "unit-engine" and record["policy"]["version"] == "1"
    assert record["amounts"]["in_scope"] == "55000.00"
    assert record["grants"] == [
        {"payer": "Red Cross", "granted": "3000.00", "paid": "3000.00"},
        {"payer": "Angel fund", "granted": "4000.00", "paid": "2250.00"},
    ]
    setlinfo = record["nhsa"]["setlinfo"]
    assert {k: setlinfo[k] for k in ("medfee_sumamt", "inscp_scp_amt", "act_pay_dedc", "hifp_pay", "hifmi_pay")} == {
        "medfee_sumamt": "60000.00",
        "inscp_scp_amt": "55000.00",
        "act_pay_dedc": "500.00",  # the basic deductible
        "hifp_pay": "20000.00",
        "hifmi_pay": "17500.00",
    }
    assert setlinfo["maf_pay"] == "12250.00"
    assert setlinfo["oth_pay"] == "10250.00"  # temporary aid 5000 + grants 5250
    assert setlinfo["fund_pay_sumamt"] == "60000.00"
    assert setlinfo["psn_part_amt"] == "0.00"

    basic = tier_record(record, "basic")
    assert (basic["base"], basic["deductible"], basic["ratio"], basic["annual_cap_left"]) == (
        "55000.00",
        "500.00",
        "0.7000",
        "20000.00",
    )
    assert basic["accumulator"] == {
        "key": "unit_basic",
        "per": "person",
        "entity": "PA",
        "year": 2014,
        "base_before": "0.00",
        "base_after": "54500.00",  # 55000 − 500 entered the fund's calculation
        "paid_before": "0.00",
        "paid_after": "20000.00",
    }
    critical = tier_record(record, "critical_illness")
    assert critical["deductible"] == "5000.00"  # 10000 halved by the tilt
    assert critical["annual_cap_left"] is None  # the tilt removed the cap
    assert critical["bands"] == [
        {"from": "0.00", "to": "20000.00", "ratio": "0.5500"},
        {"from": "20000.00", "to": None, "ratio": "0.6500"},
    ]
    assert "tilt for dibao" in [r["parameter"] for r in critical["references"]]
    assert (critical["accumulator"]["base_after"], critical["accumulator"]["paid_after"]) == ("35000.00", "17500.00")
    assistance = tier_record(record, "medical_assistance")
    assert (assistance["bucket"], assistance["disease_list"]) == ("catastrophic", "unit-catastrophic")
    assert assistance["accumulator"]["key"] == "unit_ma"
    aid = tier_record(record, "temporary_aid")
    assert aid["accumulator"] == {
        "key": "unit_ta",
        "per": "household",
        "entity": "HA",
        "year": 2014,
        "base_before": "0.00",
        "base_after": "10250.00",
        "paid_before": "0.00",
        "paid_after": "5000.00",
    }


# ---------------------------------------------------------------------------------------------------------
# B: the annual cap binds across claims; the second admission uses the reduced deductible


def _three_admissions() -> list[Claim]:
    common: dict[str, object] = {"person_id": "PB", "household_id": "HB", "hospital_level": 3}
    return [
        claim("B1", **common, total="30000.00"),
        claim("B2", **common, total="20000.01", admitted_on="2014-05-01", discharged_on="2014-05-10"),
        claim("B3", **common, total="5000.00", admitted_on="2014-07-01", discharged_on="2014-07-10"),
    ]


def _check_three_admissions(result: BatchResult, index: dict[str, int]) -> None:
    b1, b2, b3 = index["B1"], index["B2"], index["B3"]
    # B1: level 3, first admission: (30000 − 1000) × 0.6 = 17400. Critical: base 30000 − 17400 = 12600,
    # E 0 -> 12600, P(12600) = (12600 − 10000) × 0.5 = 1300.
    assert paid(result, b1) == {
        "basic": 1_740_000,
        "critical_illness": 130_000,
        "medical_assistance": 0,
        "temporary_aid": 0,
        "grants": 0,
    }
    # B2: later admission, deductible 1000 × 0.5 = 500: (20000.01 − 500) × 0.6 = 11700.006 -> 11700.01,
    # but only 20000 − 17400 = 2600 of the annual cap is left: 2600, 'capped'.
    # Critical: base 20000.01 − 2600 = 17400.01, E 12600 -> 30000.01,
    # P(30000.01) = 20000 × 0.5 + 0.01 × 0.6 = 10000.006 -> 10000.01; 10000.01 − 1300 = 8700.01.
    assert paid(result, b2)["basic"] == 260_000
    assert paid(result, b2)["critical_illness"] == 870_001
    # B3: later admission: (5000 − 500) × 0.6 = 2700, cap left 0: nothing, 'cap_reached'.
    # Critical: E 30000.01 -> 35000.01, P = 10000 + 5000.01 × 0.6 = 13000.006 -> 13000.01; − 10000.01 = 3000.
    assert paid(result, b3)["basic"] == 0
    assert paid(result, b3)["critical_illness"] == 300_000
    assert [reasons(result, i)["basic"] for i in (b1, b2, b3)] == ["paid", "capped", "cap_reached"]
    # Not in an assistance category, no approval: assistance and temporary aid do not apply.
    assert reasons(result, b1)["medical_assistance"] == "category_not_eligible"
    assert reasons(result, b1)["temporary_aid"] == "category_not_eligible"
    assert reasons(result, b1)["grants"] == "no_grant"
    # The basic fund paid exactly its annual cap over the year.
    assert sum(paid(result, i)["basic"] for i in (b1, b2, b3)) == 2_000_000
    # Critical illness: the year's payments add up to the rounded cumulative value P(35000.01) = 13000.01.
    assert sum(paid(result, i)["critical_illness"] for i in (b1, b2, b3)) == 1_300_001

    r1, r2, r3 = (check_record(result, i) for i in (b1, b2, b3))
    assert [r["inpatient_admissions_before"] for r in (r1, r2, r3)] == [0, 1, 2]
    assert [tier_record(r, "basic")["deductible"] for r in (r1, r2, r3)] == ["1000.00", "500.00", "500.00"]
    assert [tier_record(r, "basic")["annual_cap_left"] for r in (r1, r2, r3)] == ["20000.00", "2600.00", "0.00"]
    assert tier_record(r2, "basic")["accumulator"] == {
        "key": "unit_basic",
        "per": "person",
        "entity": "PB",
        "year": 2014,
        "base_before": "29000.00",  # B1 entered 30000 − 1000
        "base_after": "48500.01",  # + 20000.01 − 500
        "paid_before": "17400.00",
        "paid_after": "20000.00",
    }
    # The annual deductible is consumed once: 10000 on B1, nothing after.
    assert [tier_record(r, "critical_illness")["deductible"] for r in (r1, r2, r3)] == ["10000.00", "0.00", "0.00"]
    # The trace shows the band each claim starts in: 2600 and 2600 (band 1, 50 %), 20000.01 (band 2, 60 %).
    assert [tier_record(r, "critical_illness")["ratio"] for r in (r1, r2, r3)] == ["0.5000", "0.5000", "0.6000"]
    critical = [tier_record(r, "critical_illness")["accumulator"] for r in (r1, r2, r3)]
    assert [(a["base_before"], a["base_after"]) for a in critical] == [
        ("0.00", "12600.00"),
        ("12600.00", "30000.01"),
        ("30000.01", "35000.01"),
    ]
    assert [(a["paid_before"], a["paid_after"]) for a in critical] == [
        ("0.00", "1300.00"),
        ("1300.00", "10000.01"),
        ("10000.01", "13000.01"),
    ]
    assert r2["nhsa"]["setlinfo"]["act_pay_dedc"] == "500.00"


def test_annual_cap_binds_across_claims(plan: Plan) -> None:
    claims = _three_admissions()
    _check_three_admissions(run(plan, claims), {"B1": 0, "B2": 1, "B3": 2})


def test_settlement_order_not_input_order(plan: Plan) -> None:
    """The same claims handed over in reverse: settled by discharge date, reported in the caller's order."""
    claims = list(reversed(_three_admissions()))
    _check_three_admissions(run(plan, claims), {"B3": 0, "B2": 1, "B1": 2})


@pytest.mark.parametrize(
    ("level", "first", "later"),
    [
        # (in_scope 10000 − deductible) × ratio
        (1, 784_000, 792_000),  # (10000 − 200) × 0.8 = 7840; later (10000 − 100) × 0.8 = 7920
        (2, 665_000, 682_500),  # (10000 − 500) × 0.7 = 6650; later (10000 − 250) × 0.7 = 6825
        (3, 540_000, 570_000),  # (10000 − 1000) × 0.6 = 5400; later (10000 − 500) × 0.6 = 5700
    ],
)
def test_second_admission_uses_the_reduced_deductible(plan: Plan, level: int, first: int, later: int) -> None:
    claims = [
        claim("D1", person_id=f"PL{level}", hospital_level=level, total="10000.00"),
        claim(
            "D2",
            person_id=f"PL{level}",
            hospital_level=level,
            total="10000.00",
            admitted_on="2014-04-01",
            discharged_on="2014-04-10",
        ),
    ]
    result = run(plan, claims)
    assert [paid(result, i)["basic"] for i in (0, 1)] == [first, later]


def test_another_persons_admission_does_not_count(plan: Plan) -> None:
    claims = [
        claim("E1", person_id="PX", total="10000.00"),
        claim("E2", person_id="PY", total="10000.00", admitted_on="2014-04-01", discharged_on="2014-04-10"),
    ]
    result = run(plan, claims)
    # both first admissions at level 2: (10000 − 500) × 0.7 = 6650
    assert [paid(result, i)["basic"] for i in (0, 1)] == [665_000, 665_000]


def test_below_the_deductible(plan: Plan) -> None:
    # level 1, first admission: 150 < deductible 200 -> nothing, 'below_deductible'.
    # Critical: E 150 < annual deductible 10000 -> 'below_deductible' too.
    result = run(plan, [claim("H1", hospital_level=1, total="150.00")])
    assert paid(result, 0)["basic"] == 0
    assert reasons(result, 0)["basic"] == "below_deductible"
    assert reasons(result, 0)["critical_illness"] == "below_deductible"
    record = check_record(result, 0)
    assert tier_record(record, "basic")["deductible"] == "150.00"  # the deductible applied is what there was
    assert record["patient_burden"] == "150.00"


# ---------------------------------------------------------------------------------------------------------
# C, D: third-party liability; an approval reference


def test_third_party_liability_blocks_insurance_but_not_temporary_aid(plan: Plan) -> None:
    accident = claim(
        "C1",
        person_id="PC",
        household_id="HC",
        category="dibao",
        hospital_level=1,
        total="8000.00",
        third_party_liability=True,
    )
    result = run(plan, [accident])
    # Basic, critical illness and (in this policy) assistance exclude it; temporary aid does not:
    # base = total 8000 ≥ 3000; 8000 × 0.5 = 4000 (cap 5000 not reached).
    assert paid(result, 0) == {
        "basic": 0,
        "critical_illness": 0,
        "medical_assistance": 0,
        "temporary_aid": 400_000,
        "grants": 0,
    }
    assert reasons(result, 0) == {
        "basic": "third_party_liability",
        "critical_illness": "third_party_liability",
        "medical_assistance": "third_party_liability",
        "temporary_aid": "paid",
        "grants": "no_grant",
    }
    record = check_record(result, 0)
    assert [t["eligible"] for t in record["tiers"]] == [False, False, False, True, True]
    assert record["patient_burden"] == "4000.00"
    # Without the liability, basic pays: (8000 − 200) × 0.8 = 6240.
    assert paid(run(plan, [claim("C2", category="dibao", hospital_level=1, total="8000.00")]), 0)["basic"] == 624_000


def test_approval_makes_a_none_category_claim_eligible_for_temporary_aid(plan: Plan) -> None:
    common: dict[str, object] = {"insurance_scheme": "none", "category": "none", "total": "6000.01"}
    approved = claim("D1", person_id="PD", household_id="HD", assistance_approval="MZ-2014-001", **common)
    plain = claim("D2", person_id="PE", household_id="HE", **common)
    result = run(plan, [approved, plain])
    # Uninsured: the insurance tiers say 'not_insured'. Assistance does not accept approvals.
    # Temporary aid: 6000.01 × 0.5 = 3000.005 -> 3000.01 (half up).
    assert paid(result, 0)["temporary_aid"] == 300_001
    assert reasons(result, 0) == {
        "basic": "not_insured",
        "critical_illness": "not_insured",
        "medical_assistance": "category_not_eligible",
        "temporary_aid": "paid",
        "grants": "no_grant",
    }
    assert paid(result, 1)["temporary_aid"] == 0
    assert reasons(result, 1)["temporary_aid"] == "category_not_eligible"
    assert check_record(result, 0)["patient_burden"] == "3000.00"
    assert check_record(result, 1)["patient_burden"] == "6000.01"


# ---------------------------------------------------------------------------------------------------------
# E: two members of one household share the temporary-aid cap


def test_household_members_share_the_temporary_aid_cap(plan: Plan) -> None:
    common: dict[str, object] = {"household_id": "HE", "insurance_scheme": "none"}
    claims = [
        claim("E1", person_id="PE1", category="dibao", total="8000.00", **common),
        claim(
            "E2",
            person_id="PE2",
            category="tekun",
            total="12000.00",
            admitted_on="2014-04-01",
            discharged_on="2014-04-10",
            **common,
        ),
        claim(
            "E3",
            person_id="PE1",
            category="dibao",
            total="10000.00",
            admitted_on="2014-06-01",
            discharged_on="2014-06-10",
            **common,
        ),
    ]
    result = run(plan, claims)
    # E1 (PE1): general assistance (8000 − 500) × 0.5 = 3750; aid: 8000 − 3750 = 4250 ≥ 3000, × 0.5 = 2125.
    # E2 (PE2, own assistance accumulator): (12000 − 500) × 0.5 = 5750 > cap 5000 -> 5000;
    #    aid: 12000 − 5000 = 7000, × 0.5 = 3500, household cap left 5000 − 2125 = 2875 -> 2875.
    # E3 (PE1): (10000 − 500) × 0.5 = 4750, PE1's assistance cap left 5000 − 3750 = 1250 -> 1250;
    #    aid: 10000 − 1250 = 8750, × 0.5 = 4375, household cap left 0 -> 0.
    assert [paid(result, i)["medical_assistance"] for i in range(3)] == [375_000, 500_000, 125_000]
    assert [paid(result, i)["temporary_aid"] for i in range(3)] == [212_500, 287_500, 0]
    assert [reasons(result, i)["temporary_aid"] for i in range(3)] == ["paid", "capped", "cap_reached"]
    assert [reasons(result, i)["medical_assistance"] for i in range(3)] == ["paid", "capped", "capped"]
    records = [check_record(result, i) for i in range(3)]
    aid = [tier_record(r, "temporary_aid")["accumulator"] for r in records]
    assert {a["entity"] for a in aid} == {"HE"}
    assert [(a["paid_before"], a["paid_after"]) for a in aid] == [
        ("0.00", "2125.00"),
        ("2125.00", "5000.00"),
        ("5000.00", "5000.00"),
    ]
    assert [tier_record(r, "temporary_aid")["annual_cap_left"] for r in records] == ["5000.00", "2875.00", "0.00"]
    # A different household is not affected.
    other = run(
        plan,
        [claim("E4", person_id="PO", household_id="HO", insurance_scheme="none", category="dibao", total="8000.00")],
    )
    assert paid(other, 0)["temporary_aid"] == 212_500


def test_temporary_aid_below_its_threshold(plan: Plan) -> None:
    # dibao, uninsured, 3000 bill: general assistance (3000 − 500) × 0.5 = 1250; left 1750 < 3000.
    result = run(plan, [claim("T1", insurance_scheme="none", category="dibao", total="3000.00")])
    assert paid(result, 0)["medical_assistance"] == 125_000
    assert reasons(result, 0)["temporary_aid"] == "below_threshold"
    record = check_record(result, 0)
    assert "accumulator" not in tier_record(record, "temporary_aid")


# ---------------------------------------------------------------------------------------------------------
# F: two assistance buckets with different caps share one accumulator


def test_assistance_buckets_share_one_accumulator(plan: Plan) -> None:
    common: dict[str, object] = {
        "person_id": "PF",
        "household_id": "HF",
        "insurance_scheme": "none",
        "category": "dibao",
    }
    claims = [
        claim("F1", diagnoses=["C91.0"], total="40000.00", **common),
        claim("F2", total="3000.00", admitted_on="2014-04-01", discharged_on="2014-04-10", **common),
        claim(
            "F3", diagnoses=["Q21.0"], total="10000.00", admitted_on="2014-05-01", discharged_on="2014-05-10", **common
        ),
    ]
    result = run(plan, claims)
    # F1 catastrophic: 40000 × 0.7 = 28000 (cap 30000). Aid: 12000 × 0.5 = 6000 -> household cap 5000.
    # F2 general: (3000 − 500) × 0.5 = 1250, but the shared accumulator already paid 28000 ≥ the general
    #    cap 5000: nothing, 'cap_reached'. Aid: 3000 ≥ 3000, 1500, household cap used up: 'cap_reached'.
    # F3 catastrophic (Q21.0 in [Q20, Q26]): 10000 × 0.7 = 7000, cap 30000 − 28000 = 2000 left -> 2000.
    assert [paid(result, i)["medical_assistance"] for i in range(3)] == [2_800_000, 0, 200_000]
    assert [reasons(result, i)["medical_assistance"] for i in range(3)] == ["paid", "cap_reached", "capped"]
    assert [paid(result, i)["temporary_aid"] for i in range(3)] == [500_000, 0, 0]
    records = [check_record(result, i) for i in range(3)]
    assistance = [tier_record(r, "medical_assistance") for r in records]
    assert [a["bucket"] for a in assistance] == ["catastrophic", "general", "catastrophic"]
    assert {a["accumulator"]["key"] for a in assistance} == {"unit_ma"}
    assert [(a["accumulator"]["paid_before"], a["accumulator"]["paid_after"]) for a in assistance] == [
        ("0.00", "28000.00"),
        ("28000.00", "28000.00"),
        ("28000.00", "30000.00"),
    ]
    assert [a["annual_cap_left"] for a in assistance] == ["30000.00", "0.00", "2000.00"]
    assert sum(paid(result, i)["medical_assistance"] for i in range(3)) == 3_000_000


# ---------------------------------------------------------------------------------------------------------
# Grants


@pytest.mark.parametrize(
    ("total", "grants", "paid_fen", "reason", "shares"),
    [
        # Uninsured, category none: nothing else pays, so what is left is the total.
        ("1000.00", [], 0, "no_grant", []),
        ("1000.00", ["300"], 30_000, "paid", ["300.00"]),
        ("1000.00", ["1000"], 100_000, "paid", ["1000.00"]),
        ("1000.00", ["1500.50"], 100_000, "capped", ["1000.00"]),  # never more than the 1000 left
        ("1000.00", ["600", "600"], 100_000, "capped", ["600.00", "400.00"]),  # in the order listed
        ("1000.00", ["0.01", "2000"], 100_000, "capped", ["0.01", "999.99"]),
        ("0.00", ["100"], 0, "nothing_left", ["0.00"]),
    ],
)
def test_grants_never_exceed_what_is_left(
    plan: Plan, total: str, grants: list[str], paid_fen: int, reason: str, shares: list[str]
) -> None:
    bill = claim(
        "G1",
        insurance_scheme="none",
        total=total,
        grants=[{"payer": f"Fund {i}", "amount": amount} for i, amount in enumerate(grants)],
    )
    result = run(plan, [bill])
    assert paid(result, 0)["grants"] == paid_fen
    assert reasons(result, 0)["grants"] == reason
    record = check_record(result, 0)
    assert [g["paid"] for g in record["grants"]] == shares
    assert Decimal(record["patient_burden"]) == Decimal(total) - Decimal(paid_fen) / 100


def test_grants_come_after_every_other_fund(plan: Plan) -> None:
    # Resident, level 2, 10000: basic (10000 − 500) × 0.7 = 6650; critical: E 3350 < 10000 -> 0.
    # Left 3350; a grant of 5000 pays 3350.
    bill = claim("G2", total="10000.00", grants=[{"payer": "Red Cross", "amount": "5000"}])
    result = run(plan, [bill])
    assert paid(result, 0) == {
        "basic": 665_000,
        "critical_illness": 0,
        "medical_assistance": 0,
        "temporary_aid": 0,
        "grants": 335_000,
    }
    assert check_record(result, 0)["patient_burden"] == "0.00"


# ---------------------------------------------------------------------------------------------------------
# Re-settling gives the same record


def test_recomputing_gives_the_same_record(plan: Plan) -> None:
    claims = _three_admissions()
    first = [explain(run(plan, claims), i) for i in range(3)]
    again = [explain(run(plan, claims), i) for i in range(3)]
    assert first == again


def test_a_record_cites_each_clause_and_leaves_its_note_to_the_policy(plan: Plan) -> None:
    # Pneumonia falls in the general bucket, whose numbers are illustrative (tests/unit/data/unit-engine-policy.yaml).
    claims = [claim("G1", insurance_scheme="none", category="dibao", total="3000.00")]
    assistance = tier_record(explain(run(plan, claims), 0), "medical_assistance")
    assert assistance["bucket"] == "general"
    cited = assistance["references"]
    assert {"document": "Unit rules, medical assistance", "illustrative": True} in [
        {k: v for k, v in r.items() if k != "parameter"} for r in cited
    ]
    assert all("note" not in r for r in cited)
    # The note is the policy's, which the record names.
    bucket = next(b for t in plan.tiers if t.id == "medical_assistance" for b in t.buckets if b.id == "general")
    notes = {r.note for r in bucket.references if r.illustrative}
    assert notes == {"general bucket numbers invented for the unit tests"}
