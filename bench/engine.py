"""Engine benchmark: single-claim latency through the desk path, batch throughput, and where batch time goes.

    .venv/bin/python -m bench.engine [--claims N] [--repeat R] [--out PATH] [--no-profile]

1. Sanity (before any timing): random claims of the generated batch settled as one batch agree to the fen
   with the same claims settled one at a time, accumulators carried forward (`accumulators.merged`); a
   sample made of whole households also agrees with the full batch. A disagreement is printed and the run
   exits with status 1.
2. Desk path: ~2,000 distinct claims, each `parse_claim` -> `ClaimBatch.from_claims` -> `settle` (with a
   starting snapshot of a few entries) -> `explain`, every call timed with `perf_counter_ns` after a warm-up.
3. Batch: N claims generated directly as numpy columns (no pydantic), `settle(plan, batch, None, trace=...)`
   for trace False and True, best of R repeats. Generation is timed separately and not counted.
4. Profile of one batch settlement (trace=False): exclusive time per source line of the engine's hot
   functions (a `sys.settrace` line timer), and cProfile's top functions.

The policy is a benchmark policy of realistic shape (five tiers), written as YAML into a temporary folder
from the string below and loaded with `load_library` and `compile_policy` like any library policy.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import hashlib
import json
import linecache
import os
import platform
import pstats
import shlex
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import numpy as np
import numpy.typing as npt

from policies.compile import compile_policy
from policies.library import load_library
from settlement import money, waterfall
from settlement.accumulators import AccKey, AccValue, Snapshot, merged
from settlement.claims import ClaimBatch, parse_claim
from settlement.codes import CATEGORIES, HOSPITAL_LEVELS, REASONS, SCHEMES, VISIT_TYPES
from settlement.explain import explain, identity_problems
from settlement.plan import ADMISSIONS_KEY, Plan
from settlement.waterfall import BatchResult, settle

Int64Array = npt.NDArray[np.int64]

ENGINE_DIR = Path(waterfall.__file__).resolve().parent


def _read_sources() -> dict[str, str]:
    root = ENGINE_DIR.parent
    return {
        str(path.resolve()): path.read_text(encoding="utf-8")
        for folder in ("settlement", "policies")
        for path in sorted((root / folder).glob("*.py"))
    }


# The engine as imported (others may edit it while this runs): profile lines are quoted from this copy.
ENGINE_SOURCES = _read_sources()

TARGET_SINGLE_P50_US = 1_000.0
TARGET_BATCH_PER_S = 1_000_000.0
TARGET_RATIO = 100.0

# --------------------------------------------------------------------------------------------------------
# The benchmark policy
# --------------------------------------------------------------------------------------------------------

POLICY_ID = "bench-engine@2023"
VALID_FROM = dt.date(2023, 1, 1)
VALID_UNTIL = dt.date(2024, 12, 31)

POLICY_YAML = """\
# Benchmark policy: realistic shape, invented numbers. Five tiers in payment order.
id: bench-engine
version: "2023"
title: 引擎基准测试政策（五级，示例参数）
title_en: Engine benchmark policy (five tiers; illustrative parameters)
region: "220581"
valid_from: 2023-01-01
valid_until: 2024-12-31
rounding: half_up
policy_year_start: "01-01"
illustrative: Every number is invented for timing the engine; the shape follows the sample library.

references:
  bench:
    document: Doudi engine benchmark (bench/engine.py)
    illustrative: true
    note: invented parameters of realistic shape, for timing only

accumulators:
  bench_basic:
    per: person
    description: basic insurance paid this year (annual cap)
  bench_ci:
    per: person
    description: year-to-date base of critical-illness insurance
  bench_ma:
    per: person
    description: medical assistance paid this year in both buckets (one cap)
  bench_ta:
    per: household
    description: temporary aid paid to the household this year

tiers:
  - id: basic
    name: 基本医疗保险统筹基金
    stage: basic_insurance
    fund_pay_type: "390100"
    fund_name: 基本医疗保险基金
    scope: in_scope
    basis: per_claim
    eligibility:
      schemes: [resident, employee]
      excludes_third_party_liability: true
      ref: bench
    accumulator: bench_basic
    deductible:
      basis: per_claim
      default: "800"
      by_level: {1: "200", 2: "500", 3: "1000"}
      later_admission_factor: "0.5"
      ref: bench
    ratio:
      default: "0.60"
      by_level: {1: "0.85", 2: "0.75", 3: "0.60"}
      ref: bench
    caps:
      annual:
        default: "150000"
        ref: bench

  - id: critical_illness
    name: 大病保险
    stage: supplementary_insurance
    fund_pay_type: "390200"
    fund_name: 大病医疗保险基金
    scope: in_scope
    basis: annual
    eligibility:
      schemes: [resident]
      visit_types: [inpatient, chronic_outpatient]
      excludes_third_party_liability: true
      ref: bench
    accumulator: bench_ci
    deductible:
      basis: annual
      default: "15000"
      ref: bench
    ratio:
      bands:
        - {from: "0", to: "50000", ratio: "0.60"}
        - {from: "50000", to: "100000", ratio: "0.65"}
        - {from: "100000", to: "200000", ratio: "0.70"}
        - {from: "200000", ratio: "0.75"}
      ref: bench
    caps:
      annual:
        default: "400000"
        ref: bench
    tilts:
      - categories: [tekun, orphan, dibao]
        deductible_factor: "0.5"
        ratio_add: "0.05"
        remove_caps: true
        ref: bench

  - id: medical_assistance
    name: 医疗救助
    stage: medical_assistance
    fund_pay_type: "610100"
    fund_name: 医疗救助基金
    scope: in_scope
    basis: per_claim
    eligibility:
      categories: [tekun, orphan, severe_disability, dibao, low_income, illness_poverty]
      ref: bench
    accumulator: bench_ma
    caps:
      annual:
        default: "30000"
        by_category: {tekun: "50000"}
        ref: bench
    buckets:
      - id: catastrophic
        name: 重特大疾病医疗救助
        disease_list: bench-catastrophic
        match: principal
        deductible:
          basis: per_claim
          default: "300"
          by_category: {tekun: "0", orphan: "0"}
          ref: bench
        ratio:
          default: "0.80"
          by_category: {tekun: "1.0", orphan: "1.0", dibao: "0.90"}
          ref: bench
      - id: general
        name: 普通医疗救助
        deductible:
          basis: per_claim
          default: "500"
          by_category: {tekun: "0", orphan: "0", dibao: "200"}
          ref: bench
        ratio:
          default: "0.50"
          by_category: {tekun: "0.70", orphan: "0.70", dibao: "0.60", severe_disability: "0.60"}
          ref: bench

  - id: temporary_aid
    name: 临时救助
    stage: temporary_aid
    fund_pay_type: TA0001
    fund_name: 临时救助资金
    scope: total
    basis: per_claim
    eligibility:
      categories: [tekun, orphan, severe_disability, dibao, low_income, illness_poverty]
      accepts_approval: true
      ref: bench
    accumulator: bench_ta
    threshold:
      default: "3000"
      ref: bench
    ratio:
      default: "0.50"
      ref: bench
    caps:
      annual:
        default: "5000"
        ref: bench

  - id: grants
    name: 慈善及其他外部资助
    stage: grants
    fund_pay_type: GR0001
    fund_name: 慈善救助及其他资助
    scope: total
    eligibility:
      ref: bench
"""

DISEASES_YAML = """\
id: bench-catastrophic
title: 基准测试重特大疾病病种（示例）
reference:
  document: Doudi engine benchmark (bench/engine.py)
  illustrative: true
  note: a catastrophic-disease list of the usual shape (codes and ranges), for timing only
entries:
  - {name: 急性白血病, codes: [C91.0, C92.0]}
  - {name: 慢性粒细胞白血病, codes: [C92.1]}
  - {name: 先天性心脏病, ranges: [[Q20, Q26]]}
  - {name: 终末期肾病, codes: [N18.5]}
  - {name: 乳腺癌, codes: [C50]}
  - {name: 宫颈癌, codes: [C53]}
  - {name: 重性精神疾病, codes: [F20, F25, F31]}
  - {name: 耐多药肺结核, codes: [A15]}
  - {name: 血友病, ranges: [[D66, D68.0]]}
  - {name: 肺癌, ranges: [[C33, C34]]}
  - {name: 食道癌, codes: [C15]}
  - {name: 胃癌, codes: [C16]}
  - {name: 急性心肌梗塞, ranges: [[I21, I22]]}
  - {name: 脑梗死, codes: [I63]}
  - {name: 结肠癌, codes: [C18]}
  - {name: 直肠癌, ranges: [[C19, C20]]}
  - {name: 再生障碍性贫血, ranges: [[D60, D61]]}
  - {name: 地中海贫血, codes: [D56]}
"""

# A few of the codes the list names (and subdivisions), so that a share of claims is on the list.
ON_LIST_CODES = (
    [f"C50.{d}" for d in range(10)]
    + ["C91.0", "C91.000x001", "C92.0", "C92.1", "N18.5", "C33"]
    + [f"C34.{d}" for d in (0, 1, 2, 3, 8, 9)]
    + [f"C16.{d}" for d in range(10)]
    + [f"C18.{d}" for d in range(10)]
    + [f"I63.{d}" for d in range(10)]
    + [f"I21.{d}" for d in (0, 1, 2, 3, 4, 9)]
    + ["Q21.0", "Q21.1", "Q25.0", "F20.0", "F20.9", "F31.9", "A15.0", "D66", "D68.0", "D61.9", "D56.1", "C53.9"]
)


def load_plan() -> Plan:
    with tempfile.TemporaryDirectory(prefix="doudi-bench-") as tmp:
        folder = Path(tmp)
        (folder / "diseases").mkdir()
        (folder / "bench-engine-2023.yaml").write_text(POLICY_YAML, encoding="utf-8")
        (folder / "diseases" / "bench-catastrophic.yaml").write_text(DISEASES_YAML, encoding="utf-8")
        library, problems = load_library([folder])
        if problems:
            raise SystemExit("the benchmark policy does not load:\n" + "\n".join(str(p) for p in problems))
        return compile_policy(library.get(POLICY_ID), library)


# --------------------------------------------------------------------------------------------------------
# Claims generated as columns
# --------------------------------------------------------------------------------------------------------

YUAN = 100


@dataclass(frozen=True, slots=True)
class Generated:
    batch: ClaimBatch
    dx_offsets: Int64Array  # the diagnoses of claim i are dx_code[dx_offsets[i]:dx_offsets[i + 1]]
    length_of_stay: Int64Array
    seconds: float
    facts: dict[str, Any]


def _code(names: Sequence[Any], table: dict[Any, float]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    codes = np.array([names.index(k) for k in table], np.int64)
    p = np.array(list(table.values()), np.float64)
    return codes, p / p.sum()


def _pick(rng: np.random.Generator, names: Sequence[Any], table: dict[Any, float], size: int) -> Int64Array:
    codes, p = _code(names, table)
    return codes[rng.choice(len(codes), size=size, p=p)]


def diagnosis_universe(plan: Plan, rng: np.random.Generator, distinct: int = 400) -> tuple[list[str], int]:
    """Distinct ICD-10 codes: first the on-list ones, then off-list codes of common chapters."""
    disease_list = plan.disease_lists["bench-catastrophic"]
    codes = list(dict.fromkeys(ON_LIST_CODES))
    assert all(disease_list.match_all(codes)), "an ON_LIST_CODES entry is not on the benchmark list"
    on_list = len(codes)
    seen = set(codes)
    letters = list("ABEFGIJKLMNORSTZ")
    while len(codes) < distinct:
        code = f"{rng.choice(letters)}{rng.integers(0, 100):02d}"
        if rng.random() < 0.8:
            code += f".{rng.integers(0, 10)}"
        if code not in seen and not disease_list.matches(code):
            seen.add(code)
            codes.append(code)
    return codes, on_list


def _zipf(n: int, s: float = 0.9) -> npt.NDArray[np.float64]:
    w = 1.0 / np.arange(1, n + 1) ** s
    result: npt.NDArray[np.float64] = w / w.sum()
    return result


def generate(
    plan: Plan,
    n: int,
    persons: int,
    households: int,
    seed: int,
    id_prefix: str = "",
) -> Generated:
    """n claims as a ClaimBatch of numpy columns: persons in households, two policy years, int64 fen."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    dx_names, on_list = diagnosis_universe(plan, rng)

    # Households and persons: category is the household's (低保 is a household status), scheme the person's.
    household_category = _pick(
        rng,
        CATEGORIES,
        {
            "none": 0.88,
            "low_income": 0.03,
            "dibao": 0.04,
            "tekun": 0.01,
            "orphan": 0.003,
            "severe_disability": 0.02,
            "illness_poverty": 0.017,
        },
        households,
    )
    person_household = np.concatenate(
        [np.arange(households), rng.integers(0, households, persons - households)]
    ).astype(np.int64)
    rng.shuffle(person_household)
    person_scheme = _pick(rng, SCHEMES, {"resident": 0.72, "employee": 0.26, "none": 0.02}, persons)
    # A skewed number of claims per person: most have one or two, a few (chronic patients) dozens.
    weight = rng.lognormal(0.0, 1.1, persons)
    person = rng.choice(persons, size=n, p=weight / weight.sum()).astype(np.int64)
    household = person_household[person]
    category = household_category[household]
    scheme = person_scheme[person]

    visit = _pick(rng, VISIT_TYPES, {"inpatient": 0.35, "chronic_outpatient": 0.25, "outpatient": 0.40}, n)
    inpatient = visit == VISIT_TYPES.index("inpatient")
    chronic = visit == VISIT_TYPES.index("chronic_outpatient")
    level = np.where(
        inpatient,
        _pick(rng, HOSPITAL_LEVELS, {1: 0.20, 2: 0.45, 3: 0.35}, n),
        _pick(rng, HOSPITAL_LEVELS, {1: 0.50, 2: 0.35, 3: 0.15}, n),
    )

    # Principal diagnosis: on the list for ~15 % of stays, ~12 % of chronic visits, ~3 % of other visits.
    p_on = np.where(inpatient, 0.15, np.where(chronic, 0.12, 0.03))
    takes_listed = rng.random(n) < p_on
    principal = np.where(
        takes_listed,
        rng.choice(on_list, size=n, p=_zipf(on_list)),
        on_list + rng.choice(len(dx_names) - on_list, size=n, p=_zipf(len(dx_names) - on_list)),
    ).astype(np.int64)
    extra = rng.choice(4, size=n, p=[0.45, 0.30, 0.15, 0.10])
    counts = 1 + extra
    dx_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    dx_claim = np.repeat(np.arange(n, dtype=np.int64), counts)
    dx_code = rng.choice(len(dx_names), size=len(dx_claim), p=_zipf(len(dx_names), 0.7)).astype(np.int64)
    dx_code[dx_offsets[:-1]] = principal

    # Amounts in fen: log-normal bills, dearer for stays and for listed diseases.
    median_yuan = np.where(inpatient, 7_000.0, np.where(chronic, 600.0, 150.0))
    median_yuan = median_yuan * np.where(takes_listed, 3.0, 1.0) * np.array([0.7, 1.0, 1.6])[level]
    total = np.rint(median_yuan * YUAN * rng.lognormal(0.0, 0.9, n)).astype(np.int64)
    total = np.clip(total, 5 * YUAN, 3_000_000 * YUAN)
    fully_self_paid = (total * rng.uniform(0.0, 0.12, n)).astype(np.int64)
    over_limit = np.where(rng.random(n) < 0.3, (total * rng.uniform(0.0, 0.05, n)).astype(np.int64), 0)
    pre_self_paid = np.where(inpatient | chronic, (total * rng.uniform(0.0, 0.10, n)).astype(np.int64), 0)

    third_party = inpatient & (rng.random(n) < 0.008)
    approval = rng.random(n) < np.where(inpatient, 0.02, 0.002)
    has_grant = inpatient & (total > 20_000 * YUAN) & (rng.random(n) < 0.08)
    grant_total = np.where(has_grant, (total * rng.uniform(0.05, 0.5, n) // (100 * YUAN)) * 100 * YUAN, 0)
    grant_total = grant_total.astype(np.int64)

    # Two policy years inside the policy's dates; settled on the discharge day, to the millisecond.
    days = (np.datetime64(VALID_UNTIL, "D") - np.datetime64(VALID_FROM, "D")).astype(np.int64) + 1
    discharged_on = np.datetime64(VALID_FROM, "D") + rng.integers(0, days, n)
    ms_in_day = rng.integers(8 * 3_600_000, 18 * 3_600_000, n)
    settled_at = discharged_on.astype("datetime64[us]") + (ms_in_day * 1000).astype("timedelta64[us]")
    length_of_stay = np.where(inpatient, 1 + rng.geometric(1 / 8, n), 0).astype(np.int64)

    claim_id = np.array([f"{id_prefix}CL{i:08d}" for i in range(n)], dtype=object)
    person_ids = np.array([f"{id_prefix}P{i:07d}" for i in range(persons)], dtype=object)
    household_ids = np.array([f"{id_prefix}H{i:07d}" for i in range(households)], dtype=object)

    batch = ClaimBatch(
        claim_id=claim_id,
        person=person,
        person_ids=person_ids,
        household=household,
        household_ids=household_ids,
        scheme=scheme,
        category=category,
        level=level,
        visit=visit,
        discharged_on=discharged_on,
        settled_at=settled_at,
        total=total,
        fully_self_paid=fully_self_paid,
        over_limit_self_paid=over_limit,
        pre_self_paid=pre_self_paid,
        third_party=third_party,
        approval=approval,
        grant_total=grant_total,
        dx_codes=tuple(dx_names),
        dx_principal=principal,
        dx_claim=dx_claim,
        dx_code=dx_code,
    )
    seconds = time.perf_counter() - t0
    sorted_time = np.sort(settled_at.astype(np.int64))
    facts = {
        "claims": n,
        "persons_with_claims": len(np.unique(person)),
        "households_with_claims": len(np.unique(household)),
        "distinct_diagnosis_codes": len(dx_names),
        "diagnoses_per_claim": round(len(dx_claim) / n, 3),
        "share_principal_on_list": round(float(takes_listed.mean()), 4),
        "share_by_visit": {v: round(float((visit == i).mean()), 4) for i, v in enumerate(VISIT_TYPES)},
        "share_with_category": round(float((category != CATEGORIES.index("none")).mean()), 4),
        "share_third_party": round(float(third_party.mean()), 4),
        "share_approval": round(float(approval.mean()), 4),
        "share_grants": round(float(has_grant.mean()), 4),
        "settled_at_ties": int((sorted_time[1:] == sorted_time[:-1]).sum()),
        "total_yuan_p50_p90_p99": [float(q) / YUAN for q in np.percentile(total, [50, 90, 99])],
        "policy_years": sorted({d.year for d in (VALID_FROM, VALID_UNTIL)}),
    }
    return Generated(batch, dx_offsets, length_of_stay, seconds, facts)


def subset(gen: Generated, idx: Int64Array) -> ClaimBatch:
    """Claims `idx` of a generated batch as a batch of their own (ids arrays shared, diagnoses remapped)."""
    b = gen.batch
    idx = np.asarray(idx, np.int64)
    lengths = gen.dx_offsets[idx + 1] - gen.dx_offsets[idx]
    ends = np.cumsum(lengths)
    within = np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - lengths, lengths)
    codes = b.dx_code[np.repeat(gen.dx_offsets[idx], lengths) + within]
    uniq, dx_code = np.unique(codes, return_inverse=True)
    return ClaimBatch(
        claim_id=b.claim_id[idx],
        person=b.person[idx],
        person_ids=b.person_ids,
        household=b.household[idx],
        household_ids=b.household_ids,
        scheme=b.scheme[idx],
        category=b.category[idx],
        level=b.level[idx],
        visit=b.visit[idx],
        discharged_on=b.discharged_on[idx],
        settled_at=b.settled_at[idx],
        total=b.total[idx],
        fully_self_paid=b.fully_self_paid[idx],
        over_limit_self_paid=b.over_limit_self_paid[idx],
        pre_self_paid=b.pre_self_paid[idx],
        third_party=b.third_party[idx],
        approval=b.approval[idx],
        grant_total=b.grant_total[idx],
        dx_codes=tuple(b.dx_codes[int(u)] for u in uniq),
        dx_principal=np.searchsorted(uniq, b.dx_principal[idx]).astype(np.int64),
        dx_claim=np.repeat(np.arange(len(idx), dtype=np.int64), lengths),
        dx_code=dx_code.astype(np.int64).ravel(),
    )


# --------------------------------------------------------------------------------------------------------
# Sanity: one batch vs. one claim at a time, to the fen
# --------------------------------------------------------------------------------------------------------


class Disagreement(Exception):
    pass


def _claim_facts(batch: ClaimBatch, i: int) -> str:
    return (
        f"claim {batch.claim_id[i]} person {batch.person_ids[batch.person[i]]} "
        f"household {batch.household_ids[batch.household[i]]} {VISIT_TYPES[int(batch.visit[i])]} "
        f"{SCHEMES[int(batch.scheme[i])]} {CATEGORIES[int(batch.category[i])]} "
        f"level {HOSPITAL_LEVELS[int(batch.level[i])]} "
        f"settled {batch.settled_at[i]} total {money.format_yuan(int(batch.total[i]))} "
        f"in_scope {money.format_yuan(int(batch.in_scope[i]))} grants {money.format_yuan(int(batch.grant_total[i]))} "
        f"principal {batch.dx_codes[int(batch.dx_principal[i])]}"
    )


def check_sequential(plan: Plan, gen: Generated, idx: Int64Array, label: str) -> dict[str, Any]:
    """Settle claims `idx` as one batch and one by one (accumulators carried forward); compare to the fen."""
    sub = subset(gen, idx)
    together = settle(plan, sub, None, trace=False)
    traced = settle(plan, sub, None, trace=True)
    state: dict[AccKey, AccValue] = {}
    paid = np.zeros((len(plan.tiers), len(sub)), np.int64)
    reason = np.zeros((len(plan.tiers), len(sub)), np.int8)
    # Settlement order as docs/settlement.md defines it (time, then claim id), computed here on its own.
    times = sub.settled_at.astype(np.int64).tolist()
    ids = [str(c) for c in sub.claim_id]
    for j in sorted(range(len(sub)), key=lambda j: (times[j], ids[j])):
        one = settle(plan, subset(gen, idx[j : j + 1]), state, trace=False)
        for t, columns in enumerate(one.tiers):
            paid[t, j] = columns.paid[0]
            reason[t, j] = columns.reason[0]
        state = merged(state, one.accumulators)
    for t, tier in enumerate(plan.tiers):
        for name, result in (("batch", together), ("batch (trace=True)", traced)):
            differs = np.flatnonzero(result.tiers[t].paid != paid[t])
            if len(differs):
                j = int(differs[0])
                raise Disagreement(
                    f"[{label}] {len(differs)} claim(s) differ on tier {tier.id!r}; first: "
                    f"{name} paid {money.format_yuan(int(result.tiers[t].paid[j]))}, one-at-a-time paid "
                    f"{money.format_yuan(int(paid[t, j]))} (reasons {REASONS[int(result.tiers[t].reason[j])]} vs "
                    f"{REASONS[int(reason[t, j])]})\n  {_claim_facts(sub, j)}"
                )
    batch_state = merged({}, together.accumulators)
    if batch_state != state:
        keys = sorted(set(batch_state) | set(state))
        first = next(k for k in keys if batch_state.get(k) != state.get(k))
        raise Disagreement(
            f"[{label}] accumulators differ after the claims; first: {first}: batch {batch_state.get(first)} "
            f"vs one-at-a-time {state.get(first)}"
        )
    reason_mismatch = sum(int((together.tiers[t].reason != reason[t]).sum()) for t in range(len(plan.tiers)))
    if reason_mismatch:
        print(f"  WARNING [{label}]: payments agree but {reason_mismatch} reason code(s) differ", file=sys.stderr)
    return {
        "claims": len(sub),
        "persons": len(np.unique(sub.person)),
        "accumulators_compared": len(state),
        "claims_paid_by_tier": {tier.id: int((paid[t] > 0).sum()) for t, tier in enumerate(plan.tiers)},
        "reason_mismatches": reason_mismatch,
        "agree_to_the_fen": True,
    }


def check_against_full(plan: Plan, gen: Generated, full: BatchResult, idx: Int64Array, label: str) -> None:
    """Claims of whole households settle the same inside the full batch as on their own."""
    own = settle(plan, subset(gen, idx), None, trace=False)
    for t, tier in enumerate(plan.tiers):
        differs = np.flatnonzero(full.tiers[t].paid[idx] != own.tiers[t].paid)
        if len(differs):
            j = int(differs[0])
            raise Disagreement(
                f"[{label}] tier {tier.id!r}: full batch paid {money.format_yuan(int(full.tiers[t].paid[idx[j]]))},"
                f" the households alone {money.format_yuan(int(own.tiers[t].paid[j]))}\n"
                f"  {_claim_facts(gen.batch, int(idx[j]))}"
            )


def whole_households(gen: Generated, rng: np.random.Generator, target: int) -> Int64Array:
    """All claims of randomly chosen households, about `target` of them (accumulators interact)."""
    household = gen.batch.household
    order = np.argsort(household, kind="stable")
    sorted_h = household[order]
    chosen: list[Int64Array] = []
    count = 0
    for h in rng.permutation(np.unique(household)).tolist():
        lo, hi = np.searchsorted(sorted_h, [h, h + 1])
        if count + (hi - lo) > target * 1.1:
            continue
        chosen.append(order[lo:hi])
        count += int(hi - lo)
        if count >= target:
            break
    return np.sort(np.concatenate(chosen)).astype(np.int64)


# --------------------------------------------------------------------------------------------------------
# The desk path
# --------------------------------------------------------------------------------------------------------


def _yuan(fen: int) -> str:
    return money.format_yuan(int(fen))


def desk_claims(gen: Generated) -> list[dict[str, Any]]:
    """The generated claims as the JSON a billing desk sends (amounts as yuan text)."""
    b = gen.batch
    out = []
    for i in range(len(b)):
        discharged = b.discharged_on[i].astype(dt.date)
        dx = [b.dx_codes[int(c)] for c in b.dx_code[gen.dx_offsets[i] : gen.dx_offsets[i + 1]]]
        claim: dict[str, Any] = {
            "claim_id": str(b.claim_id[i]),
            "person_id": str(b.person_ids[b.person[i]]),
            "household_id": str(b.household_ids[b.household[i]]),
            "insurance_scheme": SCHEMES[int(b.scheme[i])],
            "category": CATEGORIES[int(b.category[i])],
            "hospital_id": f"H{int(b.level[i]) + 1}{i % 97:03d}",
            "hospital_level": HOSPITAL_LEVELS[int(b.level[i])],
            "visit_type": VISIT_TYPES[int(b.visit[i])],
            "admitted_on": (discharged - dt.timedelta(days=int(gen.length_of_stay[i]))).isoformat(),
            "discharged_on": discharged.isoformat(),
            "settled_at": str(b.settled_at[i].astype("datetime64[ms]")),
            "diagnoses": dx,
            "total": _yuan(b.total[i]),
            "fully_self_paid": _yuan(b.fully_self_paid[i]),
            "over_limit_self_paid": _yuan(b.over_limit_self_paid[i]),
            "pre_self_paid": _yuan(b.pre_self_paid[i]),
        }
        if b.third_party[i]:
            claim["third_party_liability"] = True
        if b.approval[i]:
            claim["assistance_approval"] = f"MZ-{discharged.year}-{i:05d}"
        grant = int(b.grant_total[i])
        if grant:
            first = grant // 2 // YUAN * YUAN if i % 2 else grant
            claim["grants"] = [{"payer": "红十字会 救助基金", "amount": _yuan(first)}]
            if grant - first:
                claim["grants"].append({"payer": "慈善总会", "amount": _yuan(grant - first)})
        out.append(claim)
    return out


def desk_snapshot(rng: np.random.Generator, claim: dict[str, Any]) -> Snapshot:
    """What the person (and household) already used this policy year: five accumulator entries."""
    person, household = claim["person_id"], claim["household_id"]
    year = dt.date.fromisoformat(claim["discharged_on"]).year
    admissions = int(rng.integers(0, 4))
    basic_base = int(rng.integers(0, 60_000 * YUAN))
    ci_base = int(rng.integers(0, 120_000 * YUAN))
    ma_paid = 30_000 * YUAN if rng.random() < 0.2 else int(rng.integers(0, 30_000 * YUAN))
    ta_paid = 5_000 * YUAN if rng.random() < 0.2 else int(rng.integers(0, 5_000 * YUAN))
    return {
        AccKey(ADMISSIONS_KEY, person, year): AccValue(0, 0, admissions),
        AccKey("bench_basic", person, year): AccValue(basic_base, basic_base * 7 // 10, admissions + 1),
        AccKey("bench_ci", person, year): AccValue(ci_base, max(0, ci_base - 15_000 * YUAN) * 6 // 10, admissions),
        AccKey("bench_ma", person, year): AccValue(ma_paid * 2, ma_paid, 3),
        AccKey("bench_ta", household, year): AccValue(ta_paid * 2, ta_paid, 1),
    }


def _percentiles(ns: Sequence[int]) -> dict[str, float]:
    a = np.asarray(ns, np.float64) / 1_000.0
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "p50_us": round(float(p50), 1),
        "p90_us": round(float(p90), 1),
        "p99_us": round(float(p99), 1),
        "mean_us": round(float(a.mean()), 1),
        "max_us": round(float(a.max()), 1),
    }


def run_desk(plan: Plan, count: int, warmup: int) -> dict[str, Any]:
    gen = generate(plan, count, persons=count, households=count * 2 // 3, seed=20240601, id_prefix="D")
    data = desk_claims(gen)
    rng = np.random.default_rng(7)
    snapshots = [desk_snapshot(rng, c) for c in data]
    assert len({c["claim_id"] for c in data}) == len(data)

    def one(i: int) -> tuple[int, int, int, int, int, dict[str, Any]]:
        t0 = time.perf_counter_ns()
        claim = parse_claim(data[i])
        t1 = time.perf_counter_ns()
        batch = ClaimBatch.from_claims([claim])
        t2 = time.perf_counter_ns()
        result = settle(plan, batch, snapshots[i])
        t3 = time.perf_counter_ns()
        record = explain(result, 0)
        t4 = time.perf_counter_ns()
        return t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0, record

    for i in range(min(warmup, count)):
        one(i)
    gc.collect()
    parts: dict[str, list[int]] = {"parse_claim": [], "from_claims": [], "settle": [], "explain": [], "desk_path": []}
    records = []
    c0, t0 = time.process_time(), time.perf_counter()
    for i in range(count):
        *times, record = one(i)
        for name, ns in zip(parts, times, strict=True):
            parts[name].append(ns)
        records.append(record)
    loop_wall, loop_cpu = time.perf_counter() - t0, time.process_time() - c0
    problems = [(r["claim_id"], p) for r in records for p in identity_problems(r["nhsa"]["setlinfo"])]
    if problems:
        raise Disagreement(f"desk path: national identities fail, first: {problems[0]}")
    paid = sum(1 for r in records if r["fund_paid"] != "0.00")
    return {
        "claims": count,
        "warmup_claims": min(warmup, count),
        "snapshot_entries": len(snapshots[0]),
        "claims_with_fund_payment": paid,
        "latency": {name: _percentiles(ns) for name, ns in parts.items()},
        "loop_wall_seconds": round(loop_wall, 3),
        "loop_cpu_seconds": round(loop_cpu, 3),  # well below wall: other processes had the cores
        "settle_profile": _profile_desk_settle(plan, data[:500], snapshots[:500]),
    }


def _cprofile_rows(profiler: cProfile.Profile, top: int, per: int = 1) -> list[dict[str, Any]]:
    stats = pstats.Stats(profiler)
    rows = []
    for func, (_cc, ncalls, tottime, cumtime, _callers) in sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda kv: -kv[1][2],
    )[:top]:
        filename, line, name = func
        rows.append(
            {
                "function": f"{Path(filename).parent.name}/{Path(filename).name}:{line}({name})" if line else name,
                "calls": ncalls,
                "tottime_us" if per > 1 else "tottime_ms": round(tottime * (1e6 / per if per > 1 else 1e3), 1),
                "cumtime_us" if per > 1 else "cumtime_ms": round(cumtime * (1e6 / per if per > 1 else 1e3), 1),
            }
        )
    return rows


def _profile_desk_settle(plan: Plan, data: list[dict[str, Any]], snapshots: list[Snapshot]) -> dict[str, Any]:
    """cProfile of settle() on batches of one (times per claim; cProfile inflates Python-heavy code)."""
    batches = [ClaimBatch.from_claims([parse_claim(d)]) for d in data]
    profiler = cProfile.Profile()
    profiler.enable()
    for batch, snapshot in zip(batches, snapshots, strict=True):
        settle(plan, batch, snapshot)
    profiler.disable()
    return {"claims": len(batches), "top_by_tottime_per_claim": _cprofile_rows(profiler, 15, per=len(batches))}


# --------------------------------------------------------------------------------------------------------
# Batch throughput
# --------------------------------------------------------------------------------------------------------


def time_batch(plan: Plan, batch: ClaimBatch, trace: bool, repeat: int) -> tuple[list[float], list[float], BatchResult]:
    """Wall seconds and this process's CPU seconds of each repeat (CPU well below wall: the machine was busy)."""
    times, cpu = [], []
    result = None
    for _ in range(repeat):
        result = None
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        result = settle(plan, batch, None, trace=trace)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    assert result is not None
    return times, cpu, result


def _digest(sources: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for path, text in sorted(sources.items()):
        digest.update(Path(path).name.encode() + b"\0" + text.encode())
    return digest.hexdigest()[:16]


def engine_fingerprint() -> dict[str, Any]:
    """Which engine was measured: HEAD and a hash of the engine's and compiler's sources as imported."""
    try:
        head: str | None = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ENGINE_DIR.parent, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = None
    now = _digest(_read_sources())
    imported = _digest(ENGINE_SOURCES)
    return {"git_head": head, "sources_sha256": imported, "sources_changed_during_run": now != imported}


def _source_line(filename: str, line: int) -> str:
    text = ENGINE_SOURCES.get(str(Path(filename).resolve()))
    if text is None:
        return linecache.getline(filename, line).strip()
    lines = text.splitlines()
    return lines[line - 1].strip() if 0 < line <= len(lines) else ""


def batch_facts(plan: Plan, result: BatchResult) -> dict[str, Any]:
    n = len(result.batch)
    out: dict[str, Any] = {}
    for tier, columns in zip(plan.tiers, result.tiers, strict=True):
        reasons = np.bincount(columns.reason.astype(np.int64), minlength=len(REASONS))
        out[tier.id] = {
            "share_paid": round(float((columns.paid > 0).mean()), 4),
            "paid_yuan": int(columns.paid.sum()) // YUAN,
            "reasons": {REASONS[r]: round(int(c) / n, 4) for r, c in enumerate(reasons.tolist()) if c},
        }
    out["accumulator_rows_after"] = len(result.accumulators)
    return out


# --------------------------------------------------------------------------------------------------------
# Where batch time goes
# --------------------------------------------------------------------------------------------------------


# Pure-Python helpers timed as part of the engine line that calls them: tracing their many small calls
# line by line would cost far more than they do (a disease list is matched once per distinct code).
LEAF_FILES = ("diseases.py", "codes.py", "errors.py")


class LineTimer:
    """Exclusive wall time per source line of the engine's functions.

    A call into another traced engine function is subtracted from the calling line and counted where it
    runs. Calls into anything else (numpy's Python wrappers, the disease-list matcher) stay in the calling
    line, less the tracer's calibrated cost per call, so that a line making thousands of small calls is not
    overstated. Each line event costs about a microsecond: negligible against numpy passes over a million
    claims, which is what this is for."""

    def __init__(self, folder: Path, leaves: Sequence[str] = LEAF_FILES):
        self.folder = str(folder) + os.sep
        self.leaves = {str(folder / name) for name in leaves}
        self.chosen: dict[CodeType, bool] = {}
        self.exclusive: defaultdict[tuple[CodeType, int], int] = defaultdict(int)
        self.hits: defaultdict[tuple[CodeType, int], int] = defaultdict(int)
        self.stack: list[list[Any]] = []  # [code, line, line_start_ns, child_ns, entry_ns, foreign_calls]
        self.per_call_ns = 0.0

    def _global(self, frame: FrameType, event: str, arg: object) -> Any:
        if event != "call":
            return None
        code = frame.f_code
        chosen = self.chosen.get(code)
        if chosen is None:
            filename = str(Path(code.co_filename).resolve())
            chosen = self.chosen[code] = filename.startswith(self.folder) and filename not in self.leaves
        if chosen:
            now = time.perf_counter_ns()
            self.stack.append([code, frame.f_lineno, now, 0, now, 0])
            return self._local
        if self.stack:
            self.stack[-1][5] += 1
        return None

    def _local(self, frame: FrameType, event: str, arg: object) -> Any:
        if event not in ("line", "return"):
            return self._local
        now = time.perf_counter_ns()
        top = self.stack[-1]
        key = (top[0], top[1])
        self.exclusive[key] += now - top[2] - top[3] - round(top[5] * self.per_call_ns)
        self.hits[key] += 1
        if event == "line":
            top[1], top[2], top[3], top[5] = frame.f_lineno, now, 0, 0
        else:
            self.stack.pop()
            if self.stack:
                self.stack[-1][3] += now - top[4]
        return self._local

    def calibrate(self, calls: int = 200_000) -> float:
        """The tracer's cost of one call into a function it does not trace."""

        def nothing() -> None:
            return None

        def loop() -> None:
            for _ in range(calls):
                nothing()

        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter_ns()
            loop()
            plain = time.perf_counter_ns() - t0
            sys.settrace(self._global)
            t0 = time.perf_counter_ns()
            loop()
            traced = time.perf_counter_ns() - t0
            sys.settrace(None)
            best = min(best, (traced - plain) / calls)
        self.per_call_ns = max(0.0, best)
        return self.per_call_ns

    def run(self, fn: Callable[[], Any]) -> float:
        sys.settrace(self._global)
        t0 = time.perf_counter()
        try:
            fn()
        finally:
            sys.settrace(None)
        return time.perf_counter() - t0


def profile_batch(plan: Plan, batch: ClaimBatch, top: int = 12) -> dict[str, Any]:
    gc.collect()
    timer = LineTimer(ENGINE_DIR)
    per_call_ns = timer.calibrate()
    traced_seconds = timer.run(lambda: settle(plan, batch, None, trace=False))
    matching = {}
    for list_id, disease_list in plan.disease_lists.items():
        t0 = time.perf_counter()
        disease_list.match_all(batch.dx_codes)
        matching[list_id] = round((time.perf_counter() - t0) * 1e3, 2)
    total_ns = sum(timer.exclusive.values())
    lines = []
    for (code, line), ns in sorted(timer.exclusive.items(), key=lambda kv: -kv[1])[:top]:
        source = _source_line(code.co_filename, line)
        lines.append(
            {
                "where": f"{Path(code.co_filename).parent.name}/{Path(code.co_filename).name}:{line}",
                "function": code.co_qualname,
                "source": source,
                "ms": round(ns / 1e6, 1),
                "share": round(ns / total_ns, 3),
                "runs": timer.hits[(code, line)],
            }
        )
    by_function: defaultdict[str, int] = defaultdict(int)
    for (code, _), ns in timer.exclusive.items():
        by_function[code.co_qualname] += ns
    functions = [
        {"function": name, "ms": round(ns / 1e6, 1), "share": round(ns / total_ns, 3)}
        for name, ns in sorted(by_function.items(), key=lambda kv: -kv[1])
    ]

    gc.collect()
    profiler = cProfile.Profile()
    profiler.enable()
    settle(plan, batch, None, trace=False)
    profiler.disable()
    cprofile_rows = _cprofile_rows(profiler, top)
    return {
        "settle_seconds_under_line_timer": round(traced_seconds, 3),
        "accounted_seconds": round(total_ns / 1e9, 3),
        "tracer_cost_per_foreign_call_ns": round(per_call_ns, 1),
        "disease_matching_untraced_ms": matching,
        "lines": lines,
        "functions": functions,
        "cprofile_by_tottime": cprofile_rows,
    }


# --------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------


def machine_speed() -> dict[str, float]:
    """Two reference timings, so that figures from runs on a faster or slower moment can be compared."""
    t0 = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    loop = time.perf_counter() - t0
    a = np.arange(1_000_000, dtype=np.int64)
    best = min(_timed(lambda: a + a) for _ in range(20))
    return {"python_loop_10m_s": round(loop, 3), "numpy_add_1m_ms": round(best * 1e3, 3)}


def _timed(step: Any) -> float:
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def _row(label: str, value: str, target: str = "", met: bool | None = None) -> str:
    mark = "" if met is None else ("  met" if met else "  NOT MET")
    return f"  {label:<44} {value:>16}   {target}{mark}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", type=int, default=1_000_000, help="claims in the batch (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="batch repeats, best taken (default 3)")
    parser.add_argument("--out", default="bench/results/engine.json", help="JSON output file")
    parser.add_argument("--desk-claims", type=int, default=2_000, help="claims timed through the desk path")
    parser.add_argument("--check-claims", type=int, default=1_000, help="claims in each sanity sample")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile of the batch")
    args = parser.parse_args(argv)
    n = args.claims
    persons = max(1, round(n * 0.3))
    households = max(1, round(n * 0.12))

    print(
        f"Doudi engine benchmark: {n:,} claims, {persons:,} persons, {households:,} households, "
        f"repeat {args.repeat}; {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"
    )
    load_start = os.getloadavg()
    speed = machine_speed()
    print(
        f"machine speed now: a 10-million-step Python loop {speed['python_loop_10m_s']:.2f} s, "
        f"an int64 add of 1M elements {speed['numpy_add_1m_ms']:.2f} ms (this machine's speed varies over time)"
    )
    plan = load_plan()
    print(f"policy {plan.policy_id}@{plan.version}: " + " -> ".join(t.id for t in plan.tiers))

    gen = generate(plan, n, persons, households, seed=20230101)
    print(f"generated {n:,} claims as columns in {gen.seconds:.2f} s (not counted)")

    # Sanity before timing.
    rng = np.random.default_rng(99)
    sanity: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        full = settle(plan, gen.batch, None, trace=False)
        uniform = np.sort(rng.choice(n, size=min(args.check_claims, n), replace=False)).astype(np.int64)
        sanity["uniform_sample"] = check_sequential(plan, gen, uniform, "uniform sample")
        clustered = whole_households(gen, rng, min(args.check_claims, n))
        sanity["whole_households_sample"] = check_sequential(plan, gen, clustered, "whole households")
        check_against_full(plan, gen, full, clustered, "whole households vs full batch")
        sanity["whole_households_agree_with_full_batch"] = True
        sanity["seconds"] = round(time.perf_counter() - t0, 2)
        del full
        print(
            f"sanity: batch = one-at-a-time to the fen on {sanity['uniform_sample']['claims']} random claims and "
            f"{sanity['whole_households_sample']['claims']} claims of whole households "
            f"({sanity['whole_households_sample']['accumulators_compared']} accumulators); "
            f"households alone = full batch ({sanity['seconds']} s)"
        )

        desk = run_desk(plan, args.desk_claims, warmup=min(300, args.desk_claims))
    except Disagreement as err:
        print(f"\nSANITY CHECK FAILED: {err}", file=sys.stderr)
        return 1

    untraced_times, untraced_cpu, untraced = time_batch(plan, gen.batch, False, args.repeat)
    traced_times, traced_cpu, traced = time_batch(plan, gen.batch, True, args.repeat)
    # The same claims in the order a claims dataset is stored in (person, then settlement time): the
    # engine then needs no sort or permutation for person accumulators.
    by_person = gen.batch.take(np.lexsort((gen.batch.settled_at.view(np.int64), gen.batch.person)))
    ordered_times, ordered_cpu, ordered = time_batch(plan, by_person, False, args.repeat)
    ordered_traced_times, ordered_traced_cpu, _ = time_batch(plan, by_person, True, args.repeat)
    if sum(int(c.paid.sum()) for c in ordered.tiers) != sum(int(c.paid.sum()) for c in untraced.tiers):
        print("\nSANITY CHECK FAILED: the person-ordered batch pays a different total", file=sys.stderr)
        return 1
    del ordered, by_person
    rate_ordered = n / min(ordered_times)
    rate_ordered_traced = n / min(ordered_traced_times)
    for t, tier in enumerate(plan.tiers):
        if not np.array_equal(untraced.tiers[t].paid, traced.tiers[t].paid):
            j = int(np.flatnonzero(untraced.tiers[t].paid != traced.tiers[t].paid)[0])
            print(
                f"\nSANITY CHECK FAILED: trace=False and trace=True differ on tier {tier.id!r}: "
                f"{_claim_facts(gen.batch, j)}",
                file=sys.stderr,
            )
            return 1
    facts = batch_facts(plan, untraced)
    del traced, untraced

    best_untraced, best_traced = min(untraced_times), min(traced_times)
    rate_untraced, rate_traced = n / best_untraced, n / best_traced
    settle_lat = desk["latency"]["settle"]
    desk_lat = desk["latency"]["desk_path"]
    single_rate = 1e6 / settle_lat["mean_us"]
    single_rate_p50 = 1e6 / settle_lat["p50_us"]
    ratio = rate_untraced / single_rate
    ratio_traced = rate_traced / single_rate

    targets = {
        "single_claim_desk_path_p50_us": {
            "target": f"<= {TARGET_SINGLE_P50_US:g}",
            "value": desk_lat["p50_us"],
            "met": desk_lat["p50_us"] <= TARGET_SINGLE_P50_US,
        },
        "single_claim_settle_p50_us": {
            "target": f"<= {TARGET_SINGLE_P50_US:g}",
            "value": settle_lat["p50_us"],
            "met": settle_lat["p50_us"] <= TARGET_SINGLE_P50_US,
        },
        "batch_claims_per_s_trace_false": {
            "target": f">= {TARGET_BATCH_PER_S:,.0f}",
            "value": round(rate_untraced),
            "met": rate_untraced >= TARGET_BATCH_PER_S,
        },
        "batch_claims_per_s_trace_true": {
            "target": f">= {TARGET_BATCH_PER_S:,.0f}",
            "value": round(rate_traced),
            "met": rate_traced >= TARGET_BATCH_PER_S,
        },
        "batch_claims_per_s_trace_false_person_ordered": {
            "target": f">= {TARGET_BATCH_PER_S:,.0f}",
            "value": round(rate_ordered),
            "met": rate_ordered >= TARGET_BATCH_PER_S,
        },
        "batch_claims_per_s_trace_true_person_ordered": {
            "target": f">= {TARGET_BATCH_PER_S:,.0f}",
            "value": round(rate_ordered_traced),
            "met": rate_ordered_traced >= TARGET_BATCH_PER_S,
        },
        "ratio_batch_trace_false_over_single_settle": {
            "target": f">= {TARGET_RATIO:g}",
            "value": round(ratio, 1),
            "met": ratio >= TARGET_RATIO,
        },
    }

    profile = None if args.no_profile else profile_batch(plan, gen.batch)

    report: dict[str, Any] = {
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv])),
        "cwd": os.getcwd(),
        "when": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "load_average_1_5_15_min_at_start": [round(x, 2) for x in load_start],
            "speed_at_start": speed,
            "speed_at_end": machine_speed(),
            "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "engine": engine_fingerprint(),
        "policy": {"id": f"{plan.policy_id}@{plan.version}", "tiers": [t.id for t in plan.tiers]},
        "n_claims": n,
        "persons": persons,
        "households": households,
        "repeat": args.repeat,
        "generation_seconds": round(gen.seconds, 3),
        "data": gen.facts,
        "sanity": sanity,
        "single_claim": desk,
        "batch": {
            "trace_false": {
                "seconds": [round(s, 4) for s in untraced_times],
                "cpu_seconds": [round(s, 4) for s in untraced_cpu],
                "claims_per_cpu_s": round(n / min(untraced_cpu)),
                "best_seconds": round(best_untraced, 4),
                "claims_per_s": round(rate_untraced),
                "ns_per_claim": round(best_untraced * 1e9 / n, 1),
            },
            "trace_true": {
                "seconds": [round(s, 4) for s in traced_times],
                "cpu_seconds": [round(s, 4) for s in traced_cpu],
                "claims_per_cpu_s": round(n / min(traced_cpu)),
                "best_seconds": round(best_traced, 4),
                "claims_per_s": round(rate_traced),
                "ns_per_claim": round(best_traced * 1e9 / n, 1),
            },
            "person_ordered_trace_false": {
                "seconds": [round(s, 4) for s in ordered_times],
                "cpu_seconds": [round(s, 4) for s in ordered_cpu],
                "claims_per_s": round(rate_ordered),
            },
            "person_ordered_trace_true": {
                "seconds": [round(s, 4) for s in ordered_traced_times],
                "cpu_seconds": [round(s, 4) for s in ordered_traced_cpu],
                "claims_per_s": round(rate_ordered_traced),
            },
            "outcome": facts,
        },
        "ratio": {
            "definition": "batch claims/s (best, trace=False) / single-claim settle() claims/s (1 / mean latency)",
            "value": round(ratio, 1),
            "trace_true_value": round(ratio_traced, 1),
            "single_settle_claims_per_s_from_mean": round(single_rate),
            "single_settle_claims_per_s_from_p50": round(single_rate_p50),
            "value_from_p50": round(rate_untraced / single_rate_p50, 1),
        },
        "targets": targets,
        "profile_trace_false": profile,
    }

    lat = desk["latency"]
    print(
        "\nSingle claim through the desk path (µs, "
        + f"{desk['claims']:,} claims after {desk['warmup_claims']} warm-up)"
    )
    print(f"  {'':<22} {'p50':>9} {'p90':>9} {'p99':>9} {'mean':>9}")
    for name in ("parse_claim", "from_claims", "settle", "explain", "desk_path"):
        s = lat[name]
        print(f"  {name:<22} {s['p50_us']:>9.1f} {s['p90_us']:>9.1f} {s['p99_us']:>9.1f} {s['mean_us']:>9.1f}")
    print(f"  measured loop: {desk['loop_wall_seconds']:.2f} s wall, {desk['loop_cpu_seconds']:.2f} s CPU")
    print(
        "  settle() on a batch of one, cProfile top by own time (µs per claim, inflated by cProfile): "
        + ", ".join(
            f"{r['function'].split('/')[-1]} {r['tottime_us']:.0f}"
            for r in desk["settle_profile"]["top_by_tottime_per_claim"][:6]
        )
    )
    print(f"\nBatch of {n:,} claims (best of {args.repeat})")
    for label, times, cpu, rate in (
        ("settle(trace=False)", untraced_times, untraced_cpu, rate_untraced),
        ("settle(trace=True)", traced_times, traced_cpu, rate_traced),
        ("person-ordered, trace=False", ordered_times, ordered_cpu, rate_ordered),
        ("person-ordered, trace=True", ordered_traced_times, ordered_traced_cpu, rate_ordered_traced),
    ):
        runs = ", ".join(f"{t:.2f}/{c:.2f}" for t, c in zip(times, cpu, strict=True))
        print(_row(label, f"{min(times):.3f} s", f"{rate:,.0f} claims/s   (wall/cpu s: {runs})"))
    print(
        f"  per CPU second (this process's CPU time, robust to other load): trace=False "
        f"{n / min(untraced_cpu):,.0f} claims/s, trace=True {n / min(traced_cpu):,.0f} claims/s"
    )
    print("\nTargets")
    labels = {
        "single_claim_desk_path_p50_us": "desk path p50 (µs)",
        "single_claim_settle_p50_us": "settle() alone p50 (µs)",
        "batch_claims_per_s_trace_false": "batch claims/s, trace=False",
        "batch_claims_per_s_trace_true": "batch claims/s, trace=True",
        "batch_claims_per_s_trace_false_person_ordered": "batch claims/s, person-ordered, trace=False",
        "batch_claims_per_s_trace_true_person_ordered": "batch claims/s, person-ordered, trace=True",
        "ratio_batch_trace_false_over_single_settle": "ratio batch (trace=False) / single settle()",
    }
    for key, label in labels.items():
        target = targets[key]
        print(_row(label, f"{target['value']:,}", target["target"], target["met"]))
    print(_row("  (trace=True batch / single settle())", f"{ratio_traced:,.1f}"))
    if profile is not None:
        print(
            f"\nWhere batch time goes (settle trace=False, exclusive time per line; "
            f"{profile['settle_seconds_under_line_timer']:.2f} s under the line timer)"
        )
        for row in profile["lines"][:10]:
            print(
                f"  {row['ms']:>8.1f} ms {row['share']:>6.1%}  x{row['runs']:<3} {row['where']:<30} "
                f"{row['function']}: {row['source'][:90]}"
            )
        print(
            "  (the disease-list match over distinct codes is overstated by the tracer; untraced it takes "
            + ", ".join(f"{ms:.1f} ms ({k})" for k, ms in profile["disease_matching_untraced_ms"].items())
            + ")"
        )
        print("  by function: " + ", ".join(f"{f['function']} {f['ms']:.0f} ms" for f in profile["functions"][:8]))
        print(
            "  cProfile top by tottime: "
            + ", ".join(f"{r['function']} {r['tottime_ms']:.0f} ms" for r in profile["cprofile_by_tottime"][:8])
        )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"\nload average (1, 5, 15 min): {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} at start, "
        "{:.2f} {:.2f} {:.2f} at end".format(*os.getloadavg())
    )
    if report["engine"]["sources_changed_during_run"]:
        print("NOTE: the engine's sources changed on disk during this run; the figures are for the imported copy")
    print(f"engine sources {report['engine']['sources_sha256']} (HEAD {report['engine']['git_head']})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
