"""Random sequences of desk requests on SQLite and PostgreSQL: new settlements for a few people of two
households (random bills of 2014 under jl-meihekou), repeats of a request, the same key with other
content, and reversals (the first accepted, a second refused). Whatever the sequence, the ledger keeps the
invariants of settlement-rules.md §5 and §6: its year-to-date figures are the sums of what the standing
(not reversed) settlements recorded, no annual cap is exceeded, every record adds up to its total with no
negative payment, a repeat or a refused request writes nothing, and the ledger holds exactly the entries
of the settlements plus the negatives of the reversals.

Each example uses its own people, households and keys (a fresh prefix), so examples share one database
without touching each other's figures, and nothing is ever deleted from the append-only ledger.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from doudi import services
from doudi.desk import Conflict, Outcome, reverse_settlement, settle_claim
from ledger.models import LedgerEntry, Reversal, Settlement
from ledger.repository import snapshot
from policies.library import Library
from settlement.accumulators import AccKey, AccValue
from settlement.claims import Claim, parse_claim
from settlement.money import fen_from_decimal, parse_amount
from settlement.plan import ADMISSIONS_KEY

POLICY = "jl-meihekou"
YEAR = 2014
NOW = dt.datetime(2014, 12, 31, 17, 0)

# Who may be settled for: person -> (household, assistance category held all year).
PEOPLE = {"P1": ("H1", "dibao"), "P2": ("H1", "none"), "P3": ("H2", "tekun"), "P4": ("H2", "low_income")}
# Annual caps (fen) of jl-meihekou@2014 and the policies it includes; the catastrophic bucket has none.
CAPS: dict[str, int] = {
    "jl_resident_basic": 100_000_00,
    "jl_resident_critical_illness": 200_000_00,
    "meihekou_ma_general": 10_000_00,
    "jl_temporary_aid_household": 5_000_00,
}
CAPS_BY_CATEGORY: dict[tuple[str, str], int] = {("meihekou_ma_general", "tekun"): 15_000_00}
CATASTROPHIC = ["C91.0", "C92.0", "N18.5", "C50.9", "Q21.0"]  # on meihekou-27-2014
GENERAL = ["K80.2", "J18.9", "I10", "S72.0", "K35.8"]
CHANGES = ["total", "hospital_level", "diagnoses", "settled_at", "grants", "third_party_liability"]

SETTINGS = settings(max_examples=25, stateful_step_count=20, deadline=None)


@st.composite
def bills(draw: st.DrawFn) -> dict[str, Any]:
    """A stay or visit discharged in 2014, as a claim's fields without who and which key."""
    discharged = dt.date(YEAR, 1, 1) + dt.timedelta(days=draw(st.integers(0, 364)))
    visit_type = draw(st.sampled_from(["inpatient"] * 4 + ["chronic_outpatient", "outpatient"]))
    stay = draw(st.integers(0, 40)) if visit_type == "inpatient" else 0
    # From an outpatient visit to a transplant: 100 to 300,000 yuan, odd fen included.
    total = draw(st.one_of(st.integers(100_00, 20_000_00), st.integers(20_000_00, 300_000_00)))
    fully = draw(st.integers(0, total * 3 // 10))
    over = draw(st.one_of(st.just(0), st.integers(0, total // 20)))
    pre = draw(st.integers(0, total // 10))
    principal = draw(st.sampled_from(CATASTROPHIC + GENERAL))
    others = draw(st.lists(st.sampled_from(GENERAL), max_size=2))
    grants = [
        {"payer": f"fund {g}", "amount": _yuan(draw(st.integers(1_00, total)))}
        for g in range(draw(st.sampled_from([0, 0, 0, 1, 2])))
    ]
    bill: dict[str, Any] = {
        "insurance_scheme": draw(st.sampled_from(["resident"] * 6 + ["employee", "none"])),
        "hospital_id": "SEQ-H001",
        "hospital_level": draw(st.integers(1, 3)),
        "visit_type": visit_type,
        "admitted_on": (discharged - dt.timedelta(days=stay)).isoformat(),
        "discharged_on": discharged.isoformat(),
        "settled_at": dt.datetime.combine(discharged, dt.time(draw(st.integers(8, 17)))).isoformat(),
        "diagnoses": [principal, *others],
        "total": _yuan(total),
        "fully_self_paid": _yuan(fully),
        "over_limit_self_paid": _yuan(over),
        "pre_self_paid": _yuan(pre),
        "third_party_liability": draw(st.integers(0, 9)) == 0,
        "grants": grants,
    }
    if draw(st.integers(0, 4)) == 0:
        bill["assistance_approval"] = "MHK-MZ-2014-099"
    return bill


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def changed(claim: Claim, what: str) -> Claim:
    """The same key and person with one field of the bill changed: a different request."""
    data = claim.as_json()
    if what == "total":
        data["total"] = _yuan(parse_amount(data["total"]) + 1)
    elif what == "hospital_level":
        data["hospital_level"] = data["hospital_level"] % 3 + 1
    elif what == "diagnoses":
        data["diagnoses"] = [*data["diagnoses"], "E11.9"]
    elif what == "settled_at":
        data["settled_at"] = (claim.settlement_time + dt.timedelta(minutes=1)).isoformat()
    elif what == "grants":
        data["grants"] = [*data.get("grants", []), {"payer": "late fund", "amount": "1.00"}]
    else:
        data["third_party_liability"] = not claim.third_party_liability
    return parse_claim(data)


@dataclass
class Settled:
    """What the model knows of one settlement key."""

    claim: Claim
    outcome: Outcome
    reversed: bool = False


class DeskSequences(RuleBasedStateMachine):
    """A desk's requests, with what the ledger must then hold kept alongside (the model)."""

    engine: ClassVar[Engine]
    library: ClassVar[Library]
    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.prefix = uuid.uuid4().hex[:10]
        self.settled: dict[str, Settled] = {}

    def _id(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def _rows(self) -> tuple[int, int, int]:
        with Session(self.engine) as session:
            return (
                session.scalar(select(func.count()).select_from(Settlement)) or 0,
                session.scalar(select(func.count()).select_from(LedgerEntry)) or 0,
                session.scalar(select(func.count()).select_from(Reversal)) or 0,
            )

    @rule(target=keys, person=st.sampled_from(sorted(PEOPLE)), bill=bills())
    def settle_a_new_key(self, person: str, bill: dict[str, Any]) -> str:
        household, category = PEOPLE[person]
        key = self._id(f"S{len(self.settled)}")
        claim = parse_claim(
            {
                **bill,
                "claim_id": key,
                "person_id": self._id(person),
                "household_id": self._id(household),
                "category": category,
            }
        )
        outcome = settle_claim(self.engine, self.library, POLICY, claim, NOW)
        assert outcome.created
        self.settled[key] = Settled(claim, outcome)
        return key

    @rule(key=keys)
    def repeat_the_same_request(self, key: str) -> None:
        known = self.settled[key]
        rows = self._rows()
        again = settle_claim(self.engine, self.library, POLICY, known.claim, NOW)
        assert not again.created
        assert (again.setl_id, again.record) == (known.outcome.setl_id, known.outcome.record)
        assert self._rows() == rows

    @rule(key=keys, what=st.sampled_from(CHANGES))
    def reuse_a_key_for_another_bill(self, key: str, what: str) -> None:
        rows = self._rows()
        with pytest.raises(Conflict):
            settle_claim(self.engine, self.library, POLICY, changed(self.settled[key].claim, what), NOW)
        assert self._rows() == rows

    @rule(key=keys)
    def reverse(self, key: str) -> None:
        known = self.settled[key]
        if known.reversed:
            rows = self._rows()
            with pytest.raises(Conflict):
                reverse_settlement(self.engine, known.outcome.setl_id, "again", NOW)
            assert self._rows() == rows
        else:
            reverse_settlement(self.engine, known.outcome.setl_id, "wrong bill", NOW)
            known.reversed = True

    def _stored(self) -> list[Settlement]:
        with Session(self.engine) as session:
            rows = session.scalars(select(Settlement).where(Settlement.medins_setl_id.startswith(self.prefix))).all()
            session.expunge_all()
            return list(rows)

    @invariant()
    def each_key_recorded_once_as_answered(self) -> None:
        stored = {s.medins_setl_id: s for s in self._stored()}
        assert sorted(stored) == sorted(self.settled)
        for key, known in self.settled.items():
            assert stored[key].setl_id == known.outcome.setl_id
            assert json.loads(stored[key].record_json) == known.outcome.record

    @invariant()
    def every_record_adds_up_with_no_negative_payment(self) -> None:
        for settlement in self._stored():
            record = json.loads(settlement.record_json)
            paid = [parse_amount(tier["paid"]) for tier in record["tiers"]]
            assert all(p >= 0 for p in paid), record["tiers"]
            total = parse_amount(record["amounts"]["total"])
            assert parse_amount(record["fund_paid"]) == sum(paid)
            assert sum(paid) + parse_amount(record["patient_burden"]) == total
            assert parse_amount(record["patient_burden"]) >= 0
            assert settlement.fund_paid + settlement.patient_burden == settlement.total == Decimal(total) / 100

    @invariant()
    def ledger_equals_the_accumulators_of_standing_settlements(self) -> None:
        standing = [s.outcome.record for s in self.settled.values() if not s.reversed]
        with Session(self.engine) as session:
            ledger = snapshot(session, self._entities(), [YEAR])
        assert _nonzero(ledger) == _nonzero(moved_by(standing))

    @invariant()
    def no_annual_cap_exceeded(self) -> None:
        with Session(self.engine) as session:
            rows = session.execute(
                select(
                    LedgerEntry.accumulator,
                    LedgerEntry.entity,
                    func.sum(LedgerEntry.amount),
                    func.sum(LedgerEntry.paid_delta),
                )
                .where(LedgerEntry.entity.in_(self._entities()), LedgerEntry.accumulator.is_not(None))
                .where(LedgerEntry.policy_year == YEAR)
                .group_by(LedgerEntry.accumulator, LedgerEntry.entity)
            ).all()
        categories = {self._id(p): category for p, (_, category) in PEOPLE.items()}
        for key, entity, amount, paid in rows:
            assert key is not None and entity is not None  # filtered above
            assert amount == paid, (key, entity)  # what a fund paid out is what its accumulator counts
            cap = CAPS_BY_CATEGORY.get((key, categories.get(entity, "")), CAPS.get(key))
            if cap is not None:
                assert fen_from_decimal(amount) <= cap, (key, entity, amount)

    @invariant()
    def entries_are_the_settlements_and_the_negatives_of_reversals(self) -> None:
        expected = sum(_entries_of(s.outcome.record) * (2 if s.reversed else 1) for s in self.settled.values())
        with Session(self.engine) as session:
            ours = select(Settlement.setl_id).where(Settlement.medins_setl_id.startswith(self.prefix))
            entries = session.scalar(select(func.count()).where(LedgerEntry.setl_id.in_(ours))) or 0
            negatives = session.scalar(
                select(func.count()).where(LedgerEntry.setl_id.in_(ours), LedgerEntry.kind == "reversal")
            )
            reversals = session.scalar(select(func.count()).where(Reversal.setl_id.in_(ours)))
        assert entries == expected
        assert negatives == sum(_entries_of(s.outcome.record) for s in self.settled.values() if s.reversed)
        assert reversals == sum(s.reversed for s in self.settled.values())

    def _entities(self) -> list[str]:
        return sorted({self._id(p) for p in PEOPLE} | {self._id(h) for h, _ in PEOPLE.values()})


def _entries_of(record: dict[str, Any]) -> int:
    """One entry per tier, and one counting the admission of an inpatient stay."""
    return len(record["tiers"]) + (1 if record["visit_type"] == "inpatient" else 0)


def moved_by(records: Iterable[dict[str, Any]]) -> dict[AccKey, AccValue]:
    """What the records say each settlement moved: every tier's accumulator from before to after, and one
    admission per inpatient stay."""
    sums: dict[AccKey, list[int]] = defaultdict(lambda: [0, 0, 0])
    for record in records:
        for tier in record["tiers"]:
            acc = tier.get("accumulator")
            if acc is None:
                continue
            total = sums[AccKey(acc["key"], acc["entity"], acc["year"])]
            total[0] += parse_amount(acc["base_after"]) - parse_amount(acc["base_before"])
            total[1] += parse_amount(acc["paid_after"]) - parse_amount(acc["paid_before"])
            total[2] += 1
        if record["visit_type"] == "inpatient":
            sums[AccKey(ADMISSIONS_KEY, record["person_id"], record["policy_year"])][2] += 1
    return {key: AccValue(*value) for key, value in sums.items()}


def _nonzero(state: dict[AccKey, AccValue]) -> dict[AccKey, AccValue]:
    """A settlement reversed leaves its accumulators at zero in the ledger; zero is the same as absent."""
    return {key: value for key, value in state.items() if value != AccValue(0, 0, 0)}


def test_any_sequence_of_desk_requests_keeps_the_ledger_consistent(engine: Engine) -> None:
    machine = type("DeskSequencesOn", (DeskSequences,), {"engine": engine, "library": services.open_library()})
    run_state_machine_as_test(machine, settings=SETTINGS)
