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

import pandas as pd

from reconciliation.frames import Month
from reconciliation.statement import Statement

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
            "exp_content": [
                f"hospital={h};prior_period={m}" if p else f"hospital={h}"
                for h, p, m in zip(detail["hospital_id"], detail["prior_period"], detail["original_month"], strict=True)
            ],
        },
        columns=list(DETAIL_COLUMNS),
    )


def detail_text(rows: pd.DataFrame) -> str:
    lines = ["\t".join(DETAIL_COLUMNS)]
    for row in rows.itertuples(index=False):
        values = []
        for name, value in zip(DETAIL_COLUMNS, row, strict=True):
            if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
                values.append(NULL)
            elif name in MONEY:
                values.append(yuan_text(int(value)))
            else:
                values.append(str(value).replace("\t", " ").replace("\n", " "))
        lines.append("\t".join(values))
    return "\n".join(lines) + "\n"


def zipped_detail(rows: pd.DataFrame, month: Month, name: str) -> bytes:
    """The detail file zipped, byte for byte the same for the same rows."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entry = zipfile.ZipInfo(name, date_time=(month.year, month.month, 1, 0, 0, 0))
        entry.compress_type = zipfile.ZIP_DEFLATED
        entry.external_attr = 0o644 << 16
        archive.writestr(entry, detail_text(rows).encode("utf-8"))
    return buffer.getvalue()
