"""The billing desk's use cases on the ledger: settle a claim once (a retry never pays twice) and reverse
a settlement. The HTTP service of issue 3 is a thin adapter over these.

Settlements touching one person or household are serialised: on PostgreSQL by transaction-scoped advisory
locks on the person and the household, on SQLite by taking the write lock when the transaction begins.
Year-to-date figures are read from the ledger inside that lock, so two desks can never both spend what is
left under a cap.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from doudi.accounts import SYSTEM, Principal, audit
from ledger.models import LedgerEntry, Reversal, Settlement
from ledger.repository import append_settlement, request_digest, snapshot
from policies.compile import plan_for
from policies.library import Library
from settlement.accumulators import Snapshot
from settlement.claims import Claim, ClaimBatch
from settlement.errors import ClaimError, FieldError
from settlement.explain import explain
from settlement.plan import Plan
from settlement.waterfall import BatchResult, policy_years, settle


class Conflict(Exception):
    """The request contradicts what is recorded (same settlement key, other content; a second reversal)."""


class NotFound(Exception):
    pass


@dataclass(frozen=True)
class Outcome:
    created: bool  # False: the same request was settled before and nothing new was recorded
    setl_id: str
    record: dict[str, Any]
    # `record` as stored (bytes: in UTF-8): an answer sends this rather than encode `record` again
    record_json: str | bytes


READ_ONLY = {"doudi_read_only": True}
"""Execution options of an engine whose transactions only read (see `reader`)."""


def reader(engine: Engine) -> Engine:
    """The same database and pool for transactions that only read: on SQLite they begin without taking the
    write lock, so reads never wait for a settlement."""
    return engine.execution_options(**READ_ONLY)


def sqlite_connect_args(busy_seconds: float) -> dict[str, Any]:
    """`connect_args` of a SQLite engine whose writers wait for each other in a queue of this process.
    SQLite's own wait for its write lock polls, sleeping longer each time it finds the lock taken (up to
    100 ms a sleep): under 16 desks most settlements went in 18 ms and one in a hundred waited almost two
    seconds (BENCHMARKS.md). Here a writing transaction first takes its turn in the process, where the
    next writer is woken as soon as the one before has committed or rolled back, and only then asks SQLite
    for its lock, which is then free unless another process holds it. SQLite's lock still decides: a turn
    given back early (a commit that failed, say) costs that wait again, never a second writer at once.
    With `serialise_sqlite_writes` on the engine."""
    return {"timeout": busy_seconds, "factory": _queued_writers(busy_seconds)}


def _queued_writers(wait_seconds: float) -> type[sqlite3.Connection]:
    turn = threading.Lock()  # one per engine: its connections share one database file

    class QueuedWriters(sqlite3.Connection):
        holding = False

        def take_write_turn(self) -> None:
            if not turn.acquire(timeout=wait_seconds):  # as SQLite would answer after its own wait
                raise sqlite3.OperationalError("database is locked")
            self.holding = True

        def end_write_turn(self) -> None:
            if self.holding:
                self.holding = False
                turn.release()

        # Every transaction ends in one of these, SQLAlchemy's pool resetting a connection given back
        # with one open included; the turn is given back once the transaction has ended.
        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self.end_write_turn()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self.end_write_turn()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.end_write_turn()

    return QueuedWriters


def serialise_sqlite_writes(engine: Engine) -> None:
    """Make every SQLite transaction take the write lock when it begins (BEGIN IMMEDIATE), so that reading
    the year-to-date figures and appending to them cannot interleave with another writer; transactions of
    the `reader` engine begin without it (under write-ahead logging they read a consistent snapshot). On an
    engine made with `sqlite_connect_args`, a writer takes its turn in the process first."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        # Readers do not wait for the writer under write-ahead logging; foreign keys are off by default.
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        if connection.get_execution_options().get("doudi_read_only", False):
            connection.exec_driver_sql("BEGIN")
            return
        dbapi_connection = connection.connection.dbapi_connection
        queued = isinstance(dbapi_connection, sqlite3.Connection) and hasattr(dbapi_connection, "take_write_turn")
        if queued:
            try:
                dbapi_connection.take_write_turn()
            except sqlite3.OperationalError as err:  # as SQLAlchemy reports SQLite's own "database is locked"
                raise OperationalError("BEGIN IMMEDIATE", None, err) from None
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if queued:
                dbapi_connection.end_write_turn()
            raise


def lock_key(name: str) -> int:
    """The advisory-lock number of `name` (`lock_name`): the first eight bytes of the MD5 of its UTF-8, as a
    signed 64-bit integer. The same number as `lock_key_sql` computes in PostgreSQL,
    so that the group desk can lock a household it has not yet read from the register (doudi.group_desk)."""
    return int.from_bytes(hashlib.md5(name.encode("utf-8"), usedforsecurity=False).digest()[:8], "big", signed=True)


def lock_key_sql(name: str) -> str:
    """`lock_key` as a PostgreSQL expression over the text expression `name`."""
    return f"('x' || left(md5(convert_to({name}, 'UTF8')), 16))::bit(64)::bigint"


LOCK_PREFIX = "entity:"


def lock_name(entity: str) -> str:
    """The lock of a person or a household: named by its id as the ledger's `entity` column holds it, which
    does not say which of the two an id is. A person and a household that share an id therefore share one
    lock, and every writer of an entity's entries holds that entity's lock (`ledger.models.LedgerEntry`)."""
    return LOCK_PREFIX + entity


def lock_keys(person_id: str, household_id: str) -> list[int]:
    """The advisory-lock numbers of a person and a household, in the order every writer takes them (so that
    two transactions can never wait for each other)."""
    return sorted({lock_key(lock_name(person_id)), lock_key(lock_name(household_id))})


def _lock(session: Session, person_id: str, household_id: str) -> None:
    """Serialise with every other settlement of this person or household. Both are locked, in the order of
    the lock numbers so that two desks cannot deadlock: the household a claim names is the register's
    today, and the person's caps must hold even if it changed while a settlement was in flight."""
    if session.get_bind().dialect.name == "postgresql":
        keys = lock_keys(person_id, household_id)
        # One round trip for both: PostgreSQL evaluates a select list left to right, so the order holds.
        calls = ", ".join(f"pg_advisory_xact_lock(:k{i})" for i in range(len(keys)))
        session.execute(text(f"SELECT {calls}"), {f"k{i}": key for i, key in enumerate(keys)})


@dataclass(frozen=True)
class Pricing:
    """What settling a claim needs besides the year-to-date figures: the compiled plan of the policy in
    force, and the policy year whose figures apply."""

    plan: Plan
    claim: Claim
    year: int

    def record(self, start: Snapshot) -> dict[str, Any]:
        """The engine's record for the claim, given the year-to-date figures `start`."""
        return records_together(self.plan, [self.claim], start)[0]


def records_together(plan: Plan, claims: Sequence[Claim], start: Snapshot) -> list[dict[str, Any]]:
    """The engine's records for claims that share no person or household, settled in one call under `plan`:
    each is the record it would have on its own (the engine keeps each person's and household's figures
    apart), at a fraction of the cost of one call per claim."""
    result = settled_together(plan, claims, start)
    return [explain(result, k) for k in range(len(claims))]


def settled_together(plan: Plan, claims: Sequence[Claim], start: Snapshot) -> BatchResult:
    """The engine's result for claims that share no person or household, in one call (`explain` makes the
    record of each)."""
    return settle(plan, ClaimBatch.from_claims(list(claims)), start)


def pricing(library: Library, policy_ref: str, claim: Claim) -> Pricing:
    """The plan of the policy version in force on the claim's discharge day, or ClaimError on that field."""
    try:
        policy = library.get(policy_ref, claim.discharged_on)
    except KeyError as err:
        raise ClaimError([FieldError("discharged_on", str(err.args[0]))]) from None
    plan = plan_for(policy, library)
    return Pricing(plan, claim, _policy_year(claim.discharged_on, plan.policy_year_start))


@functools.lru_cache(maxsize=4096)
def _policy_year(day: dt.date, start: tuple[int, int]) -> int:
    """The engine's policy year of one day; kept, since a desk prices the same few days again and again and
    a one-day array costs more than the lookup."""
    return int(policy_years(np.array([day], dtype="datetime64[D]"), start)[0])


def _price(session: Session, library: Library, policy_ref: str, claim: Claim) -> dict[str, Any]:
    """The engine's record for `claim` given the year-to-date figures in the ledger (read in `session`)."""
    found = pricing(library, policy_ref, claim)
    return found.record(snapshot(session, [claim.person_id, claim.household_id], [found.year]))


def with_setl_id(record: dict[str, Any], setl_id: str, setlinfo: Mapping[str, str] | None = None) -> None:
    """Put the new settlement's id (and national fields the claim does not carry) first in the record's
    national `setlinfo`."""
    record["nhsa"]["setlinfo"] = {"setl_id": setl_id, **(setlinfo or {}), **record["nhsa"]["setlinfo"]}


def answer_body(setl_id: str, record_json: str | bytes) -> bytes:
    """POST /v1/settlements' answer: the record as stored (text, or its UTF-8), with the settlement id first
    (a repeat is answered with the same bytes)."""
    stored = record_json.encode("utf-8") if isinstance(record_json, str) else record_json
    return b"".join((b'{"setl_id":', json.dumps(setl_id).encode("ascii"), b",", memoryview(stored)[1:]))


def quote_claim(engine: Engine, library: Library, policy_ref: str, claim: Claim) -> dict[str, Any]:
    """预结算: what settling `claim` now would pay; nothing is recorded."""
    with Session(engine) as session:
        return _price(session, library, policy_ref, claim)


def settle_claim(
    engine: Engine,
    library: Library,
    policy_ref: str,
    claim: Claim,
    now: dt.datetime,
    who: Principal = SYSTEM,
    setlinfo: Mapping[str, str] | None = None,
) -> Outcome:
    """Settle and record `claim` (结算), or return what was recorded for the same request before.
    `setlinfo`: national fields the claim does not carry (the visit id of a national request), recorded in
    the record's `nhsa.setlinfo` after `setl_id`."""
    try:
        with Session(engine) as session, session.begin():
            _lock(session, claim.person_id, claim.household_id)
            # No look-up of the key first: a repeat is rare, and the insert below refuses a recorded key
            # (unique per hospital), which the handler answers as a repeat. First settlements save a trip.
            record = _price(session, library, policy_ref, claim)
            setl_id = uuid.uuid4().hex
            with_setl_id(record, setl_id, setlinfo)
            record_json = append_settlement(session, setl_id, claim, record, now)
            audit(session, who, "settlement.create", setl_id, {"medins_setl_id": claim.claim_id}, now)
            return Outcome(True, setl_id, record, record_json)
    except IntegrityError:
        # The key was recorded before (by an earlier request, or by another desk since our lock was taken).
        with Session(engine) as session:
            known = session.scalar(_same_key(claim))
            if known is None:
                raise
            return _repeat(known, request_digest(claim))


def visible_to(who: Principal, settlement: Settlement) -> bool:
    """A desk sees its own hospital's settlements only; other roles see all."""
    return who.hospital_id is None or who.hospital_id == settlement.hospital_id


def _same_key(claim: Claim) -> Any:
    """The settlement recorded under this claim's key: keys are the hospital's own, unique per hospital."""
    return select(Settlement).where(
        Settlement.hospital_id == claim.hospital_id, Settlement.medins_setl_id == claim.claim_id
    )


def _repeat(known: Settlement, digest: str) -> Outcome:
    return repeat_of(known.medins_setl_id, known.setl_id, known.request_sha256, known.record_json, digest)


def repeat_of(
    medins_setl_id: str, setl_id: str, recorded_sha256: str, record_json: str | bytes, digest: str
) -> Outcome:
    """The answer to a request whose key is recorded: the recorded settlement if the content is the same
    (`digest`), else Conflict."""
    if recorded_sha256 != digest:
        raise Conflict(
            f"settlement key {medins_setl_id!r} was already used for a different claim "
            f"(settlement {setl_id}); a corrected claim is a reversal plus a new key"
        )
    return Outcome(False, setl_id, json.loads(record_json), record_json)


REASON_MAX = 500


def reversal_reason(raw: object) -> str:
    """The reason a reversal is asked for, checked: present, not blank, at most REASON_MAX characters."""
    if not isinstance(raw, str) or not raw.strip():
        raise ClaimError([FieldError("reason", "is required: say why the settlement is reversed")])
    if len(raw) > REASON_MAX:
        raise ClaimError([FieldError("reason", f"is longer than {REASON_MAX} characters")])
    return raw.strip()


def reverse_settlement(engine: Engine, setl_id: str, reason: str, now: dt.datetime, who: Principal = SYSTEM) -> None:
    """结算撤销: negative entries dated now give back what the settlement took from every accumulator.
    A desk can reverse only its own hospital's settlements; another hospital's is not found."""
    with Session(engine) as session, session.begin():
        known = session.get(Settlement, setl_id)
        if known is None or not visible_to(who, known):
            raise NotFound(f"no settlement {setl_id!r}")
        _lock(session, known.person_id, known.household_id)
        if session.get(Reversal, setl_id) is not None:
            raise Conflict(f"settlement {setl_id!r} is already reversed")
        session.add(Reversal(setl_id=setl_id, reason=reason, reversed_at=now))
        audit(session, who, "settlement.reverse", setl_id, {"reason": reason}, now)
        entries = session.scalars(
            select(LedgerEntry).where(LedgerEntry.setl_id == setl_id, LedgerEntry.kind == "settlement")
        ).all()
        for entry in entries:
            session.add(
                LedgerEntry(
                    setl_id=setl_id,
                    kind="reversal",
                    tier=entry.tier,
                    stage=entry.stage,
                    bucket=entry.bucket,
                    fund_pay_type=entry.fund_pay_type,
                    amount=-entry.amount,
                    base=-entry.base,
                    accumulator=entry.accumulator,
                    entity=entry.entity,
                    policy_year=entry.policy_year,
                    base_delta=-entry.base_delta,
                    paid_delta=-entry.paid_delta,
                    claims_delta=-entry.claims_delta,
                    recorded_at=now,
                )
            )
