"""An independent, deliberately simple settlement: the oracle the engine is tested against.

Written from `shared/domain/settlement-rules.md` (§3) and `docs/settlement.md`, working on the pydantic
`Policy` objects (never the compiled numpy `Plan`). Money is `Decimal` yuan, one claim at a time in
settlement order, one tier at a time, with plain loops and dictionaries. Nothing here imports the engine's
tiers, waterfall or accumulators; only the claim and policy records are shared.

Choices the documents leave open, taken as the engine documents them:
- a later admission's per-claim deductible is `deductible × later_admission_factor` (rounded), and a tilt's
  `deductible_factor` then applies to that (rounded again), as `policies/compile.py` does (the documents
  do not say which of the two factors comes first; the two orders can differ by a fen);
- the reason `below_deductible` is given whenever the tier applied, had something to cover and its formula
  gave 0 (a 0 ratio or a 0 per-claim cap included); `capped` when a cap cut a payment that is still
  above 0; a claim with nothing left (base 0) is `nothing_left` even under a threshold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext

from policies.library import Library
from policies.schema import AmountTable, CapTable, Deductible, Policy, RatioTable, Tier
from settlement.claims import Claim

ZERO = Decimal("0.00")
FEN = Decimal("0.01")
STAGE_ORDER = ("basic_insurance", "supplementary_insurance", "medical_assistance", "temporary_aid", "grants")
ADMISSIONS = "inpatient_admissions"


# --------------------------------------------------------------------------------------------- helpers


def round_fen(amount: Decimal, mode: str) -> Decimal:
    """Round once to the fen, ties up (四舍五入) or to even."""
    rounding = ROUND_HALF_UP if mode == "half_up" else ROUND_HALF_EVEN
    return amount.quantize(FEN, rounding=rounding)


def to_fen(amount: Decimal) -> int:
    fen = amount * 100
    assert fen == fen.to_integral_value(), amount
    return int(fen)


def from_fen(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(FEN)


def policy_year(day: dt.date, year_start: str) -> int:
    month, start_day = (int(part) for part in year_start.split("-"))
    return day.year if (day.month, day.day) >= (month, start_day) else day.year - 1


def settlement_key(claim: Claim) -> tuple[dt.datetime, str]:
    """Settlement order: settlement time (discharge day at 00:00 when absent), then claim id."""
    time = claim.settled_at or dt.datetime.combine(claim.discharged_on, dt.time())
    return (time, claim.claim_id)


def in_settlement_order(claims: Sequence[Claim]) -> list[int]:
    return sorted(range(len(claims)), key=lambda i: settlement_key(claims[i]))


def code_is_below(code: str, parent: str) -> bool:
    """An ICD-10 code matches itself and every subdivision of it (C50 matches C50.9; C91.0 matches C91.00)."""
    if code == parent:
        return True
    if not code.startswith(parent):
        return False
    following = code[len(parent)]
    if "." in parent:
        return following.isdigit() or following == "x"
    return following == "."


def on_disease_list(code: str, library: Library, list_id: str) -> bool:
    for entry in library.disease_lists[list_id].entries:
        for parent in entry.codes:
            if code_is_below(code, parent):
                return True
        for low, high in entry.ranges:
            if low <= code and (code <= high or code_is_below(code, high)):
                return True
    return False


def composed_tiers(policy: Policy, library: Library) -> list[tuple[Policy, Tier]]:
    """Included policies' tiers first, then the policy's own; then stably in stage order."""
    tiers: list[tuple[Policy, Tier]] = []
    for include in policy.includes:
        tiers.extend(composed_tiers(library.policies[include], library))
    tiers.extend((policy, tier) for tier in policy.tiers)
    return sorted(tiers, key=lambda pair: STAGE_ORDER.index(pair[1].stage))


def accumulator_per(policy: Policy, library: Library) -> dict[str, str]:
    """Accumulator key -> 'person' or 'household', as declared by the policy or what it includes."""
    per: dict[str, str] = {}
    for include in policy.includes:
        per.update(accumulator_per(library.policies[include], library))
    per.update({key: decl.per for key, decl in policy.accumulators.items()})
    return per


def lookup(table: AmountTable | CapTable | Deductible | RatioTable, category: str, level: int):
    """A category's value wins over the hospital level's, which wins over the default."""
    if category in table.by_category:
        return table.by_category[category]
    if level in table.by_level:
        return table.by_level[level]
    return table.default


# -------------------------------------------------------------------------------- effective parameters


@dataclass(frozen=True)
class Params:
    """What one tier uses for one claim, after the tables and the tilts."""

    bucket: int
    accumulator: str | None
    threshold: Decimal
    deductible_first: Decimal
    deductible_later: Decimal
    annual_deductible: Decimal
    bands: tuple[tuple[Decimal, Decimal | None, Decimal], ...]  # (from, to or None, ratio)
    claim_cap: Decimal | None
    annual_cap: Decimal | None

    @property
    def annual_signature(self) -> tuple[object, ...]:
        """What decides P(E) and the annual cap: equal signatures mean constant parameters."""
        return (self.annual_deductible, self.bands, self.annual_cap)


def merged_parameters(tier: Tier, bucket_index: int) -> dict[str, object]:
    """A bucket's own parameters, the tier's where the bucket gives none."""
    names = ("accumulator", "threshold", "deductible", "ratio", "caps")
    if tier.buckets is None:
        return {name: getattr(tier, name) for name in names}
    bucket = tier.buckets[bucket_index]
    return {name: getattr(bucket, name) if getattr(bucket, name) is not None else getattr(tier, name) for name in names}


def effective_params(tier: Tier, bucket_index: int, claim: Claim, mode: str) -> Params:
    p = merged_parameters(tier, bucket_index)
    category, level = claim.category, claim.hospital_level

    threshold = lookup(p["threshold"], category, level) if p["threshold"] is not None else ZERO
    first = later = annual = ZERO
    deductible = p["deductible"]
    if deductible is not None:
        assert isinstance(deductible, Deductible)
        value = lookup(deductible, category, level)
        if deductible.basis == "per_claim":
            first = value
            later = value
            if deductible.later_admission_factor is not None:
                later = round_fen(value * deductible.later_admission_factor, mode)
        else:
            annual = value

    ratio = p["ratio"]
    assert isinstance(ratio, RatioTable)
    if ratio.bands is not None:
        bands = [[b.from_, b.to, b.ratio] for b in ratio.bands]
    else:
        bands = [[ZERO, None, lookup(ratio, category, level)]]

    caps = p["caps"]
    claim_cap = annual_cap = None
    if caps is not None:
        if caps.per_claim is not None:
            claim_cap = lookup(caps.per_claim, category, level)
        if caps.annual is not None:
            annual_cap = lookup(caps.annual, category, level)

    for tilt in tier.tilts:
        if category not in tilt.categories:
            continue
        if tilt.deductible_factor is not None:
            first = round_fen(first * tilt.deductible_factor, mode)
            later = round_fen(later * tilt.deductible_factor, mode)
            annual = round_fen(annual * tilt.deductible_factor, mode)
        if tilt.ratio_add is not None:
            for band in bands:
                raised = min(band[2] + tilt.ratio_add, tilt.ratio_max)
                band[2] = max(band[2], raised)  # a tilt never lowers a ratio
        if tilt.remove_caps:
            claim_cap = annual_cap = None

    return Params(
        bucket=bucket_index,
        accumulator=p["accumulator"],
        threshold=threshold,
        deductible_first=first,
        deductible_later=later,
        annual_deductible=annual,
        bands=tuple((low, high, r) for low, high, r in bands),
        claim_cap=claim_cap,
        annual_cap=annual_cap,
    )


def banded_value(params: Params, year_to_date: Decimal, mode: str) -> Decimal:
    """P(E): the banded ratios over the part of E above the annual deductible, rounded once."""
    above = year_to_date - params.annual_deductible
    exact = Decimal(0)
    for low, high, ratio in params.bands:
        top = above if high is None else min(above, high)
        if top > low:
            exact += ratio * (top - low)
    return round_fen(exact, mode)


# ------------------------------------------------------------------------------------------- settle


@dataclass
class TierOutcome:
    paid: int = 0  # fen
    reason: str = "paid"
    base: int = 0
    params: Params | None = None
    acc: tuple[str, str, int] | None = None  # (key, entity, year) the claim entered
    paid_before: int = 0  # the accumulator's paid before this claim (fen)
    raw: int = 0  # the formula's payment before the annual cap (fen)
    clamped: bool = False  # P(E_after) - P(E_before) exceeded the claim's base and was cut to it


@dataclass
class Outcome:
    tier_ids: list[str]
    tiers: list[tuple[Policy, Tier]]
    order: list[int]  # claim indices in settlement order
    years: list[int]
    outcomes: list[list[TierOutcome]]  # [claim in the caller's order][tier]
    accumulators: dict[tuple[str, str, int], tuple[int, int, int]] = field(default_factory=dict)

    def paid(self, i: int, t: int) -> int:
        return self.outcomes[i][t].paid

    def paid_matrix(self) -> list[list[int]]:
        return [[o.paid for o in row] for row in self.outcomes]

    def reason_matrix(self) -> list[list[str]]:
        return [[o.reason for o in row] for row in self.outcomes]


def why_not(tier: Tier, claim: Claim) -> str | None:
    """The first eligibility rule the claim fails, or None."""
    rules = tier.eligibility

    def allowed(values: Sequence[object] | None, value: object) -> bool:
        return not values or value in values

    if not allowed(rules.schemes, claim.insurance_scheme):
        return "not_insured" if claim.insurance_scheme == "none" else "scheme_not_covered"
    if not allowed(rules.visit_types, claim.visit_type):
        return "visit_type_not_covered"
    if not allowed(rules.hospital_levels, claim.hospital_level):
        return "hospital_level_not_covered"
    approved = rules.accepts_approval and claim.assistance_approval is not None
    if not allowed(rules.categories, claim.category) and not approved:
        return "category_not_eligible"
    if rules.excludes_third_party_liability and claim.third_party_liability:
        return "third_party_liability"
    return None


def choose_bucket(tier: Tier, claim: Claim, library: Library) -> int | None:
    if tier.buckets is None:
        return 0
    for j, bucket in enumerate(tier.buckets):
        if bucket.disease_list is None:
            return j
        codes = claim.diagnoses if bucket.match == "any" else claim.diagnoses[:1]
        if any(on_disease_list(code, library, bucket.disease_list) for code in codes):
            return j
    return None


def settle_reference(
    policy: Policy,
    library: Library,
    claims: Sequence[Claim],
    snapshot: Mapping[tuple[str, str, int], tuple[int, int, int]] | None = None,
) -> Outcome:
    """Settle `claims` under `policy`; `snapshot` maps (key, entity, year) to (base, paid, claims) in fen."""
    with localcontext() as ctx:
        ctx.prec = 60
        return _settle(policy, library, claims, dict(snapshot or {}))


def _settle(
    policy: Policy,
    library: Library,
    claims: Sequence[Claim],
    snapshot: dict[tuple[str, str, int], tuple[int, int, int]],
) -> Outcome:
    tiers = composed_tiers(policy, library)
    per = accumulator_per(policy, library)
    order = in_settlement_order(claims)
    years = [policy_year(c.discharged_on, policy.policy_year_start) for c in claims]
    outcomes: list[list[TierOutcome]] = [[] for _ in claims]

    # Year-to-date figures in yuan: (key, entity, year) -> [base, paid, claims]
    state: dict[tuple[str, str, int], list[Decimal | int]] = {}
    touched: set[tuple[str, str, int]] = set()

    def figures(acc: tuple[str, str, int]) -> list[Decimal | int]:
        if acc not in state:
            base, paid, count = snapshot.get(acc, (0, 0, 0))
            state[acc] = [from_fen(base), from_fen(paid), count]
        return state[acc]

    for i in order:
        claim = claims[i]
        year = years[i]
        admissions = figures((ADMISSIONS, claim.person_id, year))
        later_admission = claim.visit_type == "inpatient" and int(admissions[2]) >= 1
        paid_so_far = ZERO

        for origin, tier in tiers:
            mode = origin.rounding
            out = TierOutcome()
            outcomes[i].append(out)

            if tier.stage == "grants":
                granted = sum((g.amount for g in claim.grants), ZERO)
                left = max(claim.total - paid_so_far, ZERO)
                out.base = to_fen(left)
                reason = why_not(tier, claim)
                if reason is not None:
                    out.reason = reason
                    continue
                pay = min(granted, left)
                out.paid = out.raw = to_fen(pay)
                if granted == 0:
                    out.reason = "no_grant"
                elif left == 0:
                    out.reason = "nothing_left"
                elif pay < granted:
                    out.reason = "capped"
                paid_so_far += pay
                continue

            scope_amount = claim.in_scope if tier.scope == "in_scope" else claim.total
            base = max(scope_amount - paid_so_far, ZERO)
            out.base = to_fen(base)
            reason = why_not(tier, claim)
            bucket = choose_bucket(tier, claim, library) if reason is None else None
            if reason is None and bucket is None:
                reason = "disease_not_listed"
            if reason is not None:
                out.reason = reason
                continue
            assert bucket is not None
            params = effective_params(tier, bucket, claim, mode)
            out.params = params

            # Threshold: a trigger; below it the tier pays nothing and the claim does not enter the year.
            # (With nothing left at all the reason is `nothing_left`, and the claim counts as any other.)
            if 0 < base < params.threshold:
                out.reason = "below_threshold"
                continue

            deductible = params.deductible_later if later_admission else params.deductible_first
            entering = max(base - deductible, ZERO)
            cut_by_claim_cap = False

            acc = None
            if params.accumulator is not None:
                owner = claim.person_id if per[params.accumulator] == "person" else claim.household_id
                acc = (params.accumulator, owner, year)
                out.acc = acc

            if tier.basis == "per_claim":
                raw = round_fen(entering * params.bands[0][2], mode)
                if params.claim_cap is not None and raw > params.claim_cap:
                    raw = params.claim_cap
                    cut_by_claim_cap = True
            else:
                assert acc is not None, "an annual tier has an accumulator"
                e_before = figures(acc)[0]
                e_after = e_before + entering
                raw = banded_value(params, e_after, mode) - banded_value(params, e_before, mode)
                if raw > entering:  # docs/settlement.md: a fund never pays more than its base
                    raw = entering
                    out.clamped = True

            pay = raw
            if acc is not None:
                year_to_date = figures(acc)
                paid_before = year_to_date[1]
                out.paid_before = to_fen(paid_before)
                if params.annual_cap is not None:
                    pay = min(raw, max(ZERO, params.annual_cap - paid_before))
                year_to_date[0] += entering
                year_to_date[1] += pay
                year_to_date[2] += 1
                touched.add(acc)

            out.raw = to_fen(raw)
            out.paid = to_fen(pay)
            if pay == 0:
                if base == 0:
                    out.reason = "nothing_left"
                elif raw == 0:
                    out.reason = "below_deductible"
                else:
                    out.reason = "cap_reached"
            elif pay < raw or cut_by_claim_cap:
                out.reason = "capped"
            paid_so_far += pay

        if claim.visit_type == "inpatient":
            admissions[2] = int(admissions[2]) + 1
            touched.add((ADMISSIONS, claim.person_id, year))

    result: dict[tuple[str, str, int], tuple[int, int, int]] = {}
    for acc in touched:
        base, paid, count = state[acc]
        if acc[0] == ADMISSIONS:
            result[acc] = (0, 0, int(count))
        else:
            result[acc] = (to_fen(base), to_fen(paid), int(count))

    return Outcome(
        tier_ids=[tier.id for _, tier in tiers],
        tiers=tiers,
        order=order,
        years=years,
        outcomes=outcomes,
        accumulators=result,
    )
