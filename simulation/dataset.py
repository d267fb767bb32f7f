"""The claims dataset: a population of past claims, one row per claim, in Parquet or CSV.

The simulator settles millions of claims, so nothing here goes through the per-claim pydantic model: every
column is read and checked as a whole (Arrow compute and numpy), every problem is reported with its row
and column, and the engine's `ClaimBatch` is built straight from the columns. `batch_of` agrees field by
field with `ClaimBatch.from_claims` of the same claims parsed one by one (tests/unit/test_dataset.py), so
the simulator and the billing desk settle the same thing. docs/claims-dataset.md is the format's guide.

In memory a `Dataset` is a pandas frame with the file's column names: money as int64 fen, codes as
categoricals whose codes are the engine's (settlement.codes), dates and times as datetime64, diagnoses as
the normalised ';'-joined text, and the diagnoses once more as index arrays for building batches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from settlement.claims import ClaimBatch
from settlement.codes import CATEGORIES, HOSPITAL_LEVELS, SCHEMES, VISIT_TYPES
from settlement.diseases import normalise_icd10
from settlement.money import MAX_AMOUNT_FEN, MoneyError, format_yuan, parse_amount

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Arrow: TypeAlias = "pa.Array | pa.ChunkedArray"  # pyarrow has no type hints: both are Any to mypy

COLUMNS: Final = (
    "claim_id",
    "person_id",
    "household_id",
    "insurance_scheme",
    "category",
    "hospital_id",
    "hospital_level",
    "visit_type",
    "admitted_on",
    "discharged_on",
    "settled_at",
    "diagnoses",
    "total",
    "fully_self_paid",
    "over_limit_self_paid",
    "pre_self_paid",
    "third_party_liability",
    "assistance_approval",
    "grant_total",
    "region",
    "household_income",
)
"""Every column, in the order files are written. All are required; only assistance_approval may be empty."""

MONEY_COLUMNS: Final = (
    "total",
    "fully_self_paid",
    "over_limit_self_paid",
    "pre_self_paid",
    "grant_total",
    "household_income",
)
"""Yuan to the fen in files (decimal text, or Parquet decimal128(16, 2)); int64 fen in a Dataset's frame."""

ID_COLUMNS: Final = ("claim_id", "person_id", "household_id", "hospital_id")
SELF_PAID_COLUMNS: Final = ("fully_self_paid", "over_limit_self_paid", "pre_self_paid")
CODE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "insurance_scheme": SCHEMES,
    "category": CATEGORIES,
    "visit_type": VISIT_TYPES,
}
MAX_DIAGNOSES: Final = 50
MAX_APPROVAL_LENGTH: Final = 100
MAX_PROBLEMS_SHOWN: Final = 100
DECIMAL_TYPE: Final = pa.decimal128(16, 2)

# The claim format's identifier (settlement.claims.Identifier), as one regular expression.
_IDENTIFIER = r"^[0-9A-Za-z][0-9A-Za-z._:/-]{0,63}$"
_REGION = r"^[0-9]{6}$"
_AMOUNT = r"^\+?0*(?P<whole>[0-9]{1,9})(?:\.(?P<fen>[0-9]{1,2}))?$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_MOMENT = (
    r"^(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]{1,6}))?)?$"
)
_ZONE = re.compile(r"(Z|[+-][0-9]{2}:?[0-9]{2})$")
_BOOLEAN_TEXT: Final = ("false", "true", "0", "1")
_LEVEL_TEXT: Final = tuple(str(level) for level in HOSPITAL_LEVELS)
_REGION_MESSAGE = "is not a six-digit area code"
_IDENTIFIER_MESSAGE = "is not an identifier (letters, digits and ._:/-, starting with a letter or digit; at most 64)"


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One problem in a dataset: the data row (1 = the first row after the header; None: the whole file),
    the column, and what is wrong."""

    row: int | None
    column: str
    message: str

    def __str__(self) -> str:
        return (
            f"row {self.row}, {self.column}: {self.message}"
            if self.row is not None
            else f"{self.column}: {self.message}"
        )


class DatasetError(ValueError):
    """A dataset that cannot be loaded: the first problems in row order, and how many there are in all."""

    def __init__(self, source: str, problems: Sequence[RowProblem], count: int | None = None):
        self.source = source
        self.problems = tuple(problems)
        self.count = len(self.problems) if count is None else count
        lines = [f"{source}: {self.count} problem{'s' if self.count != 1 else ''}"]
        lines += [f"  {p}" for p in self.problems]
        if self.count > len(self.problems):
            lines.append(f"  ... and {self.count - len(self.problems)} more")
        super().__init__("\n".join(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised on a Dask worker and re-raised by the client: rebuilt from its parts, not its message.
        return (DatasetError, (self.source, self.problems, self.count))


@dataclass(frozen=True, slots=True, eq=False)
class Dataset:
    """Validated claims. `frame` has the columns of COLUMNS in a fixed form (docs/claims-dataset.md);
    the diagnoses of row i are `dx_codes[dx_code[dx_offsets[i]:dx_offsets[i + 1]]]`, principal first."""

    frame: pd.DataFrame
    dx_codes: tuple[str, ...]  # distinct normalised ICD-10 codes
    dx_offsets: Int64Array  # len(frame) + 1
    dx_code: Int64Array  # every diagnosis of every row, as an index into dx_codes

    def __len__(self) -> int:
        return len(self.frame)


# --------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------


def load_claims(path: Path | str) -> Dataset:
    """Read and check a claims dataset: a .parquet file, a folder of .parquet parts (read in the order of
    their paths) or a .csv file (UTF-8, header row). Raise DatasetError naming every problem's row and
    column (the first MAX_PROBLEMS_SHOWN in row order, and the count)."""
    path = Path(path)
    if path.is_dir():
        parts = sorted(p for p in path.rglob("*.parquet") if p.is_file())
        if not parts:
            raise DatasetError(str(path), [RowProblem(None, "file", "the folder holds no .parquet files")])
        columns: _Columns = _ParquetColumns(parts, str(path))
    elif path.suffix.lower() == ".parquet":
        columns = _ParquetColumns([path], str(path))
    elif path.suffix.lower() == ".csv":
        columns = _TableColumns(_read_csv(path))
    else:
        raise DatasetError(
            str(path), [RowProblem(None, "file", "expected a .parquet or .csv file, or a folder of parts")]
        )
    dataset = _build(columns, str(path))
    # Reading leaves large freed blocks in Arrow's allocator; hand them back before the caller settles.
    pa.default_memory_pool().release_unused()
    return dataset


def dataset_from_table(table: pa.Table, source: str = "<table>", first_row: int = 0) -> Dataset:
    """Check an Arrow table of claims (the file's columns, typed or as text) and build the Dataset.
    `first_row`: how many rows of the dataset come before the table's first (a partition of a larger
    dataset), so that problems name the row of the dataset."""
    return _build(_TableColumns(table), source, first_row)


class _Columns:
    """Where the columns come from. Each is asked for once and dropped once converted, so that a large
    file is never held in memory whole alongside its converted frame."""

    names: list[str]
    num_rows: int

    def take(self, name: str) -> Arrow:
        raise NotImplementedError


class _TableColumns(_Columns):
    def __init__(self, table: pa.Table):
        self.table = table
        self.names = table.column_names
        self.num_rows = table.num_rows

    def take(self, name: str) -> Arrow:
        return self.table.column(name)


class _ParquetColumns(_Columns):
    """Parquet parts read column by column; their schemas must agree."""

    def __init__(self, parts: list[Path], source: str):
        try:
            self.files = [pq.ParquetFile(p) for p in parts]
        except (OSError, pa.ArrowException) as err:
            raise DatasetError(source, [RowProblem(None, "file", f"cannot read it as Parquet: {err}")]) from None
        schemas = [f.schema_arrow for f in self.files]
        for part, schema in zip(parts[1:], schemas[1:], strict=True):
            if not schema.equals(schemas[0]):
                raise DatasetError(
                    source, [RowProblem(None, "file", f"{part.name} has other columns or types than {parts[0].name}")]
                )
        # A frame written by pandas may carry its index as a column; it is not part of the data.
        self.names = [name for name in schemas[0].names if not name.startswith("__index_level_")]
        self.num_rows = sum(f.metadata.num_rows for f in self.files)
        self.source = source

    def take(self, name: str) -> Arrow:
        try:
            pieces = [f.read(columns=[name]).column(0) for f in self.files]
        except (OSError, pa.ArrowException) as err:
            raise DatasetError(self.source, [RowProblem(None, name, f"cannot read the column: {err}")]) from None
        return (
            pieces[0] if len(pieces) == 1 else pa.chunked_array([c for p in pieces for c in p.chunks], pieces[0].type)
        )


def _read_csv(path: Path, numbered: bool = False) -> pa.Table:
    """Every cell as text (amounts are never read as binary floats), empty cells as null. Rows with the
    wrong number of fields are collected; Arrow numbers them only when reading on one thread, so a file
    that has any is read again that way to name them."""
    bad_rows: list[RowProblem] = []

    def skip(row: pa_csv.InvalidRow) -> str:
        line = row.number
        where = line - 1 if line is not None else None  # the header is line 1, the first data row is row 1
        bad_rows.append(RowProblem(where, "row", f"expected {row.expected_columns} fields, found {row.actual_columns}"))
        return "skip"

    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(use_threads=not numbered),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=skip),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(COLUMNS, pa.string()),
                strings_can_be_null=True,
                null_values=[""],
            ),
        )
    except (OSError, pa.ArrowException) as err:
        raise DatasetError(str(path), [RowProblem(None, "file", f"cannot read it as CSV: {err}")]) from None
    if bad_rows and not numbered:
        return _read_csv(path, numbered=True)
    if bad_rows:
        raise DatasetError(str(path), bad_rows[:MAX_PROBLEMS_SHOWN], len(bad_rows))
    return table


# --------------------------------------------------------------------------------------------------------
# Checking, column by column
# --------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Problems:
    """Problems found so far. Each check reports a mask of bad rows; only the first rows of each check
    become messages (a million bad rows must not become a million strings), but all are counted."""

    found: list[RowProblem] = field(default_factory=list)
    count: int = 0
    first_row: int = 0  # rows of the dataset before the checked rows (a partition's offset)

    def rows(self, column: str, bad: BoolArray, message: Callable[[int], str]) -> None:
        where = np.flatnonzero(bad)
        self.count += len(where)
        self.found += [
            RowProblem(int(i) + 1 + self.first_row, column, message(int(i))) for i in where[:MAX_PROBLEMS_SHOWN]
        ]

    def whole(self, column: str, message: str) -> None:
        self.count += 1
        self.found.append(RowProblem(None, column, message))

    def raise_if_any(self, source: str) -> None:
        if self.count:
            order = {name: i for i, name in enumerate(COLUMNS)}
            first = sorted(self.found, key=lambda p: (p.row or 0, order.get(p.column, len(order))))
            raise DatasetError(source, first[:MAX_PROBLEMS_SHOWN], self.count)


def _numpy(values: Arrow) -> npt.NDArray[Any]:
    return np.asarray(values.to_numpy(zero_copy_only=False) if isinstance(values, pa.Array) else values.to_numpy())


def _mask(array: Arrow) -> BoolArray:
    """An Arrow boolean array (nulls as False) as numpy."""
    return np.asarray(_numpy(pc.fill_null(array, False)), dtype=np.bool_)


def _text(values: Arrow, i: int) -> str:
    return repr(values[i].as_py())


def _as_string(column: str, values: Arrow, problems: _Problems) -> Arrow | None:
    """Text columns may arrive as string, large_string or dictionary-encoded string."""
    value_type = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
    if pa.types.is_string(value_type) or pa.types.is_large_string(value_type) or pa.types.is_null(value_type):
        return values.cast(pa.string())
    problems.whole(column, f"must be text, not {values.type}")
    return None


def _required(column: str, values: Arrow, problems: _Problems) -> BoolArray:
    missing = _mask(pc.is_null(values))
    problems.rows(column, missing, lambda i: "is required")
    return missing


@dataclass(frozen=True, slots=True)
class _Runs:
    """Runs of consecutive rows holding the same text. A dataset stored in (household, person) order has
    one run per person, so checking or numbering the first row of each run does the work for all."""

    heads: Int64Array  # first row of each run
    run: Int64Array  # run of each row
    values: pa.Array  # the text of each run

    @classmethod
    def of(cls, values: Arrow) -> _Runs:
        n = len(values)
        filled = pc.fill_null(values, "")
        if n == 0:
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), pa.array([], pa.string()))
        change = _mask(pc.not_equal(filled.slice(1), filled.slice(0, n - 1)))
        heads = np.concatenate([[0], np.flatnonzero(change) + 1]).astype(np.int64)
        run = np.cumsum(np.concatenate([[False], change])).astype(np.int64)
        taken = filled.take(pa.array(heads))
        head_values = taken.combine_chunks() if isinstance(taken, pa.ChunkedArray) else taken
        return cls(heads, run, head_values)

    def codes(self) -> tuple[Int64Array, npt.NDArray[np.object_], Int64Array]:
        """(code of each row, distinct values, first row of each code), codes in order of first
        appearance, as pd.factorize numbers them; only the runs' values are hashed."""
        encoded = pc.dictionary_encode(self.values)
        head_code = np.asarray(_numpy(encoded.indices), np.int64)
        uniques = np.asarray(_numpy(encoded.dictionary), dtype=object)
        first_rows = self.heads[_first_rows(head_code)]
        return head_code[self.run], uniques, first_rows


def factorize_text(values: Arrow) -> tuple[Int64Array, npt.NDArray[np.object_]]:
    """Codes in order of first appearance and the distinct values (pd.factorize's numbering), hashing only
    the first row of each run of equal values."""
    codes, uniques, _ = _Runs.of(values).codes()
    return codes, uniques


def _pattern(
    column: str, values: Arrow, pattern: str, message: str, problems: _Problems, runs: _Runs | None = None
) -> BoolArray:
    """Rows whose text matches `pattern`; the others (not null) are reported with `message`. With `runs`,
    only the first row of each run of equal values is matched."""
    missing = _required(column, values, problems)
    if runs is None:
        ok = _mask(pc.match_substring_regex(values, pattern))
    else:
        ok = _mask(pc.match_substring_regex(runs.values, pattern))[runs.run]
    problems.rows(column, ~ok & ~missing, lambda i: f"{_text(values, i)} {message}")
    return ok


def _code_column(column: str, values: Arrow, vocabulary: Sequence[str], problems: _Problems) -> Int64Array:
    """Index of each value in `vocabulary` (the engine's code); -1 where unknown."""
    missing = _required(column, values, problems)
    index = pc.index_in(values, value_set=pa.array(vocabulary, pa.string()))
    codes = np.asarray(_numpy(pc.fill_null(index, -1)), np.int64)
    choices = ", ".join(vocabulary)
    problems.rows(column, (codes < 0) & ~missing, lambda i: f"{_text(values, i)} is not one of {choices}")
    return codes


def _level_column(values: Arrow, problems: _Problems) -> Int64Array:
    """hospital_level 1, 2 or 3 (an integer, or its text) -> the engine's level code 0..2; -1 where bad."""
    column = "hospital_level"
    if pa.types.is_integer(values.type):
        missing = _required(column, values, problems)
        level = np.asarray(_numpy(pc.fill_null(values, 0)), np.int64)
        codes = np.where((level >= 1) & (level <= len(HOSPITAL_LEVELS)), level - 1, -1)
        problems.rows(column, (codes < 0) & ~missing, lambda i: f"{level[i]} is not one of 1, 2, 3")
        return codes
    text = _as_string(column, values, problems)
    if text is None:
        return np.full(len(values), -1, np.int64)
    return _code_column(column, pc.utf8_trim_whitespace(text), _LEVEL_TEXT, problems)


def _boolean_column(column: str, values: Arrow, problems: _Problems) -> BoolArray:
    if pa.types.is_boolean(values.type):
        _required(column, values, problems)
        return _mask(values)
    text = _as_string(column, values, problems)
    if text is None:
        return np.zeros(len(values), np.bool_)
    codes = _code_column(column, pc.utf8_lower(pc.utf8_trim_whitespace(text)), _BOOLEAN_TEXT, problems)
    true: BoolArray = (codes == _BOOLEAN_TEXT.index("true")) | (codes == _BOOLEAN_TEXT.index("1"))
    return true


def _money_column(column: str, values: Arrow, problems: _Problems) -> tuple[Int64Array, BoolArray]:
    """Fen per row, and which rows hold a valid amount."""
    n = len(values)
    if pa.types.is_decimal(values.type):
        return _money_from_decimal(column, values, problems)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type) or pa.types.is_null(values.type)):
        problems.whole(
            column,
            f"must be decimal128(16, 2) or decimal text like 1234.56, not {values.type} (binary floats are not "
            "exact, and a bare integer does not say whether it counts yuan or fen)",
        )
        return np.zeros(n, np.int64), np.zeros(n, np.bool_)
    text = pc.utf8_trim_whitespace(values.cast(pa.string()))
    missing = _required(column, text, problems)
    parts = pc.extract_regex(text, _AMOUNT)
    ok = _mask(pc.is_valid(parts))
    whole = pc.if_else(ok, pc.struct_field(parts, "whole"), "0")
    fen_part = pc.utf8_rpad(pc.if_else(ok, pc.struct_field(parts, "fen"), ""), 2, "0")
    fen = np.asarray(pc.cast(whole, pa.int64()), np.int64) * 100 + np.asarray(pc.cast(fen_part, pa.int64()), np.int64)
    too_large = ok & (fen > MAX_AMOUNT_FEN)
    ok &= ~too_large

    def message(i: int) -> str:
        raw = text[i].as_py()
        try:
            parse_amount(raw, "amount")
        except MoneyError as err:
            return str(err)
        return f"amount {raw!r} is not a decimal number"  # pragma: no cover - the pattern is parse_amount's

    problems.rows(column, ~ok & ~missing, message)
    return np.where(ok, fen, 0), ok


def _money_from_decimal(column: str, values: Arrow, problems: _Problems) -> tuple[Int64Array, BoolArray]:
    """Decimal amounts read from the unscaled integers Arrow stores (exact; no arithmetic on floats)."""
    n = len(values)
    decimal_type = values.type
    if decimal_type.bit_width != 128:
        try:
            values = values.cast(pa.decimal128(min(decimal_type.precision, 38), decimal_type.scale))
        except pa.ArrowException:
            problems.whole(column, f"{decimal_type} holds amounts beyond decimal128")
            return np.zeros(n, np.int64), np.zeros(n, np.bool_)
    missing = _required(column, values, problems)
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    # A decimal128 is a 16-byte little-endian integer, the amount times 10**scale.
    words = np.concatenate(
        [np.frombuffer(c.buffers()[1], dtype="<i8").reshape(-1, 2)[c.offset : c.offset + len(c)] for c in chunks]
        or [np.zeros((0, 2), np.int64)]
    )
    low, high = words[:, 0], words[:, 1]
    fits = high == (low >> 63)  # the 128-bit value is the sign extension of its low 64 bits
    scale = decimal_type.scale
    if scale > 2:
        step = 10 ** (scale - 2)
        whole_fen = low % step == 0
        fen = low // step
    else:
        whole_fen = np.ones(n, np.bool_)
        # Anything above the largest amount is refused below; clipping first keeps the product in int64.
        fen = np.clip(low, -MAX_AMOUNT_FEN - 1, MAX_AMOUNT_FEN + 1) * 10 ** (2 - scale)
    ok = ~missing & fits & whole_fen & (fen >= 0) & (fen <= MAX_AMOUNT_FEN)

    def message(i: int) -> str:
        amount = values[i].as_py()
        if amount < 0:
            return f"amount {amount} must not be negative"
        if fits[i] and not whole_fen[i]:
            return f"amount {amount} has more than two decimal places; amounts are in yuan to the fen"
        return f"amount {amount} exceeds the largest accepted amount, 99999999.99 yuan"

    problems.rows(column, ~ok & ~missing, message)
    return np.where(ok, fen, 0), ok


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)


def _days_from_parts(
    year: Int64Array, month: Int64Array, day: Int64Array
) -> tuple[npt.NDArray[np.datetime64], BoolArray]:
    """Calendar dates from their parts, and which parts name a real day (2014-02-30 does not)."""
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    month_ok = (month >= 1) & (month <= 12) & (year >= 1)
    length = _DAYS_IN_MONTH[np.where(month_ok, month, 1)] + (leap & (month == 2))
    ok = month_ok & (day >= 1) & (day <= length)
    months = (np.where(ok, year, 1970) - 1970) * 12 + np.where(ok, month, 1) - 1
    days = months.astype("datetime64[M]").astype("datetime64[D]") + (np.where(ok, day, 1) - 1)
    return days, ok


def _int_slice(text: Arrow, start: int, stop: int) -> Int64Array:
    return np.asarray(pc.cast(pc.utf8_slice_codeunits(text, start, stop), pa.int64()), np.int64)


def _date_column(column: str, values: Arrow, problems: _Problems) -> tuple[npt.NDArray[np.datetime64], BoolArray]:
    n = len(values)
    if pa.types.is_date(values.type) or pa.types.is_timestamp(values.type):
        missing = _required(column, values, problems)
        if pa.types.is_timestamp(values.type) and values.type.tz is not None:
            problems.whole(column, f"must be a date, not a time with a zone ({values.type})")
            return np.zeros(n, "datetime64[D]"), np.zeros(n, np.bool_)
        ok = ~missing
        if pa.types.is_date(values.type):
            return np.asarray(_numpy(pc.fill_null(values.cast(pa.date32()), 0)), "datetime64[D]"), ok
        # A timestamp (as pandas writes dates) is a date when it falls at midnight.
        micros = np.asarray(_numpy(pc.fill_null(values.cast(pa.timestamp("us"), safe=False), 0))).astype(np.int64)
        at_midnight = micros % 86_400_000_000 == 0
        problems.rows(column, ok & ~at_midnight, lambda i: f"{values[i].as_py()} is a time, not a date")
        return (micros // 86_400_000_000).astype("datetime64[D]"), ok & at_midnight
    text = _as_string(column, values, problems)
    if text is None:
        return np.zeros(n, "datetime64[D]"), np.zeros(n, np.bool_)
    missing = _required(column, text, problems)
    shaped = _mask(pc.match_substring_regex(text, _DATE))
    safe = pc.if_else(shaped, text, "1970-01-01")
    days, real = _days_from_parts(_int_slice(safe, 0, 4), _int_slice(safe, 5, 7), _int_slice(safe, 8, 10))
    ok = shaped & real
    problems.rows(column, ~ok & ~missing, lambda i: f"{_text(text, i)} is not a date (YYYY-MM-DD)")
    return days, ok


def _moment_column(values: Arrow, problems: _Problems) -> tuple[npt.NDArray[np.datetime64], BoolArray]:
    """settled_at: local wall-clock time (no zone) to the microsecond."""
    column = "settled_at"
    n = len(values)
    if pa.types.is_timestamp(values.type):
        missing = _required(column, values, problems)
        if values.type.tz is not None:
            problems.whole(column, f"must be local time without a time zone, not {values.type}")
            return np.zeros(n, "datetime64[us]"), np.zeros(n, np.bool_)
        try:
            micros = values.cast(pa.timestamp("us"))
        except pa.ArrowException:
            problems.whole(column, "holds times finer than a microsecond")
            return np.zeros(n, "datetime64[us]"), np.zeros(n, np.bool_)
        moments = np.asarray(_numpy(pc.fill_null(micros, 0))).astype("datetime64[us]")
        return moments, ~missing
    text = _as_string(column, values, problems)
    if text is None:
        return np.zeros(n, "datetime64[us]"), np.zeros(n, np.bool_)
    text = pc.utf8_trim_whitespace(text)
    missing = _required(column, text, problems)
    parts = pc.extract_regex(text, _MOMENT)
    shaped = _mask(pc.is_valid(parts))

    def part(name: str, default: str) -> Int64Array:
        piece = pc.if_else(shaped, pc.struct_field(parts, name), default)
        piece = pc.if_else(pc.equal(piece, ""), default, piece)
        return np.asarray(pc.cast(piece, pa.int64()), np.int64)

    date = pc.if_else(shaped, pc.struct_field(parts, "date"), "1970-01-01")
    days, real = _days_from_parts(_int_slice(date, 0, 4), _int_slice(date, 5, 7), _int_slice(date, 8, 10))
    hour, minute, second = part("hour", "0"), part("minute", "0"), part("second", "0")
    fraction = pc.utf8_rpad(pc.if_else(shaped, pc.struct_field(parts, "fraction"), ""), 6, "0")
    micro = np.asarray(pc.cast(fraction, pa.int64()), np.int64)
    ok = shaped & real & (hour < 24) & (minute < 60) & (second < 60)
    seconds = hour * 3600 + minute * 60 + second
    moments = days.astype("datetime64[us]") + (seconds * 1_000_000 + micro).astype("timedelta64[us]")

    def message(i: int) -> str:
        raw = text[i].as_py()
        if ":" in raw and _ZONE.search(raw):
            return f"{raw!r} carries a time zone; write local time without one (YYYY-MM-DDTHH:MM:SS)"
        return f"{raw!r} is not a date and time (YYYY-MM-DDTHH:MM:SS, optionally .ffffff)"

    problems.rows(column, ~ok & ~missing, message)
    return moments, ok


@dataclass(frozen=True, slots=True)
class _Diagnoses:
    codes: tuple[str, ...]
    offsets: Int64Array
    code: Int64Array
    ok: BoolArray


def _diagnoses_column(values: Arrow, problems: _Problems) -> _Diagnoses:
    """ICD-10 codes per row, principal first: a list of text, or text separated by ';'. Codes are
    normalised as the claim format does (settlement.diseases.normalise_icd10), once per distinct code."""
    column = "diagnoses"
    n = len(values)
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        lists = values
        if not (pa.types.is_string(lists.type.value_type) or pa.types.is_large_string(lists.type.value_type)):
            problems.whole(column, f"must be a list of text, not {values.type}")
            return _Diagnoses((), np.zeros(n + 1, np.int64), np.zeros(0, np.int64), np.zeros(n, np.bool_))
    else:
        text = _as_string(column, values, problems)
        if text is None:
            return _Diagnoses((), np.zeros(n + 1, np.int64), np.zeros(0, np.int64), np.zeros(n, np.bool_))
        lists = pc.split_pattern(text, ";")
    missing = _required(column, lists, problems)
    if missing.any():
        lists = pc.if_else(pc.is_null(lists), pa.scalar([], lists.type), lists)
    counts = np.asarray(_numpy(pc.list_value_length(lists)), np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    flat = pc.fill_null(pc.list_flatten(lists).cast(pa.string()), "")
    encoded = pc.dictionary_encode(flat)
    # Each chunk has its own dictionary of the codes as written; number them all in one table.
    raw_number: dict[str, int] = {}
    raw_parts: list[Int64Array] = []
    for chunk in encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]:
        local = np.array([raw_number.setdefault(c, len(raw_number)) for c in chunk.dictionary.to_pylist()], np.int64)
        raw_parts.append(local[np.asarray(_numpy(chunk.indices), np.int64)] if len(local) else np.zeros(0, np.int64))
    raw_codes = list(raw_number)
    raw_index = np.concatenate(raw_parts) if raw_parts else np.zeros(0, np.int64)
    normalised: list[str] = []
    valid_raw = np.zeros(len(raw_codes), np.bool_)
    for k, raw in enumerate(raw_codes):
        try:
            normalised.append(normalise_icd10(raw))
            valid_raw[k] = True
        except ValueError:
            normalised.append("")
    code_number: dict[str, int] = {}
    code_of_raw = np.array([code_number.setdefault(c, len(code_number)) for c in normalised], np.int64)
    codes = list(code_number)
    code = code_of_raw[raw_index] if len(raw_index) else np.zeros(0, np.int64)
    bad_code = np.zeros(n, np.bool_)
    first_bad = {}
    if not valid_raw.all():
        row_of = np.repeat(np.arange(n, dtype=np.int64), counts)
        bad_code[row_of[~valid_raw[raw_index]]] = True
        bad_positions = np.flatnonzero(~valid_raw[raw_index])
        rows_hit = row_of[bad_positions]
        first_of_row = np.unique(rows_hit, return_index=True)
        first_bad = dict(zip(first_of_row[0].tolist(), bad_positions[first_of_row[1]].tolist(), strict=True))
    problems.rows(
        column,
        bad_code & ~missing,
        lambda i: _icd_error(raw_codes[raw_index[first_bad[i]]]),
    )
    too_many = counts > MAX_DIAGNOSES
    problems.rows(column, too_many, lambda i: f"{counts[i]} diagnoses; at most {MAX_DIAGNOSES}")
    none = (counts == 0) & ~missing
    problems.rows(column, none, lambda i: "needs at least one diagnosis, the principal first")
    ok = ~missing & ~bad_code & ~too_many & ~none
    return _Diagnoses(tuple(codes), offsets, code, ok)


def _icd_error(raw: str) -> str:
    try:
        normalise_icd10(raw)
    except ValueError as err:
        return str(err)
    return f"{raw!r} is not an ICD-10 code"  # pragma: no cover - only called for codes that failed


def _approval_column(values: Arrow, problems: _Problems) -> Arrow | None:
    """assistance_approval: text or empty (no approval); blank text counts as empty."""
    text = _as_string("assistance_approval", values, problems)
    if text is None:
        return None
    text = pc.utf8_trim_whitespace(text)
    text = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    lengths = np.asarray(_numpy(pc.fill_null(pc.utf8_length(text), 0)), np.int64)
    problems.rows(
        "assistance_approval",
        lengths > MAX_APPROVAL_LENGTH,
        lambda i: f"{lengths[i]} characters; at most {MAX_APPROVAL_LENGTH}",
    )
    return text


def _first_rows(codes: Int64Array) -> Int64Array:
    """For codes numbered in order of first appearance (pd.factorize; -1 for a missing value): the row
    where each code first appears."""
    if len(codes) == 0:
        return np.zeros(0, np.int64)
    highest_before = np.empty(len(codes), np.int64)
    highest_before[0] = -1
    np.maximum.accumulate(codes[:-1], out=highest_before[1:])
    return np.flatnonzero(codes > highest_before).astype(np.int64)


def _build(columns: _Columns, source: str, first_row: int = 0) -> Dataset:
    problems = _Problems(first_row=first_row)
    names = columns.names
    for name in COLUMNS:
        if name not in names:
            problems.whole(name, "the column is missing")
    for name in names:
        if name not in COLUMNS:
            problems.whole(name, "unknown column")
    if len(set(names)) != len(names):
        problems.whole("file", "a column name appears twice")
    problems.raise_if_any(source)

    text: dict[str, Arrow] = {}
    runs: dict[str, _Runs] = {}
    for name in (*ID_COLUMNS, "region"):
        values = _as_string(name, columns.take(name), problems)
        if values is None:
            continue
        text[name] = values
        pattern, message = (_REGION, _REGION_MESSAGE) if name == "region" else (_IDENTIFIER, _IDENTIFIER_MESSAGE)
        if name in ("person_id", "household_id", "region"):
            # Stored in household order these repeat row after row: check each run's value once.
            runs[name] = _Runs.of(values)
            _pattern(name, values, pattern, message, problems, runs[name])
        else:
            _pattern(name, values, pattern, message, problems)
    codes: dict[str, Int64Array] = {}
    for name, vocabulary in CODE_COLUMNS.items():
        values = _as_string(name, columns.take(name), problems)
        codes[name] = _code_column(name, values, vocabulary, problems) if values is not None else np.zeros(0, np.int64)
    level = _level_column(columns.take("hospital_level"), problems)
    admitted, admitted_ok = _date_column("admitted_on", columns.take("admitted_on"), problems)
    discharged, discharged_ok = _date_column("discharged_on", columns.take("discharged_on"), problems)
    settled, settled_ok = _moment_column(columns.take("settled_at"), problems)
    diagnoses = _diagnoses_column(columns.take("diagnoses"), problems)
    money: dict[str, Int64Array] = {}
    money_ok: dict[str, BoolArray] = {}
    for name in MONEY_COLUMNS:
        money[name], money_ok[name] = _money_column(name, columns.take(name), problems)
    third_party = _boolean_column("third_party_liability", columns.take("third_party_liability"), problems)
    approval = _approval_column(columns.take("assistance_approval"), problems)

    # Rules that tie columns together, checked where the columns involved are themselves valid.
    problems.rows(
        "discharged_on",
        admitted_ok & discharged_ok & (discharged < admitted),
        lambda i: f"{discharged[i]} is before admitted_on {admitted[i]}",
    )
    problems.rows(
        "settled_at",
        admitted_ok & settled_ok & (settled.astype("datetime64[D]") < admitted),
        lambda i: f"{settled[i]} is before admitted_on {admitted[i]}",
    )
    self_paid = money[SELF_PAID_COLUMNS[0]] + money[SELF_PAID_COLUMNS[1]] + money[SELF_PAID_COLUMNS[2]]
    amounts_ok = money_ok["total"] & money_ok[SELF_PAID_COLUMNS[0]] & money_ok[SELF_PAID_COLUMNS[1]]
    amounts_ok &= money_ok[SELF_PAID_COLUMNS[2]]
    problems.rows(
        "total",
        amounts_ok & (self_paid > money["total"]),
        lambda i: (
            f"fully_self_paid + over_limit_self_paid + pre_self_paid ({format_yuan(int(self_paid[i]))}) exceeds "
            f"total ({format_yuan(int(money['total'][i]))}): the in-scope amount would be negative"
        ),
    )
    if "claim_id" in text:
        _check_unique_claims(text["claim_id"], problems)
    if "household_id" in runs:
        _check_household_income(text["household_id"], runs["household_id"], money, money_ok, problems)
    problems.raise_if_any(source)
    assert approval is not None  # a text problem would have been raised above

    frame = pd.DataFrame(
        {
            "claim_id": _pandas_text(text["claim_id"]),
            "person_id": _pandas_text(text["person_id"]),
            "household_id": _pandas_text(text["household_id"]),
            "insurance_scheme": categorical(codes["insurance_scheme"], SCHEMES),
            "category": categorical(codes["category"], CATEGORIES),
            "hospital_id": _pandas_text(text["hospital_id"]),
            "hospital_level": (level + 1).astype(np.int8),
            "visit_type": categorical(codes["visit_type"], VISIT_TYPES),
            "admitted_on": admitted.astype("datetime64[s]"),
            "discharged_on": discharged.astype("datetime64[s]"),
            "settled_at": settled,
            "diagnoses": join_diagnoses(diagnoses.codes, diagnoses.offsets, diagnoses.code),
            **{name: money[name] for name in MONEY_COLUMNS[:4]},
            "third_party_liability": third_party,
            "assistance_approval": _pandas_text(approval),
            "grant_total": money["grant_total"],
            "region": _pandas_text(text["region"]),
            "household_income": money["household_income"],
        },
        columns=list(COLUMNS),
        copy=False,
    )
    return Dataset(frame, diagnoses.codes, diagnoses.offsets, diagnoses.code)


def _check_unique_claims(claim_id: Arrow, problems: _Problems) -> None:
    n = len(claim_id)
    filled = pc.fill_null(claim_id, "")
    if n < 2 or pc.all(pc.greater(filled.slice(1), filled.slice(0, n - 1))).as_py():
        return  # strictly increasing ids (how a dataset is usually stored) cannot repeat
    codes, _, first_rows = _Runs.of(claim_id).codes()
    repeated = (first_rows[codes] != np.arange(n)) & _mask(pc.is_valid(claim_id))
    problems.rows(
        "claim_id",
        repeated,
        lambda i: f"{_text(claim_id, i)} already appears on row {first_rows[codes[i]] + 1 + problems.first_row}",
    )


def _check_household_income(
    household_id: Arrow,
    runs: _Runs,
    money: dict[str, Int64Array],
    money_ok: dict[str, BoolArray],
    problems: _Problems,
) -> None:
    """Every row of a household carries the income of the household's first row."""
    codes, _, first_rows = runs.codes()
    known = _mask(pc.is_valid(household_id))
    income, income_ok = money["household_income"], money_ok["household_income"]
    first = first_rows[codes]
    problems.rows(
        "household_income",
        known & income_ok & income_ok[first] & (income != income[first]),
        lambda i: (
            f"{format_yuan(int(income[i]))} differs from {format_yuan(int(income[first[i]]))} on row "
            f"{first[i] + 1 + problems.first_row} of household {_text(household_id, i)}; "
            "a household has one annual income"
        ),
    )


def categorical(codes: Int64Array, vocabulary: Sequence[str]) -> pd.Categorical[str]:
    """A code column of the frame: its categorical codes are the engine's (settlement.codes)."""
    return pd.Categorical.from_codes(codes, categories=pd.Index(list(vocabulary), dtype=object))


def _pandas_text(values: Arrow) -> pd.Series:
    return pd.Series(values.to_pandas(), dtype="str")


def join_diagnoses(codes: Sequence[str], offsets: Int64Array, code: Int64Array) -> pd.Series:
    """The ';'-joined text of each row's diagnoses (the frame's `diagnoses` column)."""
    lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(list(codes), pa.string()).take(code))
    return pd.Series(pc.binary_join(lists, ";").to_pandas(), dtype="str")


# --------------------------------------------------------------------------------------------------------
# The engine's batch
# --------------------------------------------------------------------------------------------------------


def batch_of(dataset: Dataset, rows: Int64Array | Sequence[int] | None = None) -> ClaimBatch:
    """The claims at `rows` (all, in order, by default) as the engine's ClaimBatch, built from the columns.

    Identical, field by field, to `ClaimBatch.from_claims` of the same claims parsed one by one (ids and
    diagnosis codes are numbered in order of first appearance, as there), except that `claims` is None.
    The engine settles fastest when the rows stand in (person, settlement time) order, as files are stored.
    """
    frame = dataset.frame
    if rows is None:
        picked = frame
        index = np.arange(len(frame), dtype=np.int64)
    else:
        index = np.asarray(rows, dtype=np.int64)
        picked = frame.iloc[index]
    person, person_ids = factorize_text(pa.array(picked["person_id"], from_pandas=True))
    household, household_ids = factorize_text(pa.array(picked["household_id"], from_pandas=True))

    lengths = dataset.dx_offsets[index + 1] - dataset.dx_offsets[index]
    starts = dataset.dx_offsets[index]
    total = int(lengths.sum())
    # Positions of every diagnosis of the picked rows, in row order: start of the row + rank within it.
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    global_code = dataset.dx_code[np.repeat(starts, lengths) + within]
    dx_code, uniques = pd.factorize(global_code)
    dx_code = dx_code.astype(np.int64)
    first_of_row = np.cumsum(lengths) - lengths

    return ClaimBatch(
        claim_id=picked["claim_id"].to_numpy(dtype=object),
        person=person,
        person_ids=person_ids,
        household=household,
        household_ids=household_ids,
        scheme=picked["insurance_scheme"].cat.codes.to_numpy().astype(np.int64),
        category=picked["category"].cat.codes.to_numpy().astype(np.int64),
        level=picked["hospital_level"].to_numpy().astype(np.int64) - 1,
        visit=picked["visit_type"].cat.codes.to_numpy().astype(np.int64),
        discharged_on=picked["discharged_on"].to_numpy().astype("datetime64[D]"),
        settled_at=picked["settled_at"].to_numpy().astype("datetime64[us]"),
        total=picked["total"].to_numpy(np.int64),
        fully_self_paid=picked["fully_self_paid"].to_numpy(np.int64),
        over_limit_self_paid=picked["over_limit_self_paid"].to_numpy(np.int64),
        pre_self_paid=picked["pre_self_paid"].to_numpy(np.int64),
        third_party=picked["third_party_liability"].to_numpy(np.bool_),
        approval=picked["assistance_approval"].notna().to_numpy(),
        grant_total=picked["grant_total"].to_numpy(np.int64),
        dx_codes=tuple(dataset.dx_codes[int(u)] for u in uniques),
        dx_principal=dx_code[first_of_row] if len(index) else np.zeros(0, np.int64),
        dx_claim=np.repeat(np.arange(len(index), dtype=np.int64), lengths),
        dx_code=dx_code,
    )


# --------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------


def write_claims(data: Dataset | pd.DataFrame, path: Path | str, part_rows: int | None = None) -> None:
    """Write claims (a Dataset, or a frame in a Dataset's form) as .parquet or .csv; or, when `path` has no
    suffix, as a folder of Parquet parts of at most `part_rows` rows (default 1,000,000), each part cut
    where the household changes, so that a dataset stored in household order keeps a household together.
    Parquet is written in the canonical form of docs/claims-dataset.md; CSV as text, amounts like 1234.56."""
    with ClaimsWriter(path, part_rows) as writer:
        writer.write(data)


class ClaimsWriter:
    """Claims written chunk by chunk, so that a dataset larger than memory can be made a piece at a time:
    to one .parquet file (each chunk appended as row groups), one .csv file, or a folder of Parquet parts
    (`part-NNNNN.parquet`, at most `part_rows` rows each, cut where the household changes; a chunk never
    shares a part with the next, so a household written whole in one chunk stays in one part). Existing
    parts of that name in the folder are removed first: a folder holds one dataset."""

    def __init__(self, path: Path | str, part_rows: int | None = None):
        self.path = Path(path)
        self.part_rows = part_rows or 1_000_000
        self.suffix = self.path.suffix.lower()
        if self.suffix not in ("", ".parquet", ".csv"):
            raise ValueError(f"{self.path}: write .parquet, .csv, or a folder (a path without a suffix)")
        self._parquet: pq.ParquetWriter | None = None
        self._csv: pa_csv.CSVWriter | None = None
        self.parts = 0
        self.rows = 0
        if not self.suffix:
            self.path.mkdir(parents=True, exist_ok=True)
            for old in self.path.glob("part-*.parquet"):
                old.unlink()

    def __enter__(self) -> ClaimsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, data: Dataset | pd.DataFrame) -> None:
        frame = data.frame if isinstance(data, Dataset) else data
        self.rows += len(frame)
        if self.suffix == ".csv":
            table = _text_table(frame)
            if self._csv is None:
                self._csv = pa_csv.CSVWriter(self.path, table.schema)
            self._csv.write_table(table)
            return
        table = _canonical_table(frame)
        if self.suffix == ".parquet":
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema, **_PARQUET_OPTIONS)
            self._parquet.write_table(table, row_group_size=ROW_GROUP_ROWS)
            return
        household, _ = pd.factorize(frame["household_id"])
        changes = np.flatnonzero(household[1:] != household[:-1]) + 1  # rows where a new household starts
        start = 0
        while start < len(frame) or (start == 0 and self.parts == 0):
            stop = start + self.part_rows
            if stop < len(frame):
                cut = changes[np.searchsorted(changes, stop, side="right") - 1] if len(changes) else 0
                stop = int(cut) if cut > start else stop  # a household longer than a part is cut where it must be
            stop = min(stop, len(frame))
            pq.write_table(
                table.slice(start, stop - start),
                self.path / f"part-{self.parts:05d}.parquet",
                row_group_size=ROW_GROUP_ROWS,
                **_PARQUET_OPTIONS,
            )
            start, self.parts = stop, self.parts + 1
            if stop == 0:
                break  # an empty dataset is one empty part, so that its columns are still written

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._csv is not None:
            self._csv.close()
            self._csv = None


ROW_GROUP_ROWS: Final = 65_536
"""Rows per Parquet row group as Doudi writes them: a partition of a large dataset reads only the row
groups it spans, so small groups waste little decoding at a partition's edges."""

# Decimals of up to 18 digits stored as Parquet INT64 (still decimal128(16, 2) when read): about three
# times faster to read than the default fixed-length bytes.
_PARQUET_OPTIONS: Final[dict[str, Any]] = {"compression": "zstd", "store_decimal_as_integer": True}


def _decimal_array(fen: Int64Array) -> pa.Array:
    """Fen as decimal128(16, 2): the unscaled value of a two-place decimal is the number of fen."""
    fen = np.ascontiguousarray(fen, dtype=np.int64)
    words = np.empty((len(fen), 2), dtype="<i8")
    words[:, 0] = fen
    words[:, 1] = fen >> 63
    return pa.Array.from_buffers(DECIMAL_TYPE, len(fen), [None, pa.py_buffer(words.tobytes())])


def _arrow_text(values: pd.Series) -> pa.Array:
    return pa.array(values.astype("str"), type=pa.string(), from_pandas=True)


def _common_columns(frame: pd.DataFrame) -> dict[str, pa.Array]:
    missing = [name for name in COLUMNS if name not in frame.columns]
    if missing:
        raise ValueError(f"the frame lacks the columns {', '.join(missing)}")
    return {
        **{name: _arrow_text(frame[name]) for name in (*ID_COLUMNS, "region", *CODE_COLUMNS, "assistance_approval")},
        "hospital_level": pa.array(frame["hospital_level"].to_numpy(np.int8), pa.int8()),
        "third_party_liability": pa.array(frame["third_party_liability"].to_numpy(np.bool_), pa.bool_()),
    }


def _canonical_table(frame: pd.DataFrame) -> pa.Table:
    columns = _common_columns(frame)
    columns["admitted_on"] = pa.array(frame["admitted_on"].to_numpy().astype("datetime64[D]"), pa.date32())
    columns["discharged_on"] = pa.array(frame["discharged_on"].to_numpy().astype("datetime64[D]"), pa.date32())
    columns["settled_at"] = pa.array(frame["settled_at"].to_numpy().astype("datetime64[us]"), pa.timestamp("us"))
    columns["diagnoses"] = pc.split_pattern(_arrow_text(frame["diagnoses"]), ";")
    for name in MONEY_COLUMNS:
        columns[name] = _decimal_array(frame[name].to_numpy(np.int64))
    return pa.table({name: columns[name] for name in COLUMNS})


def _yuan_text(fen: Int64Array) -> pa.Array:
    whole = pc.cast(pa.array(fen // 100), pa.string())
    cents = pc.utf8_lpad(pc.cast(pa.array(fen % 100), pa.string()), 2, "0")
    return pc.binary_join_element_wise(whole, cents, ".")


def _text_table(frame: pd.DataFrame) -> pa.Table:
    columns = _common_columns(frame)
    for name in ("admitted_on", "discharged_on"):
        days = pa.array(frame[name].to_numpy().astype("datetime64[D]"), pa.date32())
        columns[name] = pc.strftime(days.cast(pa.timestamp("s")), format="%Y-%m-%d")
    micros = frame["settled_at"].to_numpy().astype("datetime64[us]")
    moments = pa.array(micros, pa.timestamp("us"))
    whole_seconds = pa.array(micros.astype(np.int64) % 1_000_000 == 0)
    columns["settled_at"] = pc.if_else(
        whole_seconds,
        pc.strftime(moments.cast(pa.timestamp("s"), safe=False), format="%Y-%m-%dT%H:%M:%S"),
        pc.strftime(moments, format="%Y-%m-%dT%H:%M:%S"),
    )
    columns["diagnoses"] = _arrow_text(frame["diagnoses"])
    for name in MONEY_COLUMNS:
        columns[name] = _yuan_text(frame[name].to_numpy(np.int64))
    return pa.table({name: columns[name] for name in COLUMNS})
