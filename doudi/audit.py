"""The audit log as one hash chain: appending an entry, reading a page of entries, verifying the chain.

Appending locks the chain's head row (`audit_chain`, SELECT ... FOR UPDATE on PostgreSQL) and holds it to
the end of the transaction, so every entry follows the one committed before it and the chain cannot fork.
Only the tail of a writing transaction waits for it: `accounts.audit` is called as a transaction's last
step, after the write it records has been sent to the database. On SQLite writers are serialised already
(BEGIN IMMEDIATE). The hash formula is `ledger.audit_chain.entry_sha256`.

What verifying can and cannot tell: an entry changed, deleted, inserted or moved in the database breaks the
chain at that entry. Someone who can write the database and recompute every hash after the point they
changed could rebuild a consistent chain; a head hash noted elsewhere (printed by `doudi audit verify`,
kept in every backup's manifest) then no longer appears in it, which `verify(anchors=...)` checks.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, insert, select, update
from sqlalchemy.orm import Session

from ledger.audit_chain import GENESIS, entry_sha256
from ledger.models import AuditChainHead, AuditEntry

HEAD_ID = 1


def append(
    session: Session,
    at: dt.datetime,
    user_name: str,
    token_id: str | None,
    action: str,
    target: str,
    detail: str,
) -> None:
    """Add the next entry of the chain in `session`'s transaction (which then holds the chain until it ends).

    Core statements, not ORM objects: every settlement ends here, and the unit of work's bookkeeping was a
    tenth of the server's time per settlement while the chain's head is held."""
    # The write being recorded goes to the database first, before the chain is locked: the lock then covers
    # only this entry and the commit.
    session.flush()
    head = session.execute(
        select(HEAD.c.seq, HEAD.c.entry_sha256).where(HEAD.c.id == HEAD_ID).with_for_update()
    ).one_or_none()
    if head is None:
        raise RuntimeError("the audit chain's head row is missing: nothing can be recorded (run `doudi audit verify`)")
    rows = chained(head.seq, head.entry_sha256, [(at, user_name, token_id, action, target, detail)])
    session.execute(insert(LOG), rows)
    session.execute(
        update(HEAD).where(HEAD.c.id == HEAD_ID).values(seq=rows[-1]["seq"], entry_sha256=rows[-1]["entry_sha256"])
    )


Entry = tuple[dt.datetime, str, str | None, str, str, str]
"""What an audit entry says: (at, user_name, token_id, action, target, detail as JSON text)."""


def chained(seq: int, sha256: str, entries: Iterable[Entry]) -> list[dict[str, Any]]:
    """The rows of `entries` appended, in order, after the chain's entry `seq` whose hash is `sha256`."""
    rows = []
    for at, user_name, token_id, action, target, detail in entries:
        moment = at.astimezone().replace(tzinfo=None) if at.tzinfo is not None else at  # stored as local wall time
        seq += 1
        own = entry_sha256(seq, sha256, moment, user_name, token_id, action, target, detail)
        rows.append(
            {
                "at": moment,
                "user_name": user_name,
                "token_id": token_id,
                "action": action,
                "target": target,
                "detail": detail,
                "seq": seq,
                "prev_sha256": sha256,
                "entry_sha256": own,
            }
        )
        sha256 = own
    return rows


HEAD = cast(Table, AuditChainHead.__table__)
LOG = cast(Table, AuditEntry.__table__)


@dataclass(frozen=True)
class Break:
    """The first place the chain does not hold: the entry (by `seq`, and its row id when there is one), what
    kind of tampering it points to, and a sentence for the operator."""

    seq: int
    row_id: int | None
    kind: str  # changed | deleted | inserted | reordered | head
    message: str


@dataclass(frozen=True)
class Verdict:
    entries: int
    head_seq: int
    head_sha256: str
    broken: Break | None

    @property
    def intact(self) -> bool:
        return self.broken is None


def verify(engine: Engine | Connection, anchors: Sequence[tuple[int, str]] = ()) -> Verdict:
    """Walk the chain from the first entry; the first break, if any. `anchors` are (seq, hash) pairs noted
    earlier (a backup's manifest, a printed verdict): each must still be in the chain."""
    with Session(engine) as session:
        head = session.get(AuditChainHead, HEAD_ID)
        rows = session.execute(
            select(*_COLUMNS).order_by(AuditEntry.seq, AuditEntry.id).execution_options(yield_per=5000)
        )
        found = _walk(rows, head, dict(anchors))
        if found.broken is not None and found.broken.kind == "unlinked":
            found = _explain_link(session, found)
        return found


_COLUMNS = (
    AuditEntry.id,
    AuditEntry.seq,
    AuditEntry.prev_sha256,
    AuditEntry.entry_sha256,
    AuditEntry.at,
    AuditEntry.user_name,
    AuditEntry.token_id,
    AuditEntry.action,
    AuditEntry.target,
    AuditEntry.detail,
)


def _own(row: Any, seq: int) -> str:
    return entry_sha256(seq, row.prev_sha256, row.at, row.user_name, row.token_id, row.action, row.target, row.detail)


def _walk(rows: Iterable[Any], head: AuditChainHead | None, anchors: dict[int, str]) -> Verdict:
    expected, prev, count = 1, GENESIS, 0

    def verdict(broken: Break | None) -> Verdict:
        return Verdict(count, expected - 1, prev, broken)

    for row in rows:
        seq = row.seq
        if seq is None or seq < expected:
            return verdict(Break(expected - 1 if seq is None else seq, row.id, "inserted", _doubled(row, seq)))
        if seq > expected:
            gone = f"#{expected}" if seq == expected + 1 else f"#{expected} to #{seq - 1}"
            return verdict(Break(expected, None, "deleted", f"entries {gone} are missing: deleted"))
        own = _own(row, seq)
        if row.prev_sha256 != prev:  # explained by `_explain_link`, which looks for the entry it does follow
            return verdict(Break(seq, row.id, "unlinked", row.prev_sha256))
        if own != row.entry_sha256:
            message = f"entry #{seq} (id {row.id}, {row.action} {row.target!r}) no longer matches its hash: changed"
            return verdict(Break(seq, row.id, "changed", message))
        if seq in anchors and anchors[seq] != own:
            message = f"entry #{seq} is not the one noted earlier ({anchors[seq][:12]}…): the chain was rebuilt"
            return verdict(Break(seq, row.id, "changed", message))
        expected, prev, count = seq + 1, own, count + 1
    beyond = sorted(s for s in anchors if s >= expected)
    if beyond:
        message = f"entry #{beyond[0]} was noted earlier but the chain ends at #{expected - 1}: entries were deleted"
        return verdict(Break(beyond[0], None, "deleted", message))
    last = expected - 1
    if head is None:
        return verdict(Break(last, None, "head", "the chain's head row (audit_chain) is missing"))
    if head.seq > last:
        message = f"the chain's head says #{head.seq} but the log ends at #{last}: the last entries were deleted"
        return verdict(Break(last + 1, None, "deleted", message))
    if head.seq < last:
        message = f"the log goes on to #{last} past the chain's head (#{head.seq}): entries were added outside Doudi"
        return verdict(Break(head.seq + 1, None, "inserted", message))
    if head.entry_sha256 != prev:
        return verdict(
            Break(last, None, "head", f"the chain's head does not hold entry #{last}'s hash: it was changed")
        )
    return verdict(None)


def _doubled(row: Any, seq: int | None) -> str:
    if seq is None:
        return f"entry id {row.id} has no place in the chain: inserted outside Doudi"
    return f"two entries claim place #{seq} (one is id {row.id}): an entry was inserted"


def _explain_link(session: Session, found: Verdict) -> Verdict:
    """An entry whose stored link is not the hash of the entry before it: find the entry it was written
    after, to tell entries reordered from entries inserted or deleted."""
    broken = found.broken
    assert broken is not None and broken.row_id is not None
    seq, link = broken.seq, broken.message
    row = session.execute(select(*_COLUMNS).where(AuditEntry.id == broken.row_id)).one()
    after = session.scalar(select(AuditEntry.seq).where(AuditEntry.entry_sha256 == link).limit(1))
    following = session.scalar(select(AuditEntry.prev_sha256).where(AuditEntry.seq == seq + 1))
    where = f"entry #{seq} (id {row.id})"
    if after is None and following == found.head_sha256:
        return _with(
            found, Break(seq, row.id, "inserted", f"{where} was inserted: the entry after it follows #{seq - 1}")
        )
    if after is None:
        message = (
            f"{where} was written after an entry no longer in the log: the entry before it was deleted or replaced"
        )
        return _with(found, Break(seq, row.id, "deleted", message))
    if after < seq - 1 and _own(row, after + 1) == row.entry_sha256:
        # The entry was written as #after + 1 and has been pushed down by the entries now before it.
        gone = f"#{after + 1}" if after + 1 == seq - 1 else f"#{after + 1} to #{seq - 1}"
        message = f"entries {gone} were inserted: {where} was written right after #{after}"
        return Verdict(after, after, link, Break(after + 1, None, "inserted", message))
    message = f"{where} was written after the entry now at #{after}, not after #{seq - 1}: entries were reordered"
    return _with(found, Break(seq, row.id, "reordered", message))


def _with(found: Verdict, broken: Break) -> Verdict:
    return Verdict(found.entries, found.head_seq, found.head_sha256, broken)


def head(session: Session) -> tuple[int, str]:
    """The chain's last entry as (seq, hash); (0, GENESIS) before the first."""
    found = session.get(AuditChainHead, HEAD_ID)
    return (found.seq, found.entry_sha256) if found is not None else (0, GENESIS)


@dataclass(frozen=True)
class Filters:
    user: str | None = None
    action: str | None = None  # exact, or a prefix when it ends in ".*" ("settlement.*")
    since: dt.datetime | None = None
    until: dt.datetime | None = None  # exclusive


def page(
    session: Session, filters: Filters, limit: int, before: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Entries matching `filters`, newest first, `limit` of them with seq below `before`; and the `before`
    of the next page (None on the last)."""
    query = select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(AuditEntry.seq < before)
    if filters.user is not None:
        query = query.where(AuditEntry.user_name == filters.user)
    if filters.action is not None:
        if filters.action.endswith(".*"):
            query = query.where(AuditEntry.action.startswith(filters.action[:-1], autoescape=True))
        else:
            query = query.where(AuditEntry.action == filters.action)
    if filters.since is not None:
        query = query.where(AuditEntry.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEntry.at < filters.until)
    found = list(session.scalars(query))
    rows = [view(e) for e in found[:limit]]
    return rows, (found[limit - 1].seq if len(found) > limit else None)


def view(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "user": entry.user_name,
        "token_id": entry.token_id,
        "action": entry.action,
        "target": entry.target,
        "detail": json.loads(entry.detail),
        "prev_sha256": entry.prev_sha256,
        "entry_sha256": entry.entry_sha256,
    }


def verdict_view(verdict: Verdict) -> dict[str, Any]:
    broken = verdict.broken
    return {
        "intact": verdict.intact,
        "entries": verdict.entries,
        "head": {"seq": verdict.head_seq, "sha256": verdict.head_sha256},
        "broken": None
        if broken is None
        else {"seq": broken.seq, "id": broken.row_id, "kind": broken.kind, "message": broken.message},
    }
