"""Year-to-date figures (累计): keys, starting values, and segmented cumulative sums over a batch.

An accumulator is kept per (accumulator key, person or household, policy year). It holds the
year-to-date base that entered a fund's calculation, what the fund paid, and how many claims entered it.
In a batch, every figure "before claim k" is a cumulative sum over the earlier claims of the same group in
settlement order plus the group's starting value (what the person already used this year), so a single
claim at a desk and a province-year in the simulator are the same computation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    """Claims grouped by (entity, policy year), in settlement order within each group.

    When the claims already stand in that order (`contiguous`), every group is a run of consecutive claims
    and the cumulative sums need no gather or scatter; the waterfall arranges this for persons.
    """

    group: Int64Array  # group index per claim
    order: Int64Array  # claim indices sorted by (group, settlement rank)
    starts: Int64Array  # position in `order` where each group starts
    entity: npt.NDArray[np.object_]  # entity id per group
    year: Int64Array  # policy year per group
    lengths: Int64Array  # claims per group
    singletons: bool  # every group holds one claim (the desk's batch of one): nothing to accumulate
    contiguous: bool  # `order` is the identity

    @classmethod
    def build(
        cls, entity_code: Int64Array, entity_ids: npt.NDArray[np.object_], year: Int64Array, rank: Int64Array
    ) -> Grouping:
        """`rank` is each claim's position in settlement order (distinct integers)."""
        n = len(entity_code)
        if n <= 1:  # nothing to sort: the desk's batch of one
            zero = np.zeros(n, np.int64)
            return cls(zero, zero, zero, entity_ids[entity_code], year, np.ones(n, np.int64), True, True)
        y0 = int(year.min())
        span = int(year.max()) - y0 + 1
        raw = entity_code * span + (year - y0)
        if int(raw.max()) < (2**62) // n:
            key = raw * n + rank  # distinct keys: any sort gives the same order, so take the fastest
            contiguous = bool((key[1:] > key[:-1]).all())
            order = np.arange(n, dtype=np.int64) if contiguous else np.argsort(key).astype(np.int64)
        else:  # pragma: no cover - more entities x years x claims than one int64 key can hold
            order = np.lexsort((rank, raw)).astype(np.int64)
            contiguous = bool((order == np.arange(n)).all())
        sorted_raw = raw if contiguous else raw[order]
        boundary = np.empty(n, np.bool_)
        boundary[0] = True
        np.not_equal(sorted_raw[1:], sorted_raw[:-1], out=boundary[1:])
        starts = np.flatnonzero(boundary).astype(np.int64)
        group_sorted = np.cumsum(boundary) - 1
        if contiguous:
            group = group_sorted
        else:
            group = np.empty(n, np.int64)
            group[order] = group_sorted
        first = order[starts]
        lengths = np.diff(np.append(starts, n))
        return cls(
            group,
            order,
            starts,
            entity_ids[entity_code[first]],
            year[first],
            lengths,
            len(starts) == n,
            contiguous,
        )

    def __len__(self) -> int:
        return len(self.starts)

    def exclusive_cumsum(self, values: Int64Array) -> Int64Array:
        """Per claim: the sum of `values` over the earlier claims of its group."""
        if self.singletons:
            return np.zeros(len(values), np.int64)
        v = values if self.contiguous else values[self.order]
        running = np.cumsum(v)
        running -= v
        running -= np.repeat(running[self.starts], self.lengths)
        if self.contiguous:
            return running
        out = np.empty_like(running)
        out[self.order] = running
        return out

    def totals(self, values: Int64Array) -> Int64Array:
        """Per group: the sum of `values`."""
        if len(values) == 0:
            return np.zeros(0, np.int64)
        if self.singletons:
            return values[self.order].astype(np.int64)
        return np.add.reduceat(values if self.contiguous else values[self.order], self.starts).astype(np.int64)

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
class KeyColumns:
    """The values of one accumulator key after a batch, for the groups the batch touched. Entity ids and
    years stay in the grouping's arrays until asked for: a province-year touches millions of groups."""

    key: str
    grouping: Grouping
    index: Int64Array  # groups of `grouping`
    base: Int64Array
    paid: Int64Array
    claims: Int64Array


class AccumulatorTable:
    """Accumulator values as columns, one part per key."""

    __slots__ = ("parts",)

    def __init__(self, parts: Sequence[KeyColumns] = ()) -> None:
        self.parts = tuple(parts)

    def _column(self, name: str) -> Int64Array:
        if not self.parts:
            return np.zeros(0, np.int64)
        return np.concatenate([getattr(p, name) for p in self.parts])

    @property
    def key(self) -> npt.NDArray[np.object_]:
        return np.concatenate([np.full(len(p.index), p.key, dtype=object) for p in self.parts] or [np.zeros(0, object)])

    @property
    def entity(self) -> npt.NDArray[np.object_]:
        return np.concatenate([p.grouping.entity[p.index] for p in self.parts] or [np.zeros(0, object)])

    @property
    def year(self) -> Int64Array:
        return np.concatenate([p.grouping.year[p.index] for p in self.parts] or [np.zeros(0, np.int64)])

    @property
    def base(self) -> Int64Array:
        return self._column("base")

    @property
    def paid(self) -> Int64Array:
        return self._column("paid")

    @property
    def claims(self) -> Int64Array:
        return self._column("claims")

    def to_dict(self) -> dict[AccKey, AccValue]:
        out: dict[AccKey, AccValue] = {}
        for p in self.parts:
            entities = p.grouping.entity[p.index].tolist()
            years = p.grouping.year[p.index].tolist()
            for e, y, b, pd_, c in zip(
                entities, years, p.base.tolist(), p.paid.tolist(), p.claims.tolist(), strict=True
            ):
                out[AccKey(p.key, e, y)] = AccValue(b, pd_, c)
        return out

    def __len__(self) -> int:
        return sum(len(p.index) for p in self.parts)


def merged(start: Snapshot, after: AccumulatorTable) -> dict[AccKey, AccValue]:
    """The full state after a batch: the starting values, overwritten where the batch moved them."""
    state = dict(start)
    state.update(after.to_dict())
    return state
