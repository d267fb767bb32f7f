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
    entries = entries.assign(fund=_funds_of(entries))
    funds = fund_order(
        list(entries["fund"].unique()) + [f for _, f in carry] + _ledger_funds(ledger_totals)["fund"].tolist()
    )
    detail = _detail(month, settlements, entries, funds)
    summary = _summary(detail, funds, carry)
    hospitals = _hospitals(detail)
    checks = _checks(detail, summary, _ledger_funds(ledger_totals), funds)
    return Statement(month, funds, detail, summary, hospitals, checks, carry)


def _funds_of(frame: pd.DataFrame) -> np.ndarray:
    """The fund key of each row, computed once per distinct (stage, bucket) rather than per row."""
    if not len(frame):
        return np.array([], dtype=object)
    stage_codes, stage_values = pd.factorize(frame["stage"])
    bucket_codes, bucket_values = pd.factorize(frame["bucket"])
    stages, buckets = [str(v) for v in stage_values], [str(v) for v in bucket_values]
    pair = stage_codes.astype(np.int64) * len(buckets) + bucket_codes
    codes, uniques = pd.factorize(pair)
    keys = [fund_key(stages[int(u) // len(buckets)], buckets[int(u) % len(buckets)]) for u in uniques]
    return np.array(keys, dtype=object)[codes]


def _ledger_funds(ledger_totals: pd.DataFrame) -> pd.DataFrame:
    return ledger_totals.assign(fund=_funds_of(ledger_totals))


def _detail(month: Month, settlements: pd.DataFrame, entries: pd.DataFrame, funds: list[str]) -> pd.DataFrame:
    forward = settlements[month.holds(settlements["settled_at"])].assign(row_kind="settlement", sign=1)
    reverse = settlements[month.holds(settlements["reversed_at"])].assign(row_kind="reversal", sign=-1)
    rows = pd.concat([forward, reverse], ignore_index=True)
    is_forward = (rows["row_kind"] == "settlement").to_numpy()
    rows["booked_at"] = rows["settled_at"].where(is_forward, rows["reversed_at"])
    rows["original_month"] = rows["settled_at"].dt.strftime("%Y-%m")
    rows["prior_period"] = ~is_forward & (rows["settled_at"] < month.start).to_numpy()
    for name in _AMOUNTS:
        rows[name] = rows[name].to_numpy(np.int64) * rows["sign"].to_numpy()

    # Each entry lands on its settlement's forward row (kind settlement) or reverse row (kind reversal).
    entry_forward = (entries["kind"] == "settlement").to_numpy()
    forward_at = pd.Index(forward["setl_id"]).get_indexer(entries["setl_id"])
    reverse_at = pd.Index(reverse["setl_id"]).get_indexer(entries["setl_id"])
    target = np.where(entry_forward, forward_at, np.where(reverse_at >= 0, reverse_at + len(forward), -1))
    kept = target >= 0
    target = target[kept]
    fund_codes = pd.Index(funds).get_indexer(pd.Index(entries["fund"].to_numpy()[kept]))
    amounts = np.zeros((len(rows), len(funds)), dtype=np.int64)
    np.add.at(amounts, (target, fund_codes), entries["amount"].to_numpy(np.int64)[kept])
    for j, fund in enumerate(funds):
        rows[fund] = amounts[:, j]

    # What entered medical assistance, and the annual quota figures of the bucket that paid (or, when none
    # paid, of any bucket), on forward rows.
    assistance = kept & (entries["stage"] == "medical_assistance").to_numpy()
    where = np.where(entry_forward, forward_at, np.where(reverse_at >= 0, reverse_at + len(forward), -1))[assistance]
    entered = np.zeros(len(rows), dtype=np.int64)
    np.add.at(entered, where, entries["base"].to_numpy(np.int64)[assistance])
    rows["assistance_base"] = entered
    quota = entries[assistance & entry_forward].assign(row=forward_at[assistance & entry_forward])
    quota = quota.assign(unpaid=(quota["amount"] == 0)).sort_values(["row", "unpaid"], kind="stable")
    quota = quota.drop_duplicates("row").set_index("row")
    for column in ("quota_used", "quota_left"):
        values = pd.Series(pd.NA, index=rows.index, dtype="Int64")
        if len(quota):
            values.loc[quota.index.to_numpy()] = quota[column].astype("Int64").to_numpy()
        rows[column] = values
    rows = rows.sort_values(["hospital_id", "booked_at", "setl_id", "row_kind"], kind="stable", ignore_index=True)
    return rows.drop(columns=["sign"])


def _summary(detail: pd.DataFrame, funds: list[str], carry: dict[tuple[str, str], int]) -> pd.DataFrame:
    columns = ["hospital_id", "fund", "fund_name", "settlements", "reversals", "paid", "reversed", "prior_period"]
    columns += ["net", "carried_in", "due", "carried_out"]
    hospitals = sorted(set(detail["hospital_id"]) | {h for h, _ in carry})
    if not hospitals or not funds:
        return pd.DataFrame([], columns=columns)
    forward = (detail["row_kind"] == "settlement").to_numpy()
    prior = detail["prior_period"].to_numpy(bool)
    values = detail[funds].to_numpy(np.int64)
    by = detail["hospital_id"].to_numpy()

    def per_hospital(mask: np.ndarray, data: np.ndarray) -> np.ndarray:
        summed = pd.DataFrame(data[mask], columns=funds).groupby(by[mask]).sum()
        return summed.reindex(index=hospitals, fill_value=0).to_numpy(np.int64)

    paid = per_hospital(forward, values)
    reversed_ = per_hospital(~forward, values)
    prior_period = per_hospital(~forward & prior, values)
    settled_count = per_hospital(forward, (values != 0).astype(np.int64))
    reversed_count = per_hospital(~forward, (values != 0).astype(np.int64))
    carried = np.zeros_like(paid)
    for (hospital, fund), fen in carry.items():
        carried[hospitals.index(hospital), funds.index(fund)] += fen
    net = paid + reversed_
    balance = net + carried
    active = (paid != 0) | (reversed_ != 0) | (settled_count > 0) | (reversed_count > 0) | (carried != 0)
    h, f = np.nonzero(active)
    return pd.DataFrame(
        {
            "hospital_id": np.array(hospitals, dtype=object)[h],
            "fund": np.array(funds, dtype=object)[f],
            "fund_name": [fund_name(funds[j]) for j in f],
            "settlements": settled_count[h, f],
            "reversals": reversed_count[h, f],
            "paid": paid[h, f],
            "reversed": reversed_[h, f],
            "prior_period": prior_period[h, f],
            "net": net[h, f],
            "carried_in": carried[h, f],
            "due": np.maximum(balance, 0)[h, f],
            "carried_out": np.minimum(balance, 0)[h, f],
        },
        columns=columns,
    )


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
