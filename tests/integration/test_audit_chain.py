"""The audit log's hash chain on SQLite and PostgreSQL: intact after the service's own writes (settlements,
a reversal, users, reference data, publishing) and after desks settling in parallel on PostgreSQL; every
kind of tampering a database owner could do (an entry changed, deleted, inserted, reordered, the last one
deleted, the head changed) found by `doudi audit verify` at the right entry with exit code 1; the database
refusing UPDATE and DELETE on the audit log and the ledger unless its owner switches that off.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from api.app import create_app
from doudi import demo, services
from doudi.accounts import Principal
from doudi.desk import reverse_settlement, settle_claim
from ledger.audit_chain import GENESIS, entry_sha256
from ledger.migrations import upgrade
from settlement.claims import parse_claim
from tests.conftest import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[2]
FAMILY = json.loads((ROOT / "examples/family-year.json").read_text(encoding="utf-8"))["claims"]
NOW = dt.datetime(2014, 12, 1, 9, 0)
runner = CliRunner()


def seed_service(url: str) -> list[str]:
    """The service's usual writes, each with its audit entry: the demo region (policies published, people,
    users), twelve settlements by a desk, one of them reversed, a user created and their tokens revoked. The
    settlement ids."""
    files = services.open_library()
    app = create_app(url, files, clock=lambda: NOW)
    ctx = app.state.context
    tokens = demo.seed(ctx.engine, ctx.catalogue, files, NOW)
    client = TestClient(app)
    desk = {"Authorization": f"Bearer {tokens['demo-desk']}"}
    admin = {"Authorization": f"Bearer {tokens['demo-admin']}"}
    setl_ids = []
    for i in range(12):
        claim = {**FAMILY[1 + i % 2], "claim_id": f"AUDIT-{i:02d}"}
        answer = client.post("/v1/settlements", json=claim, headers=desk)
        assert answer.status_code == 201, answer.text
        setl_ids.append(answer.json()["setl_id"])
    reversal = client.post(f"/v1/settlements/{setl_ids[3]}/reversal", json={"reason": "wrong patient"}, headers=desk)
    assert reversal.status_code == 201, reversal.text
    assert client.post("/v1/users", json={"name": "audit-clerk", "role": "finance"}, headers=admin).status_code == 201
    assert client.post("/v1/users/audit-clerk/revoke", json={}, headers=admin).status_code == 200
    ctx.close()
    return setl_ids


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], str]]:
    """A function giving a fresh copy of one seeded database of each kind (seeding once per module)."""
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("seeded")
        template = folder / "template.sqlite3"
        seed_service(f"sqlite:///{template}")

        def sqlite_copy() -> str:
            copy = folder / f"{uuid.uuid4().hex[:8]}.sqlite3"
            shutil.copyfile(template, copy)
            return f"sqlite:///{copy}"

        yield sqlite_copy
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL tests skipped: DOUDI_TEST_POSTGRES_URL is not set")
    server = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    names = [f"doudi_test_{uuid.uuid4().hex[:12]}"]
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{names[0]}"'))
    seed_service(server.set(database=names[0]).render_as_string(hide_password=False))

    def postgres_copy() -> str:
        names.append(f"doudi_test_{uuid.uuid4().hex[:12]}")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{names[-1]}" TEMPLATE "{names[0]}"'))
        return server.set(database=names[-1]).render_as_string(hide_password=False)

    try:
        yield postgres_copy
    finally:
        with admin.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def verify(url: str, *args: str) -> tuple[int, str]:
    done = runner.invoke(app_cli(), ["audit", "verify", "--database", url, *args])
    return done.exit_code, done.output


def app_cli() -> Any:
    from doudi.cli import app

    return app


def rows(url: str, sql: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql)))
    finally:
        engine.dispose()


def as_owner(url: str, change: Callable[[Connection], None]) -> None:
    """Run `change` as the database's owner would: with the append-only triggers switched off first."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            else:
                connection.execute(text("DROP TRIGGER audit_log_no_update"))
                connection.execute(text("DROP TRIGGER audit_log_no_delete"))
            change(connection)
    finally:
        engine.dispose()


def test_the_chain_holds_after_the_service_writes(seeded: Callable[[], str]) -> None:
    url = seeded()
    entries = rows(url, "SELECT seq, prev_sha256, entry_sha256, action FROM audit_log ORDER BY seq")
    actions = [e.action for e in entries]
    assert actions.count("settlement.create") == 12 and "settlement.reverse" in actions
    assert {"policy.publish", "demo.seed", "user.create", "token.revoke"} <= set(actions)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert [e.prev_sha256 for e in entries] == [GENESIS] + [e.entry_sha256 for e in entries[:-1]]
    assert rows(url, "SELECT seq, entry_sha256 FROM audit_chain") == [(len(entries), entries[-1].entry_sha256)]

    code, out = verify(url)
    assert code == 0, out
    assert f"audit log intact: {len(entries)} entries; head #{len(entries)} {entries[-1].entry_sha256}" in out


def test_the_admin_reads_the_log_a_page_at_a_time_and_checks_it(seeded: Callable[[], str]) -> None:
    url = seeded()
    app = create_app(url, services.open_library(), clock=lambda: NOW)
    tokens = demo.seed(app.state.context.engine, app.state.context.catalogue, services.open_library(), NOW)
    client = TestClient(app)
    admin = {"Authorization": f"Bearer {tokens['demo-admin']}"}
    total = rows(url, "SELECT count(*) FROM audit_log")[0][0]

    seen: list[int] = []
    params: dict[str, Any] = {"limit": 7}
    while True:
        page = client.get("/v1/audit", params=params, headers=admin).json()
        seen += [e["seq"] for e in page["entries"]]
        if page["next_before"] is None:
            break
        params["before"] = page["next_before"]
    assert seen == list(range(total, 0, -1))

    creates = client.get("/v1/audit", params={"action": "settlement.create", "limit": 1000}, headers=admin).json()
    assert len(creates["entries"]) == 12 and {e["user"] for e in creates["entries"]} == {"demo-desk"}
    family = client.get("/v1/audit", params={"action": "settlement.*", "limit": 1000}, headers=admin).json()
    assert sorted({e["action"] for e in family["entries"]}) == ["settlement.create", "settlement.reverse"]
    by_admin = client.get("/v1/audit", params={"user": "demo-admin"}, headers=admin).json()["entries"]
    assert {e["action"] for e in by_admin} == {"user.create", "token.revoke"}
    later = client.get(
        "/v1/audit", params={"since": "2014-12-01T09:00:00", "until": "2014-12-01T09:00:01"}, headers=admin
    )
    assert len(later.json()["entries"]) == total
    assert client.get("/v1/audit", params={"until": "2014-12-01T08:59:59"}, headers=admin).json()["entries"] == []

    checked = client.get("/v1/audit/verify", headers=admin).json()
    assert checked["intact"] and checked["entries"] == total and checked["broken"] is None
    assert (
        client.get("/v1/audit/verify", headers={"Authorization": f"Bearer {tokens['demo-finance']}"}).status_code == 403
    )
    app.state.context.close()


@pytest.mark.postgres
def test_desks_settling_in_parallel_on_postgresql_leave_one_unbroken_chain(postgres_url: str) -> None:
    upgrade(postgres_url)
    engine = create_engine(postgres_url, pool_size=40, max_overflow=5)
    library = services.open_library()
    desk = Principal("desk-parallel", "desk", "JL-PROV-H001", "tok0000001")
    claims = [
        parse_claim(
            {
                **FAMILY[1],
                "claim_id": f"PAR-{i:02d}",
                "person_id": f"PAR-P-{i:02d}",
                "household_id": f"PAR-H-{i:02d}",
            }
        )
        for i in range(40)
    ]
    barrier = threading.Barrier(len(claims), timeout=60)
    setl_ids: list[str] = []
    failures: list[BaseException] = []

    def settle_and_maybe_reverse(i: int) -> None:
        try:
            barrier.wait()
            outcome = settle_claim(engine, library, "jl-meihekou", claims[i], NOW, desk)
            setl_ids.append(outcome.setl_id)
            if i % 4 == 0:
                reverse_settlement(engine, outcome.setl_id, "parallel test", NOW, desk)
        except BaseException as err:
            failures.append(err)

    threads = [threading.Thread(target=settle_and_maybe_reverse, args=(i,)) for i in range(len(claims))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    engine.dispose()
    assert failures == [] and len(setl_ids) == 40

    entries = rows(postgres_url, "SELECT seq, prev_sha256, entry_sha256, action FROM audit_log ORDER BY seq")
    assert len(entries) == 50 and [e.seq for e in entries] == list(range(1, 51))
    assert [e.prev_sha256 for e in entries] == [GENESIS] + [e.entry_sha256 for e in entries[:-1]]
    code, out = verify(postgres_url)
    assert code == 0 and "intact: 50 entries" in out, out


def forged(connection: Connection, seq: int, prev: str) -> None:
    """An entry someone who knows the hash formula writes by hand, hash and all."""
    at, user, action, target = dt.datetime(2014, 12, 1, 9, 30), "demo-finance", "settlement.reverse", "nothing-here"
    own = entry_sha256(seq, prev, at, user, None, action, target, "{}")
    connection.execute(
        text(
            "INSERT INTO audit_log (at, user_name, token_id, action, target, detail, seq, prev_sha256, entry_sha256) "
            "VALUES (:at, :user, NULL, :action, :target, '{}', :seq, :prev, :own)"
        ),
        {"at": at, "user": user, "action": action, "target": target, "seq": seq, "prev": prev, "own": own},
    )


def hash_of(connection: Connection, seq: int) -> str:
    return str(connection.execute(text("SELECT entry_sha256 FROM audit_log WHERE seq = :s"), {"s": seq}).scalar_one())


def last(connection: Connection) -> int:
    return int(connection.execute(text("SELECT max(seq) FROM audit_log")).scalar_one())


def change_one(connection: Connection) -> None:
    connection.execute(text("UPDATE audit_log SET target = 'someone-else' WHERE seq = 5"))


def delete_one(connection: Connection) -> None:
    connection.execute(text("DELETE FROM audit_log WHERE seq = 5"))


def delete_the_last(connection: Connection) -> None:
    connection.execute(text("DELETE FROM audit_log WHERE seq = :s"), {"s": last(connection)})


def delete_and_renumber(connection: Connection) -> None:
    connection.execute(text("DELETE FROM audit_log WHERE seq = 5"))
    connection.execute(text("UPDATE audit_log SET seq = seq + 1000000 WHERE seq > 5"))
    connection.execute(text("UPDATE audit_log SET seq = seq - 1000001 WHERE seq > 1000000"))


def insert_at_the_end(connection: Connection) -> None:
    end = last(connection)
    forged(connection, end + 1, hash_of(connection, end))


def insert_in_the_middle(connection: Connection) -> None:
    connection.execute(text("UPDATE audit_log SET seq = seq + 1000000 WHERE seq >= 5"))
    connection.execute(text("UPDATE audit_log SET seq = seq - 999999 WHERE seq > 1000000"))
    forged(connection, 5, hash_of(connection, 4))


def swap_two(connection: Connection) -> None:
    connection.execute(text("UPDATE audit_log SET seq = -5 WHERE seq = 5"))
    connection.execute(text("UPDATE audit_log SET seq = 5 WHERE seq = 6"))
    connection.execute(text("UPDATE audit_log SET seq = 6 WHERE seq = -5"))


def change_the_head(connection: Connection) -> None:
    connection.execute(text("UPDATE audit_chain SET entry_sha256 = :h"), {"h": "f" * 64})


TAMPERING = {
    # how: (what the owner does, the entry reported (None: the last, "next": one past it), the kind reported)
    "an entry changed": (change_one, 5, "changed"),
    "an entry deleted": (delete_one, 5, "deleted"),
    "an entry deleted, the rest renumbered": (delete_and_renumber, 5, "deleted"),
    "the last entry deleted": (delete_the_last, None, "deleted"),
    "an entry added at the end, hash and all": (insert_at_the_end, "next", "inserted"),
    "an entry inserted in the middle, hash and all": (insert_in_the_middle, 5, "inserted"),
    "two entries swapped": (swap_two, 5, "reordered"),
    "the chain's head changed": (change_the_head, None, "head"),
}


@pytest.mark.parametrize("how", list(TAMPERING))
def test_tampering_in_the_database_is_found_at_the_entry_it_touched(seeded: Callable[[], str], how: str) -> None:
    url = seeded()
    tamper, where, kind = TAMPERING[how]
    count = rows(url, "SELECT count(*) FROM audit_log")[0][0]
    as_owner(url, tamper)
    code, out = verify(url)
    assert code == 1, out
    entry = count + 1 if where == "next" else count if where is None else where
    assert f"BROKEN at entry #{entry} ({kind})" in out, out
    # The entries before the break are reported intact, and nothing is said to be intact beyond it.
    assert re.search(r"the (\d+) entries before it are intact", out), out


def test_a_chain_rebuilt_by_hand_needs_a_noted_head_to_be_caught(seeded: Callable[[], str]) -> None:
    """Someone who changes entry 3 and recomputes every hash after it (and the head) leaves a chain that
    holds together; the head hash noted before (by verify, or in a backup's manifest) no longer matches."""
    url = seeded()
    code, out = verify(url)
    noted = re.search(r"head #(\d+) ([0-9a-f]{64})", out)
    assert code == 0 and noted is not None

    def rebuild(connection: Connection) -> None:
        connection.execute(text("UPDATE audit_log SET target = 'rewritten' WHERE seq = 3"))
        prev = hash_of(connection, 2)
        for row in connection.execute(text("SELECT * FROM audit_log WHERE seq >= 3 ORDER BY seq")).mappings().all():
            at = row["at"] if isinstance(row["at"], dt.datetime) else dt.datetime.fromisoformat(row["at"])
            own = entry_sha256(
                row["seq"], prev, at, row["user_name"], row["token_id"], row["action"], row["target"], row["detail"]
            )
            connection.execute(
                text("UPDATE audit_log SET prev_sha256 = :p, entry_sha256 = :o WHERE id = :i"),
                {"p": prev, "o": own, "i": row["id"]},
            )
            prev = own
        connection.execute(text("UPDATE audit_chain SET entry_sha256 = :h"), {"h": prev})

    as_owner(url, rebuild)
    assert verify(url)[0] == 0  # the limit of any hash chain kept in the database it protects
    code, out = verify(url, "--anchor", f"{noted[1]}:{noted[2]}")
    assert code == 1 and f"BROKEN at entry #{noted[1]} (changed)" in out, out
    assert verify(url, "--anchor", "nonsense")[0] == 1


@pytest.mark.parametrize("table", ["audit_log", "ledger_entries"])
def test_the_database_refuses_to_change_or_delete_the_audit_log_and_the_ledger(
    seeded: Callable[[], str], table: str
) -> None:
    url = seeded()
    engine = create_engine(url)
    statements = [f"UPDATE {table} SET id = id", f"DELETE FROM {table}"]
    if engine.dialect.name == "postgresql":
        statements.append(f"TRUNCATE {table} CASCADE")
    try:
        for statement in statements:
            with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
                connection.execute(text(statement))
    finally:
        engine.dispose()
    assert verify(url)[0] == 0


def test_no_code_path_updates_or_deletes_audit_entries_or_ledger_entries() -> None:
    """Every module that talks to the database, read for any UPDATE or DELETE of either table (the database
    refuses them anyway; this says the code never tries)."""
    offenders = []
    pattern = re.compile(
        r"(update|delete)\(\s*(AuditEntry|LedgerEntry)|(UPDATE|DELETE FROM|TRUNCATE)\s+(audit_log|ledger_entries)"
        r"|\.delete\(\s*(entry|audit|ledger)",
        re.IGNORECASE,
    )
    for folder in ("api", "doudi", "web", "ledger", "interop"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_entries_written_before_the_chain_are_chained_in_the_order_they_were_written(database_url: str) -> None:
    upgrade(database_url, "0006")
    engine = create_engine(database_url)
    written = [(dt.datetime(2014, 7, 1, 9, i, 0, 1000 * i), f"user-{i % 3}", f"target-{i}") for i in range(30)]
    with engine.begin() as connection:
        for at, user, target in written:
            connection.execute(
                text(
                    "INSERT INTO audit_log (at, user_name, token_id, action, target, detail) "
                    "VALUES (:at, :user, NULL, 'settlement.create', :target, '{\"k\": 1}')"
                ),
                {"at": at, "user": user, "target": target},
            )
    engine.dispose()
    upgrade(database_url)

    entries = rows(database_url, "SELECT seq, target, prev_sha256, entry_sha256 FROM audit_log ORDER BY id")
    assert [(e.seq, e.target) for e in entries] == [(i + 1, f"target-{i}") for i in range(30)]
    prev = GENESIS
    for (at, user, target), entry in zip(written, entries, strict=True):
        assert entry.entry_sha256 == entry_sha256(
            entry.seq, prev, at, user, None, "settlement.create", target, '{"k": 1}'
        )
        prev = entry.entry_sha256
    assert verify(database_url)[1].startswith("audit log intact: 30 entries")

    # The service appends after them.
    seed_service(database_url)
    code, out = verify(database_url)
    assert code == 0 and rows(database_url, "SELECT prev_sha256 FROM audit_log WHERE seq = 31")[0][0] == prev, out


def test_verify_names_a_database_it_cannot_check_and_creates_none(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite3"
    code, out = verify(f"sqlite:///{missing}")
    assert code == 1 and "no SQLite database at" in out and not missing.exists()
    upgrade(f"sqlite:///{tmp_path / 'old.sqlite3'}", "0006")
    code, out = verify(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    assert code == 1 and "has no chained audit log" in out, out
    code, out = verify("postgresql://nobody@127.0.0.1:1/none")
    assert code == 1 and "cannot read the audit log" in out, out
