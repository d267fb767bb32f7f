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

from settlement.accumulators import AccumulatorTable, Grouping, Snapshot
from settlement.claims import ClaimBatch
from settlement.codes import REASON_CODE, SCHEME_CODE
from settlement.money import NO_CAP, RATIO_SCALE, round_div
from settlement.plan import BucketPlan, Int64Array, Per, TierPlan

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
    disease_matches: dict[tuple[str, bool], BoolArray] = field(default_factory=dict)

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
    accumulators: list[AccumulatorTable] = field(default_factory=list)

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


@dataclass(frozen=True, slots=True, eq=False)
class _Stacked:
    """A tier's bucket tables stacked on a leading bucket axis (bands padded with empty bands)."""

    threshold: Int64Array  # (k, c, l)
    deductible_first: Int64Array
    deductible_later: Int64Array
    annual_deductible: Int64Array
    claim_cap: Int64Array
    annual_cap: Int64Array
    band_low: Int64Array  # (k, b)
    band_width: Int64Array  # (k, b)
    ratio: Int64Array  # (k, c, l, b)


_stacked_cache: weakref.WeakKeyDictionary[TierPlan, _Stacked] = weakref.WeakKeyDictionary()


def _stacked(tier: TierPlan) -> _Stacked:
    found = _stacked_cache.get(tier)
    if found is not None:
        return found
    buckets = tier.buckets
    nb = max(len(b.band_low) for b in buckets)

    def pad(values: Int64Array, fill: int) -> Int64Array:
        extra = nb - values.shape[-1]
        if extra == 0:
            return values
        widths = [(0, 0)] * (values.ndim - 1) + [(0, extra)]
        return np.pad(values, widths, constant_values=fill)

    stacked = _Stacked(
        threshold=np.stack([b.threshold for b in buckets]),
        deductible_first=np.stack([b.deductible_first for b in buckets]),
        deductible_later=np.stack([b.deductible_later for b in buckets]),
        annual_deductible=np.stack([b.annual_deductible for b in buckets]),
        claim_cap=np.stack([b.claim_cap for b in buckets]),
        annual_cap=np.stack([b.annual_cap for b in buckets]),
        band_low=np.stack([pad(b.band_low, NO_CAP) for b in buckets]),
        band_width=np.stack([pad(b.band_high - b.band_low, 0) for b in buckets]),
        ratio=np.stack([pad(b.ratio, 0) for b in buckets]),
    )
    _stacked_cache[tier] = stacked
    return stacked


def _eligibility(tier: TierPlan, b: ClaimBatch) -> npt.NDArray[np.int8]:
    """Reason code per claim: 0 where the tier applies, else the first rule that excludes the claim."""
    reason = np.zeros(len(b), np.int8)
    rules: list[tuple[str, BoolArray]] = [
        ("not_insured", ~tier.scheme_ok[b.scheme] & (b.scheme == SCHEME_CODE["none"])),
        ("scheme_not_covered", ~tier.scheme_ok[b.scheme]),
        ("visit_type_not_covered", ~tier.visit_ok[b.visit]),
        ("hospital_level_not_covered", ~tier.level_ok[b.level]),
        ("category_not_eligible", ~tier.category_ok[b.category] & ~(b.approval & tier.approval_accepted)),
    ]
    if tier.excludes_third_party:
        rules.append(("third_party_liability", b.third_party))
    for name, excluded in rules:
        reason[(reason == 0) & excluded] = _R[name]
    return reason


def _annual_cap(
    ctx: BatchContext,
    grouping: Grouping,
    members: BoolArray,
    raw: Int64Array,
    cap: Int64Array,
    start_paid: Int64Array,
) -> tuple[Int64Array, Int64Array]:
    """(payment, paid before) per member claim under an annual cap shared by the group."""
    raw = np.where(members, raw, 0)
    before_raw = grouping.exclusive_cumsum(raw)
    start = start_paid[grouping.group]
    ceiling = np.maximum(np.where(members, cap, NO_CAP), start)
    # Where the cap is the same for every member of a group, the cap is a clamp on the cumulative sum.
    sorted_cap = np.where(members, cap, -1)[grouping.order]
    lo = np.minimum.reduceat(np.where(sorted_cap < 0, NO_CAP, sorted_cap), grouping.starts)
    hi = np.maximum.reduceat(sorted_cap, grouping.starts)
    varying = (hi >= 0) & (lo != hi)
    group_ceiling = np.maximum(np.where(hi >= 0, lo, NO_CAP), start_paid)[grouping.group]
    paid_before = np.minimum(start + before_raw, group_ceiling)
    paid_after = np.minimum(start + before_raw + raw, group_ceiling)
    pay = paid_after - paid_before
    if varying.any():
        # A person's category (and so the cap) changed within the year, or buckets with different caps
        # share one accumulator: walk those few groups claim by claim.
        for g in np.flatnonzero(varying):
            stop = grouping.starts[g + 1] if g + 1 < len(grouping) else len(grouping.order)
            total = int(start_paid[g])
            for i in grouping.order[grouping.starts[g] : stop]:
                paid_before[i] = total
                if members[i]:
                    pay[i] = min(int(raw[i]), max(0, int(ceiling[i]) - total))
                    total += int(pay[i])
    return pay, paid_before


def _per_claim_or_annual(tier: TierPlan, ctx: BatchContext, paid_so_far: Int64Array) -> TierColumns:
    b = ctx.batch
    n = len(b)
    reason = _eligibility(tier, b)
    tables = _stacked(tier)

    bucket = np.full(n, -1, np.int64)
    for j, plan in enumerate(tier.buckets):
        takes = np.ones(n, np.bool_) if plan.disease_list is None else ctx.on_list(plan)
        bucket[(bucket < 0) & takes] = j
    reason[(reason == 0) & (bucket < 0)] = _R["disease_not_listed"]
    k = np.maximum(bucket, 0)
    c, lv = b.category, b.level

    scope_amount = b.in_scope if tier.scope == "in_scope" else b.total
    base = np.maximum(scope_amount - paid_so_far, 0)
    eligible = reason == 0
    below_threshold = eligible & (base < tables.threshold[k, c, lv])
    reason[below_threshold] = _R["below_threshold"]
    active = eligible & ~below_threshold

    claim_deductible = np.where(
        ctx.later_admission, tables.deductible_later[k, c, lv], tables.deductible_first[k, c, lv]
    )
    entering = np.where(active, np.maximum(base - claim_deductible, 0), 0)
    deductible = np.where(active, np.minimum(base, claim_deductible), 0)
    ratio = tables.ratio[k, c, lv]  # (n, bands)
    claim_cap = tables.claim_cap[k, c, lv]
    annual_cap = tables.annual_cap[k, c, lv]

    acc_base_before = np.zeros(n, np.int64)
    acc_paid_before = np.zeros(n, np.int64)
    cap_left = np.full(n, NO_CAP, np.int64)
    pay = np.zeros(n, np.int64)
    tables_out: list[AccumulatorTable] = []
    keyed = [(j, p.accumulator) for j, p in enumerate(tier.buckets) if p.accumulator is not None]
    keys = {spec.key: spec for _, spec in keyed}

    if tier.basis == "per_claim":
        raw = np.minimum(round_div(entering * ratio[:, 0], RATIO_SCALE, tier.rounding), claim_cap)
    else:
        raw = np.zeros(n, np.int64)
    limited_by_claim_cap = active & (raw == claim_cap) & (claim_cap < NO_CAP) & (entering > 0)
    if tier.basis == "per_claim":
        pay = raw.copy()

    for key, spec in keys.items():
        members = active & np.isin(bucket, [j for j, s in keyed if s.key == key])
        grouping = ctx.groupings[spec.per]
        start_base, start_paid, start_claims = grouping.starting(key, ctx.snapshot)
        e_before = start_base[grouping.group] + grouping.exclusive_cumsum(np.where(members, entering, 0))
        e_after = e_before + entering
        if tier.basis == "annual":
            annual_deductible = tables.annual_deductible[k, c, lv]
            value_after = _banded_value(tables, k, ratio, e_after - annual_deductible, tier)
            value_before = _banded_value(tables, k, ratio, e_before - annual_deductible, tier)
            key_raw = value_after - value_before
            # A fund never pays more than its base: in half-even mode a full-ratio band after a band
            # ending on half a fen could otherwise pay one fen above it (docs/settlement.md).
            key_raw = np.minimum(key_raw, entering)
            raw = np.where(members, key_raw, raw)
            ded_annual = np.minimum(e_after, annual_deductible) - np.minimum(e_before, annual_deductible)
            deductible = np.where(members, deductible + ded_annual, deductible)
        key_pay, paid_before = _annual_cap(ctx, grouping, members, raw, annual_cap, start_paid)
        pay = np.where(members, key_pay, pay)
        acc_base_before = np.where(members, e_before, acc_base_before)
        acc_paid_before = np.where(members, paid_before, acc_paid_before)
        cap_left = np.where(members & (annual_cap < NO_CAP), np.maximum(annual_cap - paid_before, 0), cap_left)
        count = grouping.totals(members.astype(np.int64))
        touched = count > 0
        tables_out.append(
            AccumulatorTable(
                key=np.full(int(touched.sum()), key, dtype=object),
                entity=grouping.entity[touched],
                year=grouping.year[touched],
                base=(start_base + grouping.totals(np.where(members, entering, 0)))[touched],
                paid=(start_paid + grouping.totals(np.where(members, key_pay, 0)))[touched],
                claims=(start_claims + count)[touched],
            )
        )

    in_accumulator = active & np.isin(bucket, [j for j, _ in keyed])
    if tier.basis == "annual":
        assert not (active & ~in_accumulator).any(), "the schema requires an accumulator for annual tiers"

    pay = np.where(active, pay, 0)
    reason[active & (pay == 0) & (base == 0)] = _R["nothing_left"]
    reason[active & (pay == 0) & (base > 0) & (raw == 0)] = _R["below_deductible"]
    reason[active & (pay == 0) & (raw > 0)] = _R["cap_reached"]
    reason[active & (pay > 0) & ((pay < raw) | limited_by_claim_cap)] = _R["capped"]

    if not ctx.trace:
        return TierColumns(paid=pay, reason=reason, accumulators=tables_out)
    if tier.basis == "per_claim":
        used_ratio = ratio[:, 0]
    else:
        used_ratio = _marginal_ratio(tables, k, ratio, acc_base_before, tables.annual_deductible[k, c, lv])
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
        acc_base_after=acc_base_before + np.where(in_accumulator, entering, 0),
        acc_paid_before=acc_paid_before,
        acc_paid_after=acc_paid_before + np.where(in_accumulator, pay, 0),
        accumulators=tables_out,
    )


def _banded_value(tables: _Stacked, k: Int64Array, ratio: Int64Array, above: Int64Array, tier: TierPlan) -> Int64Array:
    """P(E) = round(sum over bands of ratio x the part of `above` inside the band), rounded once."""
    low = tables.band_low[k]  # (n, b)
    width = tables.band_width[k]
    inside = np.clip(above[:, None] - low, 0, width)
    numerator = (inside * ratio).sum(axis=1)
    result: Int64Array = round_div(numerator, RATIO_SCALE, tier.rounding)
    return result


def _marginal_ratio(
    tables: _Stacked, k: Int64Array, ratio: Int64Array, e_before: Int64Array, deductible: Int64Array
) -> Int64Array:
    """The ratio of the band the claim starts in (for the trace; the payment uses every band it crosses)."""
    above = e_before - deductible
    low = tables.band_low[k]
    index = np.maximum((above[:, None] >= low).sum(axis=1) - 1, 0)
    result: Int64Array = np.take_along_axis(ratio, index[:, None], axis=1)[:, 0]
    return result


def _grants(tier: TierPlan, ctx: BatchContext, paid_so_far: Int64Array) -> TierColumns:
    b = ctx.batch
    reason = _eligibility(tier, b)
    base = np.maximum(b.total - paid_so_far, 0)
    eligible = reason == 0
    pay = np.where(eligible, np.minimum(b.grant_total, base), 0)
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
