"""The national platform's detail file for 3202 (表200): TAB-separated UTF-8 text, `null` for an empty value,
zipped; a reversed settlement is two rows, the forward one and the reverse one (`refd_setl_flag` 1, amounts
negative).

Money is written in yuan with two decimals. The zip's entry carries a fixed timestamp (the month's first
day), so the same statement always gives the same bytes.
"""

from __future__ import annotations

import io
import zipfile
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from reconciliation.frames import Month
from reconciliation.statement import Statement
from reconciliation.writers import yuan_array

DETAIL_COLUMNS: Final = (
    "setl_id",
    "mdtrt_id",
    "psn_no",
    "medfee_sumamt",
    "fund_pay_sumamt",
    "acct_pay",
    "refd_setl_flag",
    "exp_content",
)
MONEY: Final = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")
NULL: Final = "null"


def yuan_text(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(int(fen)), 100)
    return f"{sign}{whole}.{cents:02d}"


def detail_rows(statement: Statement) -> pd.DataFrame:
    """The statement's detail in the national layout (money still in fen). `mdtrt_id` carries the
    hospital's own settlement key (Doudi has no separate visit id); `exp_content` says what a row is."""
    detail = statement.detail
    return pd.DataFrame(
        {
            "setl_id": detail["setl_id"],
            "mdtrt_id": detail["medins_setl_id"],
            "psn_no": detail["person_id"],
            "medfee_sumamt": detail["total"],
            "fund_pay_sumamt": detail["fund_paid"],
            "acct_pay": 0,
            "refd_setl_flag": (detail["row_kind"] == "reversal").astype(int).astype(str),
            "exp_content": "hospital="
            + detail["hospital_id"].astype(str)
            + np.where(detail["prior_period"].to_numpy(bool), ";prior_period=" + detail["original_month"], ""),
        },
        columns=list(DETAIL_COLUMNS),
    )


def detail_text(rows: pd.DataFrame) -> str:
    return detail_bytes(rows).decode("utf-8")


def detail_bytes(rows: pd.DataFrame) -> bytes:
    """The detail file's text (UTF-8): a header line, then one TAB-separated line per row."""
    arrays = []
    for name in DETAIL_COLUMNS:
        column = rows[name]
        if name in MONEY:
            values = pc.cast(yuan_array(column), pa.string())
        else:
            values = pa.array(column.astype("string"), pa.string(), from_pandas=True)
            values = pc.replace_substring_regex(values, r"[\t\r\n]", " ")  # a field never breaks a line
        arrays.append(pc.fill_null(pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values), NULL))
    sink = io.BytesIO()
    sink.write(("\t".join(DETAIL_COLUMNS) + "\n").encode("utf-8"))
    if len(rows):
        table = pa.table(arrays, names=list(DETAIL_COLUMNS))
        options = pa_csv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
        pa_csv.write_csv(table, sink, options)
    return sink.getvalue()


def zipped_detail(rows: pd.DataFrame, month: Month, name: str) -> bytes:
    """The detail file zipped, byte for byte the same for the same rows."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entry = zipfile.ZipInfo(name, date_time=(month.year, month.month, 1, 0, 0, 0))
        entry.compress_type = zipfile.ZIP_DEFLATED
        entry.external_attr = 0o644 << 16
        archive.writestr(entry, detail_bytes(rows))
    return buffer.getvalue()
