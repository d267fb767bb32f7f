"""What a simulation reports: baseline against reform, per fund and by category, hospital level, region
and disease bucket; the family's burden and catastrophic health expenditure; who gains and who loses;
caps reached. Money stays in integer fen until it is written.

Catastrophic health expenditure (灾难性卫生支出): a household whose burden over the year reaches a share of
its annual income (40 % by default, the WHO's threshold on capacity to pay, applied here to income),
compared exactly: burden × denominator ≥ income × numerator of the share.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from simulation.run import Settled
from simulation.tally import DIMENSIONS, MOVERS, Tally, tally

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
    threshold: Decimal


def comparison(found: Tally, threshold: Decimal = Decimal("0.4")) -> Comparison:
    """The report's tables from a simulation's running totals."""
    funds = found.ordered_funds()
    rows = []
    for fund in [*funds, "total"]:
        spent_b, spent_r, people_b, people_r, _, _ = found.funds.get(fund, [0] * 6)
        rows.append(
            {
                "fund": fund,
                "name": FUND_NAMES.get(fund, fund if fund != "total" else "合计 total"),
                "baseline": spent_b,
                "reform": spent_r,
                "difference": spent_r - spent_b,
                "recipients_baseline": people_b,
                "recipients_reform": people_r,
                "per_recipient_baseline": spent_b // people_b if people_b else 0,
                "per_recipient_reform": spent_r // people_r if people_r else 0,
            }
        )
    fund_table = pd.DataFrame(rows)

    by_group: dict[str, pd.DataFrame] = {}
    for dimension in DIMENSIONS:
        groups = found.groups.get(dimension, {})
        table = pd.DataFrame(
            [{"group": g, "baseline": f[0], "reform": f[1], "claims": f[2]} for g, f in sorted(groups.items())],
            columns=["group", "baseline", "reform", "claims"],
        )
        table["difference"] = table["reform"] - table["baseline"]
        by_group[dimension] = table.astype({"baseline": "int64", "reform": "int64", "claims": "int64"})

    burden = pd.DataFrame(
        {
            "percentile": PERCENTILES,
            "baseline": found.burden[0].percentiles(PERCENTILES),
            "reform": found.burden[1].percentiles(PERCENTILES),
        }
    )
    over_base, over_reform = found.catastrophic
    count = found.households
    catastrophic = {
        "threshold_share_of_income": str(threshold),
        "households": count,
        "baseline": over_base,
        "reform": over_reform,
        "share_baseline": over_base / count if count else 0.0,
        "share_reform": over_reform / count if count else 0.0,
    }
    columns = ["side", "person_id", "category", "baseline", "reform", "change"]
    movers = pd.DataFrame(
        [
            {"side": side, "person_id": p, "category": c, "baseline": b, "reform": r, "change": change}
            for side, listed in (("gains", found.gains), ("loses", found.losses))
            for change, p, c, b, r in listed
        ],
        columns=columns,
    )
    caps = pd.DataFrame(
        {
            "fund": funds,
            "baseline": [found.funds[f][4] for f in funds],
            "reform": [found.funds[f][5] for f in funds],
        }
    )
    return Comparison(
        funds=fund_table,
        by_group=by_group,
        burden=burden,
        catastrophic=catastrophic,
        movers=movers,
        caps=caps,
        claims=found.claims,
        people=found.people,
        households=count,
        threshold=threshold,
    )


def compare(
    frame: pd.DataFrame,
    baseline: Settled,
    reform: Settled,
    threshold: Decimal = Decimal("0.4"),
    movers: int = MOVERS,
) -> Comparison:
    """The comparison of claims settled in one piece. `frame`: the dataset's rows (person_id, household_id,
    category, hospital_level, region, total, household_income in fen), aligned with both settlements."""
    return comparison(tally(frame, baseline, reform, threshold, movers), threshold)


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
