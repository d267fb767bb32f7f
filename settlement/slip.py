"""The settlement slip (结算单): what the family takes home, Chinese labels first, English after.

It is plain text built from a settlement record (explain.explain), so the CLI, the service and the web page
print the same slip. Every fund line says why it paid what it paid and which clause sets it.
"""

from __future__ import annotations

import unicodedata
from typing import Any, Final

REASON_TEXT: Final = {
    "paid": ("已支付", "paid"),
    "capped": ("已支付（受封顶线限制）", "paid, limited by the cap"),
    "not_insured": ("未参保", "not insured"),
    "scheme_not_covered": ("险种不适用", "scheme not covered"),
    "visit_type_not_covered": ("就诊类别不适用", "visit type not covered"),
    "hospital_level_not_covered": ("医院等级不适用", "hospital level not covered"),
    "category_not_eligible": ("救助身份不符", "category not eligible"),
    "third_party_liability": ("有第三方责任，不予支付", "a liable third party: not paid"),
    "disease_not_listed": ("病种不在目录内", "disease not on the list"),
    "nothing_left": ("已无剩余费用", "nothing left to pay"),
    "below_threshold": ("未达到救助起点", "below the threshold"),
    "below_deductible": ("未超过起付线", "below the deductible"),
    "no_grant": ("无捐助", "no grant"),
    "cap_reached": ("已达年度封顶线", "annual cap reached"),
}

WIDTH: Final = 78


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _line(label: str, amount: str) -> str:
    gap = max(WIDTH - _width(label) - _width(amount), 1)
    return f"{label}{' ' * gap}{amount}"


def format_slip(record: dict[str, Any]) -> str:
    """A settlement record as a bilingual slip of at most 78 columns (CJK characters count twice)."""
    amounts = record["amounts"]
    policy = record["policy"]
    rule = "-" * WIDTH
    lines = [
        "医疗费用一站式结算单 / One-stop settlement slip".center(WIDTH - 4),
        rule,
        f"结算号 Settlement: {record['claim_id']}    人员 Person: {record['person_id']}    "
        f"家庭 Household: {record['household_id']}",
        f"救助身份 Category: {record['category']}    险种 Scheme: {record['insurance_scheme']}    "
        f"就诊 Visit: {record['visit_type']}, 医院等级 level {record['hospital_level']}",
        f"政策 Policy: {policy['title']} ({policy['id']}@{policy['version']}, 区划 {policy['region']}), "
        f"年度 year {record['policy_year']}",
        rule,
        _line("医疗费总额 Total bill", amounts["total"]),
        _line("  全自费 Fully self-paid", amounts["fully_self_paid"]),
        _line("  超限价自费 Over-limit self-paid", amounts["over_limit_self_paid"]),
        _line("  先行自付 First self-pay (class B)", amounts["pre_self_paid"]),
        _line("符合政策范围金额 In policy scope", amounts["in_scope"]),
        rule,
        "各基金支付 Paid by each fund:",
    ]
    for tier in record["tiers"]:
        zh, en = REASON_TEXT.get(tier["reason"], (tier["reason"], tier["reason"]))
        if tier["stage"] == "grants" and tier["reason"] == "capped":
            zh, en = "以剩余费用为限", "limited to what was left"
        lines.append(_line(f"  {tier['fund_name']} ({tier['fund_pay_type']})", tier["paid"]))
        detail = f"    {zh} / {en}"
        if tier.get("base") is not None and tier["reason"] in ("paid", "capped") and tier["stage"] != "grants":
            detail += f"; 基数 base {tier['base']}, 起付 deductible {tier['deductible']}, 比例 ratio {tier['ratio']}"
            if tier.get("annual_cap_left") is not None:
                detail += f", 年度剩余限额 cap left {tier['annual_cap_left']}"
        lines.append(detail)
        for ref in tier.get("references", [])[:3]:
            cite = ref["document"] + (f" {ref['article']}" if "article" in ref else "")
            mark = " (示例 illustrative)" if ref.get("illustrative") else ""
            lines.append(f"      依据 {ref['parameter']}: {cite}{mark}")
    for grant in record.get("grants", []):
        lines.append(f"    捐助 Grant from {grant['payer']}: granted {grant['granted']}, paid {grant['paid']}")
    lines += [
        rule,
        _line("基金支付合计 Paid by funds", record["fund_paid"]),
        _line("个人负担 THE FAMILY PAYS", record["patient_burden"]),
        rule,
        "医疗费总额 = 基金支付合计 + 个人负担 / Total = paid by funds + paid by the family",
    ]
    return "\n".join(lines) + "\n"
