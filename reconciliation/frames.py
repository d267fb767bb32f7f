"""What reconciliation reads: a month's settlements and ledger entries as pandas frames, money in integer
fen (exact, and fast to sum), and the vocabulary of funds and months.

The ledger adapter (`doudi/reconcile.py`) fills these frames from the database; tests and the benchmark
build them directly. Nothing here touches a file or a database.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final

import pandas as pd

SETTLEMENT_COLUMNS: Final = (
    "setl_id",  # Doudi's settlement id (the platform's setl_id)
    "medins_setl_id",  # the hospital's settlement key
    "hospital_id",
    "person_id",
    "category",  # 救助身份 on the settlement date
    "diagnosis",  # principal ICD-10 code
    "admitted_on",
    "discharged_on",
    "settled_at",  # when recorded: the month it pays in
    "reversed_at",  # NaT when not reversed
    "policy",
    "total",  # medfee_sumamt, fen
    "fully_self_paid",  # fulamt_ownpay_amt
    "over_limit_self_paid",  # overlmt_selfpay
    "pre_self_paid",  # preselfpay_amt
    "in_scope",  # inscp_scp_amt
    "fund_paid",  # fund_pay_sumamt
    "patient_burden",  # psn_part_amt
)
"""Every settlement recorded in the month, and every settlement reversed in the month (whenever recorded)."""

ENTRY_COLUMNS: Final = (
    "setl_id",
    "kind",  # settlement | reversal
    "stage",
    "bucket",
    "fund_pay_type",
    "amount",  # fen; negative on reversal entries
    "base",  # what entered the fund, fen (进入医疗救助金额 for assistance)
    "quota_used",  # the fund's annual payments so far, this one included; <NA> without an accumulator
    "quota_left",  # what is left of the annual cap after it; <NA> where there is no cap
)
"""The per-fund entries of those settlements (admission counters left out)."""

LEDGER_TOTAL_COLUMNS: Final = ("hospital_id", "stage", "bucket", "amount")
"""The ledger's own sums of the month's entries by hospital and fund, computed by the database
independently of the detail, so that the statement can be checked against it."""

MONEY_COLUMNS: Final = (
    "total",
    "fully_self_paid",
    "over_limit_self_paid",
    "pre_self_paid",
    "in_scope",
    "fund_paid",
    "patient_burden",
)

_STAGE_FUND: Final = {
    "basic_insurance": "basic_insurance",
    "supplementary_insurance": "critical_illness",
    "temporary_aid": "temporary_aid",
    "grants": "grants",
}
_STAGE_RANK: Final = {
    "basic_insurance": 0,
    "supplementary_insurance": 1,
    "medical_assistance": 2,
    "temporary_aid": 3,
    "grants": 4,
}
FUND_NAMES: Final = {
    "basic_insurance": "基本医疗保险统筹基金",
    "critical_illness": "大病保险",
    "medical_assistance/catastrophic": "重特大疾病医疗救助",
    "medical_assistance/general": "普通医疗救助",
    "temporary_aid": "临时救助",
    "grants": "慈善救助",
}


def fund_key(stage: str, bucket: str) -> str:
    """The statement's fund for an entry: each insurance and aid fund, and each medical-assistance bucket
    (general, catastrophic, and any other a policy defines, such as a tilted-assistance bucket)."""
    if stage == "medical_assistance":
        return f"medical_assistance/{bucket}"
    return _STAGE_FUND.get(stage, stage)


def fund_name(key: str) -> str:
    if key in FUND_NAMES:
        return FUND_NAMES[key]
    if key.startswith("medical_assistance/"):
        return f"医疗救助（{key.split('/', 1)[1]}）"
    return key


def fund_order(keys: list[str]) -> list[str]:
    """Funds in payment order."""

    def rank(key: str) -> tuple[int, str]:
        stage = "medical_assistance" if key.startswith("medical_assistance/") else key
        stage = {"critical_illness": "supplementary_insurance"}.get(stage, stage)
        bucket = key.split("/", 1)[1] if "/" in key else ""
        return _STAGE_RANK.get(stage, 9), {"catastrophic": "0", "general": "1"}.get(bucket, "2" + bucket)

    return sorted(set(keys), key=rank)


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        match = re.fullmatch(r"(\d{4})-(\d{2})", text)
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"{text!r} is not a month like 2014-06")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(self.year, self.month, 1)

    @property
    def end(self) -> dt.datetime:
        """The first moment after the month."""
        return self.next().start

    def next(self) -> Month:
        return Month(self.year + (self.month == 12), self.month % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def holds(self, times: pd.Series) -> pd.Series:
        return (times >= self.start) & (times < self.end)

    @classmethod
    def of(cls, moment: dt.datetime) -> Month:
        return cls(moment.year, moment.month)
