"""Settlements that arrive together, recorded together: group commit on PostgreSQL.

At a busy desk many settlements are in flight at once. Each on its own costs a dozen round trips and a
commit, most of the server's and the database's time per settlement. Here they queue, and a thread takes
all that are waiting and settles them in one transaction of three exchanges, whatever their number:

1. BEGIN; the tokens, the register's facts on each person and hospital, and what is published; the advisory
   locks of every person to be settled and of the household the register gives them (in one ascending
   order, as every other writer takes them, so no two transactions wait for each other); then the
   year-to-date figures of everyone priced (the entries recorded since this thread last summed them, added
   to what it summed: `_Summed`), and any settlement already recorded under one of the group's keys;
2. the settlements and their ledger entries, sent as they are priced, a few at a time (one INSERT per table
   and chunk, in pipeline mode: the statements go without waiting for their outcome, so PostgreSQL writes
   one chunk while the next is priced); then the audit chain's head (locked), whose answer comes after
   every insert's;
3. the audit entries, chained one after another, and the new head; COMMIT.

The first and the last are one query of several statements each: at READ COMMITTED each statement takes its
own snapshot, so the figures read just after the locks were granted include every transaction that held them.

Each claim is priced as `desk.settle_claim` prices it, from the figures the ledger holds plus what the claims
before it in the group added: stays of one person or household in one group are settled one after the
other, in arrival order. A quote comes the same way and is priced from the figures as read, as
`desk.quote_claim` prices it: it locks nothing and adds nothing. Claims that share no one go to the engine
together (one call per wave and plan), which prices each as it would alone, at a fraction of the cost. A
request's problem (its token, its fields, its key used for other content) is its own answer and does not
touch the others. When the
transaction itself fails on a key another process recorded meanwhile, every claim of the group is settled
again on its own; a database that does not answer is a 503 for each (nothing of the group was recorded).

One thread, with its own connection, does this for the process, whatever event loop a request came on;
while its group is with the database, the requests that come queue for the next. A quiet desk waits for no
one: the thread takes what is queued and goes. A busy one (the last group, gathered moments ago, held more
than one request) waits a moment for the requests still coming (until it holds as many as the last group,
then while each comes soon after the one before): most of a group's cost is the group's, not
its claims' (under 16 desks the server spent about 3.5 ms of CPU on a group of one and 14.5 ms on a group
of sixteen; BENCHMARKS.md). A second thread pricing while the first waits on the database was measured to
settle less, not more: it took the stragglers of a wave as groups of their own, and the two threads' groups
then cost more than one thread's sixteen (BENCHMARKS.md). A group and another writer (another server
process, a page) touching one person or household meet at its lock, and the second reads what the first
recorded. Only `POST /v1/settlements` and `POST /v1/quotes` on PostgreSQL
come here; on SQLite, which has one writer, and for the other routes that settle or quote (the pages, the
national 2303 and 2304), `desk.settle_claim` and `desk.quote_claim` are the path.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import queue
import secrets
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import orjson
import psycopg
from psycopg import postgres
from psycopg.adapt import Dumper
from psycopg.errors import DeadlockDetected, TransactionRollback, UniqueViolation
from psycopg.pq import Format
from psycopg.rows import namedtuple_row
from psycopg.types.json import Json
from sqlalchemy import Table
from sqlalchemy.engine import make_url

from doudi import audit as audit_chain
from doudi.accounts import (
    NO_TOKEN,
    Principal,
    Unauthenticated,
    allowed,
    audit_entry,
    principal_of,
    token_digest,
    token_shape_ok,
)
from doudi.catalogue import Catalogue
from doudi.desk import (
    LOCK_PREFIX,
    Pricing,
    answer_body,
    lock_key_sql,
    pricing,
    repeat_of,
    settled_together,
    with_setl_id,
)
from doudi.registry import PersonFacts, fill_claim
from ledger.repository import (
    ENTRIES,
    SETTLEMENTS,
    SettlementRows,
    Utf8Text,
    add_entries,
    canonical_claim,
    request_digest,
    settlement_rows,
)
from policies.library import Library
from settlement.accumulators import ZERO, AccKey, AccValue
from settlement.claims import Claim, parse_claim
from settlement.errors import ClaimError, FieldError
from settlement.explain import explain
from settlement.money import fen_from_decimal

MAX_GROUP = 64
"""The most settlements in one transaction: bounds how long the first of a group waits for the last."""


THREADS = 1
"""Groups in flight at once. Under 16 desks one thread settled about a fifth more than two (BENCHMARKS.md,
2026-11-30, second session): with two, a thread back at the queue took the few requests there as a group
of their own, and small groups cost the server most of a large one's CPU."""

WRITE_CHUNK = 4
"""Settlements sent together, while the records of the next are made (the claims of one wave and plan are
priced in one engine call, their records made chunk by chunk). Smaller chunks overlap more of the making
with the writing and cost an INSERT each; the group then waits only for its last chunk to be written
before it takes the audit chain's head. Under 16 desks four answered a group about a millisecond sooner
than eight, and two no sooner than four (BENCHMARKS.md, 2026-11-30, fifth session)."""

GATHER_GAP_SECONDS = 0.0005
"""While the desk is busy and a group holds as many requests as the last one did, it waits this long for
each next request before it starts. Under 16 desks a group then holds most of them rather than one, which
halves the groups and cuts the CPU a settlement costs the server by a quarter and the database by a third
(BENCHMARKS.md)."""

GATHER_MAX_SECONDS = 0.002
"""The longest a busy desk's group gathers, from its first request."""

RECENT_SECONDS = 0.1
"""How long the last group's size says how busy the desk is: the first request after a quiet spell goes at
once, whatever the last group held."""

IDLE_SECONDS = 60.0
"""The connection is given back after this long without a settlement (and taken again with the next)."""

SUMMED_ENTITIES = 20_000
"""The most people and households whose ledger entries a thread keeps the sums of (see `_Summed`); the one
summed longest ago goes first. About 2.5 kB each with five accumulators over two years: some 50 MB at most."""


class DatabaseUnavailable(Exception):
    """The database did not answer (or the connection broke) while a group was settled: nothing of it was
    recorded, and a retry with the same keys is safe (HTTP 503)."""


class _RegisterMoved(DatabaseUnavailable):
    """The register moved a person of the group to another household between the group's read of the people
    and its locks: its household's lock is not held, so nothing of the group is recorded and it is settled
    again (a 503 if it moves again meanwhile)."""

    def __init__(self, person_id: str):
        super().__init__(f"the register changed person {person_id!r}'s household meanwhile: send it again")


@dataclass(frozen=True)
class Answer:
    created: bool  # False: the key was recorded before for the same content (HTTP 200 rather than 201)
    body: bytes


class _Reply:
    """Where a request's answer goes: set on the group's thread, and handed to the event loop the request
    came from with the rest of its group, in one call (`_hand_over`). A future of `concurrent.futures` per
    request (`asyncio.wrap_future`) woke the loop once for each answer, and its hand-over took about a
    seventh of the loop's time per settlement (BENCHMARKS.md)."""

    __slots__ = ("future", "outcome")

    def __init__(self, future: asyncio.Future[Answer]):
        self.future = future
        self.outcome: Answer | BaseException | None = None

    def done(self) -> bool:
        return self.outcome is not None

    def set_result(self, answer: Answer) -> None:
        self.outcome = answer

    def set_exception(self, err: BaseException) -> None:
        self.outcome = err


@dataclass
class _Request:
    token: str | None
    body: Any  # the decoded JSON document, or the exception reading it raised (answered after the token)
    answer: _Reply
    quote: bool = False  # priced from what is recorded, and answered; nothing is locked or written


@dataclass
class _Priced:
    """A claim of the group to be priced: who sent it and how to price it; for a settlement, its keys and
    (once priced) its record as stored."""

    index: int  # in the group
    who: Principal
    claim: Claim
    found: Pricing
    setl_id: str = ""
    digest: str = ""
    canonical: str = ""
    record_json: bytes = b""  # once priced, in UTF-8

    @property
    def entities(self) -> tuple[str, str]:
        return (self.claim.person_id, self.claim.household_id)


def _records(
    items: Sequence[_Priced], figures: _Figures, problems: dict[int, Exception], chunk: int = MAX_GROUP
) -> Iterator[list[tuple[_Priced, dict[str, Any]]]]:
    """The engine's records for claims of one plan that share no person or household, `chunk` at a time:
    priced in one call, each chunk's records made as it is asked for (so that the first chunk is written
    while the next is made). An engine call costs about half a millisecond however few its claims, and a
    claim some 20 µs more (BENCHMARKS.md). Should the call fail, each claim is priced alone, so that the
    failure is only the failing claim's answer."""

    def start(among: Sequence[_Priced]) -> dict[AccKey, AccValue]:
        return {k: v for item in among for k, v in figures.of(*item.entities, item.found.year).items()}

    def alone(item: _Priced) -> dict[str, Any] | None:
        try:
            return item.found.record(start([item]))
        except Exception as err:
            problems[item.index] = err
            return None

    result = None
    if len(items) > 1:
        with contextlib.suppress(Exception):
            result = settled_together(items[0].found.plan, [item.claim for item in items], start(items))
    for first in range(0, len(items), chunk):
        found = []
        for k, item in enumerate(items[first : first + chunk], start=first):
            record = None
            if result is not None:
                with contextlib.suppress(Exception):
                    record = explain(result, k)
            if record is None:
                record = alone(item)
            if record is not None:
                found.append((item, record))
        yield found


def _waves(items: Sequence[_Priced]) -> list[list[_Priced]]:
    """`items` in waves in which no two share a person or household, each person's and household's in
    their order."""
    waves: list[list[_Priced]] = []
    last: dict[str, int] = {}
    for item in items:
        wave = 1 + max(last.get(entity, -1) for entity in item.entities)
        if wave == len(waves):
            waves.append([])
        waves[wave].append(item)
        for entity in item.entities:
            last[entity] = wave
    return waves


def _by_plan(wave: Sequence[_Priced]) -> list[list[_Priced]]:
    """A wave's claims by the plan that prices them (one engine call each), in arrival order."""
    by_plan: dict[int, list[_Priced]] = defaultdict(list)
    for item in wave:
        by_plan[id(item.found.plan)].append(item)
    return list(by_plan.values())


Statement = tuple[str | bytes, Mapping[str, Any] | None]
"""SQL and its named parameters, bound on this side; or SQL as bytes, ready to send (the rows of a group)."""


def _exchange(connection: psycopg.Connection[Any], statements: Sequence[Statement]) -> list[list[Any]]:
    """Run `statements` in one round trip and return each one's rows (none for a statement without a
    result). The parameters are bound here (a client-side cursor) and the statements go as one query: in
    a transaction at READ COMMITTED each statement still takes its own snapshot, so a read after a lock
    in the same exchange sees what was committed before the lock was granted. The first statement that
    fails stops the exchange and raises; the transaction is then aborted and has to be rolled back."""
    with psycopg.ClientCursor(connection) as cursor:
        parts = [
            sql if isinstance(sql, bytes) else (sql if params is None else cursor.mogrify(sql, params)).encode("utf-8")
            for sql, params in statements
        ]
        cursor.execute(b";\n".join(parts))
        results = []
        while True:
            results.append(cursor.fetchall() if cursor.description is not None else [])
            if not cursor.nextset():
                return results


def _insert(table: Table, rows: Sequence[Mapping[str, Any]]) -> Statement:
    """`_insert_document`'s INSERT with its document in the text, to go in an exchange."""
    sql, document, _ = _insert_document(table, rows)
    head, tail = sql.split(_DOCUMENT)
    return head.encode("utf-8") + _dollar_quoted(document) + tail.encode("utf-8"), None


_DOCUMENT = "%(document)s"


def _insert_document(
    table: Table, rows: Sequence[Mapping[str, Any]], apart: Sequence[str] = ()
) -> tuple[str, bytes, dict[str, list[Any]]]:
    """One INSERT of all `rows` (each with the same columns), in arrival order: the JSON document holding
    them, its parameter `document`, which PostgreSQL turns back into rows of the table's type; and the text
    columns named in `apart`, each its own parameter (a text array, sent in binary, one element a row).
    Measured under 16 desks against the alternatives: a statement per row sent together (psycopg's
    `executemany`) costs a round trip of its own and the database a bind per row; the rows as literals of
    a multi-row VALUES cost this thread about 5 us per value to quote (some 7 ms for a group of eight); an
    INSERT from arrays in text form (`unnest`) was five times slower for a settlement's row, whose 14–17 kB
    record then travels inside an array literal. A long text inside the document is a JSON string that
    PostgreSQL unescapes character by character, twice (checking the document, then reading its rows):
    a settlement's record and claim sent apart halved the time PostgreSQL took to insert sixteen
    settlements (BENCHMARKS.md)."""
    columns = tuple(rows[0])
    unknown = [n for n in columns if n not in table.c] + [n for n in apart if n not in columns]
    if unknown:
        raise ValueError(f"{table.name} rows have no columns {unknown}")
    names = ", ".join(columns)
    inside = [n for n in columns if n not in apart]
    options = orjson.OPT_PASSTHROUGH_DATETIME  # moments and dates through _json_value too
    # Money as its decimal text here rather than in _json_value: a call back from orjson per amount cost
    # about a third of writing a group's document (some 40 amounts a settlement).
    document = orjson.dumps([_money_as_text(row, inside) for row in rows], default=_json_value, option=options)
    values = ", ".join(f"(%({n})b::text[])[r.ordinality]" if n in apart else n for n in columns)
    source = f"json_populate_recordset(NULL::{table.name}, {_DOCUMENT}::json) WITH ORDINALITY AS r"
    sql = f"INSERT INTO {table.name} ({names}) SELECT {values} FROM {source} ORDER BY r.ordinality"
    texts = {n: [row[n] for row in rows] for n in apart}
    for name, sent in texts.items():
        # Text or nothing, all of one kind (an array has one dumper): bytes would go as bytea and be stored as
        # its hex form, without an error.
        kinds = {type(value) for value in sent if value is not None}
        if len(kinds) > 1 or not kinds <= {str, Utf8Text}:
            raise TypeError(f"{table.name}.{name} is sent apart as text: all str, or all Utf8Text (or None)")
    return sql, document, texts


def _money_as_text(row: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    plain = {}
    for name in columns:
        value = row[name]
        plain[name] = str(value) if type(value) is Decimal else value
    return plain


def _send_rows(connection: psycopg.Connection[Any], written: Sequence[tuple[_Priced, SettlementRows]]) -> None:
    """Send the settlements `written` and their ledger entries, in pipeline mode: the statements go now and
    their outcome is read with the next result asked for (a failure raises there)."""
    entries = [e for _, rows in written for e in rows.entries]
    settlements = [rows.settlement for _, rows in written]
    for table, rows, apart in ((SETTLEMENTS, settlements, _LONG_TEXTS), (ENTRIES, entries, ())):
        if rows:
            sql, document, texts = _insert_document(table, rows, apart)
            connection.execute(sql, {"document": Json(document, dumps=_as_sent), **texts}, prepare=True)


_LONG_TEXTS = ("claim_json", "record_json")
"""A settlement's columns sent apart from its document (see `_insert_document`)."""


class _Utf8TextDumper(Dumper):
    """`Utf8Text` sent as PostgreSQL text, its bytes as they are (every connection of the group desk is in
    UTF-8). Registered for every psycopg connection of the process, so that a `Utf8Text` can never go as
    bytea (stored as its hex form) on a connection that did not register it."""

    format = Format.BINARY
    oid = postgres.types["text"].oid

    def dump(self, obj: Any) -> bytes:
        return cast(Utf8Text, obj)  # as it is: no copy


psycopg.adapters.register_dumper(Utf8Text, _Utf8TextDumper)


def _as_sent(document: bytes) -> bytes:
    """A document orjson has written already, passed on as it is (not decoded and encoded again)."""
    return document


def _dollar_quoted(text: bytes) -> bytes:
    """`text` as a dollar-quoted literal: nothing in it is escaped, so a group's 100 kB of rows costs a
    copy rather than a pass that doubles quotes (psycopg's quoting took about 1.7 ms for 100 kB). The tag
    is one the text does not contain."""
    while True:
        tag = f"$g{secrets.token_hex(8)}$".encode("ascii")
        if tag not in text:
            return tag + text + tag


def _text_array(items: Iterable[str]) -> str:
    """`items` as the text of a PostgreSQL array literal (cast to text[] in the statement): each element in
    double quotes, with its backslashes and double quotes escaped. The whole then goes into the statement as
    one quoted string. The driver quoting a list element by element took about a millisecond of the
    group thread's time per group (five lists of up to 64 elements)."""
    return "{" + ",".join('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items) + "}"


def _json_value(value: object) -> str:
    """Money, moments and dates as PostgreSQL reads them back into their columns: exact decimal text, ISO
    8601 (moments are stored without a time zone)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise TypeError("moments are stored without a time zone; convert before recording")
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"no JSON form for {type(value).__name__}")


_TOKENS = """
SELECT t.token_sha256, t.token_id, t.expires_at, t.revoked_at, u.name, u.role, u.hospital_id
FROM api_tokens t JOIN users u ON u.name = t.user_name
WHERE t.token_sha256 = ANY(%(digests)s::text[])"""
_PEOPLE = """
SELECT p.person_id, p.household_id, p.insurance_scheme, r.policy_id, c.category, c.valid_from, c.valid_until
FROM people p
LEFT JOIN regions r ON r.region = p.region
LEFT JOIN category_periods c ON c.person_id = p.person_id
WHERE p.person_id = ANY(%(people)s::text[])
ORDER BY p.person_id, c.valid_from"""
# A desk's claim may leave its hospital out (it is the desk's own), so the tokens' hospitals are read too.
_HOSPITALS = """
SELECT hospital_id, level FROM hospitals
WHERE hospital_id = ANY(%(hospitals)s::text[]) OR hospital_id IN (
    SELECT u.hospital_id FROM users u JOIN api_tokens t ON t.user_name = u.name
    WHERE t.token_sha256 = ANY(%(digests)s::text[]))"""
_PUBLISHED = "SELECT policy_key, document_sha256 FROM published_policies"
# The people to be settled and their households, each locked by its entity's lock (`desk.lock_name`), by lock
# number as `desk.lock_keys` numbers them. Each lock is taken as its row is produced, so in ascending order of
# the numbers, as `desk._lock` takes its two. The household is the register's as this statement reads it: a
# claim naming another is refused (`registry.fill_claim`), and one whose household the register changed
# between this read and the read of the people above is settled again (`_RegisterMoved`). The entities locked
# are the rows.
_LOCKS = f"""
SELECT ordered.entity, pg_advisory_xact_lock(ordered.k) FROM (
    SELECT DISTINCT n.entity, {lock_key_sql(f"'{LOCK_PREFIX}' || n.entity")} AS k
    FROM (SELECT unnest(%(settling)s::text[])
          UNION SELECT household_id FROM people WHERE person_id = ANY(%(settling)s::text[])) AS n(entity)
    ORDER BY k) AS ordered"""
# Every policy year: which years the claims fall in is known only once their policies are found. For each
# person and household (the register's), the entries after the last id this thread has summed of it (none:
# from the first), summed by accumulator and year, with the last id summed; an entity with no new entries
# is one row of nulls, so that every row says which entity and from which id.
_FIGURES = """
SELECT s.entity, s.since, e.accumulator, e.policy_year, e.base, e.paid, e.claims, e.last
FROM (SELECT k.entity, coalesce(c.since, 0) AS since
      FROM (SELECT unnest(%(people)s::text[])
            UNION SELECT household_id FROM people WHERE person_id = ANY(%(people)s::text[])) AS k(entity)
      LEFT JOIN unnest(%(summed)s::text[], %(since)s::bigint[]) AS c(entity, since) ON c.entity = k.entity) AS s
LEFT JOIN LATERAL (
    SELECT accumulator, policy_year, sum(base_delta) AS base, sum(paid_delta) AS paid, sum(claims_delta) AS claims,
           max(id) AS last
    FROM ledger_entries
    WHERE entity = s.entity AND id > s.since AND accumulator IS NOT NULL
    GROUP BY accumulator, policy_year) AS e ON true"""
# The keys at the hospitals named or the desks' own; the pairs that matter are picked out of these.
_RECORDED = """
SELECT s.hospital_id, s.medins_setl_id, s.setl_id, s.request_sha256, s.record_json
FROM settlements s
WHERE s.medins_setl_id = ANY(%(keys)s::text[]) AND s.hospital_id = ANY(ARRAY(
    SELECT unnest(%(hospitals)s::text[])
    UNION SELECT u.hospital_id FROM users u JOIN api_tokens t ON t.user_name = u.name
    WHERE t.token_sha256 = ANY(%(digests)s::text[])))"""
_HEAD = f"SELECT seq, entry_sha256 FROM audit_chain WHERE id = {audit_chain.HEAD_ID} FOR UPDATE"
_NEW_HEAD = f"UPDATE audit_chain SET seq = %(seq)s, entry_sha256 = %(sha)s WHERE id = {audit_chain.HEAD_ID}"


class _Worker:
    """The group desk's thread and its connection."""

    def __init__(self, summed: int) -> None:
        self.thread: threading.Thread | None = None
        self.connection: psycopg.Connection[Any] | None = None
        self.summed = _Summed(summed)

    def disconnect(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(psycopg.Error):  # already broken: nothing more to release
                self.connection.close()
        self.connection = None


class GroupDesk:
    """`POST /v1/settlements` and `/v1/quotes` on PostgreSQL: requests are queued and settled in groups (see
    the module) by `threads` threads, each with its own connection, whichever event loop they come from."""

    def __init__(
        self,
        url: str,
        catalogue: Catalogue,
        clock: Callable[[], dt.datetime],
        max_group: int = MAX_GROUP,
        threads: int = THREADS,
        gather_gap: float = GATHER_GAP_SECONDS,
        gather_max: float = GATHER_MAX_SECONDS,
        summed: int = SUMMED_ENTITIES,
    ):
        if threads < 1:
            raise ValueError("a group desk needs at least one thread")
        self._conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._catalogue = catalogue
        self._clock = clock
        self._max_group = max_group
        self._gather_gap = gather_gap
        self._gather_max = gather_max
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._workers = [_Worker(summed) for _ in range(threads)]
        self._start = threading.Lock()  # held to start the threads, to queue a request, and to close
        self._closed = False
        self._counting = threading.Lock()
        self._transactions = 0  # under way: from the first round trip to the commit (or the failure)
        self._last_group = 0  # how many requests the group most recently gathered held, and when
        self._last_at = 0.0
        self.groups = 0  # transactions committed, and the most requests one of them answered
        self.largest = 0
        # Called before each step with the step's name and the connection: tests cut the connection here.
        self.before_step: Callable[[str, psycopg.Connection[Any]], None] | None = None

    async def settle(self, token: str | None, body: Any) -> Answer:
        """Settle the claim `body` for the holder of `token`, in the next group. Raises what
        `desk.settle_claim` and the token check raise (ClaimError, Conflict, Unauthenticated, Forbidden),
        or DatabaseUnavailable."""
        return await self._queued(token, body, quote=False)

    async def quote(self, token: str | None, body: Any) -> bytes:
        """A quote in the next group: the record settling `body` would have, priced from what the ledger held
        when the group read it (not from settlements of the same group), as the JSON answer of
        `POST /v1/quotes`. Raises as `settle` does, except Conflict; records nothing."""
        return (await self._queued(token, body, quote=True)).body

    async def _queued(self, token: str | None, body: Any, quote: bool) -> Answer:
        reply = _Reply(asyncio.get_running_loop().create_future())
        request = _Request(token, body, reply, quote)
        # Under the lock, so that no request is queued behind the stop marks of `close` and left unanswered.
        with self._start:
            if self._closed:
                raise DatabaseUnavailable("the server is stopping: nothing was recorded, send it again in a moment")
            for n, worker in enumerate(self._workers):
                if worker.thread is None:
                    name = f"doudi-group-desk-{n}"
                    worker.thread = threading.Thread(target=self._drain, args=(worker,), name=name, daemon=True)
                    worker.thread.start()
            self._queue.put(request)
        return await reply.future

    def close(self) -> None:
        """Finish the groups queued, then stop the threads and close their connections (at shutdown); a
        request that comes later is answered 503."""
        with self._start:
            self._closed = True
            threads = [w.thread for w in self._workers if w.thread is not None]
            for worker in self._workers:
                worker.thread = None
            for _ in threads:
                self._queue.put(None)  # one for each thread: it stops at the first it takes
            for thread in threads:
                thread.join()

    def _drain(self, worker: _Worker) -> None:
        try:
            self._drain_queue(worker)
        except BaseException:
            # Ended other than at `close` (it cannot be, short of an exception that is not an Exception): the
            # next request starts another thread rather than waiting for this one. Not under `_start`:
            # `close` holds it while it waits for the threads to end. Its connection goes with it (closing
            # rolls back whatever it held), so the next thread starts on a new one.
            worker.disconnect()
            if worker.thread is threading.current_thread():
                worker.thread = None
            raise

    def _drain_queue(self, worker: _Worker) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                worker.disconnect()  # a quiet night: no connection held for nothing
                continue
            if first is None:
                worker.disconnect()
                return
            group = self._gather(first)
            try:
                self._settle_group(worker, group)
            except Exception as err:  # each waiting request gets it; the thread goes on
                _fail(group, err)
            finally:
                _send_replies(group)

    def _gather(self, first: _Request) -> list[_Request]:
        """`first` and the requests queued behind it; while the desk is busy (see the module), also those
        that come for at most `gather_max`: until the group holds as many as the last one did, whatever the
        gaps between them, and then while each comes within `gather_gap` of the one before."""
        group = [first]
        deadline = time.monotonic() + self._gather_max
        while len(group) < self._max_group:
            now = time.monotonic()
            left = deadline - now
            recent = now - self._last_at < RECENT_SECONDS
            busy = self._transactions > 0 or (self._last_group > 1 and recent)
            # The desks the last group answered are sending their next requests: a gap while the event loop
            # writes the answers does not mean no more are coming. Cut at the first gap, the group left
            # one or two behind, and each then went as a group of its own at most of a full group's cost.
            expected = self._last_group if recent else 1
            try:
                if busy and left > 0:
                    more = self._queue.get(timeout=left if len(group) < expected else min(self._gather_gap, left))
                else:
                    more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is None:  # closing: this group is the last
                self._queue.put(None)
                break
            group.append(more)
        self._last_group, self._last_at = len(group), time.monotonic()
        return group

    def _settle_group(self, worker: _Worker, group: list[_Request], again: bool = True) -> None:
        try:
            if worker.connection is None or worker.connection.closed:
                # Autocommit: each group's exchanges say BEGIN and COMMIT themselves.
                # UTF-8 whatever the database's or the environment's encoding: a group's rows are sent as
                # orjson wrote them.
                worker.connection = psycopg.Connection.connect(
                    self._conninfo, autocommit=True, row_factory=namedtuple_row, client_encoding="utf8"
                )
            self._transaction(worker.connection, group, worker.summed)
            with self._counting:
                self.groups += 1
                self.largest = max(self.largest, len(group))
        # (psycopg files a deadlock apart from the other rolled-back transactions: both are named.)
        except (UniqueViolation, TransactionRollback, DeadlockDetected, _RegisterMoved) as err:
            # A key of the group was recorded by another group after step 2 read the keys (that transaction
            # has committed: the insert waited for it), or PostgreSQL broke a deadlock between groups
            # waiting on each other's keys (one key sent for two people at once, in two groups), or the
            # register moved a person to another household between the group's reads. Settled again, alone,
            # the claim whose key it was is answered from the record, as a repeat or a conflict; the others
            # are settled.
            if len(group) > 1:
                for request in group:
                    self._settle_group(worker, [request])
            elif again:
                self._settle_group(worker, group, again=False)
            else:
                _fail(group, err)
        except (psycopg.OperationalError, psycopg.InterfaceError) as err:
            worker.disconnect()
            _fail(group, DatabaseUnavailable(f"the database did not answer: {err}"))
        except Exception:
            worker.disconnect()  # in an unknown state: the next group starts on a new connection
            raise

    def _step(self, name: str, connection: psycopg.Connection[Any]) -> None:
        if self.before_step is not None:
            self.before_step(name, connection)

    def _transaction(self, connection: psycopg.Connection[Any], group: list[_Request], summed: _Summed) -> None:
        with self._counting:
            self._transactions += 1
        try:
            answers, problems = self._exchanges(connection, group, summed)
        except BaseException:
            if not connection.closed and connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                with contextlib.suppress(psycopg.Error):  # broken: closing it rolls back as well
                    connection.execute("ROLLBACK")
            raise
        finally:
            # Over before anyone is answered: a desk whose answer brings its next request at once, alone,
            # finds no transaction under way and is not kept waiting for others.
            with self._counting:
                self._transactions -= 1
        # Committed: only now is any settlement of the group answered as recorded.
        for i, request in enumerate(group):
            if i in problems:
                _fail([request], problems[i])
            elif not request.answer.done():
                request.answer.set_result(answers[i])

    def _exchanges(
        self, connection: psycopg.Connection[Any], group: list[_Request], summed: _Summed
    ) -> tuple[dict[int, Answer], dict[int, Exception]]:
        """The group's transaction in three exchanges (two when nothing is written): the answers of the
        requests recorded or repeated, and the problems of the others."""
        now = self._clock()
        answers: dict[int, Answer] = {}
        problems: dict[int, Exception] = {}
        # 1. BEGIN; who asks, what the register says, what is published; the locks of everyone to be settled;
        # then, under the locks, the year so far of everyone priced and the keys already used. All from the
        # requests as sent, before any is checked: a request refused below has locked its person for this
        # transaction, no more; one without a token of our shape, nothing.
        self._step("read", connection)
        shaped = [(token, r) for r in group if (token := r.token) is not None and token_shape_ok(token)]
        digests = [token_digest(token) for token, _ in shaped]
        bodies = [(r.quote, r.body) for _, r in shaped if isinstance(r.body, Mapping)]
        people = sorted({b["person_id"] for _, b in bodies if isinstance(b.get("person_id"), str)})
        settling = sorted({b["person_id"] for q, b in bodies if not q and isinstance(b.get("person_id"), str)})
        keys = sorted({b["claim_id"] for q, b in bodies if not q and isinstance(b.get("claim_id"), str)})
        hospitals = sorted({b["hospital_id"] for _, b in bodies if isinstance(b.get("hospital_id"), str)})
        entities, since = summed.since(people)
        lists = {"people": people, "settling": settling, "digests": digests, "hospitals": hospitals, "keys": keys}
        named = {name: _text_array(items) for name, items in lists.items()}
        named["summed"] = _text_array(entities)
        named["since"] = "{" + ",".join(map(str, since)) + "}"
        _, tokens_q, people_q, hospitals_q, published_q, locks_q, figures_q, recorded_q = _exchange(
            connection,
            [
                ("BEGIN ISOLATION LEVEL READ COMMITTED", None),  # stated: the reads after the locks rely on it
                (_TOKENS, named),
                (_PEOPLE, named),
                (_HOSPITALS, named),
                (_PUBLISHED, None),
                (_LOCKS, named),
                (_FIGURES, named),
                (_RECORDED, named),
            ],
        )
        tokens = {row.token_sha256: row for row in tokens_q}
        facts = _facts(people_q)
        levels = {row.hospital_id: row.level for row in hospitals_q}
        stamp = [(row.policy_key, row.document_sha256) for row in published_q]
        library = self._catalogue.cached(stamp)
        if library is None:  # something was published since: rebuilt (rarely; it reads the documents)
            library = self._catalogue.library()
        figures = _Figures(summed.read(figures_q, facts))
        recorded = {(row.hospital_id, row.medins_setl_id): row for row in recorded_q}
        locked = {row.entity for row in locks_q}

        claims, quotes = [], []
        for i, request in enumerate(group):
            try:
                who = _principal(request.token, tokens, now)
                claim, found = _claim(request.body, who, now, facts, levels, library)
                if request.quote:
                    quotes.append(_Priced(i, who, claim, found))
                else:
                    claims.append((i, who, claim, found))
            except Exception as err:
                problems[i] = err
        # Every settlement's person and household locked: what is written to an entity's entries is written
        # under its lock (what `_Summed` relies on, and what keeps a household's caps).
        for _, _, claim, _ in claims:
            if not {claim.person_id, claim.household_id} <= locked:
                raise _RegisterMoved(claim.person_id)

        # Quotes first, from the figures as read: each as it would be settled alone at this moment.
        for wave in _waves(quotes):
            for items in _by_plan(wave):
                for quoted in _records(items, figures, problems):
                    for item, record in quoted:
                        answers[item.index] = Answer(False, orjson.dumps(record))

        # Repeats first, in arrival order: a key recorded already, or met earlier in this group.
        priced: list[_Priced] = []
        fresh: dict[tuple[str, str], _Priced] = {}
        again: list[tuple[int, _Priced, str]] = []
        for i, who, claim, found in claims:
            key = (claim.hospital_id, claim.claim_id)
            canonical = canonical_claim(claim)
            digest = request_digest(claim, canonical)
            try:
                if key in recorded:
                    row = recorded[key]
                    known = repeat_of(claim.claim_id, row.setl_id, row.request_sha256, row.record_json, digest)
                    answers[i] = Answer(False, answer_body(known.setl_id, known.record_json))
                elif key in fresh:  # the same key twice in one group: answered as the first is, below
                    again.append((i, fresh[key], digest))
                else:
                    fresh[key] = _Priced(i, who, claim, found, uuid.uuid4().hex, digest, canonical)
                    priced.append(fresh[key])
            except Exception as err:
                problems[i] = err
        # Then the new ones: in waves where no two claims share a person or household (a claim goes in
        # the wave after the last one holding its person or household, so each person's and household's
        # claims stay in arrival order), each wave settled by the engine in one call per plan and chunk.
        # 2. Each chunk's settlements and ledger entries go to the database as soon as they are priced, in
        # pipeline mode: PostgreSQL writes one chunk while the next is priced. In the order they were
        # priced: the ledger's order is the order in which its stays were settled. Then the chain's head,
        # held to the commit.
        written: list[tuple[_Priced, SettlementRows]] = []
        with contextlib.ExitStack() as pipeline:
            for wave in _waves(priced):
                for plan_items in _by_plan(wave):
                    for records in _records(plan_items, figures, problems, WRITE_CHUNK):
                        chunk = []
                        for item, record in records:
                            with_setl_id(record, item.setl_id)
                            rows = settlement_rows(item.setl_id, item.claim, record, now, item.canonical)
                            item.record_json = rows.record_json
                            figures.add(rows.entries)
                            chunk.append((item, rows))
                            answers[item.index] = Answer(True, answer_body(item.setl_id, rows.record_json))
                        if chunk:
                            if not written:
                                self._step("write", connection)
                                pipeline.enter_context(connection.pipeline())
                            _send_rows(connection, chunk)
                            written.extend(chunk)
            head: Any = connection.execute(_HEAD, prepare=True).fetchone() if written else None  # after the inserts
            if written and head is None:
                raise RuntimeError("the audit chain's head row is missing: nothing can be recorded")

        for i, first, digest in again:
            try:
                if first.index in problems:
                    raise problems[first.index]
                known = repeat_of(first.claim.claim_id, first.setl_id, first.digest, first.record_json, digest)
                answers[i] = Answer(False, answer_body(known.setl_id, known.record_json))
            except Exception as err:
                problems[i] = err

        if written:
            # 3. one audit entry per settlement, chained, and the new head; the commit
            made = [
                audit_entry(p.who, "settlement.create", p.setl_id, {"medins_setl_id": p.claim.claim_id}, now)
                for p, _ in written
            ]
            chained = audit_chain.chained(head.seq, head.entry_sha256, made)
            new_head = {"seq": chained[-1]["seq"], "sha": chained[-1]["entry_sha256"]}
            self._step("chain", connection)
            _exchange(connection, [_insert(audit_chain.LOG, chained), (_NEW_HEAD, new_head), ("COMMIT", None)])
        else:
            self._step("commit", connection)
            _exchange(connection, [("COMMIT", None)])
        return answers, problems


def _send_replies(group: Sequence[_Request]) -> None:
    """Hand the group's answers to the event loops their requests came from: one call for each loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Reply]] = defaultdict(list)
    for request in group:
        by_loop[request.answer.future.get_loop()].append(request.answer)
    for loop, replies in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: no one is waiting any more
            loop.call_soon_threadsafe(_hand_over, replies)


def _hand_over(replies: Sequence[_Reply]) -> None:
    """On the requests' event loop: each awaiting request gets its answer (or its problem)."""
    for reply in replies:
        if reply.future.done():  # cancelled: the client went away
            continue
        outcome = reply.outcome
        if isinstance(outcome, BaseException):
            reply.future.set_exception(outcome)
        elif outcome is None:  # cannot happen: every request of a group is answered before this
            reply.future.set_exception(RuntimeError("a request of the group was left without an answer"))
        else:
            reply.future.set_result(outcome)


def _fail(requests: Sequence[_Request], err: Exception) -> None:
    for request in requests:
        if not request.answer.done():
            request.answer.set_exception(err)


def _principal(token: str | None, tokens: Mapping[str, Any], now: dt.datetime) -> Principal:
    """The desk the token belongs to, as `api.auth.require("desk")` decides it."""
    if token is None:
        raise Unauthenticated(NO_TOKEN)
    row = tokens.get(token_digest(token)) if token_shape_ok(token) else None
    found = None
    if row is not None:
        found = principal_of(row.token_id, row.expires_at, row.revoked_at, row.name, row.role, row.hospital_id, now)
    return allowed(found, ("desk",))


def _claim(
    body: Any,
    who: Principal,
    now: dt.datetime,
    facts: Mapping[str, PersonFacts],
    levels: Mapping[str, int],
    library: Library,
) -> tuple[Any, Any]:
    """The request's claim completed from the register, and how to price it (as the desk route does)."""
    if isinstance(body, Exception):
        raise body  # the body could not be read: said once the token is known to be good
    if not isinstance(body, dict):
        raise ClaimError([FieldError("body", "expected a JSON object")])
    person_id = body.get("person_id")
    hospital_id = body.get("hospital_id", who.hospital_id)
    person = facts.get(person_id) if isinstance(person_id, str) else None
    level = levels.get(hospital_id) if isinstance(hospital_id, str) else None
    completed, policy_id = fill_claim(body, who.hospital_id, now, person, level)
    claim = parse_claim(completed)
    return claim, pricing(library, policy_id, claim)


def _facts(rows: Sequence[Any]) -> dict[str, PersonFacts]:
    by_person: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_person[row.person_id].append(row)
    return {person: PersonFacts.from_rows(person, found) for person, found in by_person.items()}


class _Summed:
    """What a group desk thread has summed of each person's and household's ledger entries, and the last id
    it summed, so that a group reads only the entries recorded since (`_FIGURES`). Whatever a group read is
    kept, whether or not its transaction then commits: it was read committed, under the entity's lock or
    (for a quote) in one snapshot, and every writer of an entity's entries numbers them in the order they
    commit (`ledger.models.LedgerEntry`), so no entry can later appear below the last id summed. Without
    this, each group summed its people's whole history, which grew with every stay (BENCHMARKS.md)."""

    def __init__(self, limit: int):
        self._limit = limit
        self._by_entity: dict[str, tuple[int, dict[AccKey, AccValue]]] = {}
        self._household: dict[str, str] = {}  # of each person, as the register last said

    def since(self, people: Sequence[str]) -> tuple[list[str], list[int]]:
        """The entities of `people` (themselves and the households they were last seen in) this thread has
        summed, and the last id summed of each."""
        entities = set(people).union(h for p in people if (h := self._household.get(p)) is not None)
        known = sorted(e for e in entities if e in self._by_entity)
        return known, [self._by_entity[e][0] for e in known]

    def read(self, rows: Sequence[Any], facts: Mapping[str, PersonFacts]) -> dict[str, dict[AccKey, AccValue]]:
        """The year-to-date figures of every entity `rows` (of `_FIGURES`) name: what was summed before their
        `since`, plus what they add. Kept for the next group."""
        figures: dict[str, dict[AccKey, AccValue]] = {}
        last: dict[str, int] = {}
        for entity, since, key, year, base, paid, claims, last_id in rows:
            if entity not in figures:
                # `since` is what `since()` gave for it (one thread asks and reads), or 0: from the first entry.
                figures[entity] = dict(self._by_entity[entity][1]) if since else {}
                last[entity] = since
            if key is not None:
                acc = AccKey(key, entity, year)
                was = figures[entity].get(acc, ZERO)
                figures[entity][acc] = AccValue(
                    was.base + fen_from_decimal(Decimal(base)),
                    was.paid + fen_from_decimal(Decimal(paid)),
                    was.claims + int(claims),
                )
                last[entity] = max(last[entity], last_id)
        for entity, values in figures.items():
            self._by_entity.pop(entity, None)  # put back last: the one summed longest ago goes first
            if last[entity]:  # nothing summed (no entries yet, or no such person): nothing to keep
                self._by_entity[entity] = (last[entity], values)
        for person, found in facts.items():  # registered people only
            self._household.pop(person, None)
            self._household[person] = found.household_id
        for kept in (self._by_entity, self._household):
            while len(kept) > self._limit:
                del kept[next(iter(kept))]
        return figures


class _Figures:
    """The group's year-to-date figures: as read under the locks, plus what the group's claims added."""

    def __init__(self, by_entity: Mapping[str, Mapping[AccKey, AccValue]]):
        self._by_entity: dict[str, dict[AccKey, AccValue]] = defaultdict(dict)
        for entity, values in by_entity.items():
            self._by_entity[entity] = dict(values)

    def of(self, person_id: str, household_id: str, year: int) -> dict[AccKey, AccValue]:
        """What `ledger.repository.snapshot` would read for this person and household in `year` now."""
        return {
            key: value
            for entity in {person_id, household_id}
            for key, value in self._by_entity.get(entity, {}).items()
            if key.year == year
        }

    def add(self, entries: Iterable[Mapping[str, Any]]) -> None:
        for entry in entries:
            if entry["accumulator"] is not None:
                own = self._by_entity[entry["entity"]]
                add_entries(own, [entry])
