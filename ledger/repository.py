"""Reading and appending the ledger. Year-to-date figures are never stored: they are sums of entries."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import orjson
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from ledger.models import LedgerEntry, Settlement
from settlement.accumulators import ZERO, AccKey, AccValue
from settlement.claims import Claim
from settlement.money import fen_from_decimal
from settlement.plan import ADMISSIONS_KEY

_ZERO = Decimal("0.00")


def compact_json(value: Any) -> str:
    """`value` as the JSON text that is stored and hashed: sorted keys, no spaces, non-ASCII as itself.
    For what claims and records hold (text, integers, booleans, null, lists, objects with text keys; never
    a float) it is the text of `json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))`,
    which every earlier settlement was stored and hashed with (tests/unit/test_compact_json.py); orjson
    writes it about five times faster, a tenth of a millisecond of each settlement's 17 kB record."""
    return compact_utf8(value).decode("utf-8")


class Utf8Text(bytes):
    """A text column's value already in UTF-8. A settlement's record goes from orjson to the database and
    into the desk's answer as these bytes, rather than decoded to a str and encoded again twice (some 40 us
    of a 14 kB record with Chinese text, of the 0.3 ms a settlement costs the group desk's thread;
    BENCHMARKS.md). `append_settlement` decodes it for SQLAlchemy; the group desk sends it as text as it is."""


def compact_utf8(value: Any) -> Utf8Text:
    """`compact_json(value)` in UTF-8."""
    return Utf8Text(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


def canonical_claim(claim: Claim) -> str:
    """The claim's canonical JSON (sorted keys, no spaces): stored with its settlement and hashed."""
    return compact_json(claim.as_json())


def request_digest(claim: Claim, canonical: str | None = None) -> str:
    """SHA-256 of the claim's canonical JSON: the same key with other content is a different request."""
    return hashlib.sha256((canonical or canonical_claim(claim)).encode("utf-8")).hexdigest()


def snapshot(session: Session, entities: Iterable[str], years: Iterable[int]) -> dict[AccKey, AccValue]:
    """The year-to-date figures of these people and households in these policy years, from the ledger."""
    rows = session.execute(
        select(
            LedgerEntry.accumulator,
            LedgerEntry.entity,
            LedgerEntry.policy_year,
            func.sum(LedgerEntry.base_delta),
            func.sum(LedgerEntry.paid_delta),
            func.sum(LedgerEntry.claims_delta),
        )
        .where(LedgerEntry.entity.in_(list(entities)), LedgerEntry.policy_year.in_(list(years)))
        .where(LedgerEntry.accumulator.is_not(None))
        .group_by(LedgerEntry.accumulator, LedgerEntry.entity, LedgerEntry.policy_year)
    )
    found: dict[AccKey, AccValue] = {}
    for key, entity, year, base, paid, claims in rows:
        assert key is not None and entity is not None and year is not None  # filtered above
        found[AccKey(key, entity, year)] = AccValue(
            fen_from_decimal(Decimal(base)), fen_from_decimal(Decimal(paid)), int(claims)
        )
    return found


@dataclass(frozen=True)
class SettlementRows:
    """What recording one settlement writes: its row, one ledger entry per fund, and the record as stored
    (the row's `record_json`, in UTF-8)."""

    settlement: dict[str, Any]
    entries: list[dict[str, Any]]
    record_json: Utf8Text


def settlement_rows(
    setl_id: str, claim: Claim, record: dict[str, Any], when: dt.datetime, canonical: str | None = None
) -> SettlementRows:
    """The rows recording the engine's `record` for `claim` as settlement `setl_id` at `when` (`canonical`:
    the claim's `canonical_claim`, when the caller has it already)."""
    canonical = canonical or canonical_claim(claim)
    record_json = compact_utf8(record)
    row = {
        "setl_id": setl_id,
        "medins_setl_id": claim.claim_id,
        "hospital_id": claim.hospital_id,
        "person_id": claim.person_id,
        "household_id": claim.household_id,
        "policy": f"{record['policy']['id']}@{record['policy']['version']}",
        "request_sha256": request_digest(claim, canonical),
        "claim_json": canonical,
        "record_json": record_json,
        "total": Decimal(record["amounts"]["total"]),
        "fund_paid": Decimal(record["fund_paid"]),
        "patient_burden": Decimal(record["patient_burden"]),
        "settled_at": when,
        "category": claim.category,
        "insurance_scheme": claim.insurance_scheme,
        "visit_type": claim.visit_type,
        "diagnosis": claim.diagnoses[0],
        "admitted_on": claim.admitted_on,
        "discharged_on": claim.discharged_on,
        "fully_self_paid": claim.fully_self_paid,
        "over_limit_self_paid": claim.over_limit_self_paid,
        "pre_self_paid": claim.pre_self_paid,
        "in_scope": claim.in_scope,
    }
    year = int(record["policy_year"])
    entries = [_entry(setl_id, tier, when) for tier in record["tiers"]]
    if claim.visit_type == "inpatient":
        admission = {"tier": "(admission)", "stage": "", "fund_pay_type": "", "paid": "0.00"}
        entries.append(
            {
                **_entry(setl_id, admission, when),
                "accumulator": ADMISSIONS_KEY,
                "entity": claim.person_id,
                "policy_year": year,
                "claims_delta": 1,
            }
        )
    return SettlementRows(row, entries, record_json)


def append_settlement(session: Session, setl_id: str, claim: Claim, record: dict[str, Any], when: dt.datetime) -> str:
    """Record a settlement (the engine's record for `claim`) and one ledger entry per fund; the record as
    stored (JSON) is returned, so that an answer can be the stored text itself.

    Core inserts rather than ORM objects: this runs on every settlement, and the rows are written once and
    never changed, so the unit of work would be pure overhead."""
    rows = settlement_rows(setl_id, claim, record, when)
    record_json = rows.record_json.decode("utf-8")
    session.execute(insert(SETTLEMENTS), {**rows.settlement, "record_json": record_json})
    # One statement per row, sent as a batch: a fixed statement text is prepared once, where a
    # multi-row VALUES list would be a new text (parsed again by the driver) for each count of funds.
    session.execute(insert(ENTRIES), rows.entries)
    return record_json


def add_entries(figures: dict[AccKey, AccValue], entries: Iterable[Mapping[str, Any]]) -> None:
    """Move the year-to-date `figures` by what these ledger entries moved (as `snapshot` would read them
    once the entries are recorded)."""
    for entry in entries:
        if entry["accumulator"] is None:
            continue
        key = AccKey(entry["accumulator"], entry["entity"], entry["policy_year"])
        was = figures.get(key, ZERO)
        figures[key] = AccValue(
            was.base + fen_from_decimal(entry["base_delta"]),
            was.paid + fen_from_decimal(entry["paid_delta"]),
            was.claims + entry["claims_delta"],
        )


SETTLEMENTS = cast(Table, Settlement.__table__)
ENTRIES = cast(Table, LedgerEntry.__table__)


def _entry(setl_id: str, tier: dict[str, Any], when: dt.datetime) -> dict[str, Any]:
    """A settlement's ledger entry for one fund (tier), with what it added to the fund's accumulator."""
    acc = tier.get("accumulator")
    return {
        "setl_id": setl_id,
        "kind": "settlement",
        "tier": tier["tier"],
        "stage": tier["stage"],
        "bucket": tier.get("bucket", ""),
        "fund_pay_type": tier["fund_pay_type"],
        "amount": Decimal(tier["paid"]),
        "base": Decimal(tier.get("base") or "0.00"),
        "quota_used": Decimal(acc["paid_after"]) if acc else None,
        "quota_left": _quota_left(tier),
        "accumulator": acc["key"] if acc else None,
        "entity": acc["entity"] if acc else None,
        "policy_year": acc["year"] if acc else None,
        "base_delta": Decimal(acc["base_after"]) - Decimal(acc["base_before"]) if acc else _ZERO,
        "paid_delta": Decimal(acc["paid_after"]) - Decimal(acc["paid_before"]) if acc else _ZERO,
        "claims_delta": 1 if acc else 0,
        "recorded_at": when,
    }


def _quota_left(tier: dict[str, Any]) -> Decimal | None:
    """What is left of the fund's annual cap after this payment; None where the fund has no annual cap."""
    cap_left = tier.get("annual_cap_left")
    return None if cap_left is None else Decimal(cap_left) - Decimal(tier["paid"])
