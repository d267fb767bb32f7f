"""A month's statement as files, and their manifest with SHA-256 hashes.

Layout, for a month (and one hospital, or all):
`summary.csv` (per hospital and fund), `hospitals.csv` (the platform's totals per hospital), `detail.csv`,
`checks.csv` (every balancing check with both sides), `statement.xlsx` (the same four as sheets), and
`national/<hospital>.zip` (the national detail file per hospital). The headers are Chinese with the
national field name where one exists.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd

from reconciliation.frames import fund_name
from reconciliation.national import detail_rows, zipped_detail
from reconciliation.statement import Statement
from reconciliation.writers import Sheet, csv_bytes, xlsx_bytes

XLSX_DETAIL_LIMIT: Final = 50_000
"""Detail rows a statement workbook holds; a month of all hospitals beyond this is in CSV and national files
only (a workbook of a million rows would take minutes to write and cannot be worked in by hand)."""

CATEGORY_NAMES: Final = {
    "tekun": "特困人员",
    "orphan": "孤儿",
    "severe_disability": "重度残疾人",
    "dibao": "低保对象",
    "low_income": "低保边缘",
    "illness_poverty": "因病致贫",
    "none": "无",
}

SUMMARY_HEADERS: Final = {
    "hospital_id": "医疗机构编号",
    "fund_name": "基金",
    "fund": "基金代码(fund)",
    "settlements": "结算笔数",
    "reversals": "撤销笔数",
    "paid": "结算金额",
    "reversed": "撤销金额",
    "prior_period": "其中以前月份撤销",
    "net": "本月净额",
    "carried_in": "上月结转",
    "due": "应拨付金额",
    "carried_out": "结转下月",
}
SUMMARY_MONEY: Final = ("paid", "reversed", "prior_period", "net", "carried_in", "due", "carried_out")

HOSPITAL_HEADERS: Final = {
    "hospital_id": "医疗机构编号",
    "settlements": "结算笔数(fixmedins_setl_cnt)",
    "reversals": "撤销笔数",
    "medfee_sumamt": "医疗费总额(medfee_sumamt)",
    "inscp_scp_amt": "符合政策范围金额(inscp_scp_amt)",
    "fund_pay_sumamt": "基金支付总额(fund_pay_sumamt)",
    "psn_part_amt": "个人负担总金额(psn_part_amt)",
}
HOSPITAL_MONEY: Final = ("medfee_sumamt", "inscp_scp_amt", "fund_pay_sumamt", "psn_part_amt")

CHECK_HEADERS: Final = {
    "check": "平衡校验",
    "hospital_id": "医疗机构编号",
    "fund": "基金代码",
    "expected": "应为",
    "found": "实为",
    "ok": "通过",
}


def detail_headers(funds: list[str]) -> dict[str, str]:
    return {
        "row_kind_name": "行类型",
        "setl_id": "结算ID(setl_id)",
        "medins_setl_id": "医药机构结算ID(medins_setl_id)",
        "hospital_id": "医疗机构编号",
        "person_id": "人员编号(psn_no)",
        "category_name": "救助身份",
        "diagnosis": "主诊断",
        "admitted_on": "入院日期",
        "discharged_on": "出院日期",
        "booked_at": "结算/撤销时间",
        "total": "医疗费总额(medfee_sumamt)",
        "fully_self_paid": "全自费金额(fulamt_ownpay_amt)",
        "over_limit_self_paid": "超限价自费(overlmt_selfpay)",
        "pre_self_paid": "先行自付(preselfpay_amt)",
        "in_scope": "符合政策范围金额(inscp_scp_amt)",
        **{fund: f"{fund_name(fund)}支付" for fund in funds},
        "fund_paid": "基金支付总额(fund_pay_sumamt)",
        "patient_burden": "个人负担总金额(psn_part_amt)",
        "assistance_base": "进入医疗救助金额",
        "quota_used": "年度救助已用",
        "quota_left": "年度救助剩余",
        "prior_period": "以前月份调整",
        "original_month": "原结算月份",
        "policy": "政策",
    }


def detail_money_columns(funds: list[str]) -> list[str]:
    """The detail's money columns (fen), in the order they are shown."""
    amounts = ["total", "fully_self_paid", "over_limit_self_paid", "pre_self_paid", "in_scope", *funds]
    return [*amounts, "fund_paid", "patient_burden", "assistance_base", "quota_used", "quota_left"]


@dataclass(frozen=True)
class Identifiers:
    """How each row's person number (psn_no) appears in a statement's files: `shown` in detail.csv and the
    workbook, `national` in the national detail files. Doudi's use cases choose (doudi/reconcile.py, with
    the rules of doudi/masking.py); `label` names the choice in the manifest, so that a closed month's
    files can be written again byte for byte."""

    shown: Callable[[str], str] = str
    national: Callable[[str], str] = str
    label: str = "full"


def _replaced(values: pd.Series, how: Callable[[str], str]) -> pd.Series:
    if how is str:
        return values
    distinct = pd.unique(values)
    return values.map(dict(zip(distinct, map(how, distinct), strict=True)))


def sheets(statement: Statement, identifiers: Identifiers = Identifiers()) -> list[Sheet]:
    """Summary, hospitals, detail and checks as sheets (money columns in fen)."""
    funds = statement.funds
    detail = statement.detail.assign(
        row_kind_name=statement.detail["row_kind"].map({"settlement": "结算", "reversal": "撤销"}),
        category_name=statement.detail["category"].map(lambda c: CATEGORY_NAMES.get(c, c)),
        person_id=_replaced(statement.detail["person_id"], identifiers.shown),
    )
    detail_money = detail_money_columns(funds)
    summed = [c for c in detail_money if c not in ("quota_used", "quota_left")]
    title = f"{statement.month} 月度结算对账单 monthly statement"
    return [
        Sheet(
            "汇总 summary",
            statement.summary,
            SUMMARY_HEADERS,
            SUMMARY_MONEY,
            ("settlements", "reversals", *SUMMARY_MONEY),
            (title,),
        ),
        Sheet(
            "医疗机构 hospitals",
            statement.hospitals,
            HOSPITAL_HEADERS,
            HOSPITAL_MONEY,
            ("settlements", "reversals", *HOSPITAL_MONEY),
            (title,),
        ),
        Sheet("明细 detail", detail, detail_headers(funds), detail_money, summed, (title,)),
        Sheet("平衡校验 checks", statement.checks, CHECK_HEADERS, ("expected", "found"), (), (title,)),
    ]


def statement_files(statement: Statement, identifiers: Identifiers = Identifiers()) -> dict[str, bytes]:
    """Every file of the statement by its path in the month's folder. The statement must balance."""
    statement.require_balanced()
    created = dt.datetime(statement.month.year, statement.month.month, 1)
    summary, hospitals, detail, checks = sheets(statement, identifiers)
    files = {
        "summary.csv": csv_bytes(summary),
        "hospitals.csv": csv_bytes(hospitals),
        "detail.csv": csv_bytes(detail),
        "checks.csv": csv_bytes(checks),
        "statement.xlsx": xlsx_bytes([summary, hospitals, _workbook_detail(detail), checks], created),
    }
    rows = detail_rows(statement)
    rows["psn_no"] = _replaced(rows["psn_no"], identifiers.national)
    for hospital, part in rows.groupby(statement.detail["hospital_id"], sort=True):
        files[f"national/{hospital}.zip"] = zipped_detail(part, statement.month, f"{hospital}-{statement.month}.txt")
    return files


def _workbook_detail(detail: Sheet) -> Sheet:
    """The detail sheet, or, for a month too large to open comfortably in a spreadsheet, a note saying where
    the rows are (every row is always in detail.csv and the national files)."""
    if len(detail.frame) <= XLSX_DETAIL_LIMIT:
        return detail
    note = (
        f"明细共 {len(detail.frame)} 行，超过工作簿明细上限 {XLSX_DETAIL_LIMIT} 行，请见 detail.csv 与 national/*.zip。"
        f" The detail has {len(detail.frame)} rows, more than {XLSX_DETAIL_LIMIT}: see detail.csv and national/*.zip."
    )
    return Sheet(detail.name, detail.frame.iloc[0:0], detail.headers, detail.money, (), (*detail.notes, note))


def manifest(statement: Statement, files: dict[str, bytes]) -> dict[str, Any]:
    """The files with their SHA-256 and size, and the month's totals, as stored when a month is closed."""
    summary = statement.summary
    return {
        "month": str(statement.month),
        "files": [
            {"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for name, data in sorted(files.items())
        ],
        "balanced": statement.balanced,
        "hospitals": int(statement.hospitals.shape[0]),
        "settlements": int((statement.detail["row_kind"] == "settlement").sum()),
        "reversals": int((statement.detail["row_kind"] == "reversal").sum()),
        "due_fen": int(summary["due"].sum()) if len(summary) else 0,
        "net_fen": int(summary["net"].sum()) if len(summary) else 0,
    }
