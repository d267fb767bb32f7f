"""POST /v1/settlements on PostgreSQL settles the requests in flight together, in one transaction per group
(doudi/group_desk.py). What must hold is what holds one by one: each claim priced as the desk prices it,
in the order recorded; no cap exceeded; each key recorded once; a repeat answered with the same bytes; a
request's own problem answered on its own while the rest of its group is recorded. Two servers (two group
desks) and the one-by-one desk of the pages and the national 2304 run against the same ledger at once."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from api.app import create_app
from api.context import Context
from doudi import audit, demo, group_desk, services
from doudi.desk import Outcome, lock_keys, quote_claim, settle_claim, settled_together
from ledger.models import AuditEntry, LedgerEntry, Settlement
from settlement.claims import Claim, parse_claim
from tests.integration.test_concurrency import (
    CAPS,
    HOUSEHOLD,
    HOUSEHOLD_CAP,
    NOW,
    POLICY,
    assert_caps_reached_not_exceeded,
    assert_recorded_once_and_ledger_equals_engine,
    recorded,
    stays_of_one_household,
    stays_of_one_person,
    together,
)

pytestmark = pytest.mark.postgres
LATE = dt.datetime(2014, 12, 31, 23, 0)  # the servers' clock: after every stay's settlement time


class Served:
    """Two apps on one database, as two server processes are: each with its own group desk."""

    def __init__(self, url: str, folder: Path) -> None:
        self.library = services.open_library()
        self.apps = [
            create_app(url, self.library, clock=lambda: LATE, archive=folder / "a", simulations=folder / f"s{i}")
            for i in range(2)
        ]
        self.contexts: list[Context] = [app.state.context for app in self.apps]
        self.tokens = demo.seed(self.contexts[0].engine, self.contexts[0].catalogue, self.library, NOW)
        self.clients = [TestClient(app) for app in self.apps]

    def desk(self, user: str = "demo-desk") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def register_household(self, claims: Sequence[Claim], categories: Sequence[str] = ("dibao",)) -> None:
        admin = {"Authorization": f"Bearer {self.tokens['demo-admin']}"}
        for i, claim in enumerate(claims):
            person = {
                "household_id": claim.household_id,
                "name": f"并发 {claim.person_id}",
                "insurance_scheme": claim.insurance_scheme,
                "region": "220581",
                "categories": [
                    {"category": category, "valid_from": "2013-01-01"}
                    for category in [categories[i % len(categories)]]
                    if category != "none"
                ],
            }
            answer = self.clients[0].put(f"/v1/people/{claim.person_id}", json=person, headers=admin)
            assert answer.status_code == 200, answer.text

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def served(postgres_url: str, tmp_path: Path) -> Iterator[Served]:
    found = Served(postgres_url, tmp_path)
    yield found
    found.close()


def body(claim: Claim) -> dict[str, Any]:
    """The claim as a hospital system sends it: the register fills the household, scheme and category."""
    sent = claim.as_json()
    for name in ("household_id", "insurance_scheme", "category", "hospital_level"):
        sent.pop(name, None)
    return sent


def post(client: TestClient, headers: dict[str, str], claim: Claim) -> Callable[[], httpx.Response]:
    return lambda: client.post("/v1/settlements", json=body(claim), headers=headers)


def outcome(answer: httpx.Response) -> Outcome:
    assert answer.status_code in (200, 201), answer.text
    record = answer.json()
    setl_id = record.pop("setl_id")
    return Outcome(answer.status_code == 201, setl_id, record, json.dumps(record))


def apart(prefix: str, claims: Sequence[Claim]) -> list[Claim]:
    """`claims` moved to people who share no one: each in a household of their own."""
    return [
        parse_claim(
            {
                **claim.as_json(),
                "claim_id": f"{prefix}-{i}",
                "person_id": f"{prefix}-P-{i}",
                "household_id": f"{prefix}-H-{i}",
            }
        )
        for i, claim in enumerate(claims)
    ]


def one_by_one(served: Served, claim: Claim) -> Callable[[], Outcome]:
    return lambda: settle_claim(served.contexts[0].engine, served.library, POLICY, claim, NOW)


def test_fifty_stays_of_one_person_through_two_group_desks_and_the_single_desk(served: Served) -> None:
    claims = stays_of_one_person()
    desk = served.desk()
    calls: list[Callable[[], Any]] = []
    for i, claim in enumerate(claims):
        calls.append(one_by_one(served, claim) if i % 5 == 4 else post(served.clients[i % 2], desk, claim))
    results = together(calls)
    outcomes = [r if isinstance(r, Outcome) else outcome(r) for r in results]
    assert all(o.created for o in outcomes)
    assert_caps_reached_not_exceeded(served.contexts[0].engine, [claims[0].person_id, claims[0].household_id], CAPS)
    assert_recorded_once_and_ledger_equals_engine(served.contexts[0].engine, served.library, claims, outcomes)
    groups = [context.group for context in served.contexts]
    assert all(g is not None for g in groups)
    assert max(g.largest for g in groups if g is not None) > 1, "no two requests were ever settled together"
    # The groups' audit entries and the single desk's are one chain.
    verdict = audit.verify(served.contexts[0].engine)
    assert verdict.intact and verdict.entries >= len(claims), verdict
    with Session(served.contexts[0].engine) as session:
        logged = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "settlement.create")
        )
    assert logged == len(claims)


def test_a_household_shares_its_temporary_aid_cap_across_groups(served: Served) -> None:
    claims = stays_of_one_household()
    served.register_household(claims)
    desk = served.desk("demo-desk-mhk")  # the household's stays are at Meihekou's hospital
    results = together([post(served.clients[i % 2], desk, claim) for i, claim in enumerate(claims)])
    outcomes = [outcome(r) for r in results]
    engine = served.contexts[0].engine
    assert_caps_reached_not_exceeded(engine, [HOUSEHOLD, *(c.person_id for c in claims)], HOUSEHOLD_CAP)
    records = assert_recorded_once_and_ledger_equals_engine(engine, served.library, claims, outcomes)
    aided = [r for r in records if any(t["tier"] == "temporary_aid" and t["paid"] != "0.00" for t in r["tiers"])]
    assert 1 < len(aided) < len(claims)


def test_a_retry_in_the_same_group_or_the_next_is_answered_with_the_same_bytes(served: Served) -> None:
    claims = stays_of_one_household()[:20]
    served.register_household(claims)
    desk = served.desk("demo-desk-mhk")  # the household's stays are at Meihekou's hospital
    calls = [post(served.clients[i % 2], desk, claim) for claim in claims for i in range(3)]
    results: list[httpx.Response] = together(calls)
    by_key: dict[str, list[httpx.Response]] = {}
    for call_claim, answer in zip([c for c in claims for _ in range(3)], results, strict=True):
        by_key.setdefault(call_claim.claim_id, []).append(answer)
    for answers in by_key.values():
        assert Counter(a.status_code for a in answers) == Counter([201, 200, 200])
        assert len({a.content for a in answers}) == 1
    with Session(served.contexts[0].engine) as session:
        audited = session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "settlement.create")
        )
        recorded = session.scalar(select(func.count()).select_from(Settlement))
    assert audited == recorded == len(claims)


def test_each_request_of_a_group_is_answered_on_its_own(served: Served) -> None:
    claims = stays_of_one_household()[:6]
    served.register_household(claims)
    client = served.clients[0]
    desk = served.desk("demo-desk-mhk")
    other_content = {**body(claims[1]), "total": "99999.00"}
    unregistered = {**body(claims[2]), "claim_id": "NOBODY-1", "person_id": "NOBODY"}
    calls: list[Callable[[], httpx.Response]] = [
        post(client, desk, claims[0]),
        post(client, desk, claims[1]),
        lambda: client.post("/v1/settlements", json=other_content, headers=desk),
        lambda: client.post("/v1/settlements", json=unregistered, headers=desk),
        lambda: client.post("/v1/settlements", json=body(claims[3]), headers={"Authorization": "Bearer dd_nope"}),
        lambda: client.post("/v1/settlements", json=body(claims[3]), headers=served.desk("demo-finance")),
        lambda: client.post("/v1/settlements", json=body(claims[3]), headers=served.desk("demo-desk")),
        lambda: client.post("/v1/settlements", content=b"{not json", headers=desk),
        lambda: client.post("/v1/settlements", content=b"{not json", headers={"Authorization": "Bearer dd_nope"}),
        post(client, desk, claims[4]),
    ]
    answers = together(calls)
    statuses = [a.status_code for a in answers]
    # claims[1] and its other content race: whichever comes first is recorded, the other is a 409.
    assert sorted(statuses[1:3]) == [201, 409]
    assert statuses[0] == statuses[9] == 201
    assert statuses[3:9] == [422, 401, 403, 422, 422, 401]
    assert "person_id" in answers[3].text and "hospital_id" in answers[6].text and "not valid JSON" in answers[7].text
    for answer in (a for a in answers if a.status_code >= 400):
        assert answer.headers["content-type"].startswith("application/problem+json")
    with Session(served.contexts[0].engine) as session:
        keys = sorted(session.scalars(select(Settlement.medins_setl_id)))
    assert keys == sorted(c.claim_id for c in (claims[0], claims[1], claims[4]))


def test_many_people_in_one_group_are_each_priced_as_on_their_own(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claims of different people and households in one group go through the engine together: each record
    is still the one-by-one desk's, in the order recorded, and two stays of one person follow each other."""
    categories = ("dibao", "tekun", "none", "low_income")
    claims = [
        parse_claim(
            {
                **claim.as_json(),
                "claim_id": f"MANY-{i:02d}",
                "person_id": f"MANY-P-{i % 24:02d}",  # 24 people, so some have two stays in the group
                "household_id": f"MANY-H-{i % 24 // 2:02d}",  # two people to a household
                "category": categories[i % 24 % len(categories)],
                "total": f"{9_000 + 1_731 * i}.{13 * i % 100:02d}",
                "diagnoses": ["C91.0"] if i % 3 == 0 else ["K80.2"],
            }
        )
        for i, claim in enumerate(stays_of_one_household()[:40])
    ]
    served.register_household(claims[:24], categories)
    sizes: list[int] = []

    def counted(plan: Any, together: Sequence[Claim], start: Any) -> Any:
        sizes.append(len(together))
        return settled_together(plan, together, start)

    monkeypatch.setattr(group_desk, "settled_together", counted)
    desk = served.desk("demo-desk-mhk")
    results = together([post(served.clients[0], desk, claim) for claim in claims])
    outcomes = [outcome(r) for r in results]
    assert all(o.created for o in outcomes)
    group = served.contexts[0].group
    assert group is not None and group.largest > 1
    assert max(sizes) > 1, "the engine never priced two claims in one call"
    assert_recorded_once_and_ledger_equals_engine(served.contexts[0].engine, served.library, claims, outcomes)


def test_a_group_the_database_rolls_back_is_settled_again_claim_by_claim(served: Served) -> None:
    """A deadlock between groups (PostgreSQL then rolls one back) costs the losing group a retry, one claim
    at a time, never a 503: here the first group to reach its write is made the victim."""
    claims = stays_of_one_household()[:8]
    served.register_household(claims)
    group = served.contexts[0].group
    assert group is not None
    victims: list[str] = []

    def deadlock_once(step: str, _connection: Any) -> None:
        if step == "write" and not victims:
            victims.append(step)
            raise psycopg.errors.DeadlockDetected("deadlock detected (made by the test)")

    group.before_step = deadlock_once
    desk = served.desk("demo-desk-mhk")
    results = together([post(served.clients[0], desk, claim) for claim in claims])
    assert victims == ["write"]
    assert group._transactions == 0
    outcomes = [outcome(r) for r in results]
    assert all(o.created for o in outcomes)
    assert_recorded_once_and_ledger_equals_engine(served.contexts[0].engine, served.library, claims, outcomes)


def in_one_group(
    served: Served, prefix: str, n: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Claim], Context, group_desk.GroupDesk]:
    """`n` registered stays of people who share no one, and the first app's group desk set so that they make
    one group, written four at a time, when sent together: one thread, and a desk that counts as busy, so
    the group waits for every one of them (well within half a second of each other)."""
    claims = apart(prefix, stays_of_one_household()[:n])
    served.register_household(claims)
    context = served.contexts[0]
    group = context.group
    assert group is not None
    group._workers = group._workers[:1]  # before the first request: threads start with it
    monkeypatch.setattr(group_desk, "RECENT_SECONDS", 600.0)
    group._last_group, group._last_at = 2, time.monotonic()
    group._gather_gap, group._gather_max = 0.5, 10.0
    monkeypatch.setattr(group_desk, "WRITE_CHUNK", 4)
    return claims, context, group


def test_a_key_recorded_while_its_group_is_written_fails_a_later_chunk_and_the_group_is_settled_again(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group's settlements go to PostgreSQL a chunk at a time while the next are priced (pipeline mode).
    Another writer records one of the group's keys after the group read them, as the first chunk goes: the
    insert of a later chunk fails inside the pipeline, the whole transaction rolls back, and each claim is
    settled again on its own: the key taken meanwhile is a 409, every other claim recorded once."""
    claims, context, group = in_one_group(served, "PIPE-A", 20, monkeypatch)
    send = group_desk._send_rows
    taken: list[str] = []

    def take_a_later_key_then_send(connection: psycopg.Connection[Any], written: Any) -> None:
        if not taken:
            first_chunk = {item.claim.claim_id for item, _ in written}
            later = next(claim for claim in claims if claim.claim_id not in first_chunk)
            other = parse_claim({**later.as_json(), "person_id": "PIPE-X", "household_id": "PIPE-XH"})
            settle_claim(context.engine, served.library, POLICY, other, NOW)
            taken.append(later.claim_id)
        send(connection, written)

    monkeypatch.setattr(group_desk, "_send_rows", take_a_later_key_then_send)
    transaction = group._transaction
    failed: list[type[BaseException]] = []

    def noting_failures(connection: psycopg.Connection[Any], group: Any, summed: Any) -> None:
        try:
            transaction(connection, group, summed)
        except BaseException as err:
            failed.append(type(err))
            raise

    monkeypatch.setattr(group, "_transaction", noting_failures)
    results = together([post(served.clients[0], served.desk("demo-desk-mhk"), claim) for claim in claims])
    assert failed == [psycopg.errors.UniqueViolation], "the key was not taken inside its group's pipeline"
    statuses = {claim.claim_id: answer.status_code for claim, answer in zip(claims, results, strict=True)}
    assert statuses.pop(taken[0]) == 409
    assert set(statuses.values()) == {201}
    assert group._transactions == 0
    kept = [(claim, answer) for claim, answer in zip(claims, results, strict=True) if claim.claim_id != taken[0]]
    assert_recorded_once_and_ledger_equals_engine(
        context.engine, served.library, [c for c, _ in kept], [outcome(a) for _, a in kept]
    )


def test_a_connection_lost_between_chunks_records_nothing_of_its_group(
    served: Served, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away after a group's first chunk was sent and before the next: every request of the
    group is answered 503 and nothing of it is recorded; sent again, each is recorded once."""
    claims, context, group = in_one_group(served, "PIPE-B", 12, monkeypatch)
    send = group_desk._send_rows
    sent: list[int] = []
    server = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)

    def cut_before_the_second_chunk(connection: psycopg.Connection[Any], written: Any) -> None:
        sent.append(len(written))
        if len(sent) == 2:
            with psycopg.connect(server, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s, 5000)", (connection.info.backend_pid,))
        send(connection, written)

    monkeypatch.setattr(group_desk, "_send_rows", cut_before_the_second_chunk)
    desk = served.desk("demo-desk-mhk")
    results = together([post(served.clients[0], desk, claim) for claim in claims])
    assert len(sent) >= 2
    assert {answer.status_code for answer in results} == {503}
    assert recorded(context.engine, [claim.claim_id for claim in claims]) == []
    assert group._transactions == 0
    monkeypatch.setattr(group_desk, "_send_rows", send)
    again = together([post(served.clients[0], desk, claim) for claim in claims])
    assert_recorded_once_and_ledger_equals_engine(context.engine, served.library, claims, [outcome(a) for a in again])


def test_chinese_text_is_stored_as_sent_whatever_the_client_encoding(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group desk sends its rows as UTF-8, so its connection says so, even where the environment asks
    libpq for another encoding (here GB18030, which a Chinese workstation may well set)."""
    monkeypatch.setenv("PGCLIENTENCODING", "GB18030")  # read when the group desk connects, at its first group
    claim = stays_of_one_household()[0]
    served.register_household([claim])
    answer = post(served.clients[0], served.desk("demo-desk-mhk"), claim)()
    assert answer.status_code == 201, answer.text
    sent = answer.json()
    setl_id = sent.pop("setl_id")
    with Session(served.contexts[0].engine) as session:
        stored = session.get(Settlement, setl_id)
        assert stored is not None
        assert json.loads(stored.record_json) == sent
    assert any(ord(c) > 0x2E80 for c in stored.record_json), "the record held no Chinese text to check"


def quote(client: TestClient, headers: dict[str, str], claim: Claim) -> Callable[[], httpx.Response]:
    return lambda: client.post("/v1/quotes", json=body(claim), headers=headers)


def test_quotes_go_in_groups_price_what_is_recorded_and_record_nothing(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quotes sent at once are priced together (people who share no one in one engine call; stays of one
    household each from the ledger, not from each other) and answered as the one-by-one quote is, while
    other people's settlements share their groups; a quote's own problem is its own answer; nothing of a
    quote is recorded."""

    household = stays_of_one_household()[:8]
    others = apart("MIX", stays_of_one_household()[8:14])  # settled meanwhile
    alone = apart("SOLO", stays_of_one_household()[14:26])  # quoted, each in a household of their own
    served.register_household(household + others + alone)
    client, desk = served.clients[0], served.desk("demo-desk-mhk")
    for claim in household[:3]:  # the household's year so far
        assert post(client, desk, claim)().status_code == 201
    priced: list[list[str]] = []

    def counted(plan: Any, together: Sequence[Claim], start: Any) -> Any:
        priced.append([c.claim_id for c in together])
        return settled_together(plan, together, start)

    monkeypatch.setattr(group_desk, "settled_together", counted)
    unregistered = {**body(household[3]), "person_id": "NOBODY"}
    calls: list[Callable[[], httpx.Response]] = [
        *(quote(served.clients[i % 2], desk, claim) for i, claim in enumerate(household[3:] * 2 + alone)),
        *(post(served.clients[i % 2], desk, claim) for i, claim in enumerate(others)),
        lambda: client.post("/v1/quotes", json=body(household[3]), headers={"Authorization": "Bearer dd_nope"}),
        lambda: client.post("/v1/quotes", json=body(household[3]), headers=served.desk("demo-finance")),
        lambda: client.post("/v1/quotes", json=unregistered, headers=desk),
        lambda: client.post("/v1/quotes", content=b"{not json", headers=desk),
    ]
    answers = together(calls)
    quoted, settled, problems = answers[:22], answers[22:28], answers[28:]
    engine = served.contexts[0].engine
    for claim, answer in zip(household[3:] * 2 + alone, quoted, strict=True):
        assert answer.status_code == 200, answer.text
        assert answer.json() == quote_claim(engine, served.library, POLICY, claim)
    assert [a.status_code for a in settled] == [201] * len(others)
    assert [a.status_code for a in problems] == [401, 403, 422, 422]
    assert "person_id" in problems[2].text and "not valid JSON" in problems[3].text
    assert any(sum(key.startswith("SOLO") for key in call) > 1 for call in priced), "no two quotes in one call"
    assert all(sum(key.startswith("CONC") for key in call) <= 1 for call in priced), "one household's together"
    with Session(engine) as session:
        keys = sorted(session.scalars(select(Settlement.medins_setl_id)))
    assert keys == sorted(c.claim_id for c in household[:3] + others)


def test_a_quote_beside_a_settlement_of_its_household_sees_the_ledger_before_or_after_it(served: Served) -> None:
    """A quote locks nothing: sent with a settlement of its household (which shares the temporary-aid cap),
    it is priced from the ledger as it stood either before that settlement or after it, never in between."""
    claims = stays_of_one_household()[:12]
    served.register_household(claims)
    client, desk = served.clients[0], served.desk("demo-desk-mhk")
    engine = served.contexts[0].engine
    for settled, quoted in zip(claims[0::2], claims[1::2], strict=True):
        before = quote_claim(engine, served.library, POLICY, quoted)
        settle_answer, quote_answer = together([post(client, desk, settled), quote(client, desk, quoted)])
        assert settle_answer.status_code == 201 and quote_answer.status_code == 200, quote_answer.text
        after = quote_claim(engine, served.library, POLICY, quoted)
        assert before != after, "the settlement left the quoted stay's split as it was: nothing is shown"
        assert quote_answer.json() in (before, after)  # which of the two is up to the order they arrive in


def test_a_group_desk_sums_what_was_recorded_elsewhere_since_its_last_group(served: Served) -> None:
    """A group desk's thread keeps what it has summed of each person's and household's ledger and reads
    only the entries recorded after it. Reversals by the other server and settlements by the single desk
    between its groups are in its next figures: each of its quotes and settlements is priced as from the
    whole ledger, including a person it has forgotten (a thread that keeps one entity)."""
    claims = stays_of_one_person()[:16]
    client, desk = served.clients[0], served.desk()
    engine = served.contexts[0].engine
    group = served.contexts[0].group
    assert group is not None
    for worker in group._workers:
        worker.summed = group_desk._Summed(1)  # keeps the last entity it read and forgets the others
    settled: list[Claim] = []
    reversed_ids: list[str] = []
    for i, claim in enumerate(claims):
        if i % 4 == 3:  # the single desk records this one
            assert settle_claim(engine, served.library, POLICY, claim, NOW).created
        else:
            answer = post(client, desk, claim)()
            assert answer.status_code == 201, answer.text
            if i % 4 == 1:  # and the other server reverses it
                setl_id = answer.json()["setl_id"]
                reversal = f"/v1/settlements/{setl_id}/reversal"
                back = served.clients[1].post(reversal, json={"reason": "重结"}, headers=desk)
                assert back.status_code == 201, back.text
                reversed_ids.append(setl_id)
        settled.append(claim)
        if i + 1 < len(claims):
            quoted = quote(client, desk, claims[i + 1])()
            assert quoted.status_code == 200, quoted.text
            assert quoted.json() == quote_claim(engine, served.library, POLICY, claims[i + 1]), f"after stay {i}"
    assert len(reversed_ids) == 4


def test_a_settlement_whose_household_was_not_locked_is_not_recorded(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the register moves a person to another household between the group's read of the people and its
    locks, the household the claim is written to is not the one locked: nothing is recorded, the group is
    tried again, and a claim that still finds it so is a 503 (here the locks never take the household)."""
    people_only = group_desk._LOCKS.replace(
        "UNION SELECT household_id FROM people WHERE person_id = ANY(%(settling)s::text[])", ""
    )
    assert people_only != group_desk._LOCKS
    monkeypatch.setattr(group_desk, "_LOCKS", people_only)
    claims = stays_of_one_household()[:2]
    served.register_household(claims)
    answers = together([post(served.clients[0], served.desk("demo-desk-mhk"), claim) for claim in claims])
    assert [a.status_code for a in answers] == [503, 503]
    assert all(a.headers["retry-after"] == "1" for a in answers)
    assert recorded(served.contexts[0].engine, [c.claim_id for c in claims]) == []


def test_without_the_audit_chains_head_nothing_is_recorded(served: Served) -> None:
    claim = stays_of_one_household()[0]
    served.register_household([claim])
    engine = served.contexts[0].engine
    with engine.begin() as connection:
        connection.execute(audit.HEAD.delete())
    with pytest.raises(RuntimeError, match="head row is missing"):
        served.clients[0].post("/v1/settlements", json=body(claim), headers=served.desk("demo-desk-mhk"))
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Settlement)) == 0
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 0


def test_a_group_holds_the_locks_of_its_people_and_their_register_households_and_no_others(served: Served) -> None:
    """Locked in the round trip that reads the register: the person of each settlement and the household the
    register gives them (the body names none), by the numbers the single desk takes; a quote's person and
    the person of a request whose token cannot be ours lock nothing."""
    claims = stays_of_one_household()[:3]
    served.register_household(claims)
    group = served.contexts[0].group
    assert group is not None
    held: dict[str, set[int]] = {}

    def look(step: str, connection: Any) -> None:
        rows = connection.execute(
            "SELECT (classid::bigint << 32 | objid::bigint) AS k FROM pg_locks "
            "WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        ).fetchall()
        held[step] = {(row.k + 2**63) % 2**64 - 2**63 for row in rows}

    group.before_step = look
    desk = served.desk("demo-desk-mhk")
    answer = post(served.clients[0], desk, claims[0])()
    assert answer.status_code == 201, answer.text
    assert held["write"] == set(lock_keys(claims[0].person_id, claims[0].household_id))

    held.clear()
    answer = quote(served.clients[0], desk, claims[1])()
    assert answer.status_code == 200, answer.text
    assert held == {"read": set(), "commit": set()}  # (the first look is before BEGIN)

    held.clear()
    answer = post(served.clients[0], {"Authorization": "Bearer not-one-of-ours"}, claims[2])()
    assert answer.status_code == 401, answer.text
    assert held == {"read": set(), "commit": set()}  # (the first look is before BEGIN)
