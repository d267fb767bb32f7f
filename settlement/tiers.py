"""The tier contract and its three kinds.

Every tier kind is a function with one contract:

    (tier plan, batch context, paid so far on each claim) -> TierColumns

where `TierColumns` holds, per claim, what the tier paid, why (a reason code), and the trace: base,
deductible applied, ratio, caps and the accumulators before and after. The waterfall calls the kinds in
payment order and adds up "paid so far"; nothing else decides the order. All arithmetic is on int64 fen
and ratios in ten-thousandths, rounded once where a payment is produced (money.round_div).

The three kinds:
- per_claim: pay = min(round((base - deductible) x ratio), cap per claim), then the annual cap;
- annual:    pay = P(E_after) - P(E_before), with P the banded ratios over the year-to-date base E above
             the annual deductible, rounded once (settlement-rules.md §3), then the annual cap;
- grants:    pay = min(granted, what is left).
The annual cap is applied the same way for both: cumulative paid = min(start + cumulative raw, cap),
differenced, which equals min(raw, cap left) claim by claim.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from settlement.accumulators import Grouping, KeyColumns, Snapshot
from settlement.claims import ClaimBatch
from settlement.codes import CATEGORIES, HOSPITAL_LEVELS, REASON_CODE, SCHEME_CODE, SCHEMES, VISIT_TYPES
from settlement.money import NO_CAP, RATIO_SCALE, round_div
from settlement.plan import AccumulatorSpec, BucketPlan, Int64Array, Per, TierPlan

BoolArray = npt.NDArray[np.bool_]
_R = REASON_CODE


@dataclass(slots=True, eq=False)
class BatchContext:
    """What every tier needs to know about the batch (claims in settlement order)."""

    batch: ClaimBatch
    year: Int64Array
    later_admission: BoolArray
    groupings: dict[Per, Grouping]
    snapshot: Snapshot
    trace: bool
    eligibility: Int64Array = field(init=False)  # see eligibility_index
    profile: Int64Array = field(init=False)  # category x level: the row of a parameter table
    in_scope: Int64Array = field(init=False)
    disease_matches: dict[tuple[str, bool], BoolArray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        b = self.batch
        self.eligibility = eligibility_index(b)
        self.profile = b.category * len(HOSPITAL_LEVELS) + b.level
        self.in_scope = b.in_scope

    def on_list(self, bucket: BucketPlan) -> BoolArray:
        """Claims whose principal (or any) diagnosis is on the bucket's disease list."""
        disease_list = bucket.disease_list
        assert disease_list is not None
        cache_key = (disease_list.id, bucket.match_any_diagnosis)
        if cache_key not in self.disease_matches:
            b = self.batch
            # Matching runs once per distinct code (a few thousand), never per claim.
            code_hit = np.array(disease_list.match_all(b.dx_codes) or [False], np.bool_)
            if bucket.match_any_diagnosis:
                hit = np.zeros(len(b), np.bool_)
                hit[b.dx_claim[code_hit[b.dx_code]]] = True
            else:
                hit = code_hit[b.dx_principal]
            self.disease_matches[cache_key] = hit
        return self.disease_matches[cache_key]


@dataclass(slots=True, eq=False)
class TierColumns:
    """Per claim (in the batch's order): the tier's payment, its reason code and, with trace, the rest."""

    paid: Int64Array
    reason: npt.NDArray[np.int8]
    bucket: Int64Array | None = None
    base: Int64Array | None = None
    deductible: Int64Array | None = None
    ratio: Int64Array | None = None
    claim_cap: Int64Array | None = None
    cap_left: Int64Array | None = None  # annual cap left before this claim (NO_CAP: none)
    acc_base_before: Int64Array | None = None
    acc_base_after: Int64Array | None = None
    acc_paid_before: Int64Array | None = None
    acc_paid_after: Int64Array | None = None
    accumulators: list[KeyColumns] = field(default_factory=list)

    def reorder(self, inverse: Int64Array) -> TierColumns:
        """The same columns indexed by the caller's claim order."""

        def back(a: npt.NDArray[np.generic] | None) -> npt.NDArray[np.generic] | None:
            return None if a is None else a[inverse]

        return TierColumns(
            paid=self.paid[inverse],
            reason=self.reason[inverse],
            bucket=back(self.bucket),  # type: ignore[arg-type]
            base=back(self.base),  # type: ignore[arg-type]
            deductible=back(self.deductible),  # type: ignore[arg-type]
            ratio=back(self.ratio),  # type: ignore[arg-type]
            claim_cap=back(self.claim_cap),  # type: ignore[arg-type]
            cap_left=back(self.cap_left),  # type: ignore[arg-type]
            acc_base_before=back(self.acc_base_before),  # type: ignore[arg-type]
            acc_base_after=back(self.acc_base_after),  # type: ignore[arg-type]
            acc_paid_before=back(self.acc_paid_before),  # type: ignore[arg-type]
            acc_paid_after=back(self.acc_paid_after),  # type: ignore[arg-type]
            accumulators=self.accumulators,
        )


# Columns of a tier's parameter table, one row per (bucket, category, hospital level).
_THRESHOLD, _DED_FIRST, _DED_LATER, _DED_ANNUAL, _CAP_CLAIM, _CAP_ANNUAL = range(6)
_PARAM_FIELDS = ("threshold", "deductible_first", "deductible_later", "annual_deductible", "claim_cap", "annual_cap")
_CL = len(CATEGORIES) * len(HOSPITAL_LEVELS)
_ELIGIBILITY_SHAPE = (len(SCHEMES), len(VISIT_TYPES), len(HOSPITAL_LEVELS), len(CATEGORIES), 2, 2)


@dataclass(frozen=True, slots=True, eq=False)
class _Tables:
    """A tier's plan flattened for gathering: one row of parameters per (bucket, category, level), so that
    one fancy-indexing pass gives every claim all of its parameters."""

    params: Int64Array  # (k*c*l, 6)
    ratio: Int64Array  # (k*c*l, b), bands padded with zero-ratio empty bands
    band_low: Int64Array  # (k, b)
    band_width: Int64Array  # (k, b)
    eligibility: npt.NDArray[np.int8]  # reason code per eligibility index (see eligibility_index)
    key_of_bucket: Int64Array  # (k + 1,): accumulator index per bucket; the last entry (-1) for "no bucket"
    keys: tuple[AccumulatorSpec, ...]
    uniform_cap: tuple[int | None, ...]  # per key: the one annual cap of all its buckets, or None if they differ
    all_listed: bool  # every bucket has a disease list: a claim may fall in none
    all_keyed: bool  # every bucket keeps an accumulator
    shared_bands: bool  # every bucket has the same band edges
    # What this tier never uses, so that a batch skips the work: thresholds, a lower deductible for later
    # admissions, per-claim caps.
    has_threshold: bool
    has_later_deductible: bool
    has_claim_cap: bool


_tables_cache: weakref.WeakKeyDictionary[TierPlan, _Tables] = weakref.WeakKeyDictionary()


def eligibility_index(b: ClaimBatch) -> Int64Array:
    """One integer per claim encoding everything eligibility depends on; a tier's reason is one lookup."""
    _, v, lv, c, a, t = _ELIGIBILITY_SHAPE
    index: Int64Array = ((((b.scheme * v + b.visit) * lv + b.level) * c + b.category) * a + b.approval) * t
    index += b.third_party
    return index


def _eligibility_table(tier: TierPlan) -> npt.NDArray[np.int8]:
    """Reason code for every combination: 0 where the tier applies, else the first rule that excludes it."""
    scheme, visit, level, category, approval, third = np.indices(_ELIGIBILITY_SHAPE)
    reason = np.zeros(_ELIGIBILITY_SHAPE, np.int8)
    rules: list[tuple[str, BoolArray]] = [
        ("not_insured", ~tier.scheme_ok[scheme] & (scheme == SCHEME_CODE["none"])),
        ("scheme_not_covered", ~tier.scheme_ok[scheme]),
        ("visit_type_not_covered", ~tier.visit_ok[visit]),
        ("hospital_level_not_covered", ~tier.level_ok[level]),
        ("category_not_eligible", ~tier.category_ok[category] & ~((approval == 1) & tier.approval_accepted)),
        ("third_party_liability", (third == 1) & tier.excludes_third_party),
    ]
    for name, excluded in rules:
        reason[(reason == 0) & excluded] = _R[name]
    return reason.ravel()


def _tables(tier: TierPlan) -> _Tables:
    found = _tables_cache.get(tier)
    if found is not None:
        return found
    buckets = tier.buckets
    nb = max((len(b.band_low) for b in buckets), default=1)

    def pad(values: Int64Array, fill: int) -> Int64Array:
        extra = nb - values.shape[-1]
        widths = [(0, 0)] * (values.ndim - 1) + [(0, extra)]
        return np.pad(values, widths, constant_values=fill) if extra else values

    keys: list[AccumulatorSpec] = []
    key_of_bucket: list[int] = []
    for b in buckets:
        if b.accumulator is not None and b.accumulator not in keys:
            keys.append(b.accumulator)
        key_of_bucket.append(keys.index(b.accumulator) if b.accumulator is not None else -1)
    caps_by_key = [
        {int(v) for j, b in enumerate(buckets) if key_of_bucket[j] == i for v in b.annual_cap.ravel()}
        for i in range(len(keys))
    ]
    uniform = tuple(next(iter(caps)) if len(caps) == 1 else None for caps in caps_by_key)
    empty = np.zeros((0, 1), np.int64)
    tables = _Tables(
        params=np.concatenate(
            [np.stack([getattr(b, f).reshape(-1) for f in _PARAM_FIELDS], axis=1) for b in buckets]
        ).astype(np.int64)
        if buckets
        else np.zeros((0, len(_PARAM_FIELDS)), np.int64),
        ratio=np.concatenate([pad(b.ratio, 0).reshape(_CL, nb) for b in buckets]) if buckets else empty,
        band_low=np.stack([pad(b.band_low, NO_CAP) for b in buckets]) if buckets else empty,
        band_width=np.stack([pad(b.band_high - b.band_low, 0) for b in buckets]) if buckets else empty,
        eligibility=_eligibility_table(tier),
        key_of_bucket=np.array([*key_of_bucket, -1], np.int64),
        keys=tuple(keys),
        uniform_cap=uniform,
        all_listed=bool(buckets) and all(b.disease_list is not None for b in buckets),
        all_keyed=bool(buckets) and all(b.accumulator is not None for b in buckets),
        shared_bands=all(
            np.array_equal(pad(b.band_low, NO_CAP), pad(buckets[0].band_low, NO_CAP))
            and np.array_equal(pad(b.band_high - b.band_low, 0), pad(buckets[0].band_high - buckets[0].band_low, 0))
            for b in buckets
        ),
        has_threshold=any(bool(b.threshold.any()) for b in buckets),
        has_later_deductible=any(not np.array_equal(b.deductible_first, b.deductible_later) for b in buckets),
        has_claim_cap=any(bool((b.claim_cap < NO_CAP).any()) for b in buckets),
    )
    _tables_cache[tier] = tables
    return tables


def _annual_cap(
    grouping: Grouping,
    members: BoolArray,
    raw: Int64Array,
    cap: Int64Array,
    start_paid: Int64Array,
    uniform: int | None,
) -> tuple[Int64Array, Int64Array]:
    """(payment, paid before) per member claim under an annual cap shared by the group. `uniform` is the
    cap when every bucket of this accumulator has the same one (whatever the category or level)."""
    raw = raw * members
    start = start_paid[grouping.group]
    if grouping.singletons:
        return np.minimum(raw, np.maximum(cap - start, 0)), start
    before_raw = grouping.exclusive_cumsum(raw)
    if uniform is not None and uniform >= NO_CAP:  # no annual cap: the fund pays the raw amounts
        return raw, start + before_raw
    varying = np.zeros(0, np.bool_)
    if uniform is not None:
        group_cap = np.full(len(grouping), uniform, np.int64)
    else:
        # Where the cap is the same for every member of a group, the cap is a clamp on the cumulative sum.
        sorted_cap = np.where(members, cap, -1)[grouping.order]
        lo = np.minimum.reduceat(np.where(sorted_cap < 0, NO_CAP, sorted_cap), grouping.starts)
        hi = np.maximum.reduceat(sorted_cap, grouping.starts)
        varying = (hi >= 0) & (lo != hi)
        group_cap = np.where(hi >= 0, lo, NO_CAP)
    group_ceiling = np.maximum(group_cap, start_paid)[grouping.group]
    paid_before = np.minimum(start + before_raw, group_ceiling)
    pay = np.minimum(start + before_raw + raw, group_ceiling) - paid_before
    if varying.any():
        # A person's category (and so the cap) changed within the year, or buckets with different caps
        # share one accumulator: walk those few groups claim by claim.
        for g in np.flatnonzero(varying):
            total = int(start_paid[g])
            for i in grouping.order[grouping.starts[g] : grouping.starts[g] + grouping.lengths[g]]:
                paid_before[i] = total
                if members[i]:
                    pay[i] = min(int(raw[i]), max(0, int(cap[i]) - total))
                    total += int(pay[i])
    return pay, paid_before


def _per_claim_or_annual(tier: TierPlan, ctx: BatchContext, paid_so_far: Int64Array) -> TierColumns:
    b = ctx.batch
    n = len(b)
    tables = _tables(tier)
    reason = tables.eligibility[ctx.eligibility]

    if len(tier.buckets) == 1 and tier.buckets[0].disease_list is None:
        bucket = np.zeros(n, np.int64)
        row = ctx.profile
    else:
        bucket = np.full(n, -1, np.int64)
        for j, plan in enumerate(tier.buckets):
            if plan.disease_list is None:
                bucket[bucket < 0] = j
                break
            bucket[(bucket < 0) & ctx.on_list(plan)] = j
        if tables.all_listed:
            reason[(reason == 0) & (bucket < 0)] = _R["disease_not_listed"]
        row = np.maximum(bucket, 0) * _CL + ctx.profile
    params = tables.params[row]
    ratio = tables.ratio[row]  # (n, bands)
    claim_cap = params[:, _CAP_CLAIM]
    annual_cap = params[:, _CAP_ANNUAL]

    scope_amount = ctx.in_scope if tier.scope == "in_scope" else b.total
    base = np.maximum(scope_amount - paid_so_far, 0)
    active = reason == 0
    if tables.has_threshold:
        below_threshold = active & (base < params[:, _THRESHOLD]) & (base > 0)  # base 0: nothing_left
        reason[below_threshold] = _R["below_threshold"]
        active &= ~below_threshold

    if tables.has_later_deductible:
        claim_deductible = np.where(ctx.later_admission, params[:, _DED_LATER], params[:, _DED_FIRST])
    else:
        claim_deductible = params[:, _DED_FIRST]
    # Multiplying by a mask keeps the value where the mask holds and gives 0 elsewhere.
    entering = np.maximum(base - claim_deductible, 0) * active
    trace = ctx.trace
    deductible = np.minimum(base, claim_deductible) * active if trace else claim_deductible

    annual = tier.basis == "annual"
    if annual:
        raw = np.zeros(n, np.int64)
        limited_by_claim_cap = np.zeros(n, np.bool_)
    else:
        raw = round_div(entering * ratio[:, 0], RATIO_SCALE, tier.rounding)
        if tables.has_claim_cap:
            limited_by_claim_cap = active & (raw > claim_cap)
            raw = np.minimum(raw, claim_cap)
        else:
            limited_by_claim_cap = np.zeros(n, np.bool_)
    key_index = tables.key_of_bucket[bucket]
    # Claims whose bucket keeps no accumulator are paid their raw amount; the others per key below. The
    # running columns start as None and take the first key's values as they are (keys never overlap).
    pay = None if tables.all_keyed else raw * (key_index < 0)
    acc_base_before: Int64Array | None = None
    acc_paid_before: Int64Array | None = None
    cap_left: Int64Array | None = None
    tables_out: list[KeyColumns] = []
    for index, spec in enumerate(tables.keys):
        members = active & (key_index == index) if len(tables.keys) > 1 or not tables.all_keyed else active
        grouping = ctx.groupings[spec.per]
        start_base, start_paid, start_claims = grouping.starting(spec.key, ctx.snapshot)
        member_entering = entering * members
        e_before = start_base[grouping.group] + grouping.exclusive_cumsum(member_entering)
        if annual:
            e_after = e_before + member_entering
            annual_deductible = params[:, _DED_ANNUAL]
            band_row = np.maximum(bucket, 0)
            value_after = _banded_value(tables, band_row, ratio, e_after - annual_deductible, tier)
            value_before = _banded_value(tables, band_row, ratio, e_before - annual_deductible, tier)
            # A fund never pays more than its base: in half-even mode a full-ratio band after a band
            # ending on half a fen could otherwise pay one fen above it (docs/settlement.md).
            raw = raw + np.minimum(value_after - value_before, entering) * members
            if trace:
                deductible = (
                    deductible + np.minimum(e_after, annual_deductible) - np.minimum(e_before, annual_deductible)
                )
        key_pay, paid_before = _annual_cap(grouping, members, raw, annual_cap, start_paid, tables.uniform_cap[index])
        pay = key_pay if pay is None else pay + key_pay
        if trace:
            base_part, paid_part = e_before * members, paid_before * members
            acc_base_before = base_part if acc_base_before is None else acc_base_before + base_part
            acc_paid_before = paid_part if acc_paid_before is None else acc_paid_before + paid_part
            left = np.where(members & (annual_cap < NO_CAP), np.maximum(annual_cap - paid_before, 0), NO_CAP)
            cap_left = left if cap_left is None else np.minimum(cap_left, left)
        tables_out.append(
            KeyColumns(spec.key, grouping, (start_base, start_paid, start_claims), member_entering, key_pay, members)
        )

    pay = raw * 0 if pay is None else pay * active
    unpaid = active & (pay == 0)
    # For a large batch, skip the reason updates when nothing needs them; for a few claims the check
    # itself would cost more than the updates.
    if n <= 64 or unpaid.any():
        reason[unpaid & (base == 0)] = _R["nothing_left"]
        reason[unpaid & (base > 0) & (raw == 0)] = _R["below_deductible"]
        reason[unpaid & (raw > 0)] = _R["cap_reached"]
    held_down = (pay < raw) | limited_by_claim_cap
    if n <= 64 or held_down.any():
        reason[active & (pay > 0) & held_down] = _R["capped"]

    if not trace:
        return TierColumns(paid=pay, reason=reason, accumulators=tables_out)
    zeros = np.zeros(n, np.int64)
    acc_base_before = zeros if acc_base_before is None else acc_base_before
    acc_paid_before = zeros if acc_paid_before is None else acc_paid_before
    cap_left = zeros + NO_CAP if cap_left is None else cap_left
    in_accumulator = active & (key_index >= 0)
    if annual:
        used_ratio = _marginal_ratio(tables, np.maximum(bucket, 0), ratio, acc_base_before, params[:, _DED_ANNUAL])
    else:
        used_ratio = ratio[:, 0]
    return TierColumns(
        paid=pay,
        reason=reason,
        bucket=bucket,
        base=base,
        deductible=deductible,
        ratio=used_ratio,
        claim_cap=claim_cap,
        cap_left=cap_left,
        acc_base_before=acc_base_before,
        acc_base_after=acc_base_before + entering * in_accumulator,
        acc_paid_before=acc_paid_before,
        acc_paid_after=acc_paid_before + pay * in_accumulator,
        accumulators=tables_out,
    )


def _banded_value(tables: _Tables, k: Int64Array, ratio: Int64Array, above: Int64Array, tier: TierPlan) -> Int64Array:
    """P(E) = round(sum over bands of ratio x the part of `above` inside the band), rounded once."""
    numerator = np.zeros(len(above), np.int64)
    for band in range(tables.band_low.shape[1]):
        if tables.shared_bands:  # one set of band edges for every bucket: edges are plain numbers
            low, width = int(tables.band_low[0, band]), int(tables.band_width[0, band])
            inside = np.minimum(np.maximum(above - low, 0), width)
        else:
            inside = np.minimum(np.maximum(above - tables.band_low[k, band], 0), tables.band_width[k, band])
        numerator += inside * ratio[:, band]
    result: Int64Array = round_div(numerator, RATIO_SCALE, tier.rounding)
    return result


def _marginal_ratio(
    tables: _Tables, k: Int64Array, ratio: Int64Array, e_before: Int64Array, deductible: Int64Array
) -> Int64Array:
    """The ratio of the band the claim starts in (for the trace; the payment uses every band it crosses)."""
    above = e_before - deductible
    index = np.maximum((above[:, None] >= tables.band_low[k]).sum(axis=1) - 1, 0)
    result: Int64Array = ratio[np.arange(len(above)), index]
    return result


def _grants(tier: TierPlan, ctx: BatchContext, paid_so_far: Int64Array) -> TierColumns:
    b = ctx.batch
    reason = _tables(tier).eligibility[ctx.eligibility]
    base = np.maximum(b.total - paid_so_far, 0)
    eligible = reason == 0
    pay = np.minimum(b.grant_total, base) * eligible
    reason[eligible & (b.grant_total == 0)] = _R["no_grant"]
    reason[eligible & (b.grant_total > 0) & (base == 0)] = _R["nothing_left"]
    reason[eligible & (pay > 0) & (pay < b.grant_total)] = _R["capped"]
    if not ctx.trace:
        return TierColumns(paid=pay, reason=reason)
    zeros = np.zeros(len(b), np.int64)
    return TierColumns(
        paid=pay,
        reason=reason,
        bucket=np.zeros(len(b), np.int64),
        base=base,
        deductible=zeros,
        ratio=np.full(len(b), RATIO_SCALE, np.int64),
        claim_cap=b.grant_total.copy(),
        cap_left=np.full(len(b), NO_CAP, np.int64),
        acc_base_before=zeros,
        acc_base_after=zeros,
        acc_paid_before=zeros,
        acc_paid_after=zeros,
    )


TierKind = Callable[[TierPlan, BatchContext, Int64Array], TierColumns]

TIER_KINDS: dict[str, TierKind] = {
    "per_claim": _per_claim_or_annual,
    "annual": _per_claim_or_annual,
    "grants": _grants,
}
