"""Running totals of a simulation: what each partition of claims adds to the report, exact and mergeable.

A partition holds whole households and whole persons (simulation/partitions.py), so every figure of the
report is a sum over partitions: money and claim counts per fund and group, recipients (a person is in one
partition), households whose burden reaches the catastrophic share, claims a cap held down. The two that
are not plain sums are merged exactly too:

- the distribution of patient burden: how many claims had each burden, to the fen (`ExactCounts`), so that
  a percentile is a value some claim really had, whatever the number of partitions or their order;
- the largest gains and losses: each partition's top k people, merged and cut to the top k again, ties
  broken by person id, so the list does not depend on where the partitions were settled.

Merging is commutative and associative, so a run on one machine, partition by partition, and a run on a
Dask cluster, in whatever order workers finish, give the same `Tally`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from simulation.dataset import factorize_text
from simulation.run import Settled

Int64Array = npt.NDArray[np.int64]

DIMENSIONS: Final = ("category", "hospital_level", "region", "disease")
FUND_ORDER: Final = {"basic_insurance": 0, "critical_illness": 1, "temporary_aid": 3, "grants": 4}
MOVERS: Final = 20

Mover = tuple[int, str, str, int, int]  # change, person_id, category, baseline burden, reform burden (fen)


def fund_rank(fund: str) -> tuple[int, str]:
    """Funds in payment order: insurance, critical illness, assistance buckets by name, temporary aid,
    grants."""
    return FUND_ORDER.get(fund, 2), fund


class ExactCounts:
    """How many times each whole number of fen occurred: an exact distribution of any number of values,
    merged in any order. Values from 0 to DENSE - 1 (most burdens: up to 10,485.75 yuan) are counted in
    one array; the rest are kept as sorted (value, count) pairs."""

    DENSE: Final = 1 << 20
    __slots__ = ("_pending", "counts", "dense", "values")

    def __init__(self) -> None:
        self.dense: Int64Array | None = None
        self.values: Int64Array = np.zeros(0, np.int64)
        self.counts: Int64Array = np.zeros(0, np.int64)
        self._pending: list[tuple[Int64Array, Int64Array]] = []

    @classmethod
    def of(cls, values: Int64Array) -> ExactCounts:
        """The counts of `values`, as compact pairs (what a partition sends back)."""
        found = cls()
        found.values, counts = np.unique(np.asarray(values, np.int64), return_counts=True)
        found.counts = counts.astype(np.int64)
        return found

    @property
    def total(self) -> int:
        self._compact()
        dense = int(self.dense.sum()) if self.dense is not None else 0
        return dense + int(self.counts.sum())

    def add(self, other: ExactCounts) -> None:
        """Count `other`'s values here too."""
        other._compact()
        if other.dense is not None:
            self._dense()[:] += other.dense
        small = (other.values >= 0) & (other.values < self.DENSE)
        if small.any():
            np.add.at(self._dense(), other.values[small], other.counts[small])
        if not small.all():
            self._pending.append((other.values[~small], other.counts[~small]))
            if sum(len(v) for v, _ in self._pending) > len(self.values) + 4096:
                self._compact()

    def _dense(self) -> Int64Array:
        if self.dense is None:
            self.dense = np.zeros(self.DENSE, np.int64)
        return self.dense

    def _compact(self) -> None:
        if not self._pending:
            return
        values = np.concatenate([self.values, *(v for v, _ in self._pending)])
        counts = np.concatenate([self.counts, *(c for _, c in self._pending)])
        self._pending = []
        order = np.argsort(values, kind="stable")
        values, counts = values[order], counts[order]
        starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]])) if len(values) else values
        self.values = values[starts]
        self.counts = np.add.reduceat(counts, starts) if len(values) else counts

    def distinct(self) -> tuple[Int64Array, Int64Array]:
        """Every value that occurred, in increasing order, and how often."""
        self._compact()
        below = self.values < 0
        if self.dense is not None:
            present = np.flatnonzero(self.dense).astype(np.int64)
            dense_values, dense_counts = present, self.dense[present]
        else:
            dense_values = dense_counts = np.zeros(0, np.int64)
        return (
            np.concatenate([self.values[below], dense_values, self.values[~below]]),
            np.concatenate([self.counts[below], dense_counts, self.counts[~below]]),
        )

    def percentiles(self, points: tuple[int, ...]) -> list[int]:
        """The value at rank floor((n - 1) * p / 100) of the n values in increasing order, for each p:
        numpy's percentile method "lower", in integer arithmetic. 0 for no values."""
        values, counts = self.distinct()
        n = int(counts.sum())
        if n == 0:
            return [0 for _ in points]
        reached = np.cumsum(counts)
        ranks = np.array([(n - 1) * p // 100 for p in points], np.int64)
        return [int(v) for v in values[np.searchsorted(reached, ranks, side="right")]]

    def __getstate__(self) -> tuple[Int64Array | None, Int64Array, Int64Array]:
        self._compact()
        return self.dense, self.values, self.counts

    def __setstate__(self, state: tuple[Int64Array | None, Int64Array, Int64Array]) -> None:
        self.dense, self.values, self.counts = state
        self._pending = []


@dataclass
class Tally:
    """The report's figures over the claims seen so far; money in fen. Index 0 is the baseline, 1 the
    reform, in every pair below."""

    claims: int = 0
    people: int = 0
    households: int = 0
    # fund (and "total") -> [spent, spent, recipients, recipients, claims capped, claims capped]
    funds: dict[str, list[int]] = field(default_factory=dict)
    # dimension -> group -> [spent, spent, claims]
    groups: dict[str, dict[str, list[int]]] = field(default_factory=lambda: {d: {} for d in DIMENSIONS})
    burden: tuple[ExactCounts, ExactCounts] = field(default_factory=lambda: (ExactCounts(), ExactCounts()))
    catastrophic: list[int] = field(default_factory=lambda: [0, 0])  # households at or over the share
    gains: list[Mover] = field(default_factory=list)  # the largest falls in burden, most first
    losses: list[Mover] = field(default_factory=list)  # the largest rises in burden, most first
    movers: int = MOVERS

    def add(self, other: Tally) -> None:
        """Fold another partition's figures into these (in any order: the result is the same)."""
        self.claims += other.claims
        self.people += other.people
        self.households += other.households
        for fund, figures in other.funds.items():
            mine = self.funds.setdefault(fund, [0] * len(figures))
            for i, value in enumerate(figures):
                mine[i] += value
        for dimension, groups in other.groups.items():
            here = self.groups.setdefault(dimension, {})
            for group, figures in groups.items():
                mine = here.setdefault(group, [0, 0, 0])
                for i, value in enumerate(figures):
                    mine[i] += value
        self.burden[0].add(other.burden[0])
        self.burden[1].add(other.burden[1])
        self.catastrophic = [a + b for a, b in zip(self.catastrophic, other.catastrophic, strict=True)]
        self.gains = heapq.nsmallest(self.movers, [*self.gains, *other.gains], key=_gain_order)
        self.losses = heapq.nsmallest(self.movers, [*self.losses, *other.losses], key=_loss_order)

    def ordered_funds(self) -> list[str]:
        return sorted((f for f in self.funds if f != "total"), key=fund_rank)


def _gain_order(mover: Mover) -> tuple[int, str]:
    return mover[0], mover[1]


def _loss_order(mover: Mover) -> tuple[int, str]:
    return -mover[0], mover[1]


def share_fraction(share: Decimal) -> Fraction:
    """The catastrophic share as an exact fraction (0 < share <= 1, at most four decimal places)."""
    if not share.is_finite() or share <= 0 or share > 1:
        raise ValueError(f"the catastrophic share {share} must be above 0 and at most 1")
    if share.as_tuple().exponent < -4:  # type: ignore[operator]
        raise ValueError(f"the catastrophic share {share} has more than four decimal places")
    return Fraction(share)


def _codes(values: pd.Series) -> tuple[Int64Array, list[str]]:
    """Integer codes of a column and the text of each code."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.cat.codes.to_numpy().astype(np.int64), [str(c) for c in values.cat.categories]
    codes, uniques = pd.factorize(values)
    return codes.astype(np.int64), [str(u) for u in uniques]


def _sums(codes: Int64Array, size: int, values: Int64Array) -> Int64Array:
    out = np.zeros(size, np.int64)
    np.add.at(out, codes, values)
    return out


def tally(
    frame: pd.DataFrame,
    baseline: Settled,
    reform: Settled,
    share: Decimal = Decimal("0.4"),
    movers: int = MOVERS,
    person: tuple[Int64Array, npt.NDArray[np.object_]] | None = None,
    household: tuple[Int64Array, npt.NDArray[np.object_]] | None = None,
) -> Tally:
    """The figures of one partition. `frame`: its rows (person_id, household_id, category, hospital_level,
    region, total, household_income in fen), aligned with both settlements; `person` and `household`:
    their codes and ids when already factorised (a ClaimBatch's), else taken from the frame."""
    fraction = share_fraction(share)
    n = len(frame)
    person_code, person_ids = person or factorize_text(pa.array(frame["person_id"], from_pandas=True))
    household_code, household_ids = household or factorize_text(pa.array(frame["household_id"], from_pandas=True))
    people, households = len(person_ids), len(household_ids)
    settled = (baseline, reform)
    paid = [s.fund_paid for s in settled]
    total = frame["total"].to_numpy(np.int64)
    burden = [total - p for p in paid]

    found = Tally(claims=n, people=people, households=households, movers=movers)
    for fund in sorted(set(baseline.funds) | set(reform.funds), key=fund_rank):
        figures = [0] * 6
        for side, s in enumerate(settled):
            column = s.column(fund)
            figures[side] = int(column.sum())
            figures[2 + side] = _recipients(person_code, people, column)
            figures[4 + side] = int(s.capped_in(fund).sum())
        found.funds[fund] = figures
    found.funds["total"] = [
        int(paid[0].sum()),
        int(paid[1].sum()),
        _recipients(person_code, people, paid[0]),
        _recipients(person_code, people, paid[1]),
        0,
        0,
    ]

    for dimension in DIMENSIONS:
        if dimension == "disease":
            codes, labels = _disease_bucket(baseline, reform)
        else:
            codes, labels = _codes(frame[dimension])
        spent = [_sums(codes, len(labels), p) for p in paid]
        claims = np.bincount(codes, minlength=len(labels))
        found.groups[dimension] = {
            labels[k]: [int(spent[0][k]), int(spent[1][k]), int(claims[k])] for k in np.flatnonzero(claims)
        }

    found.burden = (ExactCounts.of(burden[0]), ExactCounts.of(burden[1]))

    income = np.zeros(households, np.int64)
    income[household_code] = frame["household_income"].to_numpy(np.int64)
    for side in (0, 1):
        household_burden = _sums(household_code, households, burden[side])
        over = household_burden * fraction.denominator >= income * fraction.numerator
        found.catastrophic[side] = int(over.sum())

    before = _sums(person_code, people, burden[0])
    after = _sums(person_code, people, burden[1])
    change = after - before
    first_row = np.full(people, n, np.int64)
    np.minimum.at(first_row, person_code, np.arange(n, dtype=np.int64))
    category_code, category_labels = _codes(frame["category"])
    for which, chosen in (("gains", change < 0), ("losses", change > 0)):
        index = np.flatnonzero(chosen)
        # The top k by size of change; more than k tied at the edge are all kept, then cut by person id.
        if len(index) > movers:
            size = np.abs(change[index])
            edge = np.partition(size, len(size) - movers)[len(size) - movers]
            index = index[size >= edge]
        rows = [
            (
                int(change[i]),
                str(person_ids[i]),
                category_labels[category_code[first_row[i]]],
                int(before[i]),
                int(after[i]),
            )
            for i in index
        ]
        ordered = heapq.nsmallest(movers, rows, key=_gain_order if which == "gains" else _loss_order)
        setattr(found, which, ordered)
    return found


def _recipients(person_code: Int64Array, people: int, paid: Int64Array) -> int:
    """People paid anything by the fund."""
    if people == 0:
        return 0
    hit = np.zeros(people, np.bool_)
    hit[person_code[paid > 0]] = True
    return int(hit.sum())


def _disease_bucket(baseline: Settled, reform: Settled) -> tuple[Int64Array, list[str]]:
    """Which assistance bucket paid a claim (the reform's, else the baseline's); 'none' when neither did."""
    labels = ["none"]
    code = np.zeros(baseline.paid.shape[0], np.int64)
    for settled in (baseline, reform):
        for fund in settled.funds:
            if fund.startswith("medical_assistance/"):
                name = fund.split("/", 1)[1]
                if name not in labels:
                    labels.append(name)
                code[settled.column(fund) > 0] = labels.index(name)
    return code, labels
