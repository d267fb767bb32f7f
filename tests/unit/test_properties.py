"""The invariants of settlement-rules.md §5, one Hypothesis test each, on random policies and claims.

1. total = Σ tier payments + personal burden, and every identity of the national interface holds;
2. in_scope = total − the three self-paid amounts ≥ 0;
3. every payment is ≥ 0 and ≤ its tier's base; in-scope tiers together never pay more than in_scope;
4. per accumulator and year, payments never exceed the annual cap, whatever the order of the input list
   and when the batch is settled in chunks one after another;
5. for an annual tier with constant parameters in a group, the sum of the rounded payments is the rounded
   cumulative value (docs/settlement.md: except where a claim was clamped to its base in half-even mode);
6. raising a tier's ratio or cap, or lowering its deductible, never lowers that tier's total per person
   (or household) and year; a reform identical to the baseline changes nothing;
7. the same plan gives the same result every time, and so does the same policy compiled again, also after
   other policies were added to the library.

Explicit examples at the end pin the documented half-even exception, separate bucket caps (a bug these
tests found: the first claim's cap was applied to every bucket), and the schema rules that keep annual
tiers monotone (no hospital-level ratios, progressive bands).
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from policies.compile import compile_policy
from policies.library import Library, check_policy
from policies.schema import DiseaseListFile, Policy, Tier
from settlement.accumulators import AccKey, AccValue, merged
from settlement.claims import Claim, ClaimBatch
from settlement.codes import EXCLUSIONS, NHSA_FUND_FIELDS, REASONS
from settlement.explain import explain, identity_problems
from settlement.plan import Plan
from settlement.waterfall import BatchResult, settle

from .reference import (
    Params,
    banded_value,
    composed_tiers,
    effective_params,
    from_fen,
    in_settlement_order,
    settle_reference,
    to_fen,
)
from .strategies import MAIN_FROM, SOURCE, Case, cases, policy_dict

LARGEST = Decimal("99999999.99")
SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

Group = tuple[str, str, int]  # (accumulator key, person or household, policy year)


# ------------------------------------------------------------------------------------------ helpers


def run(plan: Plan, claims: Sequence[Claim], snapshot: dict[AccKey, AccValue] | None = None) -> BatchResult:
    return settle(plan, ClaimBatch.from_claims(list(claims)), snapshot or {}, trace=True)


def yuan(fen: int) -> Decimal:
    return from_fen(int(fen))


def tier_models(case: Case, plan: Plan) -> list[tuple[Policy, Tier]]:
    """The pydantic tiers in the plan's order (to read each claim's parameters independently)."""
    tiers = composed_tiers(case.policy, case.library)
    assert [t.id for _, t in tiers] == [t.id for t in plan.tiers]
    return tiers


def entered(result: BatchResult, t: int, i: int) -> bool:
    """Did claim i enter tier t's calculation (eligible, in a bucket, not held back by a threshold)?"""
    reason = REASONS[int(result.tiers[t].reason[i])]
    return reason not in EXCLUSIONS and reason != "below_threshold"


def group_of(result: BatchResult, t: int, i: int) -> Group | None:
    """The accumulator (key, entity, year) claim i entered in tier t, if any."""
    tier = result.plan.tiers[t]
    if tier.basis == "grants" or not entered(result, t, i):
        return None
    columns = result.tiers[t]
    assert columns.bucket is not None
    spec = tier.buckets[int(columns.bucket[i])].accumulator
    if spec is None:
        return None
    claim = result.batch.claims[i]  # type: ignore[index]
    entity = claim.person_id if spec.per == "person" else claim.household_id
    return (spec.key, entity, int(result.year[i]))


def params_of(models: list[tuple[Policy, Tier]], result: BatchResult, t: int, i: int) -> Params:
    origin, tier = models[t]
    columns = result.tiers[t]
    assert columns.bucket is not None
    claim = result.batch.claims[i]  # type: ignore[index]
    return effective_params(tier, int(columns.bucket[i]), claim, origin.rounding)


def capped_value(params: Params, year_to_date: int, mode: str) -> int:
    """min(cap, P(E)) in fen."""
    value = banded_value(params, from_fen(year_to_date), mode)
    if params.annual_cap is not None:
        value = min(value, params.annual_cap)
    return to_fen(value)


def clamped(models: list[tuple[Policy, Tier]], result: BatchResult, t: int, i: int) -> bool:
    """Was claim i's annual payment cut to its base (the half-even exception of docs/settlement.md)?"""
    if models[t][1].stage == "grants" or models[t][1].basis != "annual" or group_of(result, t, i) is None:
        return False
    columns = result.tiers[t]
    assert columns.acc_base_before is not None and columns.acc_base_after is not None
    before, after = int(columns.acc_base_before[i]), int(columns.acc_base_after[i])
    params, mode = params_of(models, result, t, i), models[t][0].rounding
    rise = banded_value(params, from_fen(after), mode) - banded_value(params, from_fen(before), mode)
    return to_fen(rise) > after - before


def fingerprint(result: BatchResult) -> Any:
    """Everything a settlement returns, as plain data: every column of every tier, the accumulators and
    each claim's settlement record (trace, national view, references)."""
    names = (
        "paid", "reason", "bucket", "base", "deductible", "ratio", "claim_cap", "cap_left",
        "acc_base_before", "acc_base_after", "acc_paid_before", "acc_paid_after",
    )  # fmt: skip
    columns = [
        {name: None if getattr(c, name) is None else getattr(c, name).tolist() for name in names} for c in result.tiers
    ]
    records = [json.dumps(explain(result, i), sort_keys=True, ensure_ascii=False) for i in range(len(result.batch))]
    return (
        columns,
        result.year.tolist(),
        result.admissions_before.tolist(),
        sorted(result.accumulators.to_dict().items()),
        records,
    )


def library_with(case: Case, policy: Policy) -> Library:
    """The case's library with `policy` in place of the one under test."""
    library = Library(
        policies=dict(case.library.policies),
        disease_lists=dict(case.library.disease_lists),
        sources=dict(case.library.sources),
    )
    library.policies[policy.key] = policy
    assert not check_policy(policy, library)
    return library


# ------------------------------------------------------------------------------------ 1. the total


@SETTINGS
@given(cases(with_snapshot=True))
def test_total_is_fund_payments_plus_personal_burden(case: Case) -> None:
    result = run(compile_policy(case.policy, case.library), case.claims, case.snapshot)
    for i, claim in enumerate(case.claims):
        paid = [int(c.paid[i]) for c in result.tiers]
        burden = int(result.patient_burden[i])
        assert to_fen(claim.total) == sum(paid) + burden
        assert burden >= 0

        record = explain(result, i)
        info = record["nhsa"]["setlinfo"]
        assert identity_problems(info) == []
        assert Decimal(info["medfee_sumamt"]) == claim.total
        assert Decimal(info["fund_pay_sumamt"]) == yuan(sum(paid))
        assert Decimal(info["medfee_sumamt"]) == Decimal(info["fund_pay_sumamt"]) + Decimal(info["psn_part_amt"])
        assert Decimal(info["psn_part_amt"]) == yuan(burden)
        by_field = {name: Decimal(0) for name in NHSA_FUND_FIELDS}
        for tier, amount in zip(result.plan.tiers, paid, strict=True):
            by_field[tier.nhsa_field] += yuan(amount)
        assert {name: Decimal(info[name]) for name in NHSA_FUND_FIELDS} == by_field
        detail = record["nhsa"]["setldetail"]
        assert sum((Decimal(d["fund_payamt"]) for d in detail), Decimal(0)) == Decimal(info["fund_pay_sumamt"])
        assert Decimal(record["fund_paid"]) + Decimal(record["patient_burden"]) == claim.total


# --------------------------------------------------------------------------------- 2. the in-scope


@SETTINGS
@given(cases(), st.data())
def test_in_scope_is_total_less_the_self_paid_amounts_and_never_negative(case: Case, data: st.DataObject) -> None:
    result = run(compile_policy(case.policy, case.library), case.claims)
    for i, claim in enumerate(case.claims):
        in_scope = claim.total - claim.fully_self_paid - claim.over_limit_self_paid - claim.pre_self_paid
        assert in_scope >= 0
        assert int(result.batch.in_scope[i]) == to_fen(in_scope)
        info = explain(result, i)["nhsa"]["setlinfo"]
        assert Decimal(info["inscp_scp_amt"]) == in_scope
        assert Decimal(info["inscp_scp_amt"]) == (
            Decimal(info["medfee_sumamt"])
            - Decimal(info["fulamt_ownpay_amt"])
            - Decimal(info["overlmt_selfpay"])
            - Decimal(info["preselfpay_amt"])
        )

    # A claim whose self-paid amounts exceed its total (in_scope < 0) never gets in.
    claim = data.draw(st.sampled_from(case.claims))
    excess = data.draw(st.integers(1, 10_000))
    broken = claim.as_json()
    if claim.total + from_fen(excess) <= LARGEST:
        broken["pre_self_paid"] = str(claim.in_scope + claim.pre_self_paid + from_fen(excess))
    else:  # a total near the largest amount: lower the total instead
        broken |= {"total": str(claim.total - from_fen(excess)), "fully_self_paid": str(claim.total)}
        broken |= {"over_limit_self_paid": "0", "pre_self_paid": "0"}
    with pytest.raises(ValidationError, match="in-scope amount would be negative"):
        Claim.model_validate(broken)


# ------------------------------------------------------------------------------- 3. within the base


@SETTINGS
@given(cases(with_snapshot=True))
def test_every_payment_is_within_its_base(case: Case) -> None:
    result = run(compile_policy(case.policy, case.library), case.claims, case.snapshot)
    for i, claim in enumerate(case.claims):
        in_scope, total = to_fen(claim.in_scope), to_fen(claim.total)
        earlier = 0
        in_scope_tiers = 0
        for tier, columns in zip(result.plan.tiers, result.tiers, strict=True):
            paid = int(columns.paid[i])
            base = max((in_scope if tier.scope == "in_scope" else total) - earlier, 0)
            assert columns.base is not None and int(columns.base[i]) == base
            assert 0 <= paid <= base, (tier.id, claim.claim_id)
            earlier += paid
            if tier.scope == "in_scope":
                in_scope_tiers += paid
        assert in_scope_tiers <= in_scope
        assert earlier <= total


# ------------------------------------------------------------------------------ 4. the annual caps


def settled_in_chunks(
    plan: Plan, chunks: list[list[Claim]], snapshot: dict[AccKey, AccValue]
) -> tuple[list[tuple[BatchResult, int]], dict[AccKey, AccValue]]:
    """Settle chunk after chunk, carrying the accumulators; (result, index) of every claim in the order it
    was really settled, and the state after the last chunk."""
    state = dict(snapshot)
    sequence: list[tuple[BatchResult, int]] = []
    for chunk in chunks:
        if not chunk:
            continue
        result = run(plan, chunk, state)
        sequence.extend((result, i) for i in in_settlement_order(chunk))
        state = merged(state, result.accumulators)
    return sequence, state


def check_annual_caps(
    models: list[tuple[Policy, Tier]],
    sequence: list[tuple[BatchResult, int]],
    snapshot: dict[AccKey, AccValue],
    final: dict[AccKey, AccValue],
) -> None:
    """Walk the payments in the order they were made: no claim takes its accumulator above the cap that
    applies to it, and each year's total stays under the cap (the largest, if it changed in the year)."""
    for t in range(len(models)):
        paid: dict[Group, int] = {}
        caps: dict[Group, set[Decimal | None]] = defaultdict(set)
        for result, i in sequence:
            group = group_of(result, t, i)
            if group is None:
                continue
            before = paid.get(group, snapshot.get(AccKey(*group), AccValue(0, 0, 0)).paid)
            pay = int(result.tiers[t].paid[i])
            cap = params_of(models, result, t, i).annual_cap
            caps[group].add(cap)
            if cap is not None and pay > 0:
                assert before + pay <= to_fen(cap), (models[t][1].id, group, before, pay, cap)
            paid[group] = before + pay
        for group, total in paid.items():
            assert final[AccKey(*group)].paid == total
            start = snapshot.get(AccKey(*group), AccValue(0, 0, 0)).paid
            if None not in caps[group]:
                largest = to_fen(max(c for c in caps[group] if c is not None))
                assert total <= max(largest, start), (models[t][1].id, group, total, caps[group])


@SETTINGS
@given(cases(with_snapshot=True), st.data())
def test_annual_caps_hold_in_any_order_and_in_chunks(case: Case, data: st.DataObject) -> None:
    plan = compile_policy(case.policy, case.library)
    models = tier_models(case, plan)
    n = len(case.claims)
    shuffled = [case.claims[i] for i in data.draw(st.permutations(range(n)))]

    # The input order does not matter: the engine settles in settlement order.
    whole = run(plan, case.claims, case.snapshot)
    mixed = run(plan, shuffled, case.snapshot)
    position = {c.claim_id: i for i, c in enumerate(case.claims)}
    for j, claim in enumerate(shuffled):
        i = position[claim.claim_id]
        assert [int(c.paid[j]) for c in mixed.tiers] == [int(c.paid[i]) for c in whole.tiers]
    assert mixed.accumulators.to_dict() == whole.accumulators.to_dict()
    sequence, final = settled_in_chunks(plan, [shuffled], case.snapshot)
    check_annual_caps(models, sequence, case.snapshot, final)

    # Settled in chunks of the shuffled list (so in another order than settlement order), one after
    # another with the accumulators carried forward: the caps still hold.
    cuts = sorted(data.draw(st.sets(st.integers(0, n), max_size=3)))
    bounds = [0, *cuts, n]
    chunks = [shuffled[a:b] for a, b in itertools.pairwise(bounds)]
    sequence, final = settled_in_chunks(plan, chunks, case.snapshot)
    check_annual_caps(models, sequence, case.snapshot, final)


# ---------------------------------------------------------------------------------- 5. no drift


def check_no_drift(
    models: list[tuple[Policy, Tier]],
    earlier: list[BatchResult],
    counted: BatchResult,
    start: dict[AccKey, AccValue],
) -> None:
    """For every annual tier and every group whose claims (in `earlier` and `counted`) all had the same
    parameters, the payments of `counted` are min(cap, P(E_final)) − min(cap, P(E_start)), to the fen;
    `start` holds what `earlier` left (E_start). docs/settlement.md: a claim clamped to its base in
    half-even mode may cost the year one fen."""
    for t, (origin, tier) in enumerate(models):
        if tier.stage == "grants" or tier.basis != "annual":
            continue
        members: dict[Group, list[tuple[BatchResult, int]]] = defaultdict(list)
        for result in [*earlier, counted]:
            for i in range(len(result.batch)):
                group = group_of(result, t, i)
                if group is not None:
                    members[group].append((result, i))
        for group, claims in members.items():
            signatures = {params_of(models, r, t, i).annual_signature for r, i in claims}
            mine = [(r, i) for r, i in claims if r is counted]
            if len(signatures) != 1 or not mine:
                continue  # a category change (tilt, by_category) within the year: not a constant group
            params = params_of(models, claims[0][0], t, claims[0][1])
            mode = origin.rounding
            paid = sum(int(r.tiers[t].paid[i]) for r, i in mine)
            e_start = start.get(AccKey(*group), AccValue(0, 0, 0)).base
            e_final = max(int(r.tiers[t].acc_base_after[i]) for r, i in mine)  # type: ignore[index]
            expected = capped_value(params, e_final, mode) - capped_value(params, e_start, mode)
            clamps = sum(clamped(models, r, t, i) for r, i in claims)
            if clamps == 0:
                assert paid == expected, (tier.id, group, paid, expected)
            else:
                assert expected - clamps <= paid <= expected + clamps, (tier.id, group, paid, expected, clamps)


@SETTINGS
@given(cases(), st.data())
def test_annual_tiers_pay_the_rounded_cumulative_value(case: Case, data: st.DataObject) -> None:
    assume(any(t.stage != "grants" and t.basis == "annual" for _, t in composed_tiers(case.policy, case.library)))
    plan = compile_policy(case.policy, case.library)
    models = tier_models(case, plan)

    # The whole year from zero.
    check_no_drift(models, [], run(plan, case.claims), {})

    # The year split in two in settlement order: the second part starts from the first's accumulators,
    # and its payments are the difference of the cumulative values.
    order = in_settlement_order(case.claims)
    cut = data.draw(st.integers(1, len(order)))
    first = run(plan, [case.claims[i] for i in order[:cut]])
    second = [case.claims[i] for i in order[cut:]]
    if second:
        middle = merged({}, first.accumulators)
        check_no_drift(models, [first], run(plan, second, middle), middle)


# ------------------------------------------------------------------------------ 6. monotonicity


def _bump_ratio(value: Any, step: Decimal) -> Any:
    return None if value is None else str(min(Decimal(value) + step, Decimal(1)))


def _bump_amount(value: Any, step: Decimal | None, up: bool) -> Any:
    if value is None:
        return None  # no cap stays no cap
    if step is None:
        return None if up else "0"  # remove the cap / the whole deductible
    amount = Decimal(value) + step if up else max(Decimal(value) - step, Decimal(0))
    return str(min(amount, Decimal("99999999.99")))


def _tables(block: dict[str, Any], kind: str) -> Iterator[dict[str, Any]]:
    if kind == "ratio" and block.get("ratio"):
        yield block["ratio"]
    if kind == "deductible" and block.get("deductible"):
        yield block["deductible"]
    if kind == "cap" and block.get("caps"):
        for name in ("per_claim", "annual"):
            if block["caps"].get(name):
                yield block["caps"][name]


def reformed(policy: Policy, tier_id: str, kind: str, step: Decimal | None) -> Policy:
    """The policy with one tier made more generous: ratios raised, caps raised, or deductibles lowered."""
    spec = policy.model_dump(by_alias=True)
    tier = next(t for t in spec["tiers"] if t["id"] == tier_id)
    for block in [tier, *(tier.get("buckets") or [])]:
        for table in _tables(block, kind):
            if kind == "ratio":
                assert step is not None
                for band in table.get("bands") or []:
                    band["ratio"] = _bump_ratio(band["ratio"], step)
                change = lambda v: _bump_ratio(v, step)  # noqa: E731
            else:
                change = lambda v: _bump_amount(v, step, up=kind == "cap")  # noqa: E731
            if table.get("default") is not None or kind == "cap":
                table["default"] = change(table.get("default"))
            for overrides in ("by_level", "by_category"):
                table[overrides] = {k: change(v) for k, v in (table.get(overrides) or {}).items()}
    return Policy.model_validate(spec)


def mixed_groups(models: list[tuple[Policy, Tier]], result: BatchResult, t: int) -> set[Group]:
    """Groups of an annual tier where invariant 6 does not follow from docs/settlement.md: claims with
    different bands or annual deductibles in one year (each claim's P is taken with its own parameters on
    the shared year-to-date sum; docs/settlement.md), or a claim clamped to its base."""
    signatures: dict[Group, set[object]] = defaultdict(set)
    out = set()
    for i in range(len(result.batch)):
        group = group_of(result, t, i)
        if group is None or models[t][1].basis != "annual":
            continue
        params = params_of(models, result, t, i)
        signatures[group].add((params.annual_deductible, params.bands))
        if clamped(models, result, t, i):
            out.add(group)
    return out | {group for group, found in signatures.items() if len(found) > 1}


def totals_by_group(result: BatchResult, t: int) -> dict[tuple[str, str, int], int]:
    """A tier's payments per accumulator group (or per person and year where the claim keeps none)."""
    out: dict[tuple[str, str, int], int] = defaultdict(int)
    for i in range(len(result.batch)):
        group = group_of(result, t, i)
        if group is None:
            claim = result.batch.claims[i]  # type: ignore[index]
            group = ("(person)", claim.person_id, int(result.year[i]))
        out[group] += int(result.tiers[t].paid[i])
    return dict(out)


REFORMS = st.one_of(
    st.tuples(st.just("ratio"), st.sampled_from(["0.0001", "0.01", "0.05", "0.3", "1"]).map(Decimal)),
    st.tuples(
        st.sampled_from(["cap", "deductible"]),
        st.one_of(st.none(), st.sampled_from(["0.01", "0.50", "1", "100", "2500.55", "100000"]).map(Decimal)),
    ),
)


@SETTINGS
@given(cases(), st.data())
def test_a_more_generous_tier_never_pays_anyone_less(case: Case, data: st.DataObject) -> None:
    """Same claims, same order, from an empty year (a starting snapshot would have been made under the
    baseline's own parameters); only the reformed tier's totals are compared: later tiers may pay less."""
    own = [t.id for t in case.policy.tiers if t.stage != "grants"]
    assume(own)
    tier_id = data.draw(st.sampled_from(own), label="tier")
    kind, step = data.draw(REFORMS, label="reform")
    reform = reformed(case.policy, tier_id, kind, step)
    reform_library = library_with(case, reform)
    before = run(compile_policy(case.policy, case.library), case.claims)
    after = run(compile_policy(reform, reform_library), case.claims)
    t = [tier.id for tier in before.plan.tiers].index(tier_id)
    old, new = totals_by_group(before, t), totals_by_group(after, t)
    assert set(old) == set(new)
    skip = mixed_groups(tier_models(case, before.plan), before, t)
    skip |= mixed_groups(composed_tiers(reform, reform_library), after, t)
    for group, amount in old.items():
        if group not in skip:
            assert new[group] >= amount, (tier_id, kind, step, group, amount, new[group])


@SETTINGS
@given(cases())
def test_a_reform_identical_to_the_baseline_changes_nothing(case: Case) -> None:
    same = Policy.model_validate(case.policy.model_dump(by_alias=True))
    assert same == case.policy
    before = run(compile_policy(case.policy, case.library), case.claims)
    after = run(compile_policy(same, library_with(case, same)), case.claims)
    assert fingerprint(after) == fingerprint(before)


# ----------------------------------------------------------------------------- 7. reproducibility


@SETTINGS
@given(cases(with_snapshot=True), st.data())
def test_the_same_policy_version_always_gives_the_same_result(case: Case, data: st.DataObject) -> None:
    plan = compile_policy(case.policy, case.library)
    first = fingerprint(run(plan, case.claims, case.snapshot))
    assert fingerprint(run(plan, case.claims, case.snapshot)) == first
    assert fingerprint(run(compile_policy(case.policy, case.library), case.claims, case.snapshot)) == first

    # Publish more: another region's policy (with its own disease list) and a later version of this one.
    library = library_with(case, case.policy)
    library.disease_lists["dl9"] = DiseaseListFile.model_validate(
        {
            "id": "dl9",
            "title": "later list",
            "reference": {"document": "d"},
            "entries": [{"name": "x", "codes": ["I10"]}],
        }
    )
    year_start = case.policy.policy_year_start
    lists = (*tuple(case.library.disease_lists), "dl9")
    for policy_id, prefix, valid_from in (
        ("other", "o", MAIN_FROM),
        (case.policy.id, "n", MAIN_FROM.replace(year=2030)),
    ):
        spec = data.draw(policy_dict(policy_id, prefix, lists, valid_from, year_start))
        spec["version"] = "2"
        published = Policy.model_validate(spec)
        library.policies[published.key] = published
        library.sources[published.key] = SOURCE
        assert not check_policy(published, library)
    again = compile_policy(library.get(case.policy.key), library)
    assert fingerprint(run(again, case.claims, case.snapshot)) == first


# ----------------------------------------------------------------------------- explicit examples


def _library(policy: dict[str, Any], lists: dict[str, list[str]] | None = None) -> tuple[Library, Policy]:
    library = Library()
    for list_id, codes in (lists or {}).items():
        library.disease_lists[list_id] = DiseaseListFile.model_validate(
            {
                "id": list_id,
                "title": list_id,
                "reference": {"document": "d"},
                "entries": [{"name": "x", "codes": codes}],
            }
        )
    base = {"id": "example", "version": "1", "title": "t", "region": "220000", "valid_from": "2020-01-01"}
    model = Policy.model_validate({**base, "references": {"r": {"document": "example"}}, **policy})
    library.policies[model.key] = model
    assert not check_policy(model, library)
    return library, model


def _claim(claim_id: str, day: int, total: str, diagnosis: str = "I10", **extra: Any) -> Claim:
    return Claim.model_validate(
        {
            "claim_id": claim_id,
            "person_id": "p1",
            "household_id": "h1",
            "insurance_scheme": "resident",
            "category": "dibao",
            "hospital_id": "H1",
            "hospital_level": 2,
            "visit_type": "inpatient",
            "admitted_on": f"2020-03-{day:02d}",
            "discharged_on": f"2020-03-{day:02d}",
            "diagnoses": [diagnosis],
            "total": total,
        }
        | extra
    )


def test_half_even_full_band_after_a_half_fen_is_clamped_to_the_base() -> None:
    """docs/settlement.md: P(0.01) = round(0.005) = 0.00 (half-even), P(0.02) = round(0.015) = 0.02, so the
    second claim's P(E_after) − P(E_before) is 0.02 on a base of 0.01: it pays 0.01 and the year's sum is
    one fen below the rounded cumulative value."""
    library, policy = _library(
        {
            "rounding": "half_even",
            "accumulators": {"ci": {"per": "person"}},
            "tiers": [
                {
                    "id": "ci",
                    "name": "critical illness",
                    "stage": "supplementary_insurance",
                    "fund_pay_type": "390200",
                    "fund_name": "ci",
                    "basis": "annual",
                    "accumulator": "ci",
                    "ratio": {
                        "bands": [{"from": "0", "to": "0.01", "ratio": "0.5"}, {"from": "0.01", "ratio": "1"}],
                        "ref": "r",
                    },
                }
            ],
        }
    )
    claims = [_claim("k1", 1, "0.01"), _claim("k2", 2, "0.01")]
    result = run(compile_policy(policy, library), claims)
    assert result.tiers[0].paid.tolist() == [0, 1]
    assert settle_reference(policy, library, claims).paid_matrix() == [[0], [1]]
    assert result.accumulators.to_dict()[AccKey("ci", "p1", 2020)] == AccValue(2, 1, 2)


SEPARATE_CAPS = {
    "accumulators": {"ma_cat": {"per": "person"}, "ma_gen": {"per": "person"}},
    "tiers": [
        {
            "id": "ma",
            "name": "medical assistance",
            "stage": "medical_assistance",
            "fund_pay_type": "610100",
            "fund_name": "ma",
            "ratio": {"default": "1", "ref": "r"},
            "buckets": [
                {
                    "id": "catastrophic",
                    "name": "catastrophic",
                    "disease_list": "cat",
                    "accumulator": "ma_cat",
                    "caps": {"annual": {"default": "100", "ref": "r"}},
                },
                {"id": "general", "name": "general", "accumulator": "ma_gen"},
            ],
        }
    ],
}


def test_separate_bucket_caps_an_uncapped_bucket_is_not_held_to_the_other_cap() -> None:
    library, policy = _library(SEPARATE_CAPS, {"cat": ["C91.0"]})
    claims = [_claim("k1", 1, "1000", "C91.0"), _claim("k2", 2, "1000", "I10")]
    assert settle_reference(policy, library, claims).paid_matrix() == [[10_000], [100_000]]
    result = run(compile_policy(policy, library), claims)
    # Alone, the general claim is paid in full; after a catastrophic claim it must be too.
    assert run(compile_policy(policy, library), claims[1:]).tiers[0].paid.tolist() == [100_000]
    assert result.tiers[0].paid.tolist() == [10_000, 100_000]


def test_separate_bucket_caps_a_cap_holds_after_an_uncapped_claim() -> None:
    library, policy = _library(SEPARATE_CAPS, {"cat": ["C91.0"]})
    claims = [_claim("k1", 1, "1000", "I10"), _claim("k2", 2, "1000", "C91.0"), _claim("k3", 3, "1000", "C91.0")]
    assert settle_reference(policy, library, claims).paid_matrix() == [[100_000], [10_000], [0]]
    result = run(compile_policy(policy, library), claims)
    assert result.accumulators.to_dict()[AccKey("ma_cat", "p1", 2020)].paid <= 10_000
    assert result.tiers[0].paid.tolist() == [100_000, 10_000, 0]


def _annual_tier(ratio: dict[str, Any], deductible: dict[str, Any] | None = None) -> dict[str, Any]:
    tier: dict[str, Any] = {
        "id": "ci",
        "name": "annual fund",
        "stage": "supplementary_insurance",
        "fund_pay_type": "390200",
        "fund_name": "ci",
        "basis": "annual",
        "accumulator": "ci",
        "ratio": {**ratio, "ref": "r"},
    }
    if deductible is not None:
        tier["deductible"] = {"basis": "annual", **deductible, "ref": "r"}
    return {"accumulators": {"ci": {"per": "person"}}, "tiers": [tier]}


def _year_total(spec: dict[str, Any], claims: list[Claim]) -> int:
    library, policy = _library(spec)
    return sum(run(compile_policy(policy, library), claims).tiers[0].paid.tolist())


def test_annual_tiers_refuse_what_would_break_monotonicity() -> None:
    """An annual tier takes each claim's P(E) on the shared year-to-date sum. Ratios that differ by hospital
    level within one year, or bands whose ratio falls, would let a more generous reform pay a person less
    (found by the property tests: 0.02 -> 0.01 yuan with level ratios; 1,800 -> 1,000 yuan with falling
    bands and a category deductible), so the schema refuses both."""
    with pytest.raises(ValidationError, match="by_level"):
        _library(_annual_tier({"default": "0.9", "by_level": {3: "0.4"}}))
    falling = {"bands": [{"from": "0", "to": "1000", "ratio": "0.9"}, {"from": "1000", "ratio": "0.1"}]}
    with pytest.raises(ValidationError, match="progressive"):
        _library(_annual_tier(falling, {"default": "0", "by_category": {"dibao": "1000"}}))


def test_a_category_change_within_the_year_is_settled_with_each_claims_own_parameters() -> None:
    """Rising bands, a deductible by category: lowering the dibao deductible never lowers the year."""
    claims = [_claim("k1", 1, "1000", category="none"), _claim("k2", 2, "1000", category="dibao")]
    bands = {"bands": [{"from": "0", "to": "1000", "ratio": "0.1"}, {"from": "1000", "ratio": "0.9"}]}
    baseline = _annual_tier(bands, {"default": "0", "by_category": {"dibao": "1000"}})
    reform = _annual_tier(bands, {"default": "0", "by_category": {"dibao": "0"}})
    # Baseline: 1000 x 0.1 = 100; then dibao with E - 1000 from 0 to 1000: 1000 x 0.1 = 100 -> 200.
    # Reform: 100; then E from 1000 to 2000 in the 0.9 band: 900 -> 1000.
    assert _year_total(baseline, claims) == 20_000
    assert _year_total(reform, claims) == 100_000
