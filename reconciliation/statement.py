"""A month's statement per hospital and fund (月度结算对账), built so that it balances, and checked anyway.

The detail has one row per settlement recorded in the month (`row_kind` "settlement") and one per reversal
made in the month ("reversal", amounts negative, linked to the settlement it reverses); a reversal of a
settlement from an earlier month is a prior-period adjustment of this month, never a change to that month.
The summary is the detail summed per hospital and fund, with what is due to the hospital (拨付): a net
negative balance is not netted away but carried forward to the hospital's next month.

Before anything is written, `checks` must all hold: every row's parts add up to its total, the detail sums
to the summary, the summary equals the ledger's own sums, and the carry-forward arithmetic closes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reconciliation.frames import Month, fund_key, fund_name, fund_order


class Unbalanced(Exception):
    """A balancing check failed: nothing may be written or paid from this statement."""

    def __init__(self, failed: pd.DataFrame):
        self.failed = failed
        lines = [
            f"{r['check']} {r['hospital_id']} {r['fund']}: expected {r['expected']}, found {r['found']}"
            for r in failed.head(20).to_dict("records")
        ]
        super().__init__("the statement does not balance:\n" + "\n".join(lines))


@dataclass(frozen=True)
class Statement:
    month: Month
    funds: list[str]  # fund keys in payment order; the detail has one amount column per fund
    detail: pd.DataFrame
    summary: pd.DataFrame  # one row per hospital and fund
    hospitals: pd.DataFrame  # one row per hospital: counts and the platform's totals
    checks: pd.DataFrame  # check, hospital_id, fund, expected, found, ok
    carried_in: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def balanced(self) -> bool:
        return bool(self.checks["ok"].all())

    def require_balanced(self) -> None:
        if not self.balanced:
            raise Unbalanced(self.checks[~self.checks["ok"]])

    def carried_out(self) -> dict[tuple[str, str], int]:
        """What each hospital owes back per fund at the month's end (negative fen), for the next month."""
        owed = self.summary[self.summary["carried_out"] < 0]
        return {(r["hospital_id"], r["fund"]): int(r["carried_out"]) for r in owed.to_dict("records")}


_AMOUNTS = (
    "total",
    "fully_self_paid",
    "over_limit_self_paid",
    "pre_self_paid",
    "in_scope",
    "fund_paid",
    "patient_burden",
)


def build_statement(
    month: Month,
    settlements: pd.DataFrame,
    entries: pd.DataFrame,
    ledger_totals: pd.DataFrame,
    carried_in: dict[tuple[str, str], int] | None = None,
    hospital_id: str | None = None,
) -> Statement:
    """The statement of `month` (for one hospital, or all) from the frames of reconciliation/frames.py.

    `carried_in`: each (hospital, fund)'s negative balance carried from the month before."""
    carry = dict(carried_in or {})
    settlements = settlements.assign(
        settled_at=pd.to_datetime(settlements["settled_at"]), reversed_at=pd.to_datetime(settlements["reversed_at"])
    )
    if hospital_id is not None:
        settlements = settlements[settlements["hospital_id"] == hospital_id]
        entries = entries[entries["setl_id"].isin(settlements["setl_id"])]
        ledger_totals = ledger_totals[ledger_totals["hospital_id"] == hospital_id]
        carry = {k: v for k, v in carry.items() if k[0] == hospital_id}
    entries = entries.assign(fund=[fund_key(s, b) for s, b in zip(entries["stage"], entries["bucket"], strict=True)])
    funds = fund_order(
        list(entries["fund"].unique()) + [f for _, f in carry] + _ledger_funds(ledger_totals)["fund"].tolist()
    )
    detail = _detail(month, settlements, entries, funds)
    summary = _summary(detail, funds, carry)
    hospitals = _hospitals(detail)
    checks = _checks(detail, summary, _ledger_funds(ledger_totals), funds)
    return Statement(month, funds, detail, summary, hospitals, checks, carry)


def _ledger_funds(ledger_totals: pd.DataFrame) -> pd.DataFrame:
    return ledger_totals.assign(
        fund=[fund_key(s, b) for s, b in zip(ledger_totals["stage"], ledger_totals["bucket"], strict=True)]
    )


def _detail(month: Month, settlements: pd.DataFrame, entries: pd.DataFrame, funds: list[str]) -> pd.DataFrame:
    forward = settlements[month.holds(settlements["settled_at"])].assign(row_kind="settlement", sign=1)
    reverse = settlements[month.holds(settlements["reversed_at"])].assign(row_kind="reversal", sign=-1)
    rows = pd.concat([forward, reverse], ignore_index=True)
    rows["booked_at"] = np.where(rows["row_kind"] == "settlement", rows["settled_at"], rows["reversed_at"])
    rows["booked_at"] = pd.to_datetime(rows["booked_at"])
    rows["original_month"] = rows["settled_at"].dt.strftime("%Y-%m")
    rows["prior_period"] = (rows["row_kind"] == "reversal") & (rows["settled_at"] < month.start)
    for name in _AMOUNTS:
        rows[name] = rows[name].astype(np.int64) * rows["sign"]

    paid = entries.pivot_table(index=["setl_id", "kind"], columns="fund", values="amount", aggfunc="sum", fill_value=0)
    paid = paid.reindex(columns=funds, fill_value=0).astype(np.int64)
    keys = pd.MultiIndex.from_arrays([rows["setl_id"], rows["row_kind"]])
    amounts = paid.reindex(keys, fill_value=0)
    for fund in funds:
        rows[fund] = amounts[fund].to_numpy()

    assistance = entries[entries["stage"] == "medical_assistance"]
    entered = assistance.groupby(["setl_id", "kind"])["base"].sum()
    rows["assistance_base"] = entered.reindex(keys, fill_value=0).to_numpy().astype(np.int64)
    # The bucket that paid (or, when none paid, any) carries the annual quota figures of the settlement.
    quota = (
        assistance[assistance["kind"] == "settlement"]
        .assign(order=lambda f: (f["amount"] == 0).astype(int))
        .sort_values(["setl_id", "order"], kind="stable")
        .drop_duplicates("setl_id")
        .set_index("setl_id")
    )
    forward_only = rows["row_kind"] == "settlement"
    for column in ("quota_used", "quota_left"):
        values = quota[column].reindex(rows["setl_id"]) if len(quota) else pd.Series(pd.NA, index=rows["setl_id"])
        rows[column] = pd.Series(values.to_numpy(), index=rows.index, dtype="Int64").where(forward_only)
    rows = rows.sort_values(["hospital_id", "booked_at", "setl_id", "row_kind"], kind="stable", ignore_index=True)
    return rows.drop(columns=["sign"])


def _summary(detail: pd.DataFrame, funds: list[str], carry: dict[tuple[str, str], int]) -> pd.DataFrame:
    hospitals = sorted(set(detail["hospital_id"]) | {h for h, _ in carry})
    rows = []
    by_hospital = dict(tuple(detail.groupby("hospital_id", sort=False))) if len(detail) else {}
    for hospital in hospitals:
        mine = by_hospital.get(hospital, detail.iloc[0:0])
        forward = mine["row_kind"] == "settlement"
        prior = mine["prior_period"].astype(bool)
        for fund in funds:
            column = mine[fund] if fund in mine else pd.Series(dtype=np.int64)
            carried = carry.get((hospital, fund), 0)
            if not column.any() and carried == 0:
                continue
            paid = int(column[forward].sum())
            reversed_ = int(column[~forward].sum())
            balance = paid + reversed_ + carried
            rows.append(
                {
                    "hospital_id": hospital,
                    "fund": fund,
                    "fund_name": fund_name(fund),
                    "settlements": int((column[forward] != 0).sum()),
                    "reversals": int((column[~forward] != 0).sum()),
                    "paid": paid,
                    "reversed": reversed_,
                    "prior_period": int(column[~forward & prior].sum()),
                    "net": paid + reversed_,
                    "carried_in": carried,
                    "due": max(balance, 0),
                    "carried_out": min(balance, 0),
                }
            )
    columns = ["hospital_id", "fund", "fund_name", "settlements", "reversals", "paid", "reversed", "prior_period"]
    return pd.DataFrame(rows, columns=[*columns, "net", "carried_in", "due", "carried_out"])


def _hospitals(detail: pd.DataFrame) -> pd.DataFrame:
    """Per hospital, the platform's totals (what 3201 compares): counts and net amounts."""
    grouped = detail.groupby("hospital_id", sort=True)
    out = pd.DataFrame(
        {
            "settlements": grouped["row_kind"].apply(lambda k: int((k == "settlement").sum())),
            "reversals": grouped["row_kind"].apply(lambda k: int((k == "reversal").sum())),
            "medfee_sumamt": grouped["total"].sum(),
            "inscp_scp_amt": grouped["in_scope"].sum(),
            "fund_pay_sumamt": grouped["fund_paid"].sum(),
            "psn_part_amt": grouped["patient_burden"].sum(),
        }
    )
    return out.reset_index() if len(out) else out.reset_index().astype({"hospital_id": object})


def _checks(detail: pd.DataFrame, summary: pd.DataFrame, ledger: pd.DataFrame, funds: list[str]) -> pd.DataFrame:
    found: list[dict[str, object]] = []

    def check(name: str, hospital: str, fund: str, expected: int, got: int) -> None:
        found.append({"check": name, "hospital_id": hospital, "fund": fund, "expected": expected, "found": got})

    # 1. Every row's parts add up (the platform's identities), counted as rows that do not.
    fund_sum = detail[funds].sum(axis=1) if funds else pd.Series(0, index=detail.index)
    parts = {
        "fund_pay_sumamt = Σ funds": detail["fund_paid"] != fund_sum,
        "medfee_sumamt = fund_pay_sumamt + psn_part_amt": detail["total"]
        != detail["fund_paid"] + detail["patient_burden"],
        "inscp_scp_amt = medfee_sumamt − self-paid parts": detail["in_scope"]
        != detail["total"] - detail["fully_self_paid"] - detail["over_limit_self_paid"] - detail["pre_self_paid"],
    }
    for name, wrong in parts.items():
        check(f"rows: {name}", "*", "*", 0, int(wrong.sum()))
    # 2. The detail sums to the summary; 3. the summary equals the ledger's own sums.
    ledger_sums: dict[Any, Any] = (
        ledger.groupby(["hospital_id", "fund"])["amount"].sum().to_dict() if len(ledger) else {}
    )
    detail_sums = detail.groupby("hospital_id")[funds].sum() if funds and len(detail) else pd.DataFrame()
    seen = set()
    for row in summary.to_dict("records"):
        hospital, fund = row["hospital_id"], row["fund"]
        seen.add((hospital, fund))
        detail_net = int(detail_sums.loc[hospital, fund]) if hospital in detail_sums.index else 0
        check("detail = summary", hospital, fund, int(row["net"]), detail_net)
        check("summary = ledger", hospital, fund, int(ledger_sums.get((hospital, fund), 0)), int(row["net"]))
        check(
            "due − carried out = net + carried in",
            hospital,
            fund,
            int(row["net"] + row["carried_in"]),
            int(row["due"] + row["carried_out"]),
        )
    for key, amount in ledger_sums.items():
        if key not in seen and amount != 0:
            check("summary = ledger", str(key[0]), str(key[1]), int(amount), 0)
    checks = pd.DataFrame(found, columns=["check", "hospital_id", "fund", "expected", "found"])
    return checks.assign(ok=checks["expected"] == checks["found"])
