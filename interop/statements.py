"""3201 and 3202 in the national shapes, over Doudi's month statement (reconciliation/).

3201 compares the hospital's totals for a month (optionally one insurance type, one clearing type, one kind
of row) with Doudi's: the rows are those of the national detail file (表200), a reversed settlement being
a forward row and a reverse row with negative amounts, and `fixmedins_setl_cnt` counts rows. 3202 matches
the hospital's detail file row by row (reconciliation.matching) and answers with the result file (表201):
TAB-separated UTF-8, `null` for an empty value, zipped, one row per (setl_id, refd_setl_flag) either side
has, plus one per row of the hospital's file that could not be read.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from typing import Any, Final, cast

import pandas as pd

from interop.nhsa import TOTAL_FIELDS, StatementRequest
from reconciliation.frames import Month
from reconciliation.matching import BALANCED, KIND_TITLES, NOT_BALANCED, Matching
from reconciliation.national import NULL, yuan_text

RESULT_COLUMNS: Final = (
    "psn_no",
    "mdtrt_id",
    "setl_id",
    "msgid",
    "stmt_rslt",
    "refd_setl_flag",
    "memo",
    "medfee_sumamt",
    "fund_pay_sumamt",
    "acct_pay",
)
"""The result file's columns (表201), in its order."""


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as dicts (its column names are text)."""
    return cast(list[dict[str, Any]], frame.to_dict("records"))


def selected_rows(
    detail: pd.DataFrame, kinds: Mapping[str, tuple[str, str]], request: StatementRequest
) -> pd.DataFrame:
    """The rows of the month's national detail (reconciliation.national.detail_rows, money in fen) that the
    request asks about. `kinds` gives each setl_id's (insurance scheme, visit type)."""
    keep = pd.Series(True, index=detail.index)
    if request.schemes is not None or request.visit_types is not None:
        scheme = detail["setl_id"].map(lambda s: kinds.get(s, ("", ""))[0])
        visit = detail["setl_id"].map(lambda s: kinds.get(s, ("", ""))[1])
        if request.schemes is not None:
            keep &= scheme.isin(request.schemes)
        if request.visit_types is not None:
            keep &= visit.isin(request.visit_types)
    if request.refd_setl_flag is not None:
        keep &= detail["refd_setl_flag"].astype(str) == request.refd_setl_flag
    return detail[keep]


def totals_of(rows: pd.DataFrame) -> dict[str, int]:
    """Net totals in fen, and the number of rows, as 3201 counts them."""
    found = {name: int(rows[name].astype("int64").sum()) for name in TOTAL_FIELDS}
    found["fixmedins_setl_cnt"] = len(rows)
    return found


def totals_output(request: StatementRequest, ours: Mapping[str, int]) -> dict[str, Any]:
    """`output` of 3201: the verdict (stmt_rslt "0" balanced, "1" not), what differs, and both sides."""
    theirs = request.totals
    differing = []
    for name in (*TOTAL_FIELDS, "fixmedins_setl_cnt"):
        if ours[name] != theirs[name]:
            if name == "fixmedins_setl_cnt":
                differing.append(f"{name}: Doudi {ours[name]}, hospital {theirs[name]}")
            else:
                gap = yuan_text(theirs[name] - ours[name])
                differing.append(
                    f"{name}: Doudi {yuan_text(ours[name])}, hospital {yuan_text(theirs[name])}, difference {gap}"
                )
    if differing:
        result, description = NOT_BALANCED, "不平 / not balanced: " + "; ".join(differing)
    else:
        rows = ours["fixmedins_setl_cnt"]
        result, description = BALANCED, f"平 / balanced: {rows} rows of {request.month} agree in total"

    def side(values: Mapping[str, int]) -> dict[str, Any]:
        return {
            **{name: yuan_text(values[name]) for name in TOTAL_FIELDS},
            "fixmedins_setl_cnt": values["fixmedins_setl_cnt"],
        }

    return {
        "stmtinfo": {"setl_optins": request.setl_optins, "stmt_rslt": result, "stmt_rslt_dscr": description},
        # Doudi's addition: both sides' figures, so that a clerk sees where to look.
        "stmt_totals": {"doudi": side(ours), "hospital": side(theirs)},
    }


def result_rows(ours: pd.DataFrame, matching: Matching) -> list[dict[str, Any]]:
    """表201: each key either side has with its verdict ("0" agrees, "1" differs) and what differs in `memo`;
    amounts are Doudi's where Doudi has the row, else the hospital's (fen)."""
    notes: dict[tuple[str, str], list[str]] = {}
    unread: list[dict[str, Any]] = []
    differences = records(matching.differences)
    for row in differences:
        if row["kind"] == "bad_row":
            unread.append(row)
            continue
        notes.setdefault((str(row["setl_id"]), str(row["refd_setl_flag"])), []).append(
            f"{KIND_TITLES[row['kind']]} {row['note']}"
        )
    theirs: dict[tuple[str, str], dict[str, Any]] = {}
    their_rows = records(matching.file.rows)
    for row in their_rows:
        theirs.setdefault((str(row["setl_id"]), str(row["refd_setl_flag"])), row)  # a repeated key: its first row
    out: list[dict[str, Any]] = []
    ours_rows = records(ours)
    for row in ours_rows:
        key = (str(row["setl_id"]), str(row["refd_setl_flag"]))
        hospital = theirs.pop(key, None)
        visit = hospital["mdtrt_id"] if hospital is not None and _present(hospital["mdtrt_id"]) else row["mdtrt_id"]
        # Doudi's detail carries the settlement key, which is the sender's msgid, in its mdtrt_id column.
        out.append(_result(row["psn_no"], visit, key, row["mdtrt_id"], notes.get(key, []), row))
    for key, hospital in theirs.items():
        out.append(_result(hospital["psn_no"], hospital["mdtrt_id"], key, None, notes.get(key, []), hospital))
    for row in unread:
        out.append(
            {
                **dict.fromkeys(RESULT_COLUMNS),
                "setl_id": row["setl_id"] or None,
                "stmt_rslt": NOT_BALANCED,
                "memo": f"{KIND_TITLES['bad_row']} row {row['hospital_row']} {row['field']}: {row['note']}",
            }
        )
    return out


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and value != value) and str(value) != "<NA>"


def _result(
    psn_no: Any, mdtrt_id: Any, key: tuple[str, str], msgid: Any, notes: list[str], amounts: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "psn_no": psn_no if _present(psn_no) else None,
        "mdtrt_id": mdtrt_id if _present(mdtrt_id) else None,
        "setl_id": key[0],
        "msgid": msgid,
        "stmt_rslt": NOT_BALANCED if notes else BALANCED,
        "refd_setl_flag": key[1],
        "memo": "; ".join(notes) or None,
        **{name: int(amounts[name]) for name in TOTAL_FIELDS},
    }


def result_text(rows: list[dict[str, Any]]) -> bytes:
    """The result file's text: a header line, then one TAB-separated line per row (money in yuan)."""
    lines = ["\t".join(RESULT_COLUMNS)]
    for row in rows:
        cells = []
        for name in RESULT_COLUMNS:
            value = row.get(name)
            if value is None or value == "":
                cells.append(NULL)
            elif name in TOTAL_FIELDS:
                cells.append(yuan_text(int(value)))
            else:
                cells.append(" ".join(str(value).split()))  # a field never breaks a line or a column
        lines.append("\t".join(cells))
    return ("\n".join(lines) + "\n").encode("utf-8")


def result_file(rows: list[dict[str, Any]], month: Month, name: str) -> bytes:
    """The result file zipped, with the month's first day as the entry's time (the same rows, the same
    bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entry = zipfile.ZipInfo(name, date_time=(month.year, month.month, 1, 0, 0, 0))
        entry.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(entry, result_text(rows))
    return buffer.getvalue()


def details_output(matching: Matching, rows: list[dict[str, Any]], filename: str, content: str) -> dict[str, Any]:
    """`output` of 3202: the verdict, the count of each kind of row, and the result file (base64)."""
    verdict = matching.verdict
    return {
        "stmtinfo": {"stmt_rslt": verdict.stmt_rslt, "stmt_rslt_dscr": verdict.stmt_rslt_dscr},
        "counts": dict(matching.counts),
        "fileinfo": {"filename": filename, "rows": len(rows), "content": content},
    }
