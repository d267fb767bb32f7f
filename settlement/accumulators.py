"""Year-to-date figures (累计): keys, starting values, and segmented cumulative sums over a batch.

An accumulator is kept per (accumulator key, person or household, policy year). It holds the
year-to-date base that entered a fund's calculation, what the fund paid, and how many claims entered it.
In a batch, every figure "before claim k" is a cumulative sum over the earlier claims of the same group in
settlement order plus the group's starting value (what the person already used this year), so a single
claim at a desk and a province-year in the simulator are the same computation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]


class AccKey(NamedTuple):
    key: str
    entity: str  # person id or household id, as the accumulator's `per` says
    year: int


class AccValue(NamedTuple):
    base: int  # fen that entered the fund's calculation this year (after per-claim deductibles)
    paid: int  # fen the fund paid this year
    claims: int  # claims that entered it (for inpatient_admissions: admissions)


ZERO = AccValue(0, 0, 0)
Snapshot = Mapping[AccKey, AccValue]


@dataclass(frozen=True, slots=True, eq=False)
class Grouping:
    """Claims (already in settlement order) grouped by (entity, policy year), order kept within groups."""

    group: Int64Array  # group index per claim
    order: Int64Array  # claim indices sorted by group, stable
    starts: Int64Array  # position in `order` where each group starts
    entity: npt.NDArray[np.object_]  # entity id per group
    year: Int64Array  # policy year per group
    lengths: Int64Array  # claims per group
    singletons: bool  # every group holds one claim (the desk's batch of one): nothing to accumulate

    @classmethod
    def build(cls, entity_code: Int64Array, entity_ids: npt.NDArray[np.object_], year: Int64Array) -> Grouping:
        n = len(entity_code)
        if n <= 1:  # nothing to sort: the desk's batch of one
            zero = np.zeros(n, np.int64)
            return cls(zero, zero, zero, entity_ids[entity_code], year, np.ones(n, np.int64), True)
        y0 = int(year.min())
        span = int(year.max()) - y0 + 1
        raw = entity_code * span + (year - y0)
        order = np.argsort(raw, kind="stable").astype(np.int64)
        sorted_raw = raw[order]
        boundary = np.empty(n, np.bool_)
        boundary[0] = True
        np.not_equal(sorted_raw[1:], sorted_raw[:-1], out=boundary[1:])
        starts = np.flatnonzero(boundary).astype(np.int64)
        group_sorted = np.cumsum(boundary) - 1
        group = np.empty(n, np.int64)
        group[order] = group_sorted
        first = order[starts]
        lengths = np.diff(np.append(starts, n))
        return cls(group, order, starts, entity_ids[entity_code[first]], year[first], lengths, len(starts) == n)

    def __len__(self) -> int:
        return len(self.starts)

    def exclusive_cumsum(self, values: Int64Array) -> Int64Array:
        """Per claim: the sum of `values` over the earlier claims of its group."""
        if self.singletons:
            return np.zeros(len(values), np.int64)
        v = values[self.order]
        running = np.cumsum(v)
        running -= v
        running -= np.repeat(running[self.starts], self.lengths)
        out = np.empty_like(running)
        out[self.order] = running
        return out

    def totals(self, values: Int64Array) -> Int64Array:
        """Per group: the sum of `values`."""
        if len(values) == 0:
            return np.zeros(0, np.int64)
        if self.singletons:
            return values[self.order].astype(np.int64)
        return np.add.reduceat(values[self.order], self.starts).astype(np.int64)

    def starting(self, key: str, snapshot: Snapshot) -> tuple[Int64Array, Int64Array, Int64Array]:
        """The snapshot's (base, paid, claims) for each group, zero where it has none."""
        g = len(self)
        base = np.zeros(g, np.int64)
        paid = np.zeros(g, np.int64)
        claims = np.zeros(g, np.int64)
        if snapshot:
            for i, (entity, year) in enumerate(zip(self.entity, self.year.tolist(), strict=True)):
                value = snapshot.get(AccKey(key, entity, year))
                if value is not None:
                    base[i], paid[i], claims[i] = value
        return base, paid, claims


@dataclass(frozen=True, slots=True, eq=False)
class AccumulatorTable:
    """Accumulator values as columns (a province-year has millions of them)."""

    key: npt.NDArray[np.object_]
    entity: npt.NDArray[np.object_]
    year: Int64Array
    base: Int64Array
    paid: Int64Array
    claims: Int64Array

    @classmethod
    def concat(cls, parts: list[AccumulatorTable]) -> AccumulatorTable:
        if not parts:
            empty = np.zeros(0, np.int64)
            return cls(np.zeros(0, object), np.zeros(0, object), empty, empty, empty, empty)
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__slots__))

    def to_dict(self) -> dict[AccKey, AccValue]:
        return {
            AccKey(k, e, y): AccValue(b, p, c)
            for k, e, y, b, p, c in zip(
                self.key.tolist(),
                self.entity.tolist(),
                self.year.tolist(),
                self.base.tolist(),
                self.paid.tolist(),
                self.claims.tolist(),
                strict=True,
            )
        }

    def __len__(self) -> int:
        return len(self.year)


def merged(start: Snapshot, after: AccumulatorTable) -> dict[AccKey, AccValue]:
    """The full state after a batch: the starting values, overwritten where the batch moved them."""
    state = dict(start)
    state.update(after.to_dict())
    return state
