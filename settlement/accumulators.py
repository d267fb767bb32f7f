"""Year-to-date figures (累计): keys, starting values, and segmented cumulative sums over a batch.

An accumulator is kept per (accumulator key, person or household, policy year). It holds the
year-to-date base that entered a fund's calculation, what the fund paid, and how many claims entered it.
In a batch, every figure "before claim k" is a cumulative sum over the earlier claims of the same group in
settlement order plus the group's starting value (what the person already used this year), so a single
claim at a desk and a province-year in the simulator are the same computation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
        cls,
        entity_code: Int64Array,
        entity_ids: npt.NDArray[np.object_],
        year: Int64Array,
        time: Int64Array,
        rank: Callable[[], Int64Array],
    ) -> Grouping:
        """Group by (entity, year) in settlement order: by `time`, ties by `rank()`, each claim's position
        in settlement order, which is only computed when the claims are not already in order."""
        n = len(entity_code)
        if n <= 1:  # nothing to sort: the desk's batch of one
            zero = np.zeros(n, np.int64)
            return cls(zero, zero, zero, entity_ids[entity_code], year, np.ones(n, np.int64), True, True)
        y0 = int(year.min())
        span = int(year.max()) - y0 + 1
        raw = entity_code * span + (year - y0)
        step = raw[1:] - raw[:-1]
        if bool(((step > 0) | ((step == 0) & (time[1:] > time[:-1]))).all()):
            # Already in (entity, year, settlement time) order with no ties inside a group: no sort at all.
            return cls._from_sorted(raw, np.arange(n, dtype=np.int64), entity_code, entity_ids, year, True)
        if int(raw.max()) < (2**62) // n:
            key = raw * n + rank()  # distinct keys: any sort gives the same order, so take the fastest
            contiguous = bool((key[1:] > key[:-1]).all())
            order = np.arange(n, dtype=np.int64) if contiguous else np.argsort(key)
        else:  # pragma: no cover - more entities x years x claims than one int64 key can hold
            order = np.lexsort((rank(), raw)).astype(np.int64)
            contiguous = bool((order == np.arange(n)).all())
        return cls._from_sorted(raw, order, entity_code, entity_ids, year, contiguous)

    @classmethod
    def _from_sorted(
        cls,
        raw: Int64Array,
        order: Int64Array,
        entity_code: Int64Array,
        entity_ids: npt.NDArray[np.object_],
        year: Int64Array,
        contiguous: bool,
    ) -> Grouping:
        n = len(raw)
        sorted_raw = raw if contiguous else raw[order]
        boundary = np.empty(n, np.bool_)
        boundary[0] = True
        np.not_equal(sorted_raw[1:], sorted_raw[:-1], out=boundary[1:])
        starts = np.flatnonzero(boundary)
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

    def totals(self, values: Int64Array | npt.NDArray[np.bool_]) -> Int64Array:
        """Per group: the sum of `values`."""
        if len(values) == 0:
            return np.zeros(0, np.int64)
        if self.singletons:
            return values[self.order].astype(np.int64)
        ordered = values if self.contiguous else values[self.order]
        result: Int64Array = np.add.reduceat(ordered, self.starts, dtype=np.int64)
        return result

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
    """The values of one accumulator key after a batch, for the groups the batch touched.

    Built from the per-claim amounts and summed per group only when first asked for: a province-year
    touches millions of groups, and a simulation that only wants payments never asks.
    """

    key: str
    grouping: Grouping
    start: tuple[Int64Array, Int64Array, Int64Array]  # per group: base, paid, claims before the batch
    entering: Int64Array  # per claim: what entered the accumulator's base (0 for claims outside it)
    paid_per_claim: Int64Array  # per claim: what the fund paid under this accumulator
    members: npt.NDArray[np.bool_]  # per claim: counted in this accumulator
    _sums: list[tuple[Int64Array, Int64Array, Int64Array, Int64Array]] = field(default_factory=list)

    def _summed(self) -> tuple[Int64Array, Int64Array, Int64Array, Int64Array]:
        if not self._sums:
            g = self.grouping
            count = g.totals(self.members)
            index = np.flatnonzero(count)
            start_base, start_paid, start_claims = self.start
            self._sums.append(
                (
                    index,
                    (start_base + g.totals(self.entering))[index],
                    (start_paid + g.totals(self.paid_per_claim))[index],
                    (start_claims + count)[index],
                )
            )
        return self._sums[0]

    @property
    def index(self) -> Int64Array:
        """Groups of `grouping` that the batch moved."""
        return self._summed()[0]

    @property
    def base(self) -> Int64Array:
        return self._summed()[1]

    @property
    def paid(self) -> Int64Array:
        return self._summed()[2]

    @property
    def claims(self) -> Int64Array:
        return self._summed()[3]


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
