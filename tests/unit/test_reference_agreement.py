"""The engine agrees with the independent reference (tests/unit/reference.py) to the fen.

On random valid policies and random claim sequences (several people, households and policy years):
- every tier's payment and reason on every claim, and every accumulator after the batch, are the
  reference's, from an empty starting snapshot and from a random one;
- settling the claims one at a time (a batch of one each, in settlement order, carrying the accumulators
  forward with `merged`) gives the same payments and accumulators as settling them in one batch.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from policies.compile import compile_policy
from settlement.accumulators import AccKey, AccValue, merged
from settlement.claims import ClaimBatch
from settlement.codes import REASONS
from settlement.waterfall import BatchResult, settle

from .reference import Outcome, in_settlement_order, settle_reference
from .strategies import Case, cases

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def engine(case: Case) -> BatchResult:
    plan = compile_policy(case.policy, case.library)
    return settle(plan, ClaimBatch.from_claims(case.claims), case.snapshot, trace=True)


def paid_matrix(result: BatchResult) -> list[list[int]]:
    n = len(result.batch)
    return [[int(columns.paid[i]) for columns in result.tiers] for i in range(n)]


def reason_matrix(result: BatchResult) -> list[list[str]]:
    n = len(result.batch)
    return [[REASONS[int(columns.reason[i])] for columns in result.tiers] for i in range(n)]


def describe(case: Case) -> dict[str, Any]:
    """What a failure prints: the policy and the claims as their files would say them."""
    return {
        "policy": case.policy.model_dump(mode="json", by_alias=True, exclude_defaults=True),
        "included": [
            case.library.policies[k].model_dump(mode="json", by_alias=True, exclude_defaults=True)
            for k in case.policy.includes
        ],
        "claims": [c.as_json() for c in case.claims],
        "snapshot": case.snapshot,
    }


def differences(case: Case, result: BatchResult, expected: Outcome) -> list[str]:
    """Every (claim, tier) where the engine and the reference disagree, and every accumulator."""
    out = []
    engine_paid, engine_reason = paid_matrix(result), reason_matrix(result)
    for i, claim in enumerate(case.claims):
        for t, tier_id in enumerate(expected.tier_ids):
            got = (engine_paid[i][t], engine_reason[i][t])
            want = (expected.paid(i, t), expected.outcomes[i][t].reason)
            if got != want:
                out.append(f"{claim.claim_id} {tier_id}: engine {got}, reference {want}")
    engine_accs = result.accumulators.to_dict()
    for key in sorted(set(engine_accs) | set(expected.accumulators)):
        got_value = tuple(engine_accs[key]) if key in engine_accs else None
        want_value = expected.accumulators.get(key)
        if got_value != want_value:
            out.append(f"accumulator {tuple(key)}: engine {got_value}, reference {want_value}")
    return out


def check_agreement(case: Case) -> None:
    result = engine(case)
    expected = settle_reference(case.policy, case.library, case.claims, case.snapshot)
    assert [t.id for t in result.plan.tiers] == expected.tier_ids
    problems = differences(case, result, expected)
    assert not problems, (problems, describe(case))


@SETTINGS
@given(cases())
def test_engine_matches_reference_from_an_empty_year(case: Case) -> None:
    check_agreement(case)


@SETTINGS
@given(cases(with_snapshot=True))
def test_engine_matches_reference_from_a_year_already_started(case: Case) -> None:
    check_agreement(case)


@SETTINGS
@given(cases(with_snapshot=True))
def test_one_claim_at_a_time_equals_the_whole_batch(case: Case) -> None:
    plan = compile_policy(case.policy, case.library)
    whole = settle(plan, ClaimBatch.from_claims(case.claims), case.snapshot, trace=True)
    state: dict[AccKey, AccValue] = dict(case.snapshot)
    one_by_one: dict[int, list[int]] = {}
    for i in in_settlement_order(case.claims):
        single = settle(plan, ClaimBatch.from_claims([case.claims[i]]), state, trace=True)
        one_by_one[i] = [int(columns.paid[0]) for columns in single.tiers]
        state = merged(state, single.accumulators)
    assert [one_by_one[i] for i in range(len(case.claims))] == paid_matrix(whole), describe(case)
    assert state == merged(case.snapshot, whole.accumulators), describe(case)
