"""Spreadsheet files finance staff open: CSV (UTF-8 with a byte-order mark, so Excel in Chinese reads it
right) and XLSX (Chinese headers, frozen header row, money formatted, a totals row).

Both are byte-for-byte reproducible: the same frames give the same bytes, so a closed month's files can be
regenerated and compared by hash. Text cells that a spreadsheet would run as a formula (starting with `=`,
`+`, `-` or `@`) are written with a leading apostrophe; numbers are never touched.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import xlsxwriter

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(text: str) -> str:
    """Text made safe from formula injection in a spreadsheet cell."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@dataclass(frozen=True)
class Sheet:
    """A table to write: its frame, a header per column, which columns are money in fen, and which are summed
    in the totals row."""

    name: str
    frame: pd.DataFrame
    headers: Mapping[str, str]
    money: Sequence[str] = ()
    totals: Sequence[str] = ()
    notes: Sequence[str] = field(default_factory=tuple)  # lines written above the table (XLSX only)

    @property
    def columns(self) -> list[str]:
        return [c for c in self.headers if c in self.frame.columns]


def _cell_text(value: object, is_money: bool) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return ""
    if is_money:
        fen = int(value)  # type: ignore[call-overload]
        sign = "-" if fen < 0 else ""
        whole, cents = divmod(abs(fen), 100)
        return f"{sign}{whole}.{cents:02d}"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, pd.Timestamp | dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int | float):
        return str(value)
    return neutralised(str(value))


def yuan_array(fen: pd.Series) -> pa.Array:
    """Fen as decimal yuan with two places, exactly (the unscaled decimal is the fen itself); nulls kept."""
    missing = fen.isna().to_numpy()
    values = fen.fillna(0).to_numpy(np.int64) if missing.any() else fen.to_numpy(np.int64)
    words = np.empty((len(values), 2), dtype=np.int64)
    words[:, 0] = values
    words[:, 1] = values >> 63  # the sign, extended to 128 bits
    decimals = pa.Array.from_buffers(pa.decimal128(18, 2), len(values), [None, pa.py_buffer(words)])
    return pc.if_else(pa.array(missing), pa.scalar(None, decimals.type), decimals) if missing.any() else decimals


def text_array(column: pd.Series, is_money: bool = False) -> pa.Array:
    """A column as the text a spreadsheet cell shows (vectorised): money as yuan, booleans as 是/否, times
    to the second, dates as ISO dates, text neutralised against formula injection; nulls stay null."""
    if is_money:
        return pc.cast(yuan_array(column), pa.string())
    if pd.api.types.is_bool_dtype(column):
        return pa.array(np.where(column.to_numpy(bool), "是", "否"))
    if pd.api.types.is_datetime64_any_dtype(column):
        return pa.array(column.dt.strftime("%Y-%m-%d %H:%M:%S"), pa.string(), from_pandas=True)
    if pd.api.types.is_integer_dtype(column):
        return pc.cast(pa.array(column, from_pandas=True), pa.string())
    try:
        values = pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed objects: as their text, one by one
        values = pa.array(column.map(str, na_action="ignore"), pa.string(), from_pandas=True)
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        return pc.cast(values, pa.string())  # dates as ISO dates, numbers as written
    values = pc.cast(values, pa.string())
    risky = pc.match_substring_regex(values, r"^[=+\-@\t\r]")
    return pc.if_else(risky, pc.binary_join_element_wise("'", values, ""), values)


def csv_bytes(sheet: Sheet) -> bytes:
    """The sheet as CSV: UTF-8 with a byte-order mark, Chinese headers, money as decimal yuan."""
    columns = sheet.columns
    money = set(sheet.money)
    arrays = {}
    for column in columns:
        series = sheet.frame[column]
        if column in money:
            arrays[column] = yuan_array(series)
        elif pd.api.types.is_integer_dtype(series):
            arrays[column] = pa.array(series, from_pandas=True)
        else:
            arrays[column] = text_array(series)
    sink = io.BytesIO()
    sink.write("\ufeff".encode())
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow([sheet.headers[c] for c in columns])
    sink.write(header.getvalue().encode("utf-8"))
    table = pa.table(arrays) if arrays else pa.table({})
    if len(columns) and len(sheet.frame):
        pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    return sink.getvalue()


def xlsx_bytes(sheets: Sequence[Sheet], created: dt.datetime) -> bytes:
    """A workbook of `sheets`; `created` is written as the document's date so the bytes are reproducible."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_formulas": False})
    workbook.set_properties({"created": created, "author": "Doudi"})
    header = workbook.add_format({"bold": True, "bg_color": "#E8EEF4", "border": 1, "text_wrap": True})
    money_format = workbook.add_format({"num_format": "#,##0.00"})
    total_label = workbook.add_format({"bold": True, "top": 1})
    total_money = workbook.add_format({"bold": True, "top": 1, "num_format": "#,##0.00"})
    for sheet in sheets:
        worksheet = workbook.add_worksheet(sheet.name[:31])
        columns = sheet.columns
        money = set(sheet.money)
        top = len(sheet.notes)
        for i, note in enumerate(sheet.notes):
            worksheet.write_string(i, 0, neutralised(note))
        for j, column in enumerate(columns):
            worksheet.write_string(top, j, sheet.headers[column], header)
            worksheet.set_column(j, j, 16 if column in money else max(10, min(36, len(sheet.headers[column]) * 2)))
        worksheet.freeze_panes(top + 1, 0)
        for i, row in enumerate(sheet.frame[columns].itertuples(index=False), start=top + 1):
            for j, (column, value) in enumerate(zip(columns, row, strict=True)):
                if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
                    continue
                if column in money:
                    # A workbook cell holds a binary double, its only kind of number; for any amount below
                    # 2**53 fen the nearest double shows exactly the fen under the two-decimal format.
                    worksheet.write_number(i, j, int(value) / 100, money_format)
                elif isinstance(value, bool):
                    worksheet.write_string(i, j, "是" if value else "否")
                elif isinstance(value, int | float | np.integer | np.floating):
                    worksheet.write_number(i, j, float(value))
                else:
                    worksheet.write_string(i, j, _cell_text(value, False))
        if sheet.totals:
            last = top + 1 + len(sheet.frame)
            worksheet.write_string(last, 0, "合计 Total", total_label)
            for j, column in enumerate(columns):
                if column in sheet.totals:
                    # An empty month's column has no dtype to sum in (its sum is ''): its total is 0.
                    total = int(sheet.frame[column].sum()) if len(sheet.frame) else 0
                    if column in money:
                        worksheet.write_number(last, j, total / 100, total_money)
                    else:
                        worksheet.write_number(last, j, total, total_label)
    workbook.close()
    return buffer.getvalue()
