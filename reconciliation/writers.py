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

import pandas as pd
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


def csv_bytes(sheet: Sheet) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    columns = sheet.columns
    writer.writerow([sheet.headers[c] for c in columns])
    money = set(sheet.money)
    for row in sheet.frame[columns].itertuples(index=False):
        writer.writerow([_cell_text(v, c in money) for c, v in zip(columns, row, strict=True)])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


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
                    worksheet.write_number(i, j, int(value) / 100, money_format)
                elif isinstance(value, bool):
                    worksheet.write_string(i, j, "是" if value else "否")
                elif isinstance(value, int | float):
                    worksheet.write_number(i, j, value)
                else:
                    worksheet.write_string(i, j, _cell_text(value, False))
        if sheet.totals:
            last = top + 1 + len(sheet.frame)
            worksheet.write_string(last, 0, "合计 Total", total_label)
            for j, column in enumerate(columns):
                if column in sheet.totals:
                    total = int(sheet.frame[column].sum())
                    if column in money:
                        worksheet.write_number(last, j, total / 100, total_money)
                    else:
                        worksheet.write_number(last, j, total, total_label)
    workbook.close()
    return buffer.getvalue()
