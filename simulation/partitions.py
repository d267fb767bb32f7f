"""A claims dataset split into partitions of whole households, each read and checked on its own.

A province-year does not have to fit in memory: the simulator settles one partition at a time (or one per
Dask worker) and keeps only running totals. That is exact only if nothing a claim's settlement depends on
crosses a partition's edge: a person's year-to-date figures (every claim of the person) and a household's
(temporary aid, per household). So a partition is a range of rows cut only where no household and no
person seen before the cut appears again after it.

Planning reads just the `household_id` and `person_id` columns, row group by row group, and keeps one
64-bit hash and one row number per run of equal ids (a dataset stored in household order, as Doudi writes
one, has a run per household and per person). A household that comes back later in the file forbids every
cut between its first and its last row; two ids with the same hash can only forbid cuts, never allow one,
so a hash collision costs memory, not exactness. A file that is not in household order still settles
exactly, in fewer, larger partitions; at worst, as one.

Each partition is then read alone (only the Parquet row groups it spans) and checked with every rule of
`simulation.dataset`; its problems name the row of the whole dataset. A CSV file is read into memory
whole (CSV is for small datasets) and split the same way.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simulation.dataset import (
    COLUMNS,
    Dataset,
    DatasetError,
    RowProblem,
    _read_csv,
    dataset_from_table,
)

Int64Array = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]

PART_CLAIMS: Final = 250_000
"""Claims per partition by default: about 0.3 GB of working memory while a partition is settled."""


@dataclass(frozen=True, slots=True)
class Piece:
    """Rows [start, stop) of one Parquet file."""

    file: str
    start: int
    stop: int


@dataclass(frozen=True, slots=True, eq=False)
class Part:
    """One partition: whole households, `claims` rows from dataset row `first_row` (0-based) on."""

    number: int
    first_row: int
    claims: int
    source: str
    pieces: tuple[Piece, ...] = ()  # where its rows are, for a Parquet dataset
    table: pa.Table | None = None  # its rows, for a dataset read into memory (CSV)


@dataclass(frozen=True, slots=True, eq=False)
class Partitioned:
    """A dataset's partitions, in dataset order."""

    source: str
    parts: tuple[Part, ...]
    claims: int
    files: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.parts)


def partition(path: Path | str, part_claims: int = PART_CLAIMS) -> Partitioned:
    """Plan the partitions of the dataset at `path` (a .parquet file, a folder of .parquet parts, or a
    .csv file): about `part_claims` claims each, cut only between households. Raise DatasetError for a
    dataset that cannot be read or whose columns are wrong; row-level problems surface when each
    partition is read."""
    if part_claims < 1:
        raise ValueError("part_claims must be at least 1")
    path = Path(path)
    source = str(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
        if not files:
            raise DatasetError(source, [RowProblem(None, "file", "the folder holds no .parquet files")])
        return _plan_parquet(source, files, part_claims)
    if path.suffix.lower() == ".parquet":
        return _plan_parquet(source, [path], part_claims)
    if path.suffix.lower() == ".csv":
        return partition_table(_read_csv(path), source, part_claims)
    raise DatasetError(source, [RowProblem(None, "file", "expected a .parquet or .csv file, or a folder of parts")])


def partition_table(table: pa.Table, source: str, part_claims: int = PART_CLAIMS) -> Partitioned:
    """Partitions of claims already in memory (an Arrow table with the dataset's columns)."""
    _check_names(source, table.column_names)
    runs = _Runs(source)
    runs.add(table, 0)
    cuts = _cuts(runs, table.num_rows, [], part_claims)
    parts = tuple(
        Part(i, start, stop - start, source, table=table.slice(start, stop - start))
        for i, (start, stop) in enumerate(itertools.pairwise(cuts))
    )
    return Partitioned(source, parts, table.num_rows)


def read_part(part: Part) -> Dataset:
    """The partition's claims, checked (problems name the dataset's rows)."""
    if part.table is not None:
        table = part.table
    else:
        table = pa.concat_tables([_read_piece(piece, part.source) for piece in part.pieces])
    return dataset_from_table(table, part.source, part.first_row)


# --------------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------------


def _check_names(source: str, names: list[str]) -> None:
    names = [n for n in names if not n.startswith("__index_level_")]
    problems = [RowProblem(None, n, "the column is missing") for n in COLUMNS if n not in names]
    problems += [RowProblem(None, n, "unknown column") for n in names if n not in COLUMNS]
    if problems:
        raise DatasetError(source, problems)


class _Runs:
    """Runs of equal household ids and of equal person ids: where each starts and its id's hash."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.starts: dict[str, list[Int64Array]] = {"household_id": [], "person_id": []}
        self.hashes: dict[str, list[UInt64Array]] = {"household_id": [], "person_id": []}

    def add(self, table: pa.Table, offset: int) -> None:
        """The runs of `table`, whose first row is row `offset` of the dataset. A run cut by the edge of
        a row group is two runs of the same id, which constrains nothing more."""
        n = table.num_rows
        if n == 0:
            return
        for name in self.starts:
            values = table.column(name)
            if pa.types.is_dictionary(values.type):
                values = values.cast(values.type.value_type)
            try:
                text = pc.fill_null(values.cast(pa.string()), "")
            except pa.ArrowException:
                raise DatasetError(self.source, [RowProblem(None, name, f"must be text, not {values.type}")]) from None
            change = np.asarray(pc.not_equal(text.slice(1), text.slice(0, n - 1)).to_numpy(zero_copy_only=False))
            heads = np.concatenate([[0], np.flatnonzero(change) + 1]).astype(np.int64)
            head_text = np.asarray(text.take(pa.array(heads)).to_numpy(zero_copy_only=False), dtype=object)
            self.starts[name].append(heads + offset)
            self.hashes[name].append(pd.util.hash_array(head_text, categorize=False))


def _blocked_until(starts: Int64Array, hashes: UInt64Array, rows: int) -> Int64Array:
    """For each run (in row order): the largest row end of any run at or before it whose id appears again
    later; a cut at row c is allowed when the value for the last run starting before c is at most c."""
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1:] = rows
    _, first_in_reverse, inverse = np.unique(hashes[::-1], return_index=True, return_inverse=True)
    last_run = len(hashes) - 1 - first_in_reverse  # the last run of each id
    blocked = ends[last_run][inverse[::-1]]
    np.maximum.accumulate(blocked, out=blocked)
    return blocked


def _cuts(runs: _Runs, rows: int, boundaries: list[int], part_claims: int) -> list[int]:
    """Row numbers where partitions start, and `rows` at the end: allowed cuts, about `part_claims` apart,
    preferring a file's boundary when one is near."""
    if rows == 0:
        return [0, 0]
    household_starts = np.concatenate(runs.starts["household_id"])
    allowed = household_starts[household_starts > 0]
    for name in runs.starts:
        starts = np.concatenate(runs.starts[name])
        blocked = _blocked_until(starts, np.concatenate(runs.hashes[name]), rows)
        before = np.searchsorted(starts, allowed, side="left") - 1  # the last run starting before the cut
        allowed = allowed[blocked[before] <= allowed]
        del starts, blocked
    allowed = np.unique(allowed)
    preferred = np.intersect1d(allowed, np.asarray(boundaries, np.int64))
    cuts = [0]
    while cuts[-1] < rows:
        start = cuts[-1]
        target = start + part_claims
        if target >= rows:
            cuts.append(rows)
            break
        near = preferred[(preferred > start + part_claims // 2) & (preferred <= start + part_claims * 3 // 2)]
        if len(near):
            cuts.append(int(near[np.argmin(np.abs(near - target))]))
            continue
        below = allowed[(allowed > start) & (allowed <= target)]
        if len(below):
            cuts.append(int(below[-1]))
            continue
        above = allowed[allowed > target]
        cuts.append(int(above[0]) if len(above) else rows)
    return cuts


def _plan_parquet(source: str, files: list[Path], part_claims: int) -> Partitioned:
    try:
        opened = [pq.ParquetFile(f) for f in files]
    except (OSError, pa.ArrowException) as err:
        raise DatasetError(source, [RowProblem(None, "file", f"cannot read it as Parquet: {err}")]) from None
    first = opened[0].schema_arrow
    for path, handle in zip(files[1:], opened[1:], strict=True):
        if not handle.schema_arrow.equals(first):
            raise DatasetError(
                source, [RowProblem(None, "file", f"{path.name} has other columns or types than {files[0].name}")]
            )
    _check_names(source, first.names)
    runs = _Runs(source)
    offsets: list[int] = []
    row = 0
    for handle in opened:
        offsets.append(row)
        for group in range(handle.num_row_groups):
            try:
                table = handle.read_row_group(group, columns=["household_id", "person_id"])
            except (OSError, pa.ArrowException) as err:
                raise DatasetError(source, [RowProblem(None, "file", f"cannot read it: {err}")]) from None
            runs.add(table, row)
            row += table.num_rows
    cuts = _cuts(runs, row, offsets[1:], part_claims)
    del runs
    names = [str(f) for f in files]
    file_rows = [h.metadata.num_rows for h in opened]
    parts = []
    for number, (start, stop) in enumerate(itertools.pairwise(cuts)):
        pieces = []
        for name, offset, count in zip(names, offsets, file_rows, strict=True):
            low, high = max(start, offset), min(stop, offset + count)
            if low < high:
                pieces.append(Piece(name, low - offset, high - offset))
        parts.append(Part(number, start, stop - start, source, pieces=tuple(pieces)))
    if not parts:
        parts.append(Part(0, 0, 0, source, pieces=(Piece(names[0], 0, 0),)))
    return Partitioned(source, tuple(parts), row, tuple(names))


# --------------------------------------------------------------------------------------------------------
# Reading a partition
# --------------------------------------------------------------------------------------------------------


class _GroupCache:
    """The last few row groups read in this process: consecutive partitions usually share one at their
    edge, and a worker reading partitions in order then decodes each group once."""

    def __init__(self, size: int = 2):
        self.size = size
        self.groups: OrderedDict[tuple[str, int, int, int], pa.Table] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, handle: pq.ParquetFile, file: str, group: int) -> pa.Table:
        stat = os.stat(file)
        key = (file, stat.st_mtime_ns, stat.st_size, group)  # a file written again is read again
        with self.lock:
            found = self.groups.get(key)
            if found is not None:
                self.groups.move_to_end(key)
                return found
        table = handle.read_row_group(group)
        with self.lock:
            self.groups[key] = table
            while len(self.groups) > self.size:
                self.groups.popitem(last=False)
        return table


_CACHE = _GroupCache()


def _read_piece(piece: Piece, source: str) -> pa.Table:
    try:
        handle = pq.ParquetFile(piece.file)
        metadata = handle.metadata
        tables = []
        group_start = 0
        for group in range(metadata.num_row_groups):
            count = metadata.row_group(group).num_rows
            group_stop = group_start + count
            if group_start < piece.stop and piece.start < group_stop:
                table = _CACHE.get(handle, piece.file, group)
                low = max(piece.start, group_start) - group_start
                high = min(piece.stop, group_stop) - group_start
                tables.append(table.slice(low, high - low))
            group_start = group_stop
    except (OSError, pa.ArrowException) as err:
        raise DatasetError(source, [RowProblem(None, "file", f"cannot read {piece.file}: {err}")]) from None
    if not tables:
        return handle.schema_arrow.empty_table()
    return pa.concat_tables(tables)
