"""The group desk's pure parts, without a database: how a group is cut into waves for the engine, that the
engine prices a wave's claims as it prices each alone, that audit entries chained in one go are the
entries appended one by one, and that an entry's hash is what its format says."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doudi import group_desk, services
from doudi.audit import chained
from doudi.desk import pricing, records_together
from doudi.group_desk import (
    Answer,
    DatabaseUnavailable,
    GroupDesk,
    _Figures,
    _Priced,
    _records,
    _Reply,
    _Request,
    _send_replies,
    _waves,
)
from ledger.audit_chain import FORMAT, GENESIS, entry_sha256
from ledger.repository import settlement_rows
from settlement.claims import parse_claim

ROOT = Path(__file__).resolve().parents[2]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]


def _item(index: int, person: str, household: str) -> _Priced:
    claim = cast(Any, type("C", (), {"person_id": person, "household_id": household}))
    return _Priced(index, cast(Any, None), claim, cast(Any, None), f"S{index}", "", "")


people = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3)), min_size=1, max_size=40)


@given(people)
def test_waves_share_no_one_and_keep_each_persons_and_households_order(pairs: list[tuple[int, int]]) -> None:
    items = [_item(i, f"P{p}", f"H{h}") for i, (p, h) in enumerate(pairs)]
    waves = _waves(items)
    assert sorted(item.index for wave in waves for item in wave) == list(range(len(items)))
    place = {item.index: n for n, wave in enumerate(waves) for item in wave}
    for wave in waves:
        entities = [e for item in wave for e in item.entities]
        assert len(entities) == len(set(entities)), "two claims of one wave share a person or household"
    for earlier in items:
        for later in items[earlier.index + 1 :]:
            if set(earlier.entities) & set(later.entities):
                assert place[earlier.index] < place[later.index]
    # Each claim as early as the claims before it of its person and household allow: no wave wasted.
    for item in items:
        before = [place[e.index] for e in items[: item.index] if set(e.entities) & set(item.entities)]
        assert place[item.index] == 1 + max(before, default=-1)


def test_a_wave_priced_together_is_each_claim_priced_alone() -> None:
    library = services.open_library()
    base = FAMILY[3]
    claims = [
        parse_claim(
            {
                **base,
                "claim_id": f"W-{i}",
                "person_id": f"W-P-{i}",
                "household_id": f"W-H-{i}",
                "category": ("dibao", "tekun", "none", "low_income")[i % 4],
                "total": f"{8_000 + 2_311 * i}.{7 * i % 100:02d}",
                "diagnoses": ["C91.0"] if i % 2 else ["K80.2"],
            }
        )
        for i in range(12)
    ]
    found = [pricing(library, "jl-meihekou", claim) for claim in claims]
    assert len({id(f.plan) for f in found}) == 1
    together = records_together(found[0].plan, claims, {})
    alone = [f.record({}) for f in found]
    assert together == alone


def _wave_of(n: int) -> list[_Priced]:
    """`n` stays of people who share no one, priced under one plan, as a group desk's wave holds them."""
    library = services.open_library()
    claims = [
        parse_claim(
            {
                **FAMILY[3],
                "claim_id": f"R-{i}",
                "person_id": f"R-P-{i}",
                "household_id": f"R-H-{i}",
                "total": f"{8_000 + 1_913 * i}.{11 * i % 100:02d}",
                "diagnoses": ["C91.0"] if i % 2 else ["K80.2"],
            }
        )
        for i in range(n)
    ]
    return [_Priced(i, cast(Any, None), c, pricing(library, "jl-meihekou", c)) for i, c in enumerate(claims)]


def _figures_after_earlier_stays(items: list[_Priced]) -> _Figures:
    """The year so far of the wave's people: each has had an earlier stay, recorded."""
    figures = _Figures({})
    for item in items:
        earlier = parse_claim(
            {
                **item.claim.as_json(),
                "claim_id": f"{item.claim.claim_id}-EARLIER",
                "admitted_on": "2014-02-03",
                "discharged_on": "2014-02-10",
                "settled_at": "2014-02-10T09:00:00",
            }
        )
        record = pricing(services.open_library(), "jl-meihekou", earlier).record({})
        figures.add(settlement_rows(f"E{item.index}", earlier, record, dt.datetime(2014, 2, 10, 9)).entries)
    return figures


@pytest.mark.parametrize("chunk", [1, 3, 8, 64])
def test_a_waves_records_come_in_chunks_each_the_claims_own(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """One engine call for the wave, its records made chunk by chunk, each the record the claim has alone from
    the same year so far."""
    items = _wave_of(10)
    figures = _figures_after_earlier_stays(items)
    calls: list[int] = []
    settled_together = group_desk.settled_together

    def counted(plan: Any, claims: Any, start: Any) -> Any:
        calls.append(len(claims))
        return settled_together(plan, claims, start)

    monkeypatch.setattr(group_desk, "settled_together", counted)
    problems: dict[int, Exception] = {}
    chunks = list(_records(items, figures, problems, chunk))
    assert calls == [10]
    assert [len(c) for c in chunks] == [min(chunk, 10 - start) for start in range(0, 10, chunk)]
    assert [item for c in chunks for item, _ in c] == items
    alone = [item.found.record(figures.of(*item.entities, item.found.year)) for item in items]
    assert [record for c in chunks for _, record in c] == alone
    assert alone != [item.found.record({}) for item in items], "the earlier stays changed nothing"
    assert problems == {}


def test_a_wave_the_engine_cannot_price_together_is_priced_claim_by_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should the joint call fail, each claim is priced alone; should one claim's record fail, only that claim
    has a problem, and the rest of its chunk is answered."""
    items = _wave_of(5)
    expected = [item.found.record({}) for item in items]

    def refused(*_args: Any) -> Any:
        raise RuntimeError("the joint call failed (made by the test)")

    monkeypatch.setattr(group_desk, "settled_together", refused)
    problems: dict[int, Exception] = {}
    assert [r for c in _records(items, _Figures({}), problems, 2) for _, r in c] == expected
    assert problems == {}
    monkeypatch.undo()

    # A record that cannot be made from the joint result is made alone.
    explain = group_desk.explain
    monkeypatch.setattr(group_desk, "explain", lambda result, k: explain(result, k) if k != 2 else 1 / 0)
    assert [r for c in _records(items, _Figures({}), problems, 2) for _, r in c] == expected
    assert problems == {}
    monkeypatch.undo()

    found = items[2].found
    items[2].found = cast(Any, SimpleNamespace(plan=found.plan, year=found.year, record=lambda _start: 1 / 0))
    monkeypatch.setattr(group_desk, "explain", lambda result, k: explain(result, k) if k != 2 else 1 / 0)
    chunks = list(_records(items, _Figures({}), problems, 2))
    assert [[item.index for item, _ in c] for c in chunks] == [[0, 1], [3], [4]]
    assert [r for c in chunks for _, r in c] == expected[:2] + expected[3:]
    assert list(problems) == [2]


@settings(max_examples=50)
@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=8), st.integers(0, 1000))
def test_entries_chained_together_are_the_entries_appended_one_by_one(targets: list[str], start: int) -> None:
    at = dt.datetime(2014, 12, 1, 9, 0)
    entries = [(at, "desk", "tok", "settlement.create", target, "{}") for target in targets]
    head = entry_sha256(start, GENESIS, at, "x", None, "x", "x", "{}") if start else GENESIS
    together = chained(start, head, entries)
    seq, sha = start, head
    for entry, row in zip(entries, together, strict=True):
        one = chained(seq, sha, [entry])[0]
        assert one == row
        assert row["prev_sha256"] == sha and row["seq"] == seq + 1
        assert row["entry_sha256"] == entry_sha256(seq + 1, sha, *entry)
        seq, sha = row["seq"], row["entry_sha256"]


@settings(max_examples=300)
@given(
    st.integers(0, 2**40),
    st.text(),
    st.datetimes(),
    st.text(),
    st.none() | st.text(),
    st.text(),
    st.text(),
    st.text(),
)
def test_an_entrys_hash_is_over_the_json_array_its_format_names(
    seq: int, prev: str, at: dt.datetime, user: str, token: str | None, action: str, target: str, detail: str
) -> None:
    """The formula is fixed for good (ledger/audit_chain.py): the SHA-256 of one JSON array, which `doudi
    audit verify` and an auditor with any JSON library recompute, whatever text and quotes an entry holds."""
    array = [FORMAT, seq, prev, at.isoformat(timespec="microseconds"), user, token, action, target, detail]
    text = json.dumps(array, ensure_ascii=False, separators=(",", ":"))
    assert entry_sha256(seq, prev, at, user, token, action, target, detail) == hashlib.sha256(text.encode()).hexdigest()


def test_a_request_after_close_is_refused_rather_than_left_waiting() -> None:
    # No database is needed: a request that comes once the desk has closed is answered at once (503), and
    # no thread or connection is started for it.
    def group_threads() -> set[threading.Thread]:  # other tests' desks may have theirs running
        return {thread for thread in threading.enumerate() if thread.name.startswith("doudi-group-desk")}

    before = group_threads()
    desk = GroupDesk("postgresql://nobody@127.0.0.1:1/none", cast(Any, None), dt.datetime.now)
    desk.close()
    # In a thread of its own: another test's browser may have left an event loop running in this one.
    with ThreadPoolExecutor(1) as pool, pytest.raises(DatabaseUnavailable, match="stopping"):
        pool.submit(asyncio.run, desk.settle("dd_token", {})).result()
    assert group_threads() <= before, "a thread was started for a closed desk"


def _gathered(desk: GroupDesk, late_after: float | None) -> int:
    """How many requests the group of a first request and two queued behind it holds, when one more is
    queued `late_after` seconds after gathering began (None: no more come)."""
    requests = [_Request(None, {}, cast(Any, None)) for _ in range(4)]  # gathered, never answered
    for request in requests[1:3]:
        desk._queue.put(request)
    late = None
    if late_after is not None:
        late = threading.Timer(late_after, desk._queue.put, (requests[3],))
        late.start()
    group = desk._gather(requests[0])
    if late is not None:
        late.join()
    while not desk._queue.empty():  # the late one, when it came after the group was cut
        desk._queue.get_nowait()
    return len(group)


def test_a_quiet_desk_takes_what_is_queued_and_a_busy_one_waits_for_what_is_coming() -> None:
    # The gap is wide so that timing cannot decide the outcome: a request 0.2 s after gathering began comes
    # well within 5 s of the one before, and long after a quiet desk has gone. At most four to a group: a
    # group that has its four goes at once, without waiting out the gap.
    url = "postgresql://nobody@127.0.0.1:1/none"
    desk = GroupDesk(url, cast(Any, None), dt.datetime.now, max_group=4, gather_gap=5.0, gather_max=10.0)
    desk._last_group = 1
    assert _gathered(desk, late_after=0.2) == 3, "a quiet desk waited for a request that was not queued yet"
    assert desk._last_group == 3
    # The last group, gathered a moment ago, held more than one: requests are coming; the late one joins.
    desk._last_at = time.monotonic()
    assert _gathered(desk, late_after=0.2) == 4
    # The same, long ago: the desk has been quiet since, and the first request goes at once.
    desk._last_at -= 60
    assert _gathered(desk, late_after=0.2) == 3
    # A group is under way (and the last held one): the late one joins as well.
    desk._last_group, desk._transactions = 1, 1
    assert _gathered(desk, late_after=0.2) == 4
    # Busy, but nothing more comes: holding as many as the last group did, the group goes once `gather_gap`
    # has passed with nothing new.
    desk._gather_gap, desk._last_group = 0.05, 3
    assert _gathered(desk, late_after=None) == 3
    # However many keep coming, a group gathers for `gather_max` at most.
    desk._gather_gap, desk._gather_max = 5.0, 0.05
    assert _gathered(desk, late_after=0.3) == 3


def test_a_busy_desk_waits_through_a_gap_for_as_many_as_its_last_group_held() -> None:
    # The desks the last group answered send their next requests while the event loop is still writing the
    # answers: a gap then is no sign that no more are coming. Until the group holds as many as the last one,
    # it waits for up to `gather_max`, whatever the gap; after that, a gap cuts it.
    url = "postgresql://nobody@127.0.0.1:1/none"
    desk = GroupDesk(url, cast(Any, None), dt.datetime.now, max_group=8, gather_gap=0.05, gather_max=5.0)
    desk._last_group, desk._last_at = 4, time.monotonic()
    assert _gathered(desk, late_after=0.3) == 4, "the fourth, expected, was cut off by a gap"
    desk._last_group, desk._last_at = 3, time.monotonic()
    assert _gathered(desk, late_after=0.3) == 3, "a group that held what was expected waited out a gap"


def test_a_group_s_answers_reach_their_loop_in_one_call_and_a_request_gone_away_is_skipped() -> None:
    # Set on the group's thread, handed over on the loop: each awaiting request gets its own outcome, a
    # cancelled one (its client went away) is left alone, and nothing reaches the loop until the group is
    # sent.
    async def main() -> list[Any]:
        loop = asyncio.get_running_loop()
        troubles: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: troubles.append(context))
        replies = [_Reply(loop.create_future()) for _ in range(3)]
        group = [_Request("t", {}, reply) for reply in replies]
        # The one gone away first: handing it an answer must not stop the others from getting theirs.
        replies[0].future.cancel()
        replies[0].set_result(Answer(False, b"{}"))
        replies[1].set_result(Answer(True, b"{}"))
        replies[2].set_exception(DatabaseUnavailable("down"))
        await asyncio.sleep(0)
        assert not any(r.future.done() for r in replies[1:]), "an answer reached the loop before its group was sent"
        await asyncio.to_thread(_send_replies, group)
        answered = asyncio.gather(*(r.future for r in replies), return_exceptions=True)
        outcomes = await asyncio.wait_for(answered, 5)
        assert troubles == [], troubles
        return outcomes

    # In a thread of its own: another test's browser may have left an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        gone, created, down = pool.submit(asyncio.run, main()).result()
    assert created == Answer(True, b"{}")
    assert isinstance(down, DatabaseUnavailable)
    assert isinstance(gone, asyncio.CancelledError)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_worker_thread_that_dies_is_started_again_by_the_next_request(monkeypatch: pytest.MonkeyPatch) -> None:
    # No database: both requests are answered 503 once a live thread takes them. The first thread dies of an
    # exception that is not an Exception before it takes anything; the first request waits in the queue,
    # and the second starts a new thread, which answers both. `close` then ends it without waiting forever.
    class Dies(BaseException):
        pass

    real = GroupDesk._drain_queue
    started: list[str] = []

    def dies_the_first_time(self: GroupDesk, worker: Any) -> None:
        started.append(threading.current_thread().name)
        if len(started) == 1:
            raise Dies
        real(self, worker)

    monkeypatch.setattr(GroupDesk, "_drain_queue", dies_the_first_time)
    desk = GroupDesk("postgresql://nobody@127.0.0.1:1/none", cast(Any, None), dt.datetime.now)

    async def main() -> list[Any]:
        first = asyncio.ensure_future(desk.settle("dd_first", {}))
        while len(started) < 1 or desk._workers[0].thread is not None:
            await asyncio.sleep(0.01)  # until the first thread has died
        second = asyncio.ensure_future(desk.settle("dd_second", {}))
        return await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 30)

    with ThreadPoolExecutor(1) as pool:
        outcomes = pool.submit(asyncio.run, main()).result()
    assert [type(o) for o in outcomes] == [DatabaseUnavailable, DatabaseUnavailable]
    assert len(started) == 2
    desk.close()
