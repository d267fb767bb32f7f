"""Desks settling at the same moment on PostgreSQL, where a hospital's desks really run in parallel: fifty
stays of one person, fifty people of one household, and every request sent twice at once (a retry that
overtakes its original). No annual cap is exceeded, each settlement key is recorded exactly once, and the
ledger afterwards is what the engine computes when it settles the recorded claims one by one in the order
they were recorded, so a race can neither spend a cap twice nor leave the ledger disagreeing with itself.

SQLite is left out: the desk takes its single write lock when a transaction begins, so writers never overlap.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select
from sqlalchemy.orm import Session

from doudi import services
from doudi.desk import Outcome, settle_claim
from ledger.migrations import upgrade
from ledger.models import LedgerEntry, Settlement
from ledger.repository import snapshot
from policies.library import Library
from settlement.accumulators import AccKey, AccValue
from settlement.claims import Claim, parse_claim
from settlement.money import fen_from_decimal
from tests.integration.test_ledger_sequences import moved_by

ROOT = Path(__file__).resolve().parents[2]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]
POLICY = "jl-meihekou"  # 2014 version for every stay below
YEAR = 2014
NOW = dt.datetime(2014, 12, 1, 9, 0)
DESKS = 50
HOUSEHOLD = "CONC-H-0001"

# Annual caps (fen) of jl-meihekou@2014 and what it includes, for a 低保 patient; the catastrophic bucket of
# medical assistance has none since the 2014 reform.
CAPS = {
    "jl_resident_basic": 100_000_00,  # jl-resident-insurance@2012, per person
    "jl_resident_critical_illness": 200_000_00,  # jl-resident-insurance@2012, per person
    "meihekou_ma_general": 10_000_00,  # jl-meihekou@2014 general bucket, per person (低保)
    "jl_temporary_aid_household": 5_000_00,  # jl-temporary-aid@2014, per household
}
HOUSEHOLD_CAP = {"jl_temporary_aid_household": CAPS["jl_temporary_aid_household"]}

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    upgrade(postgres_url)
    # Up to 60 desks hold a connection while they wait for the household lock (more queue for the pool, as
    # behind a real server's): well under PostgreSQL's default max_connections of 100.
    engine = create_engine(postgres_url, pool_size=DESKS, max_overflow=10, pool_timeout=60)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def library() -> Library:
    return services.open_library()


def stays_of_one_person() -> list[Claim]:
    """Fifty stays of the family's 低保 child: even ones for leukaemia (the catastrophic bucket, no cap),
    odd ones for gallstones (the general bucket, capped); enough to reach every annual cap."""
    claims = []
    for i in range(DESKS):
        day = dt.date(YEAR, 1, 10) + dt.timedelta(days=7 * i)
        claims.append(
            parse_claim(
                {
                    **FAMILY[2],
                    "claim_id": f"CONC-ONE-{i:02d}",
                    "admitted_on": (day - dt.timedelta(days=5)).isoformat(),
                    "discharged_on": day.isoformat(),
                    "settled_at": f"{day.isoformat()}T10:00:00",
                    "diagnoses": ["C91.0"] if i % 2 == 0 else ["K80.2"],
                    "total": f"{20_000 + 613 * i}.{17 * i % 100:02d}",
                    "fully_self_paid": f"{6_000 + 11 * i}.00",
                    "pre_self_paid": "1500.00",
                    "grants": [],
                }
            )
        )
    return claims


def stays_of_one_household() -> list[Claim]:
    """One stay each for fifty 低保 members of one household, each leaving a burden that triggers
    temporary aid, which the household shares."""
    return [
        parse_claim(
            {
                **FAMILY[3],
                "claim_id": f"CONC-HH-{i:02d}",
                "person_id": f"CONC-P-{i:02d}",
                "household_id": HOUSEHOLD,
                "category": "dibao",
                "total": f"{12_400 + 97 * i}.{31 * i % 100:02d}",
                "fully_self_paid": f"{4_000 + 13 * i}.00",
            }
        )
        for i in range(DESKS)
    ]


def together(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run every call from its own thread, all released at once; results in the order of `calls` (any
    exception is raised here, in the test's thread)."""
    barrier = threading.Barrier(len(calls), timeout=60)
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = calls[i]()
        except BaseException as err:  # reported below, in the test's thread
            results[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a desk is still waiting"
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == [], errors[:3]
    return results


def settle_together(engine: Engine, library: Library, claims: Sequence[Claim]) -> list[Outcome]:
    """Settle every claim from its own thread, all released at once; outcomes in the order of `claims`."""

    def desk(claim: Claim) -> Callable[[], Outcome]:
        return lambda: settle_claim(engine, library, POLICY, claim, NOW)

    return together([desk(claim) for claim in claims])


def recorded(engine: Engine, keys: Iterable[str]) -> list[Settlement]:
    """The settlements of these keys in the order they were recorded (their first ledger entry)."""
    with Session(engine) as session:
        first_entry = (
            select(LedgerEntry.setl_id, func.min(LedgerEntry.id).label("first"))
            .group_by(LedgerEntry.setl_id)
            .subquery()
        )
        rows = session.scalars(
            select(Settlement)
            .join(first_entry, first_entry.c.setl_id == Settlement.setl_id)
            .where(Settlement.medins_setl_id.in_(list(keys)))
            .order_by(first_entry.c.first)
        ).all()
        session.expunge_all()
        return list(rows)


def paid_per_accumulator(engine: Engine, entities: Sequence[str]) -> dict[tuple[str, str], int]:
    """Money the ledger paid out per (accumulator, person or household), in fen."""
    with Session(engine) as session:
        rows = session.execute(
            select(LedgerEntry.accumulator, LedgerEntry.entity, func.sum(LedgerEntry.amount))
            .where(LedgerEntry.entity.in_(entities), LedgerEntry.policy_year == YEAR)
            .group_by(LedgerEntry.accumulator, LedgerEntry.entity)
        ).all()
    return {(key, entity): fen_from_decimal(paid) for key, entity, paid in rows if key and entity}


def assert_recorded_once_and_ledger_equals_engine(
    engine: Engine, library: Library, claims: Sequence[Claim], outcomes: Sequence[Outcome]
) -> list[dict[str, Any]]:
    """Each key recorded exactly once, as answered; the ledger's year-to-date figures equal the records'
    moves and the engine's own figures when it settles the recorded claims one by one in recorded order.
    Returns the records in recorded order."""
    keys = [claim.claim_id for claim in claims]
    settlements = recorded(engine, keys)
    assert sorted(s.medins_setl_id for s in settlements) == sorted(keys)
    with Session(engine) as session:
        counts = session.execute(
            select(Settlement.medins_setl_id, func.count())
            .where(Settlement.medins_setl_id.in_(keys))
            .group_by(Settlement.medins_setl_id)
        ).all()
    assert dict(counts) == dict.fromkeys(keys, 1)

    records = [json.loads(s.record_json) for s in settlements]
    by_setl_id = {s.setl_id: record for s, record in zip(settlements, records, strict=True)}
    for outcome in outcomes:
        assert by_setl_id[outcome.setl_id] == outcome.record  # each desk was told what was recorded

    state: dict[AccKey, AccValue] = {}
    for settlement, record in zip(settlements, records, strict=True):
        claim = parse_claim(json.loads(settlement.claim_json))
        again, state = services.quote_claims(library, POLICY, [claim], start=state)
        assert again[0]["tiers"] == record["tiers"], settlement.medins_setl_id
        assert again[0]["patient_burden"] == record["patient_burden"]

    entities = sorted({c.person_id for c in claims} | {c.household_id for c in claims})
    with Session(engine) as session:
        ledger = snapshot(session, entities, [YEAR])
    assert ledger == moved_by(records)
    assert ledger == state
    return records


def assert_caps_reached_not_exceeded(engine: Engine, entities: Sequence[str], reached: dict[str, int]) -> None:
    """No annual cap exceeded by anyone in `entities`, and the caps in `reached` reached by someone."""
    paid = paid_per_accumulator(engine, entities)
    for (key, entity), amount in sorted(paid.items()):
        assert amount <= CAPS.get(key, amount), (key, entity, amount)
    # Reached, not merely respected: otherwise these claims would not test the cap at all.
    assert {key: max(paid.get((key, entity), 0) for entity in entities) for key in reached} == reached


def test_fifty_desks_settling_one_person_never_exceed_a_cap(engine: Engine, library: Library) -> None:
    claims = stays_of_one_person()
    outcomes = settle_together(engine, library, claims)
    assert all(outcome.created for outcome in outcomes)
    assert_caps_reached_not_exceeded(engine, [claims[0].person_id, claims[0].household_id], CAPS)
    assert_recorded_once_and_ledger_equals_engine(engine, library, claims, outcomes)


def test_fifty_desks_settling_one_household_share_its_temporary_aid_cap(engine: Engine, library: Library) -> None:
    claims = stays_of_one_household()
    outcomes = settle_together(engine, library, claims)
    assert all(outcome.created for outcome in outcomes)
    assert_caps_reached_not_exceeded(engine, [HOUSEHOLD, *(c.person_id for c in claims)], HOUSEHOLD_CAP)
    records = assert_recorded_once_and_ledger_equals_engine(engine, library, claims, outcomes)
    aided = [r for r in records if any(t["tier"] == "temporary_aid" and t["paid"] != "0.00" for t in r["tiers"])]
    assert 1 < len(aided) < DESKS  # several stays share the cap before it runs out


def test_a_retry_racing_its_original_is_recorded_once_and_answered_alike(engine: Engine, library: Library) -> None:
    claims = stays_of_one_household()
    requests = [claim for claim in claims for _ in range(2)]
    outcomes = settle_together(engine, library, requests)
    by_key: dict[str, list[Outcome]] = defaultdict(list)
    for claim, outcome in zip(requests, outcomes, strict=True):
        by_key[claim.claim_id].append(outcome)
    for first, second in by_key.values():
        assert Counter([first.created, second.created]) == Counter([True, False])
        assert (first.setl_id, first.record) == (second.setl_id, second.record)
    assert_caps_reached_not_exceeded(engine, [HOUSEHOLD, *(c.person_id for c in claims)], HOUSEHOLD_CAP)
    assert_recorded_once_and_ledger_equals_engine(engine, library, claims, outcomes)
