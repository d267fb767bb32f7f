"""Matching a hospital's detail file against Doudi's detail of the same month and hospital (明细对账), the
way the platform's 3202 compares details: row by row on the key (setl_id, refd_setl_flag), so that a
reversed settlement is two rows, the forward one and the reverse one.

Every row ends up matched or in differences of exactly one kind, each a thing a clerk can act on: a row only
Doudi has, a row only the hospital has, a row the hospital lists twice, amounts that differ (one difference
per field, with both values and the difference), a reversal one side has and the other lacks, a settlement
the hospital lists in a month other than the one Doudi recorded it in, and a row of the file that could not
be read (one difference per bad column).
The verdict is 3201's answer for the hospital (stmt_rslt "0" balanced, "1" not) with each side's counts
and totals; a file that had any problem is never balanced, since a row left unread may hide a difference.

Pure logic on frames: the caller reads the file (reconciliation.hospital_file), supplies Doudi's rows
(reconciliation.national.detail_rows of the hospital's statement) and writes the report
(reconciliation.writers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reconciliation.frames import Month
from reconciliation.hospital_file import FIELD_TITLES, MONEY, HospitalFile
from reconciliation.national import yuan_text
from reconciliation.writers import Sheet

KEY: Final = ["setl_id", "refd_setl_flag"]

KIND_TITLES: Final = {
    "matched": "一致",
    "bad_row": "无法读取的行",
    "duplicated": "重复",
    "amount_differs": "金额不符",
    "reversal_differs": "退费状态不符",
    "wrong_month": "月份不符",
    "hospital_only": "仅医院有",
    "doudi_only": "仅 Doudi 有",
}
"""Each outcome of a row, in the order a clerk works through them: first what makes the file unreadable,
then rows both sides have, then rows only one side has."""
DIFFERENCE_KINDS: Final = tuple(kind for kind in KIND_TITLES if kind != "matched")

DIFFERENCE_COLUMNS: Final = (
    "kind",
    "setl_id",
    "refd_setl_flag",
    "field",
    "doudi",
    "hospital",
    "difference",
    "hospital_row",
    "note",
)
"""`doudi`, `hospital` and `difference` (hospital − Doudi, a missing side counted as 0) are fen of `field`;
a difference about a whole row carries the row's medfee_sumamt, so that the medfee_sumamt differences add
up to the difference of the two totals."""

BALANCED: Final = "0"
NOT_BALANCED: Final = "1"

_NO_MONTHS: Final[Mapping[str, str]] = MappingProxyType({})
_SETL_ID: Final = FIELD_TITLES["setl_id"]
_FLAG: Final = FIELD_TITLES["refd_setl_flag"]


@dataclass(frozen=True)
class SideTotals:
    """What 3201 compares for one side: rows (settlements and reversals) and net amounts in fen. The hospital's
    side is its file's readable rows as they stand, duplicates included."""

    rows: int
    settlements: int
    reversals: int
    medfee_sumamt: int
    fund_pay_sumamt: int
    acct_pay: int

    @classmethod
    def of(cls, rows: pd.DataFrame) -> SideTotals:
        flags = rows["refd_setl_flag"].astype(str)
        return cls(
            rows=len(rows),
            settlements=int((flags == "0").sum()),
            reversals=int((flags == "1").sum()),
            **{name: int(rows[name].sum()) for name in MONEY},
        )


@dataclass(frozen=True)
class Verdict:
    stmt_rslt: str  # BALANCED or NOT_BALANCED, as 3201 answers
    stmt_rslt_dscr: str
    doudi: SideTotals
    hospital: SideTotals

    @property
    def balanced(self) -> bool:
        return self.stmt_rslt == BALANCED


@dataclass(frozen=True)
class Matching:
    month: Month
    file: HospitalFile
    differences: pd.DataFrame  # DIFFERENCE_COLUMNS, in the order a clerk works through them
    verdict: Verdict
    counts: dict[str, int]  # every kind of KIND_TITLES: matched keys, and rows of `differences` per kind


def match(
    ours: pd.DataFrame,
    theirs: HospitalFile,
    month: Month,
    settled_elsewhere: Mapping[str, str] = _NO_MONTHS,
) -> Matching:
    """Doudi's rows `ours` (detail_rows of one hospital's statement of `month`, money in fen) against the
    hospital's file. `settled_elsewhere` maps a setl_id Doudi recorded in another month to that month."""
    ours = _keyed(ours, with_row=False)
    if ours.duplicated(KEY).any():
        repeated = ours.loc[ours.duplicated(KEY, keep=False), KEY].head(5).values.tolist()
        raise ValueError(f"Doudi's rows repeat a (setl_id, refd_setl_flag): {repeated}")
    hospital = _keyed(theirs.rows, with_row=True)
    parts = [_bad_rows(theirs)]
    matched = 0
    if theirs.readable:
        occurrence = hospital.groupby(KEY, sort=False).cumcount().to_numpy()
        first = hospital[occurrence == 0]
        merged = ours.merge(first, on=KEY, how="outer", suffixes=("_doudi", "_hospital"), indicator=True)
        both = merged[merged["_merge"] == "both"]
        amounts, matched = _amount_differences(both)
        parts += [
            _duplicates(hospital[occurrence > 0], first),
            amounts,
            *_one_sided(merged, ours, first, theirs, month, settled_elsewhere),
        ]
    differences = _sorted(pd.concat([p for p in parts if len(p)] or [_frame([])], ignore_index=True))
    counts = {"matched": matched, **{kind: int((differences["kind"] == kind).sum()) for kind in DIFFERENCE_KINDS}}
    verdict = _verdict(month, theirs, counts, SideTotals.of(ours), SideTotals.of(hospital))
    return Matching(month, theirs, differences, verdict, counts)


def _keyed(rows: pd.DataFrame, with_row: bool) -> pd.DataFrame:
    """The key, the amounts in fen and (for the hospital's file) the row number, nothing else."""
    columns = {
        "setl_id": rows["setl_id"].astype(str).to_numpy(),
        "refd_setl_flag": rows["refd_setl_flag"].astype(str).to_numpy(),
        **{name: rows[name].astype(np.int64).to_numpy() for name in MONEY},
    }
    if with_row:
        columns["row"] = rows["row"].astype(np.int64).to_numpy()
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))


def _frame(records: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=list(DIFFERENCE_COLUMNS))
    return _typed(frame)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(
        {
            "kind": str,
            "setl_id": str,
            "refd_setl_flag": str,
            "field": str,
            "doudi": "Int64",
            "hospital": "Int64",
            "difference": "Int64",
            "hospital_row": "Int64",
            "note": str,
        }
    )


def _columns(
    kind: str,
    rows: pd.DataFrame,
    field: str,
    doudi: npt.NDArray[np.int64] | None,
    hospital: npt.NDArray[np.int64] | None,
    notes: list[str],
) -> pd.DataFrame:
    """A block of differences of one kind: the keys and hospital rows of `rows`, the values of `field` on
    each side (None: the side lacks the row)."""
    count = len(rows)
    doudi_values = _nullable(doudi, count)
    hospital_values = _nullable(hospital, count)
    frame = pd.DataFrame(
        {
            "kind": [kind] * count,
            "setl_id": rows["setl_id"].to_numpy(),
            "refd_setl_flag": rows["refd_setl_flag"].to_numpy(),
            "field": [field] * count,
            "doudi": doudi_values,
            "hospital": hospital_values,
            "difference": hospital_values.fillna(0) - doudi_values.fillna(0),
            "hospital_row": _nullable(rows["row"].to_numpy() if "row" in rows else None, count),
            "note": notes,
        },
        index=pd.RangeIndex(count),
    )
    return _typed(frame)


def _nullable(values: npt.NDArray[np.int64] | None, count: int) -> pd.Series:
    if values is None:
        return pd.Series([pd.NA] * count, dtype="Int64", index=pd.RangeIndex(count))
    return pd.Series(values, dtype="Int64", index=pd.RangeIndex(count))


def _bad_rows(theirs: HospitalFile) -> pd.DataFrame:
    return _frame(
        [
            {
                "kind": "bad_row",
                "setl_id": problem.setl_id,
                "refd_setl_flag": "",
                "field": problem.column,
                "hospital_row": problem.row,
                "note": problem.message,
            }
            for problem in theirs.problems
        ]
    )


def _amount_differences(both: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One difference per field that differs on a key both sides have, and the number of keys that agree."""
    blocks = []
    differs = np.zeros(len(both), dtype=bool)
    for name in MONEY:
        doudi = both[f"{name}_doudi"].to_numpy(dtype=np.int64)
        hospital = both[f"{name}_hospital"].to_numpy(dtype=np.int64)
        wrong = doudi != hospital
        differs |= wrong
        if wrong.any():
            notes = [
                _amount_note(name, d, h) for d, h in zip(doudi[wrong].tolist(), hospital[wrong].tolist(), strict=True)
            ]
            blocks.append(_columns("amount_differs", both[wrong], name, doudi[wrong], hospital[wrong], notes))
    return (pd.concat(blocks, ignore_index=True) if blocks else _frame([])), int((~differs).sum())


def _amount_note(name: str, doudi: int, hospital: int) -> str:
    d, h, diff = yuan_text(doudi), yuan_text(hospital), yuan_text(hospital - doudi)
    parts = [
        (
            f"{FIELD_TITLES[name]}不符：Doudi {d}，医院 {h}，差额 {diff}",
            f"{name} differs: Doudi {d}, hospital {h}, difference {diff}",
        )
    ]
    if hospital == -doudi:
        parts.append(
            ("医院金额正负号相反", "the hospital's sign is the opposite (a reverse row carries negative amounts)")
        )
    return _bilingual(*parts)


def _duplicates(extra: pd.DataFrame, first: pd.DataFrame) -> pd.DataFrame:
    """Every occurrence of a key after its first in the hospital's file."""
    if not len(extra):
        return _frame([])
    keys = pd.MultiIndex.from_frame(extra[KEY])
    firsts = first.set_index(KEY).reindex(keys)
    same = np.ones(len(extra), dtype=bool)
    for name in MONEY:
        same &= firsts[name].to_numpy() == extra[name].to_numpy()
    notes = [
        _bilingual(
            (
                f"与第 {r} 行重复（{_SETL_ID}与{_FLAG}相同，金额{'相同' if s else '不同'}）",
                f"repeats row {r}: the same setl_id and refd_setl_flag, {'the same' if s else 'different'} amounts",
            )
        )
        for r, s in zip(firsts["row"].tolist(), same.tolist(), strict=True)
    ]
    return _columns("duplicated", extra, "medfee_sumamt", None, extra["medfee_sumamt"].to_numpy(), notes)


_DOUDI_REVERSED: Final = (
    "Doudi 本月已撤销此结算，医院文件只有正向行、没有冲销行",
    "Doudi reversed this settlement this month; the hospital's file has the forward row but not the reverse row",
)
_HOSPITAL_REVERSED: Final = (
    "医院文件有冲销行，Doudi 本月没有撤销此结算",
    "the hospital's file has a reverse row; Doudi did not reverse this settlement this month",
)
_LACKS_SETTLEMENT: Final = ("医院文件没有这笔结算", "the hospital's file lacks this settlement")
_LACKS_REVERSAL: Final = (
    "医院文件没有这笔冲销行，也没有它冲销的结算",
    "the hospital's file lacks this reverse row and the settlement it reverses",
)
_NO_SETTLEMENT: Final = ("Doudi 本月没有这笔结算", "Doudi has no such settlement this month")
_NO_REVERSAL: Final = (
    "Doudi 本月没有这笔冲销，也没有它冲销的结算",
    "Doudi has neither this reverse row nor the settlement it reverses this month",
)


def _one_sided(
    merged: pd.DataFrame,
    ours: pd.DataFrame,
    first: pd.DataFrame,
    theirs: HospitalFile,
    month: Month,
    settled_elsewhere: Mapping[str, str],
) -> list[pd.DataFrame]:
    """Keys only one side has: a reversal one side lacks, a settlement of another month, or a plain absence."""
    only_ours = merged[merged["_merge"] == "left_only"].drop(columns="row")
    only_theirs = merged[merged["_merge"] == "right_only"]
    hospital_forward = first.loc[first["refd_setl_flag"] == "0", "setl_id"]
    doudi_forward = ours.loc[ours["refd_setl_flag"] == "0", "setl_id"]
    unread = {p.setl_id: p.row for p in theirs.problems if p.setl_id}
    blocks = []

    reversed_here = (only_ours["refd_setl_flag"] == "1").to_numpy() & _among(only_ours["setl_id"], hospital_forward)
    for kind, rows in (("reversal_differs", only_ours[reversed_here]), ("doudi_only", only_ours[~reversed_here])):
        notes = [
            _doudi_side_note(kind, flag, unread.get(setl_id))
            for setl_id, flag in zip(rows["setl_id"].tolist(), rows["refd_setl_flag"].tolist(), strict=True)
        ]
        blocks.append(_columns(kind, rows, "medfee_sumamt", rows["medfee_sumamt_doudi"].to_numpy(), None, notes))

    reversed_there = (only_theirs["refd_setl_flag"] == "1").to_numpy() & _among(only_theirs["setl_id"], doudi_forward)
    # A settlement recorded in this very month (at another hospital, then) is not a question of months.
    other_months = [setl_id for setl_id, recorded in settled_elsewhere.items() if recorded != str(month)]
    elsewhere = ~reversed_there & _among(only_theirs["setl_id"], other_months)
    plain = ~reversed_there & ~elsewhere
    rows = only_theirs[elsewhere]
    notes = [
        _wrong_month_note(settled_elsewhere[setl_id], month, flag)
        for setl_id, flag in zip(rows["setl_id"].tolist(), rows["refd_setl_flag"].tolist(), strict=True)
    ]
    blocks += [
        _hospital_block(
            "reversal_differs",
            only_theirs[reversed_there],
            [_bilingual(_HOSPITAL_REVERSED)] * int(reversed_there.sum()),
        ),
        _hospital_block("wrong_month", rows, notes),
        _hospital_block(
            "hospital_only",
            only_theirs[plain],
            [
                _bilingual(_NO_SETTLEMENT if flag == "0" else _NO_REVERSAL)
                for flag in only_theirs.loc[plain, "refd_setl_flag"].tolist()
            ],
        ),
    ]
    return blocks


def _among(ids: pd.Series, known: pd.Series | list[str]) -> npt.NDArray[np.bool_]:
    # pyarrow's hashed lookup: pandas' isin on string columns goes through Python objects, 10 times slower.
    found = pc.is_in(_strings(ids), value_set=_strings(known))
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def _strings(values: pd.Series | list[str]) -> pa.Array:
    return pa.array(values, type=pa.string(), from_pandas=True)


def _hospital_block(kind: str, rows: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    return _columns(kind, rows, "medfee_sumamt", None, rows["medfee_sumamt_hospital"].to_numpy(), notes)


def _wrong_month_note(recorded: str, month: Month, flag: str) -> str:
    if flag == "0":
        return _bilingual(
            (
                f"Doudi 将此结算记在 {recorded}，不在 {month}",
                f"Doudi recorded this settlement in {recorded}, not {month}",
            )
        )
    return _bilingual(
        (
            f"此结算 Doudi 记在 {recorded}，本月 {month} 没有它的冲销",
            f"Doudi recorded this settlement in {recorded} and has no reversal of it in {month}",
        )
    )


def _doudi_side_note(kind: str, flag: str, unread_row: int | None) -> str:
    missing = _LACKS_SETTLEMENT if flag == "0" else _LACKS_REVERSAL
    parts = [_DOUDI_REVERSED if kind == "reversal_differs" else missing]
    if unread_row is not None:
        parts.append(
            (
                f"医院文件第 {unread_row} 行有此{_SETL_ID}但无法读取",
                f"row {unread_row} of the file names it but was not read",
            )
        )
    return _bilingual(*parts)


def _bilingual(*parts: tuple[str, str]) -> str:
    """A note in Chinese, then in English."""
    return "；".join(zh for zh, _ in parts) + " / " + "; ".join(en for _, en in parts)


_KIND_RANK: Final = {kind: rank for rank, kind in enumerate(DIFFERENCE_KINDS)}
_FIELD_RANK: Final = {name: rank for rank, name in enumerate(FIELD_TITLES)}


def _sorted(differences: pd.DataFrame) -> pd.DataFrame:
    """By kind; bad rows by row number, the others by key, a row's fields in the file's order."""
    bad = differences["kind"] == "bad_row"
    order = differences.assign(
        _kind=differences["kind"].map(_KIND_RANK),
        _id=differences["setl_id"].where(~bad, ""),
        _row=differences["hospital_row"].fillna(0),
        _field=differences["field"].map(_FIELD_RANK).fillna(-1),
    )
    order = order.sort_values(["_kind", "_id", "refd_setl_flag", "_row", "_field"], kind="stable")
    return _typed(order[list(DIFFERENCE_COLUMNS)].reset_index(drop=True))


def _verdict(
    month: Month, theirs: HospitalFile, counts: dict[str, int], doudi: SideTotals, hospital: SideTotals
) -> Verdict:
    found = {kind: counts[kind] for kind in DIFFERENCE_KINDS if counts[kind]}
    if not found:
        return Verdict(
            BALANCED,
            f"平：{month} 明细 {doudi.rows} 行全部一致 / balanced: all {doudi.rows} rows of {month} agree",
            doudi,
            hospital,
        )
    listed_zh = "，".join(f"{KIND_TITLES[k]} {n}" for k, n in found.items())
    listed_en = ", ".join(f"{k} {n}" for k, n in found.items())
    total = sum(found.values())
    description = f"不平：{total} 处差异（{listed_zh}）/ not balanced: {total} differences ({listed_en})"
    if not theirs.readable:
        description = f"不平：医院文件无法读取 / not balanced: the hospital's file could not be read; {description}"
    elif doudi == hospital:
        description += "；合计相同但明细不符 / the totals agree but the rows do not"
    return Verdict(NOT_BALANCED, description, doudi, hospital)


# --------------------------------------------------------------------------------------------------------
# The difference report

VERDICT_HEADERS: Final = {
    "side": "对账方 side",
    "stmt_rslt": "对账结果 stmt_rslt",
    "stmt_rslt_dscr": "结果说明",
    "rows": "行数",
    "settlements": "结算笔数",
    "reversals": "退费笔数",
    **{name: f"{FIELD_TITLES[name]} {name}" for name in MONEY},
}
DIFFERENCE_HEADERS: Final = {
    "kind_title": "差异类型",
    "kind": "类型代码 kind",
    "setl_id": FIELD_TITLES["setl_id"],
    "refd_setl_flag": FIELD_TITLES["refd_setl_flag"],
    "field_title": "字段",
    "field": "字段代码 field",
    "doudi": "Doudi 金额",
    "hospital": "医院金额",
    "difference": "差额（医院−Doudi）",
    "hospital_row": "医院文件行号",
    "note": "说明 note",
}


def difference_sheets(matching: Matching) -> list[Sheet]:
    """The difference report: the verdict (each side's counts and totals, and their difference) and the
    differences a clerk works through, for reconciliation.writers to write as CSV or XLSX."""
    verdict = matching.verdict
    doudi, hospital = asdict(verdict.doudi), asdict(verdict.hospital)
    sides = [
        {"side": "Doudi", **doudi},
        {"side": "医院 hospital", **hospital},
        {"side": "差额 hospital − Doudi", **{name: hospital[name] - doudi[name] for name in doudi}},
    ]
    frame = pd.DataFrame(sides).assign(stmt_rslt=verdict.stmt_rslt, stmt_rslt_dscr=verdict.stmt_rslt_dscr)
    counts = "，".join(f"{KIND_TITLES[k]} {n}" for k, n in matching.counts.items())
    notes = [
        f"{matching.month} 医院明细对账 / hospital detail matching",
        f"医院文件 file: {matching.file.name} ({matching.file.describe()})",
        f"对账结果 stmt_rslt {verdict.stmt_rslt}: {verdict.stmt_rslt_dscr}",
        f"分类 counts: {counts}",
        *matching.file.notes,
    ]
    differences = matching.differences.assign(
        kind_title=matching.differences["kind"].map(KIND_TITLES),
        field_title=matching.differences["field"].map(lambda f: FIELD_TITLES.get(f, f)),
        # writers writes Python ints as numbers; a nullable integer column would come out as text
        hospital_row=pd.Series(
            [None if pd.isna(r) else int(r) for r in matching.differences["hospital_row"]], dtype=object
        ),
    )
    return [
        Sheet("对账结论 verdict", frame, VERDICT_HEADERS, money=MONEY, notes=notes),
        Sheet("差异明细 differences", differences, DIFFERENCE_HEADERS, money=("doudi", "hospital", "difference")),
    ]
