"""Monthly statements from hand-made ledger frames: a small month whose every figure was checked by hand
against golden files (CSV and the national detail file), and properties over random ledgers: every
balancing check holds, and a tampered ledger or detail is caught before anything is written."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciliation.files import statement_files
from reconciliation.frames import ENTRY_COLUMNS, LEDGER_TOTAL_COLUMNS, SETTLEMENT_COLUMNS, Month
from reconciliation.statement import Unbalanced, build_statement

GOLDEN = Path(__file__).parent / "golden" / "2014-07"
JULY = Month(2014, 7)
NAT = pd.NaT


def _settlement(
    setl_id: str,
    hospital: str,
    person: str,
    category: str,
    settled: str,
    reversed_: str | None,
    total: int,
    self_paid: tuple[int, int, int],
    fund_paid: int,
) -> dict[str, object]:
    fully, over, pre = self_paid
    return {
        "setl_id": setl_id,
        "medins_setl_id": f"HIS-{setl_id}",
        "hospital_id": hospital,
        "person_id": person,
        "category": category,
        "diagnosis": "C91.0",
        "admitted_on": dt.date(2014, 6, 20),
        "discharged_on": dt.date(2014, 6, 27),
        "settled_at": pd.Timestamp(settled),
        "reversed_at": pd.Timestamp(reversed_) if reversed_ else NAT,
        "policy": "jl-meihekou@2014",
        "total": total,
        "fully_self_paid": fully,
        "over_limit_self_paid": over,
        "pre_self_paid": pre,
        "in_scope": total - fully - over - pre,
        "fund_paid": fund_paid,
        "patient_burden": total - fund_paid,
    }


def _entry(
    setl_id: str,
    kind: str,
    stage: str,
    bucket: str,
    amount: int,
    base: int,
    used: int | None = None,
    left: int | None = None,
) -> dict[str, object]:
    code = {"basic_insurance": "390100", "medical_assistance": "610100", "temporary_aid": "TA0001"}[stage]
    sign = -1 if kind == "reversal" else 1
    return {
        "setl_id": setl_id,
        "kind": kind,
        "stage": stage,
        "bucket": bucket,
        "fund_pay_type": code,
        "amount": sign * amount,
        "base": sign * base,
        "quota_used": used if kind == "settlement" else None,
        "quota_left": left if kind == "settlement" else None,
    }


def small_month() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[tuple[str, str], int]]:
    """Two hospitals in July 2014 (amounts in fen):
    S1 (H1) 10,000.00: basic 4,000.00, general assistance 2,000.00, temporary aid 1,000.00; family 3,000.00.
    S2 (H1) 5,000.00: basic 3,000.00, catastrophic assistance 2,000.00; reversed on 20 July.
    S3 (H2) settled in June (2,000.00: basic 1,200.00), reversed on 5 July: a prior-period adjustment.
    S4 (H2) 1,000.00: basic 600.00. H2 also carries −100.00 of basic insurance in from June."""
    settlements = pd.DataFrame(
        [
            _settlement("S1", "H1", "P1", "dibao", "2014-07-03 10:00", None, 1_000_000, (100_000, 0, 50_000), 700_000),
            _settlement("S2", "H1", "P2", "tekun", "2014-07-10 11:00", "2014-07-20 09:00", 500_000, (0, 0, 0), 500_000),
            _settlement("S3", "H2", "P3", "none", "2014-06-28 15:00", "2014-07-05 08:30", 200_000, (0, 0, 0), 120_000),
            _settlement("S4", "H2", "P4", "dibao", "2014-07-15 16:00", None, 100_000, (0, 0, 0), 60_000),
        ],
        columns=list(SETTLEMENT_COLUMNS),
    )
    entries = pd.DataFrame(
        [
            _entry("S1", "settlement", "basic_insurance", "resident_basic", 400_000, 850_000, 400_000, 9_600_000),
            _entry("S1", "settlement", "medical_assistance", "general", 200_000, 300_000, 200_000, 800_000),
            _entry("S1", "settlement", "medical_assistance", "catastrophic", 0, 0, 0, None),
            _entry("S1", "settlement", "temporary_aid", "temporary_aid", 100_000, 300_000, 100_000, 400_000),
            _entry("S2", "settlement", "basic_insurance", "resident_basic", 300_000, 500_000, 300_000, 9_700_000),
            _entry("S2", "settlement", "medical_assistance", "catastrophic", 200_000, 200_000, 200_000, None),
            _entry("S2", "reversal", "basic_insurance", "resident_basic", 300_000, 500_000),
            _entry("S2", "reversal", "medical_assistance", "catastrophic", 200_000, 200_000),
            _entry("S3", "settlement", "basic_insurance", "resident_basic", 120_000, 200_000, 120_000, 9_880_000),
            _entry("S3", "reversal", "basic_insurance", "resident_basic", 120_000, 200_000),
            _entry("S4", "settlement", "basic_insurance", "resident_basic", 60_000, 100_000, 60_000, 9_940_000),
        ],
        columns=list(ENTRY_COLUMNS),
    ).astype({"quota_used": "Int64", "quota_left": "Int64"})
    totals = pd.DataFrame(
        [
            ("H1", "basic_insurance", "resident_basic", 400_000),
            ("H1", "medical_assistance", "general", 200_000),
            ("H1", "medical_assistance", "catastrophic", 0),
            ("H1", "temporary_aid", "temporary_aid", 100_000),
            ("H2", "basic_insurance", "resident_basic", -60_000),
        ],
        columns=list(LEDGER_TOTAL_COLUMNS),
    )
    return settlements, entries, totals, {("H2", "basic_insurance"): -10_000}


def test_the_small_month_matches_the_hand_checked_figures() -> None:
    statement = build_statement(JULY, *small_month())
    assert statement.balanced, statement.checks[~statement.checks["ok"]]
    summary = {(r["hospital_id"], r["fund"]): r for r in statement.summary.to_dict("records")}
    h1_basic = summary[("H1", "basic_insurance")]
    assert (h1_basic["settlements"], h1_basic["reversals"], h1_basic["paid"], h1_basic["reversed"]) == (
        2,
        1,
        700_000,
        -300_000,
    )
    assert (h1_basic["net"], h1_basic["due"], h1_basic["carried_out"]) == (400_000, 400_000, 0)
    catastrophic = summary[("H1", "medical_assistance/catastrophic")]
    assert (catastrophic["net"], catastrophic["due"]) == (0, 0)
    h2 = summary[("H2", "basic_insurance")]
    assert (h2["paid"], h2["reversed"], h2["prior_period"], h2["net"]) == (60_000, -120_000, -120_000, -60_000)
    assert (h2["carried_in"], h2["due"], h2["carried_out"]) == (-10_000, 0, -70_000)
    assert statement.carried_out() == {("H2", "basic_insurance"): -70_000}
    detail = statement.detail
    assert list(zip(detail["setl_id"], detail["row_kind"], detail["prior_period"], strict=True)) == [
        ("S1", "settlement", False),
        ("S2", "settlement", False),
        ("S2", "reversal", False),
        ("S3", "reversal", True),
        ("S4", "settlement", False),
    ]
    s1 = detail.iloc[0]
    assert (s1["assistance_base"], s1["quota_used"], s1["quota_left"]) == (300_000, 200_000, 800_000)


@pytest.mark.parametrize("name", ["summary.csv", "hospitals.csv", "detail.csv", "national/H2.zip"])
def test_the_small_month_files_equal_the_golden_files(name: str) -> None:
    files = statement_files(build_statement(JULY, *small_month()))
    if name.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(files[name])) as archive:
            text = archive.read("H2-2014-07.txt").decode("utf-8")
        assert text == (GOLDEN / "national-H2.txt").read_text(encoding="utf-8")
    else:
        assert files[name] == (GOLDEN / name).read_bytes()


def test_a_tampered_ledger_is_caught_before_anything_is_written() -> None:
    settlements, entries, totals, carried = small_month()
    totals.loc[0, "amount"] += 1  # one fen more in the ledger than in the detail
    statement = build_statement(JULY, settlements, entries, totals, carried)
    assert not statement.balanced
    with pytest.raises(Unbalanced, match="summary = ledger H1 basic_insurance: expected 400001, found 400000"):
        statement_files(statement)
    settlements, entries, totals, carried = small_month()
    settlements.loc[0, "fund_paid"] += 1  # a settlement whose parts do not add up
    with pytest.raises(Unbalanced, match="rows: fund_pay_sumamt"):
        statement_files(build_statement(JULY, settlements, entries, totals, carried))


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Random settlements across June–August in three hospitals, some reversed (in their month or later),
    with entries and the ledger's sums for July computed the way the database computes them."""
    count = draw(st.integers(0, 25))
    settlements, entries = [], []
    start = dt.datetime(2014, 6, 1)
    stages = [
        ("basic_insurance", "resident_basic"),
        ("medical_assistance", "general"),
        ("medical_assistance", "catastrophic"),
        ("temporary_aid", "temporary_aid"),
    ]
    for i in range(count):
        settled = start + dt.timedelta(minutes=draw(st.integers(0, 90 * 24 * 60)))
        reversed_at = None
        if draw(st.booleans()):
            reversed_at = settled + dt.timedelta(minutes=draw(st.integers(1, 40 * 24 * 60)))
        paid = [draw(st.integers(0, 5_000_000)) for _ in stages]
        burden = draw(st.integers(0, 5_000_000))
        total = sum(paid) + burden
        settlements.append(
            _settlement(
                f"S{i}",
                f"H{draw(st.integers(1, 3))}",
                f"P{i}",
                "dibao",
                str(settled),
                str(reversed_at) if reversed_at else None,
                total,
                (0, 0, 0),
                sum(paid),
            )
        )
        for (stage, bucket), amount in zip(stages, paid, strict=True):
            entries.append(_entry(f"S{i}", "settlement", stage, bucket, amount, amount, amount, None))
            if reversed_at is not None:
                entries.append(_entry(f"S{i}", "reversal", stage, bucket, amount, amount))
    frame = pd.DataFrame(settlements, columns=list(SETTLEMENT_COLUMNS))
    entry_frame = pd.DataFrame(entries, columns=list(ENTRY_COLUMNS)).astype(
        {"quota_used": "Int64", "quota_left": "Int64"}
    )
    booked = []
    for row in entries:
        settlement = settlements[int(str(row["setl_id"])[1:])]
        moment = settlement["settled_at"] if row["kind"] == "settlement" else settlement["reversed_at"]
        if JULY.start <= moment < JULY.end:
            booked.append((settlement["hospital_id"], row["stage"], row["bucket"], row["amount"]))
    totals = pd.DataFrame(booked, columns=list(LEDGER_TOTAL_COLUMNS))
    totals = totals.groupby(["hospital_id", "stage", "bucket"], as_index=False)["amount"].sum()
    in_month = frame[JULY.holds(frame["settled_at"]) | JULY.holds(frame["reversed_at"])]
    return in_month.reset_index(drop=True), entry_frame, totals


@settings(max_examples=60, deadline=None)
@given(ledgers(), st.dictionaries(st.sampled_from(["H1", "H2", "H3"]), st.integers(-1_000_000, 0), max_size=3))
def test_every_balancing_check_holds_on_any_ledger(
    ledger: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], carry: dict[str, int]
) -> None:
    settlements, entries, totals = ledger
    carried = {(hospital, "basic_insurance"): fen for hospital, fen in carry.items() if fen}
    statement = build_statement(JULY, settlements, entries, totals, carried)
    assert statement.balanced, statement.checks[~statement.checks["ok"]]
    summary = statement.summary
    assert (summary["due"] >= 0).all() and (summary["carried_out"] <= 0).all()
    assert int(summary["due"].sum() + summary["carried_out"].sum()) == int(statement.detail["fund_paid"].sum()) + sum(
        carried.values()
    )
    forward = statement.detail["row_kind"] == "settlement"
    assert set(statement.detail.loc[forward, "setl_id"]) == set(
        settlements.loc[JULY.holds(settlements["settled_at"]), "setl_id"]
    )
