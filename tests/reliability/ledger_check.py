"""What must hold of the ledger after any crash, whatever the client was told: each settlement whole or
absent, each reversal whole or absent, the year-to-date figures the desk reads equal to what the recorded
settlements say they paid, and every annual cap respected."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ledger.models import AuditEntry, LedgerEntry, Reversal, Settlement
from ledger.repository import snapshot
from settlement.money import fen_from_decimal


@dataclass
class Acknowledged:
    """What the client was told: settlement key -> setl_id (201 or a repeat's 200), and the setl_ids whose
    reversal was acknowledged (201, or 409 'already reversed' on a retry after a lost answer)."""

    settlements: dict[tuple[str, str], str] = field(default_factory=dict)
    reversals: set[str] = field(default_factory=set)


def _fen(text: str | None) -> int:
    return fen_from_decimal(Decimal(text or "0"))


def check(engine: Engine, acked: Acknowledged) -> dict[str, int]:
    """Every invariant, asserted; returns counts for the report."""
    with Session(engine) as session:
        settlements = {s.setl_id: s for s in session.scalars(select(Settlement))}
        reversals = {r.setl_id: r for r in session.scalars(select(Reversal))}
        entries: dict[str, list[LedgerEntry]] = defaultdict(list)
        for entry in session.scalars(select(LedgerEntry)):
            entries[entry.setl_id].append(entry)
        audited = Counter(
            (a.action, a.target)
            for a in session.scalars(select(AuditEntry).where(AuditEntry.action.like("settlement.%")))
        )
        keys = Counter((s.hospital_id, s.medins_setl_id) for s in settlements.values())

        # Exactly once: one row per key, and the one the client was told about.
        assert max(keys.values(), default=1) == 1, "a settlement key recorded twice"
        for key, setl_id in acked.settlements.items():
            found = [s for s in settlements.values() if (s.hospital_id, s.medins_setl_id) == key]
            assert len(found) == 1, f"acknowledged settlement {key} is recorded {len(found)} times"
            assert found[0].setl_id == setl_id, f"{key}: acknowledged as {setl_id}, recorded as {found[0].setl_id}"
        for setl_id in acked.reversals:
            assert setl_id in reversals, f"acknowledged reversal of {setl_id} is not recorded"

        # Whole or absent: a settlement has every entry its record names and its audit entry; a reversal has
        # one negative entry per settlement entry and its audit entry.
        expected_totals: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0, 0])
        caps: dict[tuple[str, str, int], int] = {}
        for setl_id, settlement in settlements.items():
            record = json.loads(settlement.record_json)
            own = [e for e in entries[setl_id] if e.kind == "settlement"]
            back = [e for e in entries[setl_id] if e.kind == "reversal"]
            paid_tiers = sorted((t["tier"], _fen(t["paid"])) for t in record["tiers"])
            recorded = sorted((e.tier, fen_from_decimal(e.amount)) for e in own if e.tier != "(admission)")
            assert recorded == paid_tiers, f"{setl_id}: entries {recorded} differ from its record {paid_tiers}"
            admissions = [e for e in own if e.tier == "(admission)"]
            assert len(admissions) == (1 if record["visit_type"] == "inpatient" else 0), f"{setl_id}: admissions"
            assert audited[("settlement.create", setl_id)] == 1, f"{setl_id}: not audited once"
            assert _fen(record["fund_paid"]) + _fen(record["patient_burden"]) == _fen(record["amounts"]["total"])
            is_reversed = setl_id in reversals
            if is_reversed:
                mirrored = sorted((e.tier, -fen_from_decimal(e.amount), -fen_from_decimal(e.paid_delta)) for e in own)
                negated = sorted((e.tier, fen_from_decimal(e.amount), fen_from_decimal(e.paid_delta)) for e in back)
                assert negated == mirrored, f"{setl_id}: its reversal does not mirror it"
                assert audited[("settlement.reverse", setl_id)] == 1, f"{setl_id}: reversal not audited once"
            else:
                assert back == [], f"{setl_id}: reversal entries without a reversal"
                assert audited[("settlement.reverse", setl_id)] == 0
            # What the record says this settlement added to each accumulator (none once reversed).
            for tier in record["tiers"]:
                acc = tier.get("accumulator")
                if not acc:
                    continue
                key3 = (acc["key"], acc["entity"], int(acc["year"]))
                paid = _fen(acc["paid_after"]) - _fen(acc["paid_before"])
                base = _fen(acc["base_after"]) - _fen(acc["base_before"])
                assert paid == _fen(tier["paid"]), f"{setl_id}: {tier['tier']} paid differs from its accumulator"
                if tier.get("annual_cap_left") is not None:
                    assert _fen(tier["paid"]) <= _fen(tier["annual_cap_left"]), f"{setl_id}: paid over the cap left"
                    caps[key3] = _fen(acc["paid_before"]) + _fen(tier["annual_cap_left"])
                if not is_reversed:
                    totals = expected_totals[key3]
                    totals[0] += base
                    totals[1] += paid
                    totals[2] += 1
            if record["visit_type"] == "inpatient" and not is_reversed:
                expected_totals[("inpatient_admissions", settlement.person_id, int(record["policy_year"]))][2] += 1

        # Ledger = accumulators: the figures the desk reads are the recorded settlements' sums.
        entities = {k[1] for k in expected_totals} | {s.person_id for s in settlements.values()}
        years = {k[2] for k in expected_totals} or {2014}
        state = snapshot(session, entities, years)
        read = {(k.key, k.entity, k.year): [v.base, v.paid, v.claims] for k, v in state.items()}
        nonzero = {k: v for k, v in read.items() if v != [0, 0, 0]}
        wanted = {k: v for k, v in expected_totals.items() if v != [0, 0, 0]}
        assert nonzero == wanted, "the year-to-date figures differ from the recorded settlements"

        # Every annual cap holds at the end, whatever order the settlements came in.
        for key3, cap in caps.items():
            assert read.get(key3, [0, 0, 0])[1] <= cap, f"{key3}: paid {read[key3][1]} fen over its cap {cap}"
    return {
        "settlements": len(settlements),
        "reversals": len(reversals),
        "ledger_entries": sum(len(v) for v in entries.values()),
        "accumulators": len(wanted),
        "capped_accumulators": len(caps),
    }
