"""The waterfall: runs a plan's tiers in payment order over a batch of claims. Nothing else decides order.

One entry point, `settle`, serves the billing desk (a batch of one, with the person's year-to-date figures
as the starting snapshot) and the simulator (a province-year from zero). Claims are put in settlement order
once (settlement time, then claim id); each tier sees what the tiers before it left unpaid on each claim.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from settlement.accumulators import AccumulatorTable, Grouping, KeyColumns, Snapshot
from settlement.claims import ClaimBatch
from settlement.codes import VISIT_CODE
from settlement.errors import ClaimError, FieldError
from settlement.plan import ADMISSIONS_KEY, Int64Array, Per, Plan
from settlement.tiers import TIER_KINDS, BatchContext, TierColumns

_INPATIENT: Final = VISIT_CODE["inpatient"]


@dataclass(frozen=True, slots=True, eq=False)
class BatchResult:
    """Everything a batch settlement produced, indexed like the batch the caller passed in."""

    plan: Plan
    batch: ClaimBatch
    tiers: tuple[TierColumns, ...]
    year: Int64Array  # policy year of each claim
    admissions_before: Int64Array  # inpatient admissions of the person earlier in the policy year
    accumulators: AccumulatorTable  # values after the batch, for every accumulator it touched

    @property
    def fund_paid(self) -> Int64Array:
        """基金支付总额 fund_pay_sumamt per claim: every tier, temporary aid and grants included."""
        total = np.zeros(len(self.batch), np.int64)
        for columns in self.tiers:
            total += columns.paid
        return total

    @property
    def patient_burden(self) -> Int64Array:
        """个人负担总金额 psn_part_amt per claim: what is left for the patient."""
        result: Int64Array = self.batch.total - self.fund_paid
        return result


def policy_years(days: npt.NDArray[np.datetime64], start: tuple[int, int]) -> Int64Array:
    """Policy year of each date: the calendar year in which its policy year began."""
    if len(days) == 0:
        return np.zeros(0, np.int64)
    # Look every claim up in a table of the years of the days the batch spans.
    first, table = _year_table(start, int(days.min().view(np.int64)), int(days.max().view(np.int64)))
    result: Int64Array = table[days.view(np.int64) - first]
    return result


@functools.lru_cache(maxsize=64)
def _year_table(start: tuple[int, int], first: int, last: int) -> tuple[int, Int64Array]:
    """Policy year of each day from `first` to `last` (days since 1970-01-01); cached, as a desk's claims
    fall in the same few days again and again."""
    month, day = start
    span = np.arange(first, last + 1, dtype=np.int64).astype("datetime64[D]")
    calendar = span.astype("datetime64[Y]")
    year_start = (calendar.astype("datetime64[M]") + (month - 1)).astype("datetime64[D]") + (day - 1)
    table: Int64Array = calendar.astype(np.int64) + 1970 - (span < year_start)
    table.flags.writeable = False
    return first, table


def _needs_households(plan: Plan) -> bool:
    return any(b.accumulator is not None and b.accumulator.per == "household" for t in plan.tiers for b in t.buckets)


def settlement_rank(batch: ClaimBatch) -> Int64Array:
    """Each claim's position in settlement order: by settlement time, ties broken by claim id."""
    n = len(batch)
    time = batch.settled_at.view(np.int64)
    if n <= 1 or bool((time[1:] > time[:-1]).all()):
        return np.arange(n, dtype=np.int64)
    order = np.argsort(time)  # ties are put in claim-id order below, so the sort need not be stable
    sorted_time = time[order]
    tie = sorted_time[1:] == sorted_time[:-1]
    if tie.any():
        # Claims settled at the same instant: order each such run by claim id, leaving the rest in place.
        involved = np.zeros(n, np.bool_)
        involved[1:] |= tie
        involved[:-1] |= tie
        tied = order[involved]
        _, by_id = np.unique(batch.claim_id[tied].astype(str), return_inverse=True)
        order[involved] = tied[np.lexsort((by_id, time[tied]))]
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    return rank


@functools.lru_cache(maxsize=256)
def _days(first: dt.date, last: dt.date | None) -> tuple[np.datetime64, np.datetime64]:
    return np.datetime64(first, "D"), np.datetime64(last or dt.date.max, "D")


def _check_in_force(plan: Plan, batch: ClaimBatch) -> None:
    first, last = _days(plan.valid_from, plan.valid_until)
    outside = (batch.discharged_on < first) | (batch.discharged_on > last)
    if outside.any():
        until = plan.valid_until or "further notice"
        raise ClaimError(
            [
                FieldError(
                    f"claims[{i}].discharged_on",
                    f"{batch.discharged_on[i]} is outside {plan.policy_id}@{plan.version} "
                    f"(in force {plan.valid_from} to {until}); the discharge date picks the policy",
                )
                for i in np.flatnonzero(outside)[:20]
            ]
        )


def settle(plan: Plan, batch: ClaimBatch, start: Snapshot | None = None, trace: bool = True) -> BatchResult:
    """Settle every claim of `batch` under `plan`, starting from the year-to-date figures `start`.

    With `trace=False` only payments and reason codes are kept (the simulator's province-years).
    """
    _check_in_force(plan, batch)
    snapshot: Snapshot = start or {}
    year = policy_years(batch.discharged_on, plan.policy_year_start)
    time = batch.settled_at.view(np.int64)
    ranks: list[Int64Array] = []

    def rank() -> Int64Array:  # computed at most once, and only when some grouping needs sorting
        if not ranks:
            ranks.append(settlement_rank(batch))
        return ranks[0]

    # Put the claims in (person, policy year, settlement) order, so that every person-year is a run of
    # consecutive claims and its year-to-date sums are plain cumulative sums.
    by_person = Grouping.build(batch.person, batch.person_ids, year, time, rank)
    if by_person.contiguous:
        order, in_order = None, batch
    else:
        order = by_person.order
        in_order, year, time = batch.take(order, with_ids=False), year[order], time[order]
        ranks[:] = [rank()[order]] if ranks else []
        by_person = Grouping.build(in_order.person, in_order.person_ids, year, time, rank)
    groupings: dict[Per, Grouping] = {"person": by_person}
    if _needs_households(plan):
        groupings["household"] = Grouping.build(in_order.household, in_order.household_ids, year, time, rank)

    # First or later inpatient admission of the person in the policy year (per-claim deductibles).
    by_person = groupings["person"]
    inpatient = (in_order.visit == _INPATIENT).view(np.int8).astype(np.int64)
    _, _, start_admissions = by_person.starting(ADMISSIONS_KEY, snapshot)
    admissions_before = start_admissions[by_person.group] + by_person.exclusive_cumsum(inpatient)
    later = (inpatient == 1) & (admissions_before >= 1)

    ctx = BatchContext(in_order, year, later, groupings, snapshot, trace)
    paid_so_far = np.zeros(len(batch), np.int64)
    columns: list[TierColumns] = []
    for tier in plan.tiers:
        result = TIER_KINDS[tier.basis](tier, ctx, paid_so_far)
        paid_so_far = paid_so_far + result.paid
        columns.append(result)

    zeros = np.zeros(len(by_person), np.int64)
    zero_claims = np.zeros(len(batch), np.int64)
    admissions = KeyColumns(
        ADMISSIONS_KEY, by_person, (zeros, zeros, start_admissions), zero_claims, zero_claims, inpatient == 1
    )
    accumulators = AccumulatorTable([admissions, *(part for c in columns for part in c.accumulators)])

    if order is None:
        return BatchResult(plan, batch, tuple(columns), year, admissions_before, accumulators)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return BatchResult(
        plan,
        batch,
        tuple(c.reorder(inverse) for c in columns),
        year[inverse],
        admissions_before[inverse],
        accumulators,
    )
