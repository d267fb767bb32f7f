"""Compile a validated policy (with what it includes) into the engine's `Plan` of lookup tables.

Tilts are applied here, once, so that the engine only ever indexes tables. The order of precedence for a
parameter is: the category's value, else the hospital level's, else the default; then each tilt that
names the category, in the order written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import numpy as np

from policies.library import Library
from policies.schema import (
    AmountTable,
    Bucket,
    CapTable,
    Deductible,
    Parameters,
    Policy,
    RatioTable,
    Reference,
    Tier,
)
from settlement.codes import (
    CATEGORIES,
    HOSPITAL_LEVELS,
    SCHEMES,
    VISIT_TYPES,
    Category,
    HospitalLevel,
    NhsaFundField,
    Stage,
)
from settlement.diseases import DiseaseEntry, DiseaseList
from settlement.money import (
    NO_CAP,
    RATIO_SCALE,
    apply_ratio,
    fen_from_decimal,
    ratio_from_decimal,
)
from settlement.plan import AccumulatorSpec, BoolArray, BucketPlan, ClauseRef, Int64Array, Plan, TierPlan

DEFAULT_NHSA_FIELD: dict[Stage, NhsaFundField] = {
    "basic_insurance": "hifp_pay",
    "supplementary_insurance": "hifmi_pay",
    "medical_assistance": "maf_pay",
    "temporary_aid": "oth_pay",
    "grants": "oth_pay",
}

C, L = len(CATEGORIES), len(HOSPITAL_LEVELS)
V = TypeVar("V")


def _grid(default: V, by_level: Mapping[HospitalLevel, V], by_category: Mapping[Category, V]) -> list[list[V]]:
    return [[by_category.get(cat, by_level.get(level, default)) for level in HOSPITAL_LEVELS] for cat in CATEGORIES]


def _fen_table(table: AmountTable | Deductible | None) -> Int64Array:
    if table is None:
        return np.zeros((C, L), np.int64)
    grid = _grid(table.default, table.by_level, table.by_category)
    return np.array([[fen_from_decimal(v) for v in row] for row in grid], np.int64)


def _cap_table(table: CapTable | None) -> Int64Array:
    if table is None:
        return np.full((C, L), NO_CAP, np.int64)
    grid = _grid(table.default, table.by_level, table.by_category)
    return np.array([[NO_CAP if v is None else fen_from_decimal(v) for v in row] for row in grid], np.int64)


def _ratio_table(table: RatioTable) -> tuple[Int64Array, Int64Array, Int64Array]:
    if table.bands is not None:
        low = np.array([fen_from_decimal(b.from_) for b in table.bands], np.int64)
        high = np.array([NO_CAP if b.to is None else fen_from_decimal(b.to) for b in table.bands], np.int64)
        ratios = np.array([ratio_from_decimal(b.ratio) for b in table.bands], np.int64)
        return low, high, np.broadcast_to(ratios, (C, L, len(ratios))).copy()
    assert table.default is not None  # the schema allows exactly one of the two forms
    grid = _grid(table.default, table.by_level, table.by_category)
    flat = np.array([[ratio_from_decimal(v) for v in row] for row in grid], np.int64)
    return np.zeros(1, np.int64), np.full(1, NO_CAP, np.int64), flat[:, :, None]


def _clause(parameter: str, ref: str | None, refs: Mapping[str, Reference]) -> list[ClauseRef]:
    if ref is None or ref not in refs:
        return []
    r = refs[ref]
    return [ClauseRef(parameter, r.document, r.article, r.url, r.illustrative, r.note)]


def _disease_list(list_id: str, library: Library) -> DiseaseList:
    spec = library.disease_lists[list_id]
    entries = tuple(
        DiseaseEntry(
            name=f"{e.name} / {e.name_en}" if e.name_en else e.name,
            codes=tuple(e.codes),
            ranges=tuple((low, high) for low, high in e.ranges),
            confirmed=e.confirmed,
        )
        for e in spec.entries
    )
    return DiseaseList(spec.id, spec.title, entries)


def _bucket(
    tier: Tier,
    bucket: Bucket | None,
    params: Parameters,
    policy: Policy,
    library: Library,
    accumulators: Mapping[str, AccumulatorSpec],
) -> BucketPlan:
    refs = policy.references
    rounding = policy.rounding
    deductible = params.deductible
    per_claim = deductible is not None and deductible.basis == "per_claim"
    first = _fen_table(deductible) if per_claim else np.zeros((C, L), np.int64)
    annual_deductible = _fen_table(deductible) if not per_claim else np.zeros((C, L), np.int64)
    factor = deductible.later_admission_factor if deductible is not None else None
    later = apply_ratio(first, ratio_from_decimal(factor), rounding) if factor is not None else first.copy()
    assert params.ratio is not None  # the schema requires a ratio for every non-grants tier
    band_low, band_high, ratio = _ratio_table(params.ratio)
    caps = params.caps
    claim_cap = _cap_table(caps.per_claim if caps else None)
    annual_cap = _cap_table(caps.annual if caps else None)
    threshold = _fen_table(params.threshold)

    clauses: list[ClauseRef] = []
    clauses += _clause("eligibility", tier.eligibility.ref, refs)
    if params.threshold is not None:
        clauses += _clause("threshold", params.threshold.ref, refs)
    if deductible is not None:
        clauses += _clause(f"deductible ({deductible.basis})", deductible.ref, refs)
    clauses += _clause("ratio", params.ratio.ref, refs)
    if caps is not None and caps.per_claim is not None:
        clauses += _clause("cap per claim", caps.per_claim.ref, refs)
    if caps is not None and caps.annual is not None:
        clauses += _clause("annual cap", caps.annual.ref, refs)

    for tilt in tier.tilts:
        rows = [CATEGORIES.index(c) for c in tilt.categories]
        if tilt.deductible_factor is not None:
            f = ratio_from_decimal(tilt.deductible_factor)
            for table in (first, later, annual_deductible):
                table[rows] = apply_ratio(table[rows], f, rounding)
        if tilt.ratio_add is not None:
            ceiling = ratio_from_decimal(tilt.ratio_max)
            raised = np.minimum(ratio[rows] + ratio_from_decimal(tilt.ratio_add), ceiling)
            ratio[rows] = np.maximum(ratio[rows], raised)
        if tilt.remove_caps:
            claim_cap[rows] = NO_CAP
            annual_cap[rows] = NO_CAP
        clauses += _clause(f"tilt for {', '.join(tilt.categories)}", tilt.ref, refs)

    assert int(ratio.max(initial=0)) <= RATIO_SCALE
    list_id = bucket.disease_list if bucket is not None else None
    return BucketPlan(
        id=bucket.id if bucket is not None else tier.id,
        name=bucket.name if bucket is not None else tier.name,
        disease_list=_disease_list(list_id, library) if list_id is not None else None,
        match_any_diagnosis=bucket is not None and bucket.match == "any",
        accumulator=accumulators[params.accumulator] if params.accumulator is not None else None,
        threshold=threshold,
        deductible_first=first,
        deductible_later=later,
        annual_deductible=annual_deductible,
        band_low=band_low,
        band_high=band_high,
        ratio=ratio,
        claim_cap=claim_cap,
        annual_cap=annual_cap,
        references=tuple(clauses),
    )


def _allowed(values: list[V] | None, universe: tuple[V, ...]) -> BoolArray:
    if not values:
        return np.ones(len(universe), np.bool_)
    return np.array([v in values for v in universe], np.bool_)


def _accumulators(policy: Policy, library: Library) -> dict[str, AccumulatorSpec]:
    specs: dict[str, AccumulatorSpec] = {}
    for include in policy.includes:
        specs.update(_accumulators(library.policies[include], library))
    specs.update({key: AccumulatorSpec(key, decl.per) for key, decl in policy.accumulators.items()})
    return specs


def plan_for(policy: Policy, library: Library) -> Plan:
    """`compile_policy`, once per policy and library: the desk settles each claim with a compiled plan."""
    plan = library.plans.get(policy.key)
    if plan is None:
        plan = library.plans[policy.key] = compile_policy(policy, library)
    return plan


def compile_policy(policy: Policy, library: Library) -> Plan:
    """The plan the engine runs for `policy` (which must have passed `load_library`'s checks)."""
    accumulators = _accumulators(policy, library)
    tiers: list[TierPlan] = []
    lists: dict[str, DiseaseList] = {}
    for origin, tier in library.composed_tiers(policy):
        buckets: list[BucketPlan] = []
        if tier.stage != "grants":
            bucket_specs: list[Bucket | None] = list(tier.buckets) if tier.buckets else [None]
            for bucket, params in zip(bucket_specs, tier.parameter_sets(), strict=True):
                plan = _bucket(tier, bucket, params, origin, library, accumulators)
                if plan.disease_list is not None:
                    lists[plan.disease_list.id] = plan.disease_list
                buckets.append(plan)
        eligibility = tier.eligibility
        tiers.append(
            TierPlan(
                id=tier.id,
                name=tier.name,
                stage=tier.stage,
                fund_pay_type=tier.fund_pay_type,
                fund_name=tier.fund_name,
                nhsa_field=tier.nhsa_field or DEFAULT_NHSA_FIELD[tier.stage],
                scope="total" if tier.stage == "grants" else tier.scope,
                basis="grants" if tier.stage == "grants" else tier.basis,
                rounding=origin.rounding,
                scheme_ok=_allowed(eligibility.schemes, SCHEMES),
                category_ok=_allowed(eligibility.categories, CATEGORIES),
                visit_ok=_allowed(eligibility.visit_types, VISIT_TYPES),
                level_ok=_allowed(eligibility.hospital_levels, HOSPITAL_LEVELS),
                approval_accepted=eligibility.accepts_approval,
                excludes_third_party=eligibility.excludes_third_party_liability,
                buckets=tuple(buckets),
                policy_id=origin.id,
                policy_version=origin.version,
                region=origin.region,
                references=tuple(_clause("eligibility", eligibility.ref, origin.references)),
            )
        )
    month, day = (int(part) for part in policy.policy_year_start.split("-"))
    return Plan(
        policy_id=policy.id,
        version=policy.version,
        region=policy.region,
        title=policy.title,
        valid_from=policy.valid_from,
        valid_until=policy.valid_until,
        policy_year_start=(month, day),
        tiers=tuple(tiers),
        disease_lists=lists,
    )


def load_plan(ref: str, library: Library) -> Plan:
    """Shorthand: the compiled plan of `id@version` (or the latest version of `id`)."""
    return compile_policy(library.get(ref), library)
