"""reconciliation.hospital_file: a hospital's detail file in every accepted form (the national layout zipped or
not, CSV with English or Chinese headers, XLSX with notes above the header) and encoding (UTF-8 with or
without BOM, GBK, GB18030, UTF-16) reads to the same exact rows; every malformed file gives problems naming
the row and column a clerk sees, and never an exception.

The writers here (`national_bytes`, `csv_of`, `xlsx_of`) also serve tests/unit/test_matching.py.
"""

from __future__ import annotations

import csv
import io
import struct
import zipfile
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pytest
import xlsxwriter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciliation.frames import Month
from reconciliation.hospital_file import (
    CSV,
    FIELD_TITLES,
    MAX_UNCOMPRESSED,
    MONEY,
    NATIONAL,
    ROW_COLUMNS,
    UNKNOWN,
    XLSX,
    HospitalFile,
    read_hospital_file,
)
from reconciliation.national import DETAIL_COLUMNS, detail_text, yuan_text, zipped_detail
from reconciliation.writers import Sheet, xlsx_bytes

JUNE = Month(2024, 6)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------------------
# Writing the hospital's file in each form


def detail(rows: Sequence[tuple[str, str, int, int, int]], psn_no: str = "P") -> pd.DataFrame:
    """Rows in the national layout from (setl_id, refd_setl_flag, medfee_sumamt, fund_pay_sumamt, acct_pay)."""
    return pd.DataFrame(
        [
            {
                "setl_id": setl_id,
                "mdtrt_id": f"M-{setl_id}",
                "psn_no": f"{psn_no}{i}",
                "medfee_sumamt": medfee,
                "fund_pay_sumamt": fund,
                "acct_pay": acct,
                "refd_setl_flag": flag,
                "exp_content": "hospital=H1",
            }
            for i, (setl_id, flag, medfee, fund, acct) in enumerate(rows)
        ],
        columns=list(DETAIL_COLUMNS),
    )


def national_bytes(rows: pd.DataFrame, *, encoding: str = "utf-8", zipped: bool = False, crlf: bool = False) -> bytes:
    if zipped and encoding == "utf-8" and not crlf:
        return zipped_detail(rows, JUNE, "fixmedins_detail.txt")
    text = detail_text(rows)
    if crlf:
        text = text.replace("\n", "\r\n")
    data = text.encode(encoding)
    if not zipped:
        return data
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("detail.txt", data)
    return buffer.getvalue()


CHINESE_HEADERS = {name: FIELD_TITLES[name] for name in DETAIL_COLUMNS if name in FIELD_TITLES}


def csv_of(
    rows: pd.DataFrame, *, encoding: str = "utf-8-sig", chinese: bool = True, notes: Sequence[str] = ()
) -> bytes:
    """The rows as a clerk's CSV: money in yuan, Chinese (or national) headers, optional note lines on top."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for note in notes:
        writer.writerow([note])
    columns = [c for c in DETAIL_COLUMNS if c != "exp_content"]
    writer.writerow([CHINESE_HEADERS[c] if chinese else c for c in columns])
    for row in rows[columns].itertuples(index=False):
        writer.writerow([yuan_text(v) if c in MONEY else v for c, v in zip(columns, row, strict=True)])
    return buffer.getvalue().encode(encoding)


def xlsx_of(rows: pd.DataFrame, *, notes: Sequence[str] = (), gap_after: int | None = None) -> bytes:
    """The rows as a clerk's workbook: money as numbers in yuan, flags as numbers, ids as text; note lines
    above the header, and optionally an empty row after data row `gap_after`."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = workbook.add_worksheet("明细")
    for i, note in enumerate(notes):
        sheet.write_string(i, 0, note)
    columns = [c for c in DETAIL_COLUMNS if c != "exp_content"]
    top = len(notes)
    for j, column in enumerate(columns):
        sheet.write_string(top, j, CHINESE_HEADERS[column])
    line = top + 1
    for i, row in enumerate(rows[columns].itertuples(index=False)):
        for j, (column, value) in enumerate(zip(columns, row, strict=True)):
            if column in MONEY:
                sheet.write_number(line, j, int(value) / 100)
            elif column == "refd_setl_flag":
                sheet.write_number(line, j, int(value))
            else:
                sheet.write_string(line, j, str(value))
        line += 2 if gap_after is not None and i == gap_after else 1
    workbook.close()
    return buffer.getvalue()


def writers_xlsx(rows: pd.DataFrame) -> bytes:
    """Doudi's own spreadsheet writer: note lines, formatted money, and a totals row at the bottom."""
    columns = [c for c in DETAIL_COLUMNS if c != "exp_content"]
    sheet = Sheet(
        "明细",
        rows[columns],
        {c: CHINESE_HEADERS[c] for c in columns},
        money=MONEY,
        totals=MONEY,
        notes=("2024-06 医院明细", "单位：元"),
    )
    return xlsx_bytes([sheet], pd.Timestamp("2024-07-01").to_pydatetime())


def expected_frame(rows: pd.DataFrame, first_row: int, step: Callable[[int], int] = lambda i: i) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "row": [first_row + step(i) for i in range(len(rows))],
            "setl_id": rows["setl_id"].astype(str).tolist(),
            "refd_setl_flag": rows["refd_setl_flag"].astype(str).tolist(),
            **{name: rows[name].astype(np.int64).tolist() for name in MONEY},
            "psn_no": rows["psn_no"].astype(str).tolist(),
            "mdtrt_id": rows["mdtrt_id"].astype(str).tolist(),
        },
        columns=list(ROW_COLUMNS),
    )


def assert_rows(read: HospitalFile, expected: pd.DataFrame) -> None:
    got = read.rows.reset_index(drop=True)
    assert list(got.columns) == list(ROW_COLUMNS)
    for name in ("row", *MONEY):
        assert got[name].dtype == np.int64, name
    pd.testing.assert_frame_equal(got.astype(object), expected.astype(object), check_dtype=False)


def problem_places(read: HospitalFile) -> set[tuple[int, str]]:
    return {(p.row, p.column) for p in read.problems}


SAMPLE = detail(
    [
        ("S0001", "0", 1_234_567, 1_000_000, 0),
        ("S0002", "0", 50_000, 30_001, 1_999),
        ("S0002", "1", -50_000, -30_001, -1_999),
        ("S0003", "1", -7, 0, -7),  # a reversal of a settlement from an earlier month
    ],
    psn_no="张䶮",  # 䶮 is in GB18030 but not in GBK
)
GBK_SAMPLE = SAMPLE.assign(psn_no=[f"张三{i}" for i in range(len(SAMPLE))])


# ---------------------------------------------------------------------------------------------------------
# Every accepted form reads to the same rows


def test_doudis_own_national_zip_reads_back_exactly() -> None:
    read = read_hospital_file(national_bytes(SAMPLE, zipped=True), "fixmedins_detail.zip")
    assert (read.format, read.zipped, read.encoding, read.readable) == (NATIONAL, True, "UTF-8", True)
    assert read.problems == [] and read.notes == [] and read.header_row == 1
    assert_rows(read, expected_frame(SAMPLE, first_row=2))
    assert read.describe() == "national detail layout (TAB), zipped; UTF-8"


@pytest.mark.parametrize(
    ("encoding", "label", "rows"),
    [
        ("utf-8", "UTF-8", SAMPLE),
        ("utf-8-sig", "UTF-8 with BOM", SAMPLE),
        ("gbk", "GBK", GBK_SAMPLE),
        ("gb18030", "GB18030", SAMPLE),
        ("utf-16", "UTF-16", SAMPLE),  # what Excel's "Unicode text" saves: TAB-separated UTF-16
    ],
)
@pytest.mark.parametrize("zipped", [False, True])
@pytest.mark.parametrize("crlf", [False, True])
def test_national_layout_in_each_encoding(
    encoding: str, label: str, rows: pd.DataFrame, zipped: bool, crlf: bool
) -> None:
    read = read_hospital_file(national_bytes(rows, encoding=encoding, zipped=zipped, crlf=crlf), "detail")
    assert (read.format, read.zipped, read.encoding) == (NATIONAL, zipped, label)
    assert read.problems == []
    assert_rows(read, expected_frame(rows, first_row=2))


@pytest.mark.parametrize(
    ("encoding", "label", "rows"),
    [
        ("utf-8-sig", "UTF-8 with BOM", SAMPLE),
        ("utf-8", "UTF-8", SAMPLE),
        ("gbk", "GBK", GBK_SAMPLE),
        ("gb18030", "GB18030", SAMPLE),
    ],
)
@pytest.mark.parametrize("chinese", [True, False])
def test_csv_with_chinese_or_national_headers(encoding: str, label: str, rows: pd.DataFrame, chinese: bool) -> None:
    read = read_hospital_file(csv_of(rows, encoding=encoding, chinese=chinese), "detail.csv")
    assert (read.format, read.zipped, read.encoding) == (CSV, False, label)
    assert read.problems == [] and read.header_row == 1
    assert_rows(read, expected_frame(rows, first_row=2))


def test_csv_with_notes_above_the_header_counts_rows_as_the_clerk_sees_them() -> None:
    data = csv_of(GBK_SAMPLE, encoding="gbk", notes=["梅河口市医院 2024年6月 结算明细", "", "制表人：王"])
    read = read_hospital_file(data, "detail.csv")
    assert read.header_row == 4 and read.problems == []
    assert_rows(read, expected_frame(GBK_SAMPLE, first_row=5))


def test_quoted_csv_field_over_two_lines_keeps_line_numbers() -> None:
    text = (
        "setl_id,psn_no,medfee_sumamt,fund_pay_sumamt,refd_setl_flag\r\n"
        'S1,"two\r\nlines",1.00,0.50,0\r\n'
        "S2,P2,12,5,0.50,0\r\n"
        'S3,"a, b",3.5,0,0\r\n'
    )
    read = read_hospital_file(text.encode(), "detail.csv")
    assert problem_places(read) == {(4, "")}  # the unquoted 12,5 splits into an extra field
    assert read.rows["row"].tolist() == [2, 5]
    assert read.rows["psn_no"].tolist() == ["two\nlines", "a, b"]
    assert read.rows["medfee_sumamt"].tolist() == [100, 350]
    assert read.rows["acct_pay"].tolist() == [0, 0]  # the optional column is absent: nothing from the account


def test_xlsx_with_notes_numbers_and_an_empty_row() -> None:
    read = read_hospital_file(xlsx_of(SAMPLE, notes=["2024年6月 结算明细", "单位：元"], gap_after=1), "明细.xlsx")
    assert (read.format, read.encoding, read.zipped) == (XLSX, "", False)
    assert read.problems == [] and read.header_row == 3
    # Rows 4 and 5, an empty row 6, then rows 7 and 8: the numbers Excel shows.
    assert_rows(read, expected_frame(SAMPLE, first_row=4, step=lambda i: i + (i >= 2)))
    assert read.notes == ["读取第一个工作表“明细” / read the first worksheet, '明细'"]


def test_xlsx_from_doudis_writer_skips_the_totals_row() -> None:
    read = read_hospital_file(writers_xlsx(SAMPLE), "statement.xlsx")
    assert read.problems == [] and read.header_row == 3
    assert_rows(read, expected_frame(SAMPLE, first_row=4))
    assert any("totals row" in note for note in read.notes)


@pytest.mark.parametrize("blank_lines", [0, 2])
def test_national_file_without_a_header_line_is_read_in_the_national_order(blank_lines: int) -> None:
    body = "\n" * blank_lines + detail_text(SAMPLE).split("\n", 1)[1]
    read = read_hospital_file(body.encode(), "detail.txt")
    assert read.problems == [] and read.header_row == 0
    assert_rows(read, expected_frame(SAMPLE, first_row=1 + blank_lines))
    assert any("national column order" in note for note in read.notes)


@pytest.mark.parametrize(
    "headers",
    [
        ["SETL_ID", "MEDFEE_SUMAMT", "FUND_PAY_SUMAMT", "REFD_SETL_FLAG"],
        ["结算ID", "医疗费总额（元）", "基金支付总额(元)", "退费结算标志"],
        ["结算ID setl_id", "医疗费总额 medfee_sumamt", "基金支付总额 fund_pay_sumamt", "退费结算标志 refd_setl_flag"],
        ["结算编号", "医疗总费用", "基金支付金额", "退费标志"],
        [" 结算 ID ", "医疗费总额", "基金支付总额", "\ufeff退费结算标志"],
    ],
)
def test_header_spellings(headers: list[str]) -> None:
    read = read_hospital_file((",".join(headers) + "\nS1,10.00,8.00,0\n").encode(), "detail.csv")
    assert read.problems == []
    assert read.rows[["setl_id", "medfee_sumamt", "fund_pay_sumamt", "acct_pay"]].values.tolist() == [
        ["S1", 1000, 800, 0]
    ]


def test_repeated_column_reads_the_first_and_says_so() -> None:
    data = b"setl_id,medfee_sumamt,fund_pay_sumamt,refd_setl_flag,medfee_sumamt\nS1,1.00,0.50,0,9.99\n"
    read = read_hospital_file(data, "detail.csv")
    assert read.problems == [] and read.rows["medfee_sumamt"].tolist() == [100]
    assert any("more than once" in note for note in read.notes)


def test_amount_forms() -> None:
    values = ["0", "0.5", "7.", "+3.10", "-0.01", " 12.34 ", "99999999999999.99", "null", ""]
    lines = [f"S{i},{v},0,{'0' if v.strip() not in ('null', '') else ''},0" for i, v in enumerate(values)]
    data = ("setl_id,medfee_sumamt,fund_pay_sumamt,acct_pay,refd_setl_flag\n" + "\n".join(lines)).encode()
    read = read_hospital_file(data, "detail.csv")
    assert read.rows["medfee_sumamt"].tolist() == [0, 50, 700, 310, -1, 1234, 9_999_999_999_999_999]
    assert problem_places(read) == {(9, "medfee_sumamt"), (10, "medfee_sumamt")}  # required, so not empty
    assert read.rows["acct_pay"].tolist() == [0] * 7  # optional, so empty means 0


@given(st.lists(st.integers(-(10**16) + 1, 10**16 - 1), min_size=1, max_size=30))
@SETTINGS
def test_money_is_exact_to_the_fen(amounts: list[int]) -> None:
    rows = detail([(f"S{i}", "0", fen, -fen, fen // 3) for i, fen in enumerate(amounts)])
    read = read_hospital_file(national_bytes(rows), "detail.txt")
    assert read.problems == []
    assert read.rows["medfee_sumamt"].tolist() == amounts
    assert read.rows["fund_pay_sumamt"].tolist() == [-fen for fen in amounts]
    assert read.rows["acct_pay"].tolist() == [fen // 3 for fen in amounts]


def test_xlsx_cells_that_are_numbers() -> None:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = workbook.add_worksheet()
    sheet.write_row(0, 0, ["结算ID", "医疗费总额", "基金支付总额", "个人账户支出", "退费结算标志"])
    sheet.write_row(1, 0, [123456, 0.1 + 0.2, 100, None, 1.0])  # a float sum is still 30 fen; an int is yuan
    sheet.write_row(2, 0, ["S2", 12.345, 1, 0, 0])  # not whole fen
    sheet.write_row(3, 0, [1.2345678901234567e17, 1, 1, 0, 0])  # an id Excel may have rounded
    sheet.write_row(4, 0, ["S4", 1e9, 99999999.99, -0.01, 0])
    workbook.close()
    read = read_hospital_file(buffer.getvalue(), "numbers.xlsx")
    assert problem_places(read) == {(3, "medfee_sumamt"), (4, "setl_id")}
    assert read.rows[["row", "setl_id", "refd_setl_flag", *MONEY]].values.tolist() == [
        [2, "123456", "1", 30, 10000, 0],
        [5, "S4", "0", 100_000_000_000, 9_999_999_999, -1],
    ]
    assert read.problems[0].setl_id == "S2"


# ---------------------------------------------------------------------------------------------------------
# Malformed files: each problem named by row and column, never an exception

HEADER = "setl_id\tmdtrt_id\tpsn_no\tmedfee_sumamt\tfund_pay_sumamt\tacct_pay\trefd_setl_flag\texp_content\n"
GOOD = "G1\tnull\tnull\t10.00\t8.00\t0.00\t0\tnull\n"


def tsv(*lines: str) -> bytes:
    return (HEADER + GOOD + "".join(lines)).encode()


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def patched_sizes(data: bytes, uncompressed: int) -> bytes:
    """A one-entry zip whose local header and directory claim `uncompressed` bytes for the entry."""
    patched = bytearray(data)
    local = patched.find(b"PK\x03\x04")
    struct.pack_into("<I", patched, local + 22, uncompressed)
    central = patched.find(b"PK\x01\x02")
    struct.pack_into("<I", patched, central + 24, uncompressed)
    return bytes(patched)


def workbook_without_rows() -> bytes:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    workbook.add_worksheet()
    workbook.close()
    return buffer.getvalue()


MIXED = (
    HEADER.encode()
    + "U1\tnull\t张三\t1.00\t0.50\t0\t0\tnull\n".encode()
    + "G2\tnull\t李四\t2.00\t1.00\t0\t0\tnull\n".encode("gbk")
    + b"X3\tnull\t\xff\xfe\xfd\t3.00\t1.00\t0\t0\tnull\n"
    + "U4\tnull\t王五\t4.00\t2.00\t0\t0\tnull\n".encode()
)

MALFORMED: dict[str, tuple[bytes, set[tuple[int, str]]]] = {
    "missing column": (
        b"setl_id,medfee_sumamt,refd_setl_flag\nS1,1.00,0\n",
        {(1, "fund_pay_sumamt")},
    ),
    "missing columns under notes": (
        "说明\n\n结算ID,医疗费总额\nS1,1.00\n".encode("gbk"),
        {(3, "fund_pay_sumamt"), (3, "refd_setl_flag")},
    ),
    "no header at all": (b"hello\nworld\n", {(0, "")}),
    "comma as decimal point": (tsv("B1\tnull\tnull\t12,5\t1\t0\t0\tnull\n"), {(3, "medfee_sumamt")}),
    "letters as amount": (tsv("B1\tnull\tnull\t1\tabc\t0\t0\tnull\n"), {(3, "fund_pay_sumamt")}),
    "three decimals": (tsv("B1\tnull\tnull\t1\t1\t1.234\t0\tnull\n"), {(3, "acct_pay")}),
    "exponent": (tsv("B1\tnull\tnull\t1e3\t1\t0\t0\tnull\n"), {(3, "medfee_sumamt")}),
    "full-width digits": (tsv("B1\tnull\tnull\t１２\t1\t0\t0\tnull\n"), {(3, "medfee_sumamt")}),
    "too many digits": (tsv("B1\tnull\tnull\t123456789012345\t1\t0\t0\tnull\n"), {(3, "medfee_sumamt")}),
    "empty amount": (tsv("B1\tnull\tnull\tnull\t1\t0\t0\tnull\n"), {(3, "medfee_sumamt")}),
    "bad flag": (tsv("B1\tnull\tnull\t1\t1\t0\t2\tnull\n"), {(3, "refd_setl_flag")}),
    "empty flag": (tsv("B1\tnull\tnull\t1\t1\t0\tnull\tnull\n"), {(3, "refd_setl_flag")}),
    "empty setl_id": (
        tsv("null\tnull\tnull\t1\t1\t0\t0\tnull\n", "\tnull\tnull\t1\t1\t0\t0\tnull\n"),
        {(3, "setl_id"), (4, "setl_id")},
    ),
    "several faults in one row": (
        tsv("B1\tnull\tnull\tx\ty\tz\t9\tnull\n"),
        {(3, "medfee_sumamt"), (3, "fund_pay_sumamt"), (3, "acct_pay"), (3, "refd_setl_flag")},
    ),
    "too few fields": (tsv("B1\tnull\tnull\t1\t1\t0\t0\n"), {(3, "")}),
    "too many fields": (tsv("B1\tnull\tnull\t1\t1\t0\t0\tnull\textra\n"), {(3, "")}),
    "bad rows among good ones": (
        tsv("B1\tnull\tnull\t1\t1\t0\t0\tnull\n", "B2\tnull\tnull\t1,0\t1\t0\t0\tnull\n", GOOD.replace("G1", "G3")),
        {(4, "medfee_sumamt")},
    ),
    "mixed encodings": (MIXED, {(4, "")}),
    "empty file": (b"", {(0, "")}),
    "blank file": (b" \r\n\n\t\n", {(0, "")}),
    "empty zip entry": (zipped({"detail.txt": b""}), {(0, "")}),
    "zip of two files": (zipped({"a.txt": tsv(), "b.txt": tsv()}), {(0, "")}),
    "zip of nothing": (zipped({}), {(0, "")}),
    "zip of a folder only": (zipped({"detail/": b""}), {(0, "")}),
    "zip bomb by ratio": (zipped({"detail.txt": tsv() + b"\0" * (20 * 2**20)}), {(0, "")}),
    "zip bomb by size": (patched_sizes(zipped({"detail.txt": tsv()}), MAX_UNCOMPRESSED + 1), {(0, "")}),
    "zip entry larger than it says": (patched_sizes(zipped({"detail.txt": tsv() * 50}), 100), {(0, "")}),
    "damaged zip": (zipped({"detail.txt": tsv()})[:-30], {(0, "")}),
    "zip in a zip": (zipped({"inner.zip": zipped({"detail.txt": tsv()})}), {(0, "")}),
    "PDF": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", {(0, "")}),
    "PNG": (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", {(0, "")}),
    "XLS 97-2003": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, {(0, "")}),
    "random bytes": (bytes(np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8)), {(0, "")}),
    "damaged XLSX": (zipped({"[Content_Types].xml": b"<x/>", "xl/workbook.xml": b"not xml"}), {(0, "")}),
    "XLSX without rows": (workbook_without_rows(), {(0, "")}),
}


@pytest.mark.parametrize("case", MALFORMED, ids=str)
def test_malformed_file_is_reported_by_row_and_column(case: str) -> None:
    data, places = MALFORMED[case]
    read = read_hospital_file(data, f"{case}.txt")
    assert problem_places(read) == places
    for problem in read.problems:
        chinese, english = problem.message.split(" / ", 1)
        assert chinese and english, problem.message
    assert list(read.rows.columns) == list(ROW_COLUMNS)
    unreadable = any(row == 0 for row, _ in places) or case.startswith("missing column")
    assert read.readable is not unreadable
    if unreadable:
        assert read.rows.empty
    else:  # the rows named are left out, the others kept
        assert not set(read.rows["row"]) & {row for row, _ in places}
        assert 2 in set(read.rows["row"])


def test_mixed_encodings_decode_line_by_line() -> None:
    read = read_hospital_file(MIXED, "mixed.txt")
    assert read.encoding == "mixed (GBK and UTF-8, line by line)"
    assert read.rows[["row", "setl_id", "psn_no"]].values.tolist() == [
        [2, "U1", "张三"],
        [3, "G2", "李四"],
        [5, "U4", "王五"],
    ]


def test_problems_carry_the_setl_id_where_it_was_readable() -> None:
    read = read_hospital_file(tsv("B1\tnull\tnull\tabc\t1\t0\t0\tnull\n"), "detail.txt")
    assert [(p.row, p.column, p.setl_id) for p in read.problems] == [(3, "medfee_sumamt", "B1")]
    assert "'abc'" in read.problems[0].message


def test_unreadable_file_says_what_it_is() -> None:
    read = read_hospital_file(b"%PDF-1.4 ...", "scan.pdf")
    assert (read.format, read.readable, read.rows.empty) == (UNKNOWN, False, True)
    assert "PDF" in read.problems[0].message


def test_zip_bomb_is_refused_from_the_directory() -> None:
    read = read_hospital_file(patched_sizes(zipped({"detail.txt": tsv()}), 2**31), "bomb.zip")
    assert "200 MB" in read.problems[0].message and read.zipped


@given(st.binary(max_size=3000))
@SETTINGS
def test_any_bytes_never_raise(data: bytes) -> None:
    read = read_hospital_file(data, "fuzz")
    assert list(read.rows.columns) == list(ROW_COLUMNS)
    assert all(p.row >= 0 and p.message for p in read.problems)


FIELD_TEXT = st.one_of(
    st.sampled_from(["0", "1", "2", "null", "", "12.5", "12,5", "abc", "1.234", "-3.00", "S1", "张三", " 7 "]),
    st.text(alphabet="0123456789.-+,ab 中\"'", max_size=6),
)


@given(st.lists(st.lists(FIELD_TEXT, min_size=6, max_size=10), max_size=25), st.sampled_from(["utf-8", "gbk"]))
@SETTINGS
def test_every_line_is_either_a_row_or_a_problem(lines: list[list[str]], encoding: str) -> None:
    text = HEADER + "".join("\t".join(fields) + "\n" for fields in lines)
    read = read_hospital_file(text.encode(encoding, errors="replace"), "fuzz.txt")
    assert read.readable
    kept = set(read.rows["row"].tolist())
    named = {p.row for p in read.problems}
    assert not kept & named
    for number, fields in enumerate(lines, start=2):
        blank = not "".join(fields).strip()
        assert blank or number in kept | named, (number, fields)
        assert not (blank and number in kept | named)


ARCHIVES = {"national zip": national_bytes(SAMPLE, zipped=True), "XLSX": xlsx_of(SAMPLE)}


@given(st.sampled_from(sorted(ARCHIVES)), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8))
@SETTINGS
def test_damaged_archives_never_raise(kind: str, damage: list[tuple[int, int]]) -> None:
    data = bytearray(ARCHIVES[kind])
    for position, value in damage:
        data[position % len(data)] = value
    read = read_hospital_file(bytes(data), kind)
    assert list(read.rows.columns) == list(ROW_COLUMNS)
    assert read.problems or len(read.rows) == len(SAMPLE)
