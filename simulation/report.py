"""What a simulation reports: baseline against reform, per fund and by category, hospital level, region
and disease bucket; the family's burden and catastrophic health expenditure; who gains and who loses;
caps reached. Money stays in integer fen until it is written.

Catastrophic health expenditure (灾难性卫生支出): a household whose burden over the year reaches a share of
its annual income (40 % by default, the WHO's threshold on capacity to pay, applied here to income).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from simulation.run import Settled

FUND_NAMES = {
    "basic_insurance": "基本医疗保险 basic insurance",
    "critical_illness": "大病保险 critical illness",
    "medical_assistance/catastrophic": "重特大疾病医疗救助 catastrophic assistance",
    "medical_assistance/general": "普通医疗救助 general assistance",
    "temporary_aid": "临时救助 temporary aid",
    "grants": "慈善救助 grants",
}
PERCENTILES = (10, 25, 50, 75, 90, 95, 99)


def yuan(fen: float | int) -> str:
    value = int(fen)
    sign = "-" if value < 0 else ""
    whole, cents = divmod(abs(value), 100)
    return f"{sign}{whole}.{cents:02d}"


@dataclass(frozen=True)
class Comparison:
    """Everything the report shows, as frames with money in fen."""

    funds: pd.DataFrame  # fund, baseline, reform, difference, recipients (both), per recipient (both)
    by_group: dict[str, pd.DataFrame]  # dimension -> (group, fund spending baseline/reform/difference)
    burden: pd.DataFrame  # percentile, baseline, reform (per claim, fen)
    catastrophic: dict[str, Any]  # households, at or over the threshold, share (both)
    movers: pd.DataFrame  # the people with the largest changes in burden
    caps: pd.DataFrame  # fund, claims capped (both)
    claims: int
    people: int
    households: int
    threshold: float


def compare(
    frame: pd.DataFrame, baseline: Settled, reform: Settled, threshold: float = 0.4, movers: int = 20
) -> Comparison:
    """`frame`: the dataset's rows (person_id, household_id, category, hospital_level, region, total,
    household_income in fen), aligned with both settlements."""
    funds = list(dict.fromkeys([*baseline.funds, *reform.funds]))
    base = pd.DataFrame({f: baseline.column(f) for f in funds})
    new = pd.DataFrame({f: reform.column(f) for f in funds})
    person = frame["person_id"].to_numpy()

    rows = []
    for fund in [*funds, "total"]:
        b = base.sum(axis=1) if fund == "total" else base[fund]
        r = new.sum(axis=1) if fund == "total" else new[fund]
        b_people = pd.Series(person[b.to_numpy() > 0]).nunique()
        r_people = pd.Series(person[r.to_numpy() > 0]).nunique()
        rows.append(
            {
                "fund": fund,
                "name": FUND_NAMES.get(fund, fund if fund != "total" else "合计 total"),
                "baseline": int(b.sum()),
                "reform": int(r.sum()),
                "difference": int(r.sum() - b.sum()),
                "recipients_baseline": int(b_people),
                "recipients_reform": int(r_people),
                "per_recipient_baseline": int(b.sum() // b_people) if b_people else 0,
                "per_recipient_reform": int(r.sum() // r_people) if r_people else 0,
            }
        )
    fund_table = pd.DataFrame(rows)

    by_group: dict[str, pd.DataFrame] = {}
    for dimension in ("category", "hospital_level", "region", "disease"):
        key = _disease_bucket(baseline, reform) if dimension == "disease" else frame[dimension].astype(str).to_numpy()
        grouped = pd.DataFrame(
            {"group": key, "baseline": baseline.fund_paid, "reform": reform.fund_paid, "claims": 1}
        ).groupby("group", sort=True)
        table = grouped[["baseline", "reform", "claims"]].sum().reset_index()
        table["difference"] = table["reform"] - table["baseline"]
        by_group[dimension] = table

    total = frame["total"].to_numpy(np.int64)
    burden_base = total - baseline.fund_paid
    burden_reform = total - reform.fund_paid
    burden = pd.DataFrame(
        {
            "percentile": PERCENTILES,
            "baseline": np.percentile(burden_base, PERCENTILES, method="lower").astype(np.int64) if len(total) else 0,
            "reform": np.percentile(burden_reform, PERCENTILES, method="lower").astype(np.int64) if len(total) else 0,
        }
    )

    households = (
        pd.DataFrame(
            {
                "household_id": frame["household_id"].to_numpy(),
                "income": frame["household_income"].to_numpy(np.int64),
                "baseline": burden_base,
                "reform": burden_reform,
            }
        )
        .groupby("household_id")
        .agg(income=("income", "first"), baseline=("baseline", "sum"), reform=("reform", "sum"))
    )
    limit = households["income"] * threshold
    over_base = int((households["baseline"] >= limit).sum())
    over_reform = int((households["reform"] >= limit).sum())
    count = len(households)
    catastrophic = {
        "threshold_share_of_income": threshold,
        "households": count,
        "baseline": over_base,
        "reform": over_reform,
        "share_baseline": over_base / count if count else 0.0,
        "share_reform": over_reform / count if count else 0.0,
    }

    people = (
        pd.DataFrame(
            {
                "person_id": person,
                "category": frame["category"].to_numpy(),
                "baseline": burden_base,
                "reform": burden_reform,
            }
        )
        .groupby("person_id")
        .agg(category=("category", "first"), baseline=("baseline", "sum"), reform=("reform", "sum"))
    )
    people["change"] = people["reform"] - people["baseline"]
    changed = people[people["change"] != 0]
    winners = changed.nsmallest(movers, "change")
    losers = changed.nlargest(movers, "change")
    mover_table = pd.concat([winners.assign(side="gains"), losers.assign(side="loses")]).reset_index()

    caps = pd.DataFrame(
        {
            "fund": funds,
            "baseline": [int(_capped(baseline, f).sum()) for f in funds],
            "reform": [int(_capped(reform, f).sum()) for f in funds],
        }
    )
    return Comparison(
        funds=fund_table,
        by_group=by_group,
        burden=burden,
        catastrophic=catastrophic,
        movers=mover_table,
        caps=caps,
        claims=len(frame),
        people=int(pd.Series(person).nunique()),
        households=count,
        threshold=threshold,
    )


def _capped(settled: Settled, fund: str) -> np.ndarray:
    if fund not in settled.funds:
        return np.zeros(settled.paid.shape[0], bool)
    column: np.ndarray = settled.capped[:, settled.funds.index(fund)]
    return column


def _disease_bucket(baseline: Settled, reform: Settled) -> np.ndarray:
    """Which assistance bucket paid a claim (reform first, else baseline); 'none' when neither did."""
    label = np.full(baseline.paid.shape[0], "none", dtype=object)
    for settled in (baseline, reform):
        for fund in settled.funds:
            if fund.startswith("medical_assistance/"):
                label[settled.column(fund) > 0] = fund.split("/", 1)[1]
    return label


def summary(comparison: Comparison, meta: dict[str, Any]) -> dict[str, Any]:
    """The comparison as JSON-ready data, money as yuan text."""

    def money_rows(frame: pd.DataFrame, money: tuple[str, ...]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]
        for row in rows:
            for key in money:
                if key in row:
                    row[key] = yuan(row[key])
            for key, value in row.items():
                if isinstance(value, np.integer):
                    row[key] = int(value)
        return rows

    money = (
        "baseline",
        "reform",
        "difference",
        "per_recipient_baseline",
        "per_recipient_reform",
        "change",
    )
    return {
        **meta,
        "claims": comparison.claims,
        "people": comparison.people,
        "households": comparison.households,
        "funds": money_rows(comparison.funds, money),
        "by": {k: money_rows(v, money) for k, v in comparison.by_group.items()},
        "burden_percentiles": money_rows(comparison.burden, ("baseline", "reform")),
        "catastrophic_health_expenditure": comparison.catastrophic,
        "movers": money_rows(comparison.movers, money),
        "caps_reached": money_rows(comparison.caps, ()),
    }
