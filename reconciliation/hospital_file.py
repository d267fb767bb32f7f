"""Reading a hospital's own detail file for matching against Doudi's month, in whatever form the hospital's
system or clerk produced it: the national platform's detail layout (TAB-separated, `null` for an empty value,
zipped or not), CSV with the national field names or Chinese headers, or an XLSX workbook. Text may be
UTF-8 (with or without a byte-order mark), GBK/GB18030 or UTF-16; the reader detects which and says so.

The file comes from outside, so reading it never raises. Whatever is wrong becomes a `Problem` naming the
row (the line or spreadsheet row number a clerk sees; 0 for the file as a whole) and the column, so that the
clerk can fix it; a row with a problem is left out of the frame and the other rows are kept. Archives are
opened only after their directory shows bounded sizes, and are read with a bound as well, so a zip bomb costs
nothing. Money is parsed from its decimal text into integer fen and never passes through a float; the
numbers of a spreadsheet are floats already, so they are rounded to the fen and refused when they are not
whole fen.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import math
import operator
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np
import numpy.typing as npt
import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reconciliation.national import DETAIL_COLUMNS, NULL, yuan_text

FIELD_TITLES: Final = {
    "setl_id": "结算ID",
    "mdtrt_id": "就诊ID",
    "psn_no": "人员编号",
    "medfee_sumamt": "医疗费总额",
    "fund_pay_sumamt": "基金支付总额",
    "acct_pay": "个人账户支出",
    "refd_setl_flag": "退费结算标志",
}
"""The national interface's field names with its own Chinese titles: the headers clerks and HIS exports use."""

HEADER_SYNONYMS: Final = {
    "结算编号": "setl_id",
    "医保结算id": "setl_id",
    "就诊编号": "mdtrt_id",
    "医疗总费用": "medfee_sumamt",
    "费用总额": "medfee_sumamt",
    "总费用": "medfee_sumamt",
    "基金支付": "fund_pay_sumamt",
    "基金支付金额": "fund_pay_sumamt",
    "个人账户支付": "acct_pay",
    "个人账户支付金额": "acct_pay",
    "个账支付": "acct_pay",
    "退费标志": "refd_setl_flag",
    "退费结算标识": "refd_setl_flag",
}
"""Other headers seen in hospitals' own exports (case-insensitive, blanks and a unit such as （元） ignored)."""

REQUIRED: Final = ("setl_id", "medfee_sumamt", "fund_pay_sumamt", "refd_setl_flag")
OPTIONAL: Final = ("acct_pay", "psn_no", "mdtrt_id")
MONEY: Final = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")
ROW_COLUMNS: Final = (
    "row",
    "setl_id",
    "refd_setl_flag",
    "medfee_sumamt",
    "fund_pay_sumamt",
    "acct_pay",
    "psn_no",
    "mdtrt_id",
)
"""The frame's columns; money in integer fen, `row` the file's own row number."""

NATIONAL: Final = "national"  # TAB-separated text, the platform's detail layout
CSV: Final = "csv"
XLSX: Final = "xlsx"
UNKNOWN: Final = "unknown"  # not read: nothing in it could be recognised

MAX_UNCOMPRESSED: Final = 200 * 1024 * 1024
MAX_RATIO: Final = 200
"""An archive entry may not uncompress beyond MAX_UNCOMPRESSED in all, nor (above 1 MiB) to more than
MAX_RATIO times its compressed size: real detail files and workbooks stay far below both."""
_RATIO_FLOOR: Final = 1024 * 1024
HEADER_SEARCH_ROWS: Final = 30
"""How many non-blank rows from the top may hold notes before the header row."""
MAX_INTEGER_DIGITS: Final = 14  # money fields are (16,2)

_AMOUNT: Final = rf"^(?P<sign>[+-]?)(?P<whole>\d{{1,{MAX_INTEGER_DIGITS}}})(?:\.(?P<cents>\d{{0,2}}))?$"
_UNDECODABLE: Final = "本行既不是 UTF-8 也不是 GBK 编码 / the line is neither UTF-8 nor GBK text"
_TOTALS_LABEL = re.compile(r"^\s*(合计|总计|小计|total)", re.IGNORECASE)
_UNIT = re.compile(r"[（(]\s*(元|人民币|rmb|yuan)\s*[)）]$")
_FIELD_TOKEN = re.compile(r"[a-z_]+")
_SIGNATURES: Final = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an XLS (Excel 97-2003) or other Office 97 file"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
    (b"PK\x03\x04", "another zip archive inside the zip"),
)


@dataclass(frozen=True)
class Problem:
    """Something wrong with the file: `row` is the line or spreadsheet row (0: the file as a whole), `column`
    the national field name ("" for the whole row), `setl_id` the row's settlement id where it could be read."""

    row: int
    column: str
    message: str
    setl_id: str = ""


@dataclass(frozen=True)
class HospitalFile:
    """What was read: the good rows, the problems, and how the file was written (format and encoding)."""

    name: str
    format: str  # NATIONAL, CSV, XLSX or UNKNOWN
    encoding: str  # "UTF-8", "UTF-8 with BOM", "GBK", "GB18030", "UTF-16", "mixed ..."; "" for XLSX or unread
    zipped: bool
    rows: pd.DataFrame  # ROW_COLUMNS, the good rows in file order
    problems: list[Problem]
    notes: list[str] = field(default_factory=list)  # what the reader assumed or skipped; not faults
    header_row: int = 0  # 0 when there is none
    readable: bool = True  # a table with every required column was found

    def describe(self) -> str:
        kind = {NATIONAL: "national detail layout (TAB)", CSV: "CSV", XLSX: "XLSX"}.get(self.format, "unrecognised")
        parts = [kind + (", zipped" if self.zipped else "")]
        if self.encoding:
            parts.append(self.encoding)
        return "; ".join(parts)


def _in_order(problems: list[Problem]) -> list[Problem]:
    """By row, then in the order of the frame's columns."""
    rank = {name: i for i, name in enumerate(ROW_COLUMNS)}
    return sorted(problems, key=lambda p: (p.row, rank.get(p.column, -1), p.message))


def read_hospital_file(data: bytes, name: str) -> HospitalFile:
    """The hospital's detail file `data` (named `name`, for the report): its good rows and its problems."""
    try:
        return _read(data, name)
    except Exception as error:  # the contract: a file never crashes the caller
        return _unread(name, f"文件无法读取 / the file could not be read ({type(error).__name__}: {error})")


def empty_rows() -> pd.DataFrame:
    """A frame of ROW_COLUMNS with no rows, typed as a full one."""
    return pd.DataFrame(
        {
            "row": pd.Series(dtype=np.int64),
            "setl_id": pd.Series(dtype=str),
            "refd_setl_flag": pd.Series(dtype=str),
            **{name: pd.Series(dtype=np.int64) for name in MONEY},
            "psn_no": pd.Series(dtype=str),
            "mdtrt_id": pd.Series(dtype=str),
        },
        columns=list(ROW_COLUMNS),
    )


def _unread(name: str, message: str, *, format: str = UNKNOWN, zipped: bool = False) -> HospitalFile:
    return HospitalFile(name, format, "", zipped, empty_rows(), [Problem(0, "", message)], readable=False)


def _read(data: bytes, name: str) -> HospitalFile:
    if not data.strip():
        return _unread(name, "文件为空 / the file is empty")
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _read_zip(data, name)
    return _read_text(data, name, zipped=False)


# --------------------------------------------------------------------------------------------------------
# Archives


def _read_zip(data: bytes, name: str) -> HospitalFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = [info for info in archive.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as error:
        return _unread(name, f"压缩包已损坏 / the zip archive is damaged ({error})", zipped=True)
    refusal = _bomb_refusal(entries)
    if refusal:
        return _unread(name, refusal, zipped=True)
    names = {info.filename for info in entries}
    if "xl/workbook.xml" in names:
        return _read_xlsx(data, name)
    if "xl/workbook.bin" in names or "mimetype" in names:
        return _unread(name, "不支持的表格格式 / an XLSB or OpenDocument workbook: save it as XLSX or CSV", zipped=True)
    details = [info for info in entries if not info.filename.startswith("__MACOSX/")]
    if len(details) != 1:
        listed = ", ".join(info.filename for info in details[:5]) + (", ..." if len(details) > 5 else "")
        return _unread(
            name,
            f"压缩包应只含一个明细文件，实含 {len(details)} 个 / the zip must hold exactly one detail file; "
            f"it holds {len(details)}" + (f": {listed}" if details else ""),
            zipped=True,
        )
    entry = details[0]
    if entry.flag_bits & 0x1:
        return _unread(name, "压缩包有密码 / the zip entry is password-protected", zipped=True)
    try:
        inner = _bounded_read(archive, entry)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as error:
        return _unread(name, f"压缩包已损坏 / the zip entry {entry.filename} cannot be read ({error})", zipped=True)
    except _TooLarge as error:
        return _unread(name, str(error), zipped=True)
    if not inner.strip():
        return _unread(name, f"文件为空 / the zip entry {entry.filename} is empty", zipped=True)
    return _read_text(inner, name, zipped=True)


class _TooLarge(Exception):
    pass


def _bomb_refusal(entries: Sequence[zipfile.ZipInfo]) -> str:
    total = sum(info.file_size for info in entries)
    if total > MAX_UNCOMPRESSED:
        return (
            f"压缩包解压后过大 / the archive would uncompress to {total / 2**20:,.1f} MB; "
            f"the limit is {MAX_UNCOMPRESSED // 2**20} MB"
        )
    for info in entries:
        if info.file_size > _RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            return (
                f"压缩比异常 / the archive entry {info.filename} claims to uncompress "
                f"{info.file_size // max(info.compress_size, 1)} times its size; refused as a zip bomb"
            )
    return ""


def _bounded_read(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bytes:
    # The directory's sizes were checked; the stream is counted too, in case an entry lies about its size.
    limit = min(entry.file_size, MAX_UNCOMPRESSED)
    out = bytearray()
    with archive.open(entry) as stream:
        while chunk := stream.read(1 << 20):
            out += chunk
            if len(out) > limit:
                raise _TooLarge(
                    f"压缩包内容超出声明大小 / the zip entry {entry.filename} uncompresses beyond its declared "
                    f"size or the {MAX_UNCOMPRESSED // 2**20} MB limit; refused"
                )
    return bytes(out)


# --------------------------------------------------------------------------------------------------------
# Text: the national layout and CSV


def _read_text(data: bytes, name: str, zipped: bool) -> HospitalFile:
    binary = _binary_kind(data)
    if binary:
        return _unread(
            name,
            f"不是明细文件 / not a detail file: this is {binary}; expected the national TAB-separated text, "
            "CSV or XLSX",
            zipped=zipped,
        )
    lines, encoding, problems = _decode(data)
    delimiter = _choose_delimiter(lines)
    numbers, records, record_problems = _records(lines, delimiter)
    format = NATIONAL if delimiter == "\t" else CSV
    return _table(name, format, encoding, zipped, numbers, records, problems + record_problems)


def _binary_kind(data: bytes) -> str:
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return ""
    head = data[:65536]
    controls = sum(head.count(bytes([c])) for c in (*range(0, 9), *range(14, 27), *range(28, 32)))
    if b"\x00" in head or controls > len(head) // 100:
        return "binary data, not text"
    return ""


def _split_lines(text: str) -> list[str]:
    text = text.replace("\r\n", "\n")
    if "\n" not in text and "\r" in text:
        return text.split("\r")
    return text.split("\n")


def _decode(data: bytes) -> tuple[list[str], str, list[Problem]]:
    """(lines, the encoding found, problems): the whole file in one encoding when it has one, else line by line."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return _split_lines(data.decode("utf-16")), "UTF-16", []
        except UnicodeDecodeError:
            return [], "UTF-16", [Problem(0, "", "文件编码错误 / the file starts as UTF-16 but is not valid UTF-16")]
    if data.startswith(codecs.BOM_UTF8):
        body = data[len(codecs.BOM_UTF8) :]
        try:
            return _split_lines(body.decode("utf-8")), "UTF-8 with BOM", []
        except UnicodeDecodeError:
            pass
    else:
        body = data
        for codec, label in (("utf-8", "UTF-8"), ("gbk", "GBK"), ("gb18030", "GB18030")):
            try:
                return _split_lines(body.decode(codec)), label, []
            except UnicodeDecodeError:
                continue
    # Lines of different encodings (files pasted together from two systems): each line on its own.
    lines: list[str] = []
    problems: list[Problem] = []
    found: set[str] = set()
    for number, raw in enumerate(body.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        try:
            lines.append(raw.decode("utf-8"))
            if not raw.isascii():
                found.add("UTF-8")
        except UnicodeDecodeError:
            try:
                lines.append(raw.decode("gb18030"))
                found.add("GBK")
            except UnicodeDecodeError:
                lines.append("")
                problems.append(Problem(number, "", _UNDECODABLE))
    return lines, "mixed (" + " and ".join(sorted(found) or ["undecodable"]) + ", line by line)", problems


def _split(line: str, delimiter: str) -> list[str]:
    if delimiter == "\t":
        return line.split("\t")
    return next(csv.reader([line]), [])


def _choose_delimiter(lines: list[str]) -> str:
    """TAB (the national layout) or comma: whichever splits a line near the top into more known headers."""
    top = [line for line in lines[: HEADER_SEARCH_ROWS * 4] if line.strip()][:HEADER_SEARCH_ROWS]
    best = (0, "\t")
    for delimiter in ("\t", ","):
        for line in top:
            known = len(_header_positions(_split(line, delimiter)))
            if known > best[0]:
                best = (known, delimiter)
    if best[0] == 0 and top and "\t" not in top[0] and "," in top[0]:
        return ","
    return best[1]


def _records(lines: list[str], delimiter: str) -> tuple[list[int], list[list[str]], list[Problem]]:
    """Each record with the line it starts on (a quoted CSV field may span lines; the national layout has no
    quoting)."""
    if delimiter == "\t":
        return list(range(1, len(lines) + 1)), [line.split("\t") for line in lines], []
    reader = csv.reader(line + "\n" for line in lines)  # the line ends keep a quoted field's own newlines
    numbers: list[int] = []
    records: list[list[str]] = []
    problems: list[Problem] = []
    consumed = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.append(Problem(consumed + 1, "", f"本行无法解析 / the line cannot be parsed ({error})"))
            consumed = reader.line_num
            continue
        numbers.append(consumed + 1)
        consumed = reader.line_num
        records.append(record)
    return numbers, records, problems


# --------------------------------------------------------------------------------------------------------
# Headers


def _compact(header: str) -> str:
    return _UNIT.sub("", re.sub(r"[\s\u3000\ufeff]+", "", header).casefold())


_HEADERS: Final = {
    **{_compact(name): name for name in FIELD_TITLES},
    **{_compact(title): name for name, title in FIELD_TITLES.items()},
    **{_compact(synonym): name for synonym, name in HEADER_SYNONYMS.items()},
}


def _field_of(header: object) -> str | None:
    """The national field a header names: exactly (in English or Chinese), or as one word of a bilingual header."""
    if header is None:
        return None
    text = str(header)
    known = _HEADERS.get(_compact(text))
    if known is not None:
        return known
    named = {token for token in _FIELD_TOKEN.findall(text.casefold()) if token in FIELD_TITLES}
    return named.pop() if len(named) == 1 else None


def _header_positions(cells: Sequence[object]) -> dict[str, int]:
    """Field -> the position of its first column."""
    positions: dict[str, int] = {}
    for position, cell in enumerate(cells):
        known = _field_of(cell)
        if known is not None and known not in positions:
            positions[known] = position
    return positions


@dataclass
class _Header:
    index: int  # position of the header among the records; when `assumed`, of the first data record
    positions: dict[str, int]
    width: int
    assumed: bool = False  # no header line: the national column order


def _find_header(records: Sequence[Sequence[object]], format: str) -> tuple[_Header | None, int, dict[str, int]]:
    """The header (or None), and else the most header-like record's index and known columns."""
    best_index, best_positions = -1, dict[str, int]()
    seen = 0
    for index, record in enumerate(records):
        if not _has_content(record):
            continue
        positions = _header_positions(record)
        if all(name in positions for name in REQUIRED):
            return _Header(index, positions, len(record)), index, positions
        if len(positions) > len(best_positions):
            best_index, best_positions = index, positions
        seen += 1
        if seen >= HEADER_SEARCH_ROWS:
            break
    if format == NATIONAL and not best_positions:
        # A HIS may upload the detail file without a header line: the national column order, if it fits.
        first = next((i for i, r in enumerate(records) if _has_content(r)), None)
        if first is not None and len(records[first]) in (7, 8) and str(records[first][6]).strip() in ("0", "1"):
            positions = {name: i for i, name in enumerate(DETAIL_COLUMNS[: len(records[first])])}
            return _Header(first, positions, len(records[first]), assumed=True), best_index, best_positions
    return None, best_index, best_positions


def _has_content(record: Sequence[object]) -> bool:
    return any(cell is not None and str(cell).strip() for cell in record)


# --------------------------------------------------------------------------------------------------------
# From records to the frame


def _table(
    name: str,
    format: str,
    encoding: str,
    zipped: bool,
    numbers: list[int],
    records: Sequence[Sequence[object]],
    problems: list[Problem],
    cell_text: Callable[[object, str], tuple[str, str]] | None = None,
) -> HospitalFile:
    header, best_index, best_positions = _find_header(records, format)
    notes: list[str] = []
    if header is None:
        if best_index < 0:
            message = "找不到表头 / no header row found: the file must name the columns " + ", ".join(
                f"{n} ({FIELD_TITLES[n]})" for n in REQUIRED
            )
            problems.append(Problem(0, "", message))
            header_row = 0
        else:
            header_row = numbers[best_index]
            for missing in (n for n in REQUIRED if n not in best_positions):
                problems.append(
                    Problem(header_row, missing, f"缺少列 {FIELD_TITLES[missing]} / missing column {missing}")
                )
        return HospitalFile(
            name, format, encoding, zipped, empty_rows(), _in_order(problems), notes, header_row, readable=False
        )
    if header.assumed:
        header_row = 0
        notes.append("没有表头行，按国家接口列顺序读取 / no header line: read in the national column order")
        start = header.index
    else:
        header_row = numbers[header.index]
        start = header.index + 1
        header_cells = records[header.index]
        for position, cell in enumerate(header_cells):
            known = _field_of(cell)
            if known is not None and header.positions[known] != position:
                notes.append(
                    f"列 {known} 出现多次，读取第一列 / column {known} appears more than once; the first one is read"
                )
    rows, row_problems, row_notes = _rows(numbers[start:], records[start:], header, cell_text)
    return HospitalFile(
        name, format, encoding, zipped, rows, _in_order(problems + row_problems), notes + row_notes, header_row
    )


def _rows(
    numbers: list[int],
    records: Sequence[Sequence[object]],
    header: _Header,
    cell_text: Callable[[object, str], tuple[str, str]] | None,
) -> tuple[pd.DataFrame, list[Problem], list[str]]:
    """The records under the header as the frame. Text records (`cell_text` None) are lists of strings whose
    length must match the header's; spreadsheet cells go through `cell_text`, which may refuse a value."""
    problems: list[Problem] = []
    kept_numbers: list[int] = []
    kept: list[Sequence[object]] = []
    width = header.width
    blank = _blank_text if cell_text is None else _blank_cells
    for number, record in zip(numbers, records, strict=True):
        if blank(record):
            continue
        if cell_text is None and len(record) != width and (len(record) < width or _has_content(record[width:])):
            problems.append(
                Problem(
                    number,
                    "",
                    f"字段数不符：本行 {len(record)} 个，表头 {width} 个 / "
                    f"the line has {len(record)} fields, the header has {width}",
                )
            )
            continue
        kept_numbers.append(number)
        kept.append(record)

    cells: dict[str, list[str]] = {}
    refused: dict[int, list[Problem]] = {}
    for name, position in header.positions.items():
        if name not in FIELD_TITLES:
            continue
        if cell_text is None:
            cells[name] = list(map(operator.itemgetter(position), kept))
            continue
        texts = []
        for index, record in enumerate(kept):
            text, problem = cell_text(record[position] if position < len(record) else None, name)
            texts.append(text)
            if problem:
                refused.setdefault(index, []).append(Problem(kept_numbers[index], name, problem))
        cells[name] = texts
    first_cells = [str(r[0]) if r[0] is not None else "" for r in kept]
    frame, row_problems, totals_rows = _validated(np.asarray(kept_numbers, dtype=np.int64), cells, first_cells, refused)
    notes = [f"第 {n} 行是合计行，未计入 / row {n} is a totals row and was left out" for n in totals_rows]
    return frame, problems + row_problems, notes


def _blank_text(record: Sequence[object]) -> bool:
    # The common case (a first field with text) decided without looking at every field.
    first = record[0] if record else ""
    return not (isinstance(first, str) and first.strip()) and not _has_content(record)


def _blank_cells(record: Sequence[object]) -> bool:
    return not _has_content(record)


# Column work runs in pyarrow: pandas' string methods fall back to Python objects for several of these.


def _clean(values: list[str]) -> pa.Array:
    """Cell texts trimmed, with the national `null` as empty."""
    trimmed = pc.utf8_trim_whitespace(pa.array(values, type=pa.string()))
    return pc.if_else(pc.equal(pc.utf8_lower(trimmed), NULL), "", trimmed)


def _mask(values: pa.Array) -> npt.NDArray[np.bool_]:
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _validated(
    numbers: npt.NDArray[np.int64],
    cells: dict[str, list[str]],
    first_cells: list[str],
    refused: dict[int, list[Problem]],
) -> tuple[pd.DataFrame, list[Problem], list[int]]:
    """The good rows as the frame, the problems of the bad ones, and the row numbers of totals rows."""
    count = len(numbers)
    text = {name: _clean(values) for name, values in cells.items()}
    for name in OPTIONAL:
        text.setdefault(name, pa.array([""] * count, type=pa.string()))
    # An empty optional amount means nothing was paid from the account.
    text["acct_pay"] = pc.if_else(pc.equal(text["acct_pay"], ""), "0", text["acct_pay"])
    setl_id = text["setl_id"]
    no_id = _mask(pc.equal(setl_id, ""))
    totals = _mask(pc.match_substring_regex(setl_id, _TOTALS_LABEL.pattern, ignore_case=True)) | (
        no_id
        & _mask(
            pc.match_substring_regex(pa.array(first_cells, type=pa.string()), _TOTALS_LABEL.pattern, ignore_case=True)
        )
    )
    bad = np.zeros(count, dtype=bool)
    problems: list[Problem] = []

    def report(index: int, column: str, message: str) -> None:
        problems.append(Problem(int(numbers[index]), column, message, setl_id[index].as_py()))
        bad[index] = True

    for index, found in refused.items():
        if not totals[index]:
            for problem in found:
                report(index, problem.column, problem.message)
    for index in np.flatnonzero(no_id & ~totals).tolist():
        report(index, "setl_id", f"{FIELD_TITLES['setl_id']}为空 / setl_id is empty")
    flag = text["refd_setl_flag"]
    for index in np.flatnonzero(~_mask(pc.is_in(flag, value_set=pa.array(["0", "1"]))) & ~totals).tolist():
        report(
            index,
            "refd_setl_flag",
            f"{FIELD_TITLES['refd_setl_flag']}应为 0 或 1 / refd_setl_flag {flag[index].as_py()!r} must be 0 "
            "(a settlement) or 1 (a refund or reversal)",
        )
    money: dict[str, npt.NDArray[np.int64]] = {}
    for name in MONEY:
        fen, valid = _fen(text[name])
        for index in np.flatnonzero(~valid & ~totals).tolist():
            report(index, name, _amount_message(name, text[name][index].as_py()))
        money[name] = fen

    keep = ~bad & ~totals
    kept = pa.array(keep)

    def strings(values: pa.Array) -> pd.Series:
        return pd.Series(values.filter(kept).to_pandas(), dtype=str)

    frame = pd.DataFrame(
        {
            "row": numbers[keep],
            "setl_id": strings(setl_id),
            "refd_setl_flag": strings(flag),
            **{name: money[name][keep] for name in MONEY},
            "psn_no": strings(text["psn_no"]),
            "mdtrt_id": strings(text["mdtrt_id"]),
        },
        columns=list(ROW_COLUMNS),
    )
    return frame, problems, [int(n) for n in numbers[totals]]


def _fen(values: pa.Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Yuan written as decimal text -> exact fen (0 where malformed), and which values were well-formed."""
    parsed = pc.extract_regex(values, _AMOUNT)
    valid = np.asarray(parsed.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    whole = pc.cast(pc.fill_null(pc.struct_field(parsed, "whole"), "0"), pa.int64()).to_numpy()
    cents = pc.utf8_rpad(pc.fill_null(pc.struct_field(parsed, "cents"), ""), width=2, padding="0")
    negative = _mask(pc.equal(pc.struct_field(parsed, "sign"), "-"))
    fen = whole * 100 + pc.cast(cents, pa.int64()).to_numpy()
    return np.where(negative, -fen, fen).astype(np.int64), valid


def _amount_message(name: str, value: str) -> str:
    title = f"{FIELD_TITLES[name]}格式错误 / {name}"
    if value == "":
        return f"{FIELD_TITLES[name]}为空 / {name} is empty"
    if "," in value or "，" in value:
        return f"{title} {value!r} has a comma: write yuan with a point and no separators, like 1234.56"
    if re.fullmatch(r"[+-]?\d+\.\d{3,}", value):
        return f"{title} {value!r} has more than two decimal places; amounts are in yuan to the fen"
    if re.fullmatch(rf"[+-]?\d{{{MAX_INTEGER_DIGITS + 1},}}(\.\d*)?", value):
        return f"{title} {value!r} is too large for an amount of (16,2)"
    return f"{title} {value!r} is not an amount in yuan like 1234.56"


# --------------------------------------------------------------------------------------------------------
# XLSX


def _read_xlsx(data: bytes, name: str) -> HospitalFile:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
            try:
                if not workbook.worksheets:
                    return _unread(name, "工作簿没有工作表 / the workbook has no worksheet", format=XLSX)
                sheet = workbook.worksheets[0]
                sheet.reset_dimensions()  # a wrong stored size would otherwise cut rows off
                records = [tuple(row) for row in sheet.iter_rows(values_only=True)]
                title = sheet.title
            finally:
                workbook.close()
    except Exception as error:  # openpyxl raises many kinds on a damaged workbook
        return _unread(
            name, f"XLSX 文件已损坏 / the XLSX workbook cannot be read ({type(error).__name__}: {error})", format=XLSX
        )
    numbers = list(range(1, len(records) + 1))
    result = _table(name, XLSX, "", False, numbers, records, [], _xlsx_cell)
    return replace(result, notes=[f"读取第一个工作表“{title}” / read the first worksheet, {title!r}", *result.notes])


def _xlsx_cell(value: object, name: str) -> tuple[str, str]:
    """A cell's text for the text parser, and a problem ("" when none)."""
    if value is None:
        return "", ""
    if isinstance(value, bool):
        return str(value).upper(), ""
    if isinstance(value, int):
        return (yuan_text(value * 100) if name in MONEY else str(value)), ""
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value), ""
        if name in MONEY:
            fen = round(value * 100)
            # Tolerance for the binary form of a decimal (12.34 is 1233.9999999999998 fen), not for real cents.
            if abs(value * 100 - fen) > 1e-3:
                return "", f"{FIELD_TITLES[name]}不是整分 / {name} {value!r} is not a whole number of fen"
            return yuan_text(fen), ""
        if not value.is_integer():
            return repr(value), ""
        if abs(value) >= 1e15:
            return str(int(value)), (
                f"{FIELD_TITLES[name]}以数字保存，可能已丢失末位 / {name} {int(value)} is stored as a number of 15 or "
                "more digits, whose last digits Excel may have changed: format the column as text"
            )
        return str(int(value)), ""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat(), ""
    return str(value), ""
