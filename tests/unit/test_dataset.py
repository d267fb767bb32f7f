"""The claims dataset (simulation/dataset.py, docs/claims-dataset.md): files round-trip exactly through
Parquet, CSV and a folder of parts; every bad row is refused with its row, column and reason; and the
engine's batch built from the columns equals, field by field, the batch built from the same claims parsed
one by one by the claim model (`parse_claim` -> `ClaimBatch.from_claims`).

Valid inputs are checked against the claim model written independently of the dataset's vectorised code:
the same text goes through `parse_claim`, so the two readings of a file cannot drift apart.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.claims import ClaimBatch, parse_claim
from simulation.dataset import (
    COLUMNS,
    MAX_PROBLEMS_SHOWN,
    Dataset,
    DatasetError,
    RowProblem,
    batch_of,
    dataset_from_table,
    factorize_text,
    load_claims,
    write_claims,
)
from simulation.generate import generate

ROWS: list[dict[str, str]] = [
    {
        "claim_id": "C1",
        "person_id": "P1",
        "household_id": "H1",
        "insurance_scheme": "resident",
        "category": "dibao",
        "hospital_id": "HOS1",
        "hospital_level": "2",
        "visit_type": "inpatient",
        "admitted_on": "2014-03-01",
        "discharged_on": "2014-03-10",
        "settled_at": "2014-03-10T10:00:00",
        "diagnoses": "C91.0;J18.9",
        "total": "10000.00",
        "fully_self_paid": "500.00",
        "over_limit_self_paid": "100.50",
        "pre_self_paid": "200",
        "third_party_liability": "false",
        "assistance_approval": "",
        "grant_total": "0.00",
        "region": "220581",
        "household_income": "12000.00",
    },
    {
        "claim_id": "C2",
        "person_id": "P2",
        "household_id": "H1",
        "insurance_scheme": "resident",
        "category": "dibao",
        "hospital_id": "HOS2",
        "hospital_level": "3",
        "visit_type": "chronic_outpatient",
        "admitted_on": "2014-04-02",
        "discharged_on": "2014-04-02",
        "settled_at": "2014-04-02 09:30",
        "diagnoses": "i63.9",
        "total": "350.5",
        "fully_self_paid": "0",
        "over_limit_self_paid": "0",
        "pre_self_paid": "0",
        "third_party_liability": "true",
        "assistance_approval": "MZ-2014-000001",
        "grant_total": "100.00",
        "region": "220581",
        "household_income": "12000",
    },
    {
        "claim_id": "C3",
        "person_id": "P3",
        "household_id": "H2",
        "insurance_scheme": "none",
        "category": "none",
        "hospital_id": "HOS1",
        "hospital_level": "1",
        "visit_type": "outpatient",
        "admitted_on": "2014-05-05",
        "discharged_on": "2014-05-05",
        "settled_at": "2014-05-05T16:00:00.250000",
        "diagnoses": "J06.9",
        "total": "120.00",
        "fully_self_paid": "12.00",
        "over_limit_self_paid": "0.00",
        "pre_self_paid": "0.00",
        "third_party_liability": "0",
        "assistance_approval": "",
        "grant_total": "0.00",
        "region": "220100",
        "household_income": "30000.00",
    },
]


def csv_text(rows: list[dict[str, str]], columns: tuple[str, ...] | list[str] = COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_csv(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] | list[str] = COLUMNS) -> Path:
    path.write_text(csv_text(rows, columns), encoding="utf-8")
    return path


def problems_of(path: Path) -> list[RowProblem]:
    with pytest.raises(DatasetError) as caught:
        load_claims(path)
    return list(caught.value.problems)


def claim_from_text(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as the claim format's JSON (what a desk would send), left for the claim model to parse."""
    grant = row["grant_total"]
    return {
        "claim_id": row["claim_id"],
        "person_id": row["person_id"],
        "household_id": row["household_id"],
        "insurance_scheme": row["insurance_scheme"],
        "category": row["category"],
        "hospital_id": row["hospital_id"],
        "hospital_level": int(row["hospital_level"]),
        "visit_type": row["visit_type"],
        "admitted_on": row["admitted_on"],
        "discharged_on": row["discharged_on"],
        "settled_at": row["settled_at"],
        "diagnoses": row["diagnoses"].split(";"),
        "total": row["total"],
        "fully_self_paid": row["fully_self_paid"],
        "over_limit_self_paid": row["over_limit_self_paid"],
        "pre_self_paid": row["pre_self_paid"],
        "third_party_liability": row["third_party_liability"].strip().lower() in ("true", "1"),
        "assistance_approval": row["assistance_approval"].strip() or None,
        "grants": [{"payer": "dataset", "amount": grant}] if Decimal(grant) > 0 else [],
    }


def assert_same_batch(ours: ClaimBatch, theirs: ClaimBatch) -> None:
    assert ours.claims is None
    for item in dataclasses.fields(ClaimBatch):
        if item.name == "claims":
            continue
        mine, expected = getattr(ours, item.name), getattr(theirs, item.name)
        if isinstance(expected, tuple):
            assert mine == expected, item.name
        else:
            assert mine.dtype == expected.dtype, item.name
            assert mine.shape == expected.shape, item.name
            assert np.array_equal(mine, expected), item.name


def frame_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------------------------------------
# Valid files
# --------------------------------------------------------------------------------------------------------


def test_a_valid_csv_loads_into_the_documented_frame(tmp_path: Path) -> None:
    dataset = load_claims(write_csv(tmp_path / "claims.csv", ROWS))
    frame = dataset.frame
    assert list(frame.columns) == list(COLUMNS)
    assert frame["total"].tolist() == [1_000_000, 35_050, 12_000]
    assert frame["pre_self_paid"].tolist() == [20_000, 0, 0]
    assert frame["household_income"].tolist() == [1_200_000, 1_200_000, 3_000_000]
    assert frame["grant_total"].tolist() == [0, 10_000, 0]
    assert frame["diagnoses"].tolist() == ["C91.0;J18.9", "I63.9", "J06.9"]  # normalised as the claim model does
    assert frame["hospital_level"].tolist() == [2, 3, 1]
    assert frame["third_party_liability"].tolist() == [False, True, False]
    assert frame["assistance_approval"].isna().tolist() == [True, False, True]
    assert frame["settled_at"].tolist() == [
        pd.Timestamp("2014-03-10 10:00:00"),
        pd.Timestamp("2014-04-02 09:30:00"),
        pd.Timestamp("2014-05-05 16:00:00.25"),
    ]
    assert frame["category"].cat.codes.tolist() == [3, 3, 6]  # the engine's codes (settlement.codes)
    assert dataset.dx_codes == ("C91.0", "J18.9", "I63.9", "J06.9")
    assert dataset.dx_offsets.tolist() == [0, 2, 3, 4]


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ""])
def test_a_generated_dataset_round_trips_exactly(tmp_path: Path, suffix: str) -> None:
    dataset = generate(3_000, seed=5)
    path = tmp_path / f"claims{suffix}"
    write_claims(dataset, path, part_rows=700)
    again = load_claims(path)
    pd.testing.assert_frame_equal(again.frame, dataset.frame)
    assert_same_batch(batch_of(again), batch_of(dataset))


def test_parts_are_cut_between_households_and_read_in_order(tmp_path: Path) -> None:
    dataset = generate(2_000, seed=3)
    write_claims(dataset, tmp_path / "parts", part_rows=500)
    parts = sorted((tmp_path / "parts").glob("*.parquet"))
    assert len(parts) >= 2
    households = [set(pq.read_table(p, columns=["household_id"]).column(0).to_pylist()) for p in parts]
    for a, b in itertools.pairwise(households):
        assert not a & b, "a household is split across parts"
    assert all(pq.read_metadata(p).num_rows <= 500 for p in parts)


def test_the_canonical_parquet_types(tmp_path: Path) -> None:
    path = tmp_path / "claims.parquet"
    write_claims(load_claims(write_csv(tmp_path / "claims.csv", ROWS)), path)
    schema = pq.read_schema(path)
    assert schema.names == list(COLUMNS)
    for name in ("total", "fully_self_paid", "over_limit_self_paid", "pre_self_paid", "grant_total"):
        assert schema.field(name).type == pa.decimal128(16, 2)
    assert schema.field("household_income").type == pa.decimal128(16, 2)
    assert schema.field("admitted_on").type == pa.date32()
    assert schema.field("settled_at").type == pa.timestamp("us")
    assert schema.field("diagnoses").type == pa.list_(pa.string())
    assert schema.field("hospital_level").type == pa.int8()
    assert schema.field("third_party_liability").type == pa.bool_()


def test_parquet_may_hold_text_instead_of_typed_columns(tmp_path: Path) -> None:
    """Every column may also be written as the CSV's text (e.g. diagnoses as 'C91.0;J18.9')."""
    text_table = pa.table({name: pa.array([r[name] or None for r in ROWS], pa.string()) for name in COLUMNS})
    pq.write_table(text_table, tmp_path / "text.parquet")
    from_text = load_claims(tmp_path / "text.parquet")
    pd.testing.assert_frame_equal(from_text.frame, load_claims(write_csv(tmp_path / "c.csv", ROWS)).frame)


def test_decimals_of_other_scales_and_typed_dates_are_read_exactly(tmp_path: Path) -> None:
    table = pq.read_table(_canonical(tmp_path))
    money = pa.array([Decimal("10000.000"), Decimal("350.500"), Decimal("120.000")], pa.decimal128(20, 3))
    table = table.set_column(table.schema.get_field_index("total"), "total", money)
    stamps = pa.array(pd.to_datetime(["2014-03-01", "2014-04-02", "2014-05-05"]).to_numpy(), pa.timestamp("ns"))
    table = table.set_column(table.schema.get_field_index("admitted_on"), "admitted_on", stamps)
    pq.write_table(table, tmp_path / "other.parquet")
    frame = load_claims(tmp_path / "other.parquet").frame
    assert frame["total"].tolist() == [1_000_000, 35_050, 12_000]
    assert frame["admitted_on"].dt.day.tolist() == [1, 2, 5]


def _canonical(tmp_path: Path) -> Path:
    path = tmp_path / "canonical.parquet"
    write_claims(load_claims(write_csv(tmp_path / "canonical.csv", ROWS)), path)
    return path


# --------------------------------------------------------------------------------------------------------
# Bad rows: each names its row (1 = the first row after the header) and column
# --------------------------------------------------------------------------------------------------------

BAD_CELLS: list[tuple[str, int, dict[str, str], str, str]] = [
    ("unknown scheme", 1, {"insurance_scheme": "private"}, "insurance_scheme", "'private' is not one of employee"),
    ("unknown category", 0, {"category": "poor"}, "category", "'poor' is not one of tekun, orphan"),
    ("unknown visit type", 2, {"visit_type": "daycare"}, "visit_type", "'daycare' is not one of inpatient"),
    ("hospital level 4", 0, {"hospital_level": "4"}, "hospital_level", "'4' is not one of 1, 2, 3"),
    ("negative amount", 0, {"total": "-1.00"}, "total", "amount '-1.00' must not be negative"),
    ("three decimals", 1, {"fully_self_paid": "1.234"}, "fully_self_paid", "has more than two decimal places"),
    ("exponent", 2, {"pre_self_paid": "1e3"}, "pre_self_paid", "uses exponent notation"),
    ("not a number", 0, {"grant_total": "ten"}, "grant_total", "amount 'ten' is not a decimal number"),
    ("thousands separator", 0, {"total": "10,000.00"}, "total", "without separators"),
    ("too large", 0, {"total": "100000000.00"}, "total", "exceeds the largest accepted amount"),
    ("missing amount", 1, {"over_limit_self_paid": ""}, "over_limit_self_paid", "is required"),
    ("bad income", 2, {"household_income": "-5"}, "household_income", "must not be negative"),
    ("discharged first", 0, {"discharged_on": "2014-02-28"}, "discharged_on", "2014-02-28 is before admitted_on"),
    ("no such day", 2, {"discharged_on": "2014-02-30"}, "discharged_on", "'2014-02-30' is not a date"),
    ("not a date", 1, {"admitted_on": "02/04/2014"}, "admitted_on", "'02/04/2014' is not a date"),
    ("settled first", 0, {"settled_at": "2014-02-28T10:00:00"}, "settled_at", "is before admitted_on 2014-03-01"),
    ("time zone", 1, {"settled_at": "2014-04-02T09:30:00+08:00"}, "settled_at", "carries a time zone"),
    ("hour 25", 1, {"settled_at": "2014-04-02T25:00:00"}, "settled_at", "is not a date and time"),
    ("self-paid above total", 0, {"fully_self_paid": "9800.00"}, "total", "(10100.50) exceeds total (10000.00)"),
    ("bad code", 1, {"diagnoses": "I63.9;XYZ"}, "diagnoses", "'XYZ' is not an ICD-10 code"),
    ("empty code", 0, {"diagnoses": "C91.0;;J18.9"}, "diagnoses", "'' is not an ICD-10 code"),
    ("no diagnosis", 2, {"diagnoses": ""}, "diagnoses", "is required"),
    ("too many", 2, {"diagnoses": ";".join(["J06.9"] * 51)}, "diagnoses", "51 diagnoses; at most 50"),
    ("bad id", 0, {"person_id": "P 1"}, "person_id", "'P 1' is not an identifier"),
    ("long id", 2, {"claim_id": "C" * 65}, "claim_id", "is not an identifier"),
    ("missing id", 1, {"household_id": ""}, "household_id", "is required"),
    ("short area", 2, {"region": "2201"}, "region", "'2201' is not a six-digit area code"),
    ("not a boolean", 0, {"third_party_liability": "maybe"}, "third_party_liability", "'maybe' is not one of"),
    ("long approval", 1, {"assistance_approval": "A" * 101}, "assistance_approval", "101 characters; at most 100"),
    ("duplicate claim", 2, {"claim_id": "C1"}, "claim_id", "'C1' already appears on row 1"),
    ("income differs", 1, {"household_income": "12000.01"}, "household_income", "differs from 12000.00 on row 1"),
]


@pytest.mark.parametrize(
    ("row", "changes", "column", "message"),
    [case[1:] for case in BAD_CELLS],
    ids=[case[0] for case in BAD_CELLS],
)
def test_a_bad_cell_is_named_by_row_and_column(
    tmp_path: Path, row: int, changes: dict[str, str], column: str, message: str
) -> None:
    rows = [dict(r) for r in ROWS]
    rows[row].update(changes)
    problems = problems_of(write_csv(tmp_path / "bad.csv", rows))
    assert [(p.row, p.column) for p in problems] == [(row + 1, column)], problems
    assert message in problems[0].message


def test_every_problem_is_reported_at_once_in_row_order(tmp_path: Path) -> None:
    rows = [dict(r) for r in ROWS]
    rows[2].update(total="-1", category="poor")
    rows[0].update(region="x")
    with pytest.raises(DatasetError) as caught:
        load_claims(write_csv(tmp_path / "bad.csv", rows))
    assert [(p.row, p.column) for p in caught.value.problems] == [(1, "region"), (3, "category"), (3, "total")]
    assert caught.value.count == 3
    assert str(caught.value).splitlines()[0].endswith("bad.csv: 3 problems")
    assert "  row 3, category: 'poor' is not one of" in str(caught.value)


def test_many_bad_rows_are_counted_and_the_first_ones_shown(tmp_path: Path) -> None:
    rows = [dict(ROWS[2], claim_id=f"C{i}", total="-1") for i in range(250)]
    with pytest.raises(DatasetError) as caught:
        load_claims(write_csv(tmp_path / "bad.csv", rows))
    error = caught.value
    assert error.count == 250
    assert len(error.problems) == MAX_PROBLEMS_SHOWN
    assert [p.row for p in error.problems] == list(range(1, MAX_PROBLEMS_SHOWN + 1))
    assert str(error).splitlines()[-1] == f"  ... and {250 - MAX_PROBLEMS_SHOWN} more"


def test_missing_and_unknown_columns_are_named(tmp_path: Path) -> None:
    columns = [c for c in COLUMNS if c not in ("region", "total")] + ["comment"]
    rows = [dict(r, comment="x") for r in ROWS]
    problems = problems_of(write_csv(tmp_path / "bad.csv", rows, columns))
    assert {(p.row, p.column, p.message) for p in problems} == {
        (None, "total", "the column is missing"),
        (None, "region", "the column is missing"),
        (None, "comment", "unknown column"),
    }


def test_a_row_with_too_many_fields_is_named(tmp_path: Path) -> None:
    text = csv_text(ROWS).splitlines()
    text[2] += ",extra"
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    problems = problems_of(path)
    assert [(p.row, p.column) for p in problems] == [(2, "row")]
    assert problems[0].message == f"expected {len(COLUMNS)} fields, found {len(COLUMNS) + 1}"


def test_binary_floats_are_not_money_in_parquet(tmp_path: Path) -> None:
    table = pq.read_table(_canonical(tmp_path))
    index = table.schema.get_field_index("total")
    pq.write_table(table.set_column(index, "total", pa.array([10000.0, 350.5, 120.0])), tmp_path / "float.parquet")
    problems = problems_of(tmp_path / "float.parquet")
    assert [(p.row, p.column) for p in problems] == [(None, "total")]
    assert "must be decimal128(16, 2) or decimal text" in problems[0].message


def test_decimal_rows_with_fractions_of_a_fen_or_negative_are_named(tmp_path: Path) -> None:
    table = pq.read_table(_canonical(tmp_path))
    money = pa.array([Decimal("10000.000"), Decimal("350.505"), Decimal("-120.000")], pa.decimal128(20, 3))
    table = table.set_column(table.schema.get_field_index("total"), "total", money)
    pq.write_table(table, tmp_path / "bad.parquet")
    problems = problems_of(tmp_path / "bad.parquet")
    assert [(p.row, p.column) for p in problems] == [(2, "total"), (3, "total")]
    assert "350.505 has more than two decimal places" in problems[0].message
    assert "-120.000 must not be negative" in problems[1].message


def test_a_time_in_a_date_column_is_named(tmp_path: Path) -> None:
    table = pq.read_table(_canonical(tmp_path))
    moments = ["2014-03-01 00:00", "2014-04-02 08:00", "2014-05-05 00:00"]
    stamps = pa.array(pd.to_datetime(moments).to_numpy(), pa.timestamp("ns"))
    table = table.set_column(table.schema.get_field_index("admitted_on"), "admitted_on", stamps)
    pq.write_table(table, tmp_path / "bad.parquet")
    problems = problems_of(tmp_path / "bad.parquet")
    assert [(p.row, p.column) for p in problems] == [(2, "admitted_on")]
    assert problems[0].message == "2014-04-02 08:00:00 is a time, not a date"


def test_a_zoned_settlement_time_in_parquet_is_refused(tmp_path: Path) -> None:
    table = pq.read_table(_canonical(tmp_path))
    index = table.schema.get_field_index("settled_at")
    zoned = table.column(index).cast(pa.timestamp("us", tz="Asia/Shanghai"))
    pq.write_table(table.set_column(index, "settled_at", zoned), tmp_path / "zoned.parquet")
    problems = problems_of(tmp_path / "zoned.parquet")
    assert [(p.row, p.column) for p in problems] == [(None, "settled_at")]


def test_rows_are_numbered_across_the_parts_of_a_folder(tmp_path: Path) -> None:
    table = pq.read_table(_canonical(tmp_path))
    (tmp_path / "parts").mkdir()
    pq.write_table(table.slice(0, 2), tmp_path / "parts" / "part-0.parquet")
    bad = table.slice(2, 1)
    bad = bad.set_column(bad.schema.get_field_index("region"), "region", pa.array(["22"]))
    pq.write_table(bad, tmp_path / "parts" / "part-1.parquet")
    assert [(p.row, p.column) for p in problems_of(tmp_path / "parts")] == [(3, "region")]


def test_parts_with_other_types_are_refused(tmp_path: Path) -> None:
    table = pq.read_table(_canonical(tmp_path))
    (tmp_path / "parts").mkdir()
    pq.write_table(table.slice(0, 2), tmp_path / "parts" / "a.parquet")
    rest = table.slice(2, 1)
    index = rest.schema.get_field_index("hospital_level")
    pq.write_table(
        rest.set_column(index, "hospital_level", pa.array([1], pa.int64())), tmp_path / "parts" / "b.parquet"
    )
    problems = problems_of(tmp_path / "parts")
    assert problems[0].message == "b.parquet has other columns or types than a.parquet"


def test_an_unknown_file_kind_is_refused(tmp_path: Path) -> None:
    (tmp_path / "claims.json").write_text("[]", encoding="utf-8")
    assert problems_of(tmp_path / "claims.json")[0].column == "file"


# --------------------------------------------------------------------------------------------------------
# The engine's batch: the same as the claim model's, field by field
# --------------------------------------------------------------------------------------------------------


def test_batch_of_generated_claims_equals_the_claim_models_batch(tmp_path: Path) -> None:
    dataset = generate(400, seed=11)
    assert 300 <= len(dataset) <= 2_000
    path = tmp_path / "claims.csv"
    write_claims(dataset, path)
    claims = [parse_claim(claim_from_text(row)) for row in frame_rows(path)]
    assert_same_batch(batch_of(load_claims(path)), ClaimBatch.from_claims(claims))
    assert_same_batch(batch_of(dataset), ClaimBatch.from_claims(claims))
    # Any selection of rows, in any order: one area's claims, and the claims backwards.
    area = np.flatnonzero(dataset.frame["region"].to_numpy(dtype=object) == "220100")
    assert_same_batch(batch_of(dataset, area), ClaimBatch.from_claims([claims[i] for i in area]))
    backwards = np.arange(len(claims))[::-1]
    assert_same_batch(batch_of(dataset, backwards), ClaimBatch.from_claims([claims[i] for i in backwards]))


def test_batch_of_the_hand_written_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "claims.csv", ROWS)
    claims = [parse_claim(claim_from_text(row)) for row in ROWS]
    assert_same_batch(batch_of(load_claims(path)), ClaimBatch.from_claims(claims))
    assert_same_batch(batch_of(load_claims(path), [2, 0]), ClaimBatch.from_claims([claims[2], claims[0]]))


DIAGNOSES = ["C91.0", "c92.0", "C92.000X001", " I63.9", "J18.9", "Q21.1", "N18.5", "i10", "E11.9", "C34.1"]


@st.composite
def text_rows(draw: st.DrawFn) -> list[dict[str, str]]:
    """A few valid claims written the many ways the format allows (amount, time and code spellings)."""
    people = {f"P{i}": f"H{i // 2}" for i in range(5)}
    incomes = {h: draw(st.integers(0, 10**8)) for h in set(people.values())}
    rows = []
    for i in range(draw(st.integers(1, 12))):
        person = draw(st.sampled_from(sorted(people)))
        household = people[person]
        total = draw(st.integers(0, 10**9))
        parts = [draw(st.integers(0, total // 3)) for _ in range(3)]
        day = draw(st.integers(1, 300))
        stay = draw(st.integers(0, 40))
        admitted = np.datetime64("2014-01-01") + day
        discharged = admitted + stay
        settled = admitted + draw(st.integers(0, stay + 3))
        clock = draw(st.sampled_from(["T08:00:00", " 10:30", "T16:45:12.5", "T09:00:00.000001", "T23:59:59"]))
        rows.append(
            {
                "claim_id": draw(st.sampled_from([f"CL-{i:03d}", f"x{i}.2014/A:{i}"])),
                "person_id": person,
                "household_id": household,
                "insurance_scheme": draw(st.sampled_from(["employee", "resident", "none"])),
                "category": draw(st.sampled_from(["tekun", "orphan", "dibao", "low_income", "none"])),
                "hospital_id": draw(st.sampled_from(["HOS1", "HOS2", "H-3"])),
                "hospital_level": draw(st.sampled_from(["1", "2", "3"])),
                "visit_type": draw(st.sampled_from(["inpatient", "chronic_outpatient", "outpatient"])),
                "admitted_on": str(admitted),
                "discharged_on": str(discharged),
                "settled_at": f"{settled}{clock}",
                "diagnoses": ";".join(draw(st.lists(st.sampled_from(DIAGNOSES), min_size=1, max_size=4))),
                "total": draw(yuan_text(total)),
                "fully_self_paid": draw(yuan_text(parts[0])),
                "over_limit_self_paid": draw(yuan_text(parts[1])),
                "pre_self_paid": draw(yuan_text(parts[2])),
                "third_party_liability": draw(st.sampled_from(["true", "false", "1", "0", "TRUE"])),
                "assistance_approval": draw(st.sampled_from(["", "MZ-1", " MZ-2 "])),
                "grant_total": draw(yuan_text(draw(st.integers(0, total)))),
                "region": draw(st.sampled_from(["220581", "220100", "220400"])),
                "household_income": draw(yuan_text(incomes[household])),
            }
        )
    return rows


def yuan_text(fen: int) -> st.SearchStrategy[str]:
    """Spellings of one amount: 12.30, 12.3, +12.30, 0012.30 (and 12 when whole)."""
    whole, cents = divmod(fen, 100)
    forms = [f"{whole}.{cents:02d}", f"+{whole}.{cents:02d}", f"00{whole}.{cents:02d}"]
    if cents % 10 == 0:
        forms.append(f"{whole}.{cents // 10}")
    if cents == 0:
        forms.append(str(whole))
    return st.sampled_from(forms)


def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="doudi-dataset-") as folder:
        yield Path(folder)


@settings(max_examples=60, deadline=None)
@given(text_rows(), st.sampled_from([".csv", ".parquet"]))
def test_batch_of_any_valid_rows_equals_the_claim_models_batch(rows: list[dict[str, str]], suffix: str) -> None:
    for folder in scratch():
        path = write_csv(folder / "claims.csv", rows)
        dataset = load_claims(path)
        if suffix == ".parquet":  # and once more through the canonical Parquet form
            write_claims(dataset, folder / "claims.parquet")
            dataset = load_claims(folder / "claims.parquet")
        claims = [parse_claim(claim_from_text(row)) for row in rows]
        assert_same_batch(batch_of(dataset), ClaimBatch.from_claims(claims))
        order = np.random.default_rng(len(rows)).permutation(len(rows))
        assert_same_batch(batch_of(dataset, order), ClaimBatch.from_claims([claims[i] for i in order]))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d", None]), max_size=30))
def test_factorize_text_numbers_values_as_pandas_does(values: list[str | None]) -> None:
    present = [v for v in values if v is not None]
    codes, uniques = factorize_text(pa.array(present, pa.string()))
    expected_codes, expected_uniques = pd.factorize(np.array(present, dtype=object))
    assert codes.tolist() == expected_codes.tolist()
    assert uniques.tolist() == list(expected_uniques)


def test_a_table_can_be_checked_without_a_file() -> None:
    table = pa.table({name: pa.array([r[name] or None for r in ROWS], pa.string()) for name in COLUMNS})
    assert isinstance(dataset_from_table(table), Dataset)
    with pytest.raises(DatasetError) as caught:
        dataset_from_table(table.drop_columns(["total"]), "rows")
    assert str(caught.value).startswith("rows: 1 problem")
