"""reconciliation.matching: Doudi's own export, in every form a hospital might send it back, matches with no
difference and a balanced verdict; a file with differences injected at random gets exactly those differences
reported; each kind of difference is named the way a clerk can act on it; the difference report writes as
CSV and XLSX with Chinese headers and money as numbers."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass, field

import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciliation.frames import ENTRY_COLUMNS, LEDGER_TOTAL_COLUMNS, SETTLEMENT_COLUMNS, Month
from reconciliation.hospital_file import MONEY, read_hospital_file
from reconciliation.matching import (
    BALANCED,
    DIFFERENCE_COLUMNS,
    DIFFERENCE_KINDS,
    NOT_BALANCED,
    Matching,
    difference_sheets,
    match,
)
from reconciliation.national import detail_rows
from reconciliation.statement import Statement, build_statement
from reconciliation.writers import csv_bytes, xlsx_bytes

from .test_hospital_file import csv_of, detail, national_bytes, writers_xlsx, xlsx_of

JUNE = Month(2024, 6)

# ---------------------------------------------------------------------------------------------------------
# A small month built the way reconciliation/frames.py describes it


def _settlement(
    setl_id: str, hospital: str, settled: str, reversed_: str | None, total: int, fund: int
) -> dict[str, object]:
    return {
        "setl_id": setl_id,
        "medins_setl_id": f"HIS-{setl_id}",
        "hospital_id": hospital,
        "person_id": f"P-{setl_id}",
        "category": "dibao",
        "diagnosis": "C91.0",
        "admitted_on": dt.date(2024, 5, 20),
        "discharged_on": dt.date(2024, 5, 27),
        "settled_at": pd.Timestamp(settled),
        "reversed_at": pd.Timestamp(reversed_) if reversed_ else pd.NaT,
        "policy": "jl-meihekou@2014",
        "total": total,
        "fully_self_paid": 0,
        "over_limit_self_paid": 0,
        "pre_self_paid": 0,
        "in_scope": total,
        "fund_paid": fund,
        "patient_burden": total - fund,
    }


def small_statement() -> Statement:
    """June 2024 of hospital H1 (fen): S1 settled; S2 settled and reversed in June; S3 settled in May and
    reversed in June (a prior-period reversal: only its reverse row is June's); S4 settled in July (not June's);
    S5 belongs to another hospital. Basic insurance pays 60% of each fund amount, general assistance the rest."""
    settlements = pd.DataFrame(
        [
            _settlement("S1", "H1", "2024-06-03 10:00", None, 1_234_567, 1_000_000),
            _settlement("S2", "H1", "2024-06-10 11:00", "2024-06-20 09:00", 500_000, 300_001),
            _settlement("S3", "H1", "2024-05-28 15:00", "2024-06-05 08:30", 200_000, 120_000),
            _settlement("S4", "H1", "2024-07-01 08:00", None, 90_000, 50_000),
            _settlement("S5", "H2", "2024-06-15 16:00", None, 100_000, 60_000),
        ],
        columns=list(SETTLEMENT_COLUMNS),
    )
    entries = []
    for row in settlements.itertuples():
        basic = row.fund_paid * 6 // 10
        for kind, sign in (("settlement", 1), *((("reversal", -1),) if pd.notna(row.reversed_at) else ())):
            for stage, bucket, amount in (
                ("basic_insurance", "resident_basic", basic),
                ("medical_assistance", "general", row.fund_paid - basic),
            ):
                recorded = row.settled_at if kind == "settlement" else row.reversed_at
                entries.append(
                    {
                        "setl_id": row.setl_id,
                        "kind": kind,
                        "stage": stage,
                        "bucket": bucket,
                        "fund_pay_type": "390100" if stage == "basic_insurance" else "610100",
                        "amount": sign * amount,
                        "base": sign * amount,
                        "quota_used": None,
                        "quota_left": None,
                        "hospital_id": row.hospital_id,
                        "recorded": recorded,
                    }
                )
    frame = pd.DataFrame(entries)
    in_june = frame[JUNE.holds(frame["recorded"])]
    totals = in_june.groupby(["hospital_id", "stage", "bucket"], as_index=False)["amount"].sum()
    statement = build_statement(
        JUNE,
        settlements,
        frame[list(ENTRY_COLUMNS)].astype({"quota_used": "Int64", "quota_left": "Int64"}),
        totals[list(LEDGER_TOTAL_COLUMNS)],
        hospital_id="H1",
    )
    assert statement.balanced, statement.checks[~statement.checks["ok"]]
    return statement


STATEMENT = small_statement()
OURS = detail_rows(STATEMENT)


def test_the_small_month_has_the_expected_rows() -> None:
    assert list(zip(OURS["setl_id"], OURS["refd_setl_flag"], OURS["medfee_sumamt"], strict=True)) == [
        ("S1", "0", 1_234_567),
        ("S3", "1", -200_000),
        ("S2", "0", 500_000),
        ("S2", "1", -500_000),
    ]


# ---------------------------------------------------------------------------------------------------------
# Doudi's own export matches itself, in every form


def _gbk_safe(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(psn_no=[f"张三{i}" for i in range(len(rows))])


FORMS: dict[str, Callable[[pd.DataFrame], bytes]] = {
    "national zip (Doudi's own)": lambda rows: national_bytes(rows, zipped=True),
    "national text, GBK": lambda rows: national_bytes(_gbk_safe(rows), encoding="gbk"),
    "CSV UTF-8 with BOM, Chinese headers": lambda rows: csv_of(rows, encoding="utf-8-sig"),
    "CSV UTF-8, national headers": lambda rows: csv_of(rows, encoding="utf-8", chinese=False),
    "CSV GBK, Chinese headers under notes": lambda rows: csv_of(_gbk_safe(rows), encoding="gbk", notes=["六月明细"]),
    "XLSX with notes": lambda rows: xlsx_of(rows, notes=["2024年6月", "单位：元"]),
    "XLSX from Doudi's writer": writers_xlsx,
}


@pytest.mark.parametrize("form", FORMS)
def test_doudis_own_export_matches_with_no_difference(form: str) -> None:
    theirs = read_hospital_file(FORMS[form](OURS), "detail")
    assert theirs.problems == []
    result = match(OURS, theirs, JUNE)
    assert result.differences.empty
    assert list(result.differences.columns) == list(DIFFERENCE_COLUMNS)
    assert result.verdict.stmt_rslt == BALANCED and result.verdict.balanced
    assert result.counts == {"matched": 4, **dict.fromkeys(DIFFERENCE_KINDS, 0)}
    hospital = STATEMENT.hospitals.iloc[0]
    for side in (result.verdict.doudi, result.verdict.hospital):
        assert (side.rows, side.settlements, side.reversals) == (4, 2, 2)
        assert (side.medfee_sumamt, side.fund_pay_sumamt, side.acct_pay) == (
            hospital["medfee_sumamt"],
            hospital["fund_pay_sumamt"],
            0,
        )
    assert "balanced" in result.verdict.stmt_rslt_dscr and "平" in result.verdict.stmt_rslt_dscr


def test_an_empty_month_against_an_empty_file_is_balanced() -> None:
    empty = OURS.iloc[0:0]
    result = match(empty, read_hospital_file(national_bytes(empty, zipped=True), "empty.zip"), JUNE)
    assert result.verdict.balanced and result.differences.empty


# ---------------------------------------------------------------------------------------------------------
# Injected differences are reported exactly

Key = tuple[str, str, str, str]  # kind, setl_id, refd_setl_flag, field


@dataclass
class Injected:
    ours: pd.DataFrame
    theirs: pd.DataFrame
    settled_elsewhere: dict[str, str] = field(default_factory=dict)
    expected: set[Key] = field(default_factory=set)


AMOUNT = st.integers(-(10**10), 10**10)


@st.composite
def injections(draw: st.DrawFn) -> Injected:
    """Random rows of one hospital's month (settlements, reversals in the month, reversals of earlier
    settlements), the hospital's copy of them with differences injected, and the differences expected."""
    count = draw(st.integers(1, 20))
    ours_rows: list[tuple[str, str, int, int, int]] = []
    statuses = {}
    for i in range(count):
        setl_id = f"S{i:03d}"
        status = draw(st.sampled_from(["settled", "reversed", "late_reversal"]))
        statuses[setl_id] = status
        medfee, fund, acct = draw(AMOUNT), draw(AMOUNT), draw(AMOUNT)
        if status != "late_reversal":
            ours_rows.append((setl_id, "0", medfee, fund, acct))
        if status != "settled":
            ours_rows.append((setl_id, "1", -medfee, -fund, -acct))
    theirs_rows = list(ours_rows)
    expected: set[Key] = set()
    settled_elsewhere: dict[str, str] = {}

    def row_of(setl_id: str, flag: str) -> int:
        return next(i for i, r in enumerate(theirs_rows) if r[0] == setl_id and r[1] == flag)

    for setl_id, status in statuses.items():
        flags = {"settled": ["0"], "reversed": ["0", "1"], "late_reversal": ["1"]}[status]
        operations = ["none", "drop", "duplicate", "change"] + (["add_reverse"] if status == "settled" else [])
        operation = draw(st.sampled_from(operations))
        if operation == "none":
            continue
        flag = draw(st.sampled_from(flags)) if operation != "add_reverse" else "1"
        if operation == "drop":
            theirs_rows.pop(row_of(setl_id, flag))
            kind = "reversal_differs" if (flag == "1" and status == "reversed") else "doudi_only"
            expected.add((kind, setl_id, flag, "medfee_sumamt"))
        elif operation == "duplicate":
            theirs_rows.append(theirs_rows[row_of(setl_id, flag)])
            expected.add(("duplicated", setl_id, flag, "medfee_sumamt"))
        elif operation == "change":
            index = row_of(setl_id, flag)
            values = list(theirs_rows[index])
            for name in draw(st.sets(st.sampled_from(MONEY), min_size=1)):
                values[2 + MONEY.index(name)] += draw(st.integers(1, 10**6)) * draw(st.sampled_from([1, -1]))
                expected.add(("amount_differs", setl_id, flag, name))
            theirs_rows[index] = (values[0], values[1], values[2], values[3], values[4])
        elif operation == "add_reverse":
            _, _, medfee, fund, acct = theirs_rows[row_of(setl_id, "0")]
            theirs_rows.append((setl_id, "1", -medfee, -fund, -acct))
            expected.add(("reversal_differs", setl_id, "1", "medfee_sumamt"))
    for i in range(draw(st.integers(0, 3))):
        theirs_rows.append((f"U{i:03d}", "0", draw(AMOUNT), draw(AMOUNT), 0))
        expected.add(("hospital_only", f"U{i:03d}", "0", "medfee_sumamt"))
    for i in range(draw(st.integers(0, 3))):
        theirs_rows.append((f"M{i:03d}", "0", draw(AMOUNT), draw(AMOUNT), 0))
        settled_elsewhere[f"M{i:03d}"] = "2024-05"
        expected.add(("wrong_month", f"M{i:03d}", "0", "medfee_sumamt"))
    theirs_rows = draw(st.permutations(theirs_rows))
    return Injected(detail(ours_rows), detail(theirs_rows), settled_elsewhere, expected)


WRITERS: dict[str, Callable[[pd.DataFrame], bytes]] = {
    "national zip": lambda rows: national_bytes(rows, zipped=True),
    "CSV GBK": lambda rows: csv_of(rows, encoding="gbk"),
    "XLSX": lambda rows: xlsx_of(rows, notes=["明细"]),
}


@given(injections(), st.sampled_from(sorted(WRITERS)))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_exactly_the_injected_differences_are_reported(case: Injected, form: str) -> None:
    theirs = read_hospital_file(WRITERS[form](case.theirs), "hospital")
    assert theirs.problems == []
    result = match(case.ours, theirs, JUNE, case.settled_elsewhere)
    found = set(
        zip(
            result.differences["kind"],
            result.differences["setl_id"],
            result.differences["refd_setl_flag"],
            result.differences["field"],
            strict=True,
        )
    )
    assert found == case.expected
    assert len(result.differences) == len(found)  # nothing reported twice
    assert result.verdict.balanced is (not case.expected)
    assert result.verdict.stmt_rslt == (BALANCED if not case.expected else NOT_BALANCED)
    assert sum(result.counts[k] for k in DIFFERENCE_KINDS) == len(result.differences)
    # A clerk can find every hospital row named: it holds that key.
    keys = {(r.row, r.setl_id, r.refd_setl_flag) for r in theirs.rows.itertuples()}
    named = result.differences.dropna(subset=["hospital_row"])
    assert all((int(r.hospital_row), r.setl_id, r.refd_setl_flag) in keys for r in named.itertuples())
    # The medfee_sumamt differences add up to the difference of the two totals.
    medfee = result.differences[result.differences["field"] == "medfee_sumamt"]["difference"].sum()
    assert medfee == result.verdict.hospital.medfee_sumamt - result.verdict.doudi.medfee_sumamt
    assert result.counts["matched"] == len(case.ours) - len(
        {(k[1], k[2]) for k in case.expected if k[0] in ("amount_differs", "doudi_only", "reversal_differs")}
        & set(zip(case.ours["setl_id"], case.ours["refd_setl_flag"], strict=True))
    )


# ---------------------------------------------------------------------------------------------------------
# Each kind of difference, as the clerk reads it


def matched_against(
    theirs_rows: list[tuple[str, str, int, int, int]],
    ours_rows: list[tuple[str, str, int, int, int]] | None = None,
    settled_elsewhere: dict[str, str] | None = None,
) -> Matching:
    ours = OURS if ours_rows is None else detail(ours_rows)
    theirs = read_hospital_file(national_bytes(detail(theirs_rows), zipped=True), "hospital.zip")
    return match(ours, theirs, JUNE, settled_elsewhere or {})


def records(result: Matching) -> list[tuple[object, ...]]:
    columns = ["kind", "setl_id", "refd_setl_flag", "field", "doudi", "hospital", "difference", "hospital_row"]
    return [
        tuple(None if pd.isna(v) else v for v in row) for row in result.differences[columns].itertuples(index=False)
    ]


OUR_ROWS = [
    ("S1", "0", 1_234_567, 1_000_000, 0),
    ("S3", "1", -200_000, -120_000, 0),
    ("S2", "0", 500_000, 300_001, 0),
    ("S2", "1", -500_000, -300_001, 0),
]


def test_amounts_differing_in_two_fields_give_two_differences() -> None:
    rows = list(OUR_ROWS)
    rows[0] = ("S1", "0", 1_234_568, 999_999, 0)
    result = matched_against(rows)
    assert records(result) == [
        ("amount_differs", "S1", "0", "medfee_sumamt", 1_234_567, 1_234_568, 1, 2),
        ("amount_differs", "S1", "0", "fund_pay_sumamt", 1_000_000, 999_999, -1, 2),
    ]
    note = result.differences["note"].iloc[0]
    assert note == (
        "医疗费总额不符：Doudi 12345.67，医院 12345.68，差额 0.01"
        " / medfee_sumamt differs: Doudi 12345.67, hospital 12345.68, difference 0.01"
    )
    assert result.counts["matched"] == 3 and result.counts["amount_differs"] == 2


def test_a_reverse_row_with_positive_amounts_is_pointed_out() -> None:
    rows = list(OUR_ROWS)
    rows[3] = ("S2", "1", 500_000, 300_001, 0)
    result = matched_against(rows)
    assert [r[:4] for r in records(result)] == [
        ("amount_differs", "S2", "1", "medfee_sumamt"),
        ("amount_differs", "S2", "1", "fund_pay_sumamt"),
    ]
    assert all("sign is the opposite" in note for note in result.differences["note"])


def test_a_duplicate_names_the_row_it_repeats() -> None:
    result = matched_against([*OUR_ROWS, ("S1", "0", 1_234_567, 1_000_000, 0), ("S1", "0", 1, 1, 0)])
    assert records(result) == [
        ("duplicated", "S1", "0", "medfee_sumamt", None, 1_234_567, 1_234_567, 6),
        ("duplicated", "S1", "0", "medfee_sumamt", None, 1, 1, 7),
    ]
    notes = result.differences["note"].tolist()
    assert "repeats row 2" in notes[0] and "the same amounts" in notes[0]
    assert "different amounts" in notes[1]
    assert result.counts["matched"] == 4  # the first occurrence still matches


def test_the_hospital_lacks_doudis_reversal() -> None:
    result = matched_against([r for r in OUR_ROWS if r[:2] != ("S2", "1")])
    assert records(result) == [("reversal_differs", "S2", "1", "medfee_sumamt", -500_000, None, 500_000, None)]
    assert "Doudi reversed this settlement this month" in result.differences["note"].iloc[0]


def test_the_hospital_reversed_what_doudi_did_not() -> None:
    ours = [("S1", "0", 1000, 600, 0)]
    result = matched_against([*ours, ("S1", "1", -1000, -600, 0)], ours)
    assert records(result) == [("reversal_differs", "S1", "1", "medfee_sumamt", None, -1000, -1000, 3)]
    assert "Doudi did not reverse this settlement this month" in result.differences["note"].iloc[0]


def test_a_prior_period_reversal_the_hospital_books_as_a_settlement_of_this_month() -> None:
    # Doudi settled S3 in May and reversed it in June; the hospital lists S3's forward row in June instead.
    theirs = [r for r in OUR_ROWS if r[0] != "S3"] + [("S3", "0", 200_000, 120_000, 0)]
    result = matched_against(theirs, settled_elsewhere={"S3": "2024-05"})
    assert [r[:3] for r in records(result)] == [("reversal_differs", "S3", "1"), ("wrong_month", "S3", "0")]
    assert "Doudi recorded this settlement in 2024-05, not 2024-06" in result.differences["note"].iloc[1]
    without_months = matched_against(theirs)
    assert [r[:3] for r in records(without_months)] == [("reversal_differs", "S3", "1"), ("hospital_only", "S3", "0")]


def test_rows_only_on_one_side() -> None:
    result = matched_against([*OUR_ROWS[1:], ("X1", "0", 5, 0, 0), ("X2", "1", -5, 0, 0)])
    assert records(result) == [
        ("hospital_only", "X1", "0", "medfee_sumamt", None, 5, 5, 5),
        ("hospital_only", "X2", "1", "medfee_sumamt", None, -5, -5, 6),
        ("doudi_only", "S1", "0", "medfee_sumamt", 1_234_567, None, -1_234_567, None),
    ]
    notes = result.differences["note"].tolist()
    assert "Doudi has no such settlement this month" in notes[0]
    assert "nor the settlement it reverses" in notes[1] or "neither this reverse row" in notes[1]
    assert "the hospital's file lacks this settlement" in notes[2]


def test_a_settlement_recorded_in_this_month_elsewhere_is_not_a_wrong_month() -> None:
    result = matched_against([*OUR_ROWS, ("X1", "0", 5, 0, 0)], settled_elsewhere={"X1": "2024-06"})
    assert [r[:3] for r in records(result)] == [("hospital_only", "X1", "0")]


def test_a_reverse_row_of_a_settlement_from_another_month() -> None:
    result = matched_against([*OUR_ROWS, ("M1", "1", -5, 0, 0)], settled_elsewhere={"M1": "2024-04"})
    assert [r[:3] for r in records(result)] == [("wrong_month", "M1", "1")]
    assert "has no reversal of it in 2024-06" in result.differences["note"].iloc[0]


def test_totals_that_agree_do_not_hide_rows_that_differ() -> None:
    ours = [("A", "0", 100, 50, 0), ("B", "0", 200, 50, 0)]
    result = matched_against([("A", "0", 200, 50, 0), ("B", "0", 100, 50, 0)], ours)
    assert result.verdict.doudi == result.verdict.hospital
    assert not result.verdict.balanced
    assert "the totals agree but the rows do not" in result.verdict.stmt_rslt_dscr


def test_bad_rows_are_differences_and_the_verdict_is_never_balanced() -> None:
    text = (
        "setl_id\tmedfee_sumamt\tfund_pay_sumamt\tacct_pay\trefd_setl_flag\n"
        "S1\t12345.67\t10000.00\t0\t0\n"
        "S3\t-2000.00\t-1200.00\t0\t1\n"
        "S2\t5000.00\t3000.01\t0\t0\n"
        "S2\t-5000,00\t-3000.01\t0\t1\n"
    )
    theirs = read_hospital_file(text.encode(), "hospital.txt")
    result = match(OURS, theirs, JUNE)
    assert records(result) == [
        ("bad_row", "S2", "", "medfee_sumamt", None, None, None, 5),
        ("reversal_differs", "S2", "1", "medfee_sumamt", -500_000, None, 500_000, None),
    ]
    assert result.differences["note"].iloc[1] == (
        "Doudi 本月已撤销此结算，医院文件只有正向行、没有冲销行；医院文件第 5 行有此结算ID但无法读取"
        " / Doudi reversed this settlement this month; the hospital's file has the forward row but not the reverse "
        "row; row 5 of the file names it but was not read"
    )
    assert result.verdict.stmt_rslt == NOT_BALANCED


def test_a_file_with_only_a_bad_row_is_not_balanced_even_if_the_rest_agrees() -> None:
    data = national_bytes(detail(OUR_ROWS)) + b"S9\tnull\tnull\tabc\t1\t0\t0\tnull\n"
    result = match(OURS, read_hospital_file(data, "hospital.txt"), JUNE)
    assert result.counts["matched"] == 4 and result.counts["bad_row"] == 1
    assert not result.verdict.balanced


def test_an_unreadable_file_is_not_matched_row_by_row() -> None:
    result = match(OURS, read_hospital_file(b"%PDF-1.4", "scan.pdf"), JUNE)
    assert [r[0] for r in records(result)] == ["bad_row"]  # not four rows "only in Doudi" besides
    assert result.verdict.stmt_rslt == NOT_BALANCED
    assert "could not be read" in result.verdict.stmt_rslt_dscr
    assert result.verdict.doudi.rows == 4 and result.verdict.hospital.rows == 0


def test_doudis_rows_must_have_unique_keys() -> None:
    theirs = read_hospital_file(national_bytes(detail(OUR_ROWS)), "hospital.txt")
    with pytest.raises(ValueError, match="repeat"):
        match(pd.concat([OURS, OURS.iloc[[0]]]), theirs, JUNE)


def test_differences_are_in_the_order_a_clerk_works_through_them() -> None:
    theirs = [
        ("X1", "0", 5, 0, 0),  # hospital only
        ("S1", "0", 1, 1_000_000, 0),  # amount differs
        ("S1", "0", 1, 1_000_000, 0),  # duplicated
        ("S2", "0", 500_000, 300_001, 0),  # S2's reverse row missing: reversal differs
    ]
    result = matched_against(theirs)
    assert result.differences["kind"].tolist() == [
        "duplicated",
        "amount_differs",
        "reversal_differs",
        "hospital_only",
        "doudi_only",
    ]


# ---------------------------------------------------------------------------------------------------------
# The difference report


def test_the_difference_report_writes_as_csv_and_xlsx() -> None:
    rows = [r for r in OUR_ROWS if r[:2] != ("S2", "1")] + [("X1", "0", 5, 0, 0)]
    rows[0] = ("S1", "0", 1_234_568, 1_000_000, 0)
    result = matched_against(rows)
    verdict_sheet, differences_sheet = difference_sheets(result)
    assert verdict_sheet.frame["side"].tolist() == ["Doudi", "医院 hospital", "差额 hospital − Doudi"]
    assert verdict_sheet.frame["medfee_sumamt"].tolist() == [1_034_567, 1_534_573, 500_006]
    assert any("stmt_rslt 1" in note for note in verdict_sheet.notes)
    assert set(differences_sheet.money) == {"doudi", "hospital", "difference"}

    text = csv_bytes(differences_sheet).decode("utf-8-sig")
    header = text.splitlines()[0]
    for title in ("差异类型", "结算ID", "退费结算标志", "Doudi 金额", "医院金额", "医院文件行号", "说明 note"):
        assert title in header
    assert "12345.67" in text and "12345.68" in text

    workbook = openpyxl.load_workbook(io.BytesIO(xlsx_bytes(difference_sheets(result), dt.datetime(2024, 7, 1))))
    assert workbook.sheetnames == ["对账结论 verdict", "差异明细 differences"]
    sheet = workbook["差异明细 differences"]
    table = [list(row) for row in sheet.iter_rows(values_only=True)]
    headers = table[0]
    first = dict(zip(headers, table[1], strict=True))
    assert first["差异类型"] == "金额不符" and first["结算ID"] == "S1"
    assert first["Doudi 金额"] == 12345.67 and first["医院金额"] == 12345.68
    assert first["医院文件行号"] == 2  # a number, not text
    kinds = [dict(zip(headers, row, strict=True))["类型代码 kind"] for row in table[1:]]
    assert kinds == ["amount_differs", "reversal_differs", "hospital_only"]


def test_the_report_of_an_unreadable_file_names_its_problem() -> None:
    result = match(OURS, read_hospital_file(b"", "empty.txt"), JUNE)
    _, differences_sheet = difference_sheets(result)
    text = csv_bytes(differences_sheet).decode("utf-8-sig")
    assert "the file is empty" in text and "无法读取的行" in text
