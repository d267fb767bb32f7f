"""`doudi backup` and `doudi restore` on SQLite and PostgreSQL, with the databases' own tools (SQLite's
online backup API; pg_dump and pg_restore): a seeded ledger (demo region, settlements, a reversal, users)
backed up, restored into an empty database, and found identical there: row counts and row hashes of every
table, ledger totals, the audit chain (verified), every statement file of every month byte for byte. A
backup taken while a desk keeps settling restores to exactly what its manifest says. A non-empty target is
refused unless forced, a damaged file is refused, and missing or too old PostgreSQL tools are named.
"""

from __future__ import annotations

import datetime as dt
import tarfile
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from doudi import backup, reconcile, services
from doudi.cli import app
from doudi.desk import settle_claim
from reconciliation.files import statement_files
from reconciliation.frames import Month
from settlement.claims import parse_claim
from tests.conftest import _postgres_database
from tests.integration.test_audit_chain import FAMILY, NOW, seed_service

runner = CliRunner()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def source_and_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty databases of one kind: the one backed up, and the one restored into."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'source.sqlite3'}", f"sqlite:///{tmp_path / 'restored' / 'target.sqlite3'}"
        return
    sources, targets = cast(Generator[str], _postgres_database()), cast(Generator[str], _postgres_database())
    try:
        yield next(sources), next(targets)
    finally:
        for generator in (sources, targets):
            generator.close()


def doudi(*args: str) -> tuple[int, str]:
    done = runner.invoke(app, list(args))
    return done.exit_code, done.output


def described(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection, connection.begin():
            return backup.describe(connection)
    finally:
        engine.dispose()


def statements(url: str) -> dict[str, dict[str, bytes]]:
    """Every month's statement files, as finance would download them."""
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            return {
                m["month"]: statement_files(reconcile.statement(session, Month.parse(m["month"])))
                for m in reconcile.months(session)
            }
    finally:
        engine.dispose()


def test_a_backup_restores_into_an_empty_database_exactly(source_and_target: tuple[str, str], tmp_path: Path) -> None:
    source, target = source_and_target
    seed_service(source)
    before = described(source)
    assert before["tables"]["settlements"] == 12 and before["tables"]["reversals"] == 1
    assert before["ledger"]["settlements"]["count"] == 12 and before["audit"]["intact"]
    months = statements(source)
    assert months and all(files for files in months.values())

    file = tmp_path / "backups" / "doudi.backup"
    code, out = doudi("backup", "--out", str(file), "--database", source)
    assert code == 0, out
    assert f"audit chain head #{before['audit']['head_seq']} {before['audit']['head_sha256']}" in out
    manifest = backup.read_manifest(file)
    for key in ("tables", "table_sha256", "ledger", "audit", "schema_revision"):
        assert manifest[key] == before[key], key
    assert file.stat().st_mode & 0o077 == 0  # readable by its owner only

    code, out = doudi("restore", str(file), "--database", target)
    assert code == 0, out
    assert "every check holds" in out
    after = described(target)
    assert after == before
    assert statements(target) == months
    code, out = doudi(
        "audit",
        "verify",
        "--database",
        target,
        "--anchor",
        f"{before['audit']['head_seq']}:{before['audit']['head_sha256']}",
    )
    assert code == 0 and f"intact: {before['audit']['entries']} entries" in out, out

    restored = create_engine(target)
    with pytest.raises(DBAPIError, match="append-only"), restored.begin() as connection:
        connection.execute(text("DELETE FROM audit_log"))  # the database's own guard came back too
    restored.dispose()

    # A second restore over what is now there is refused, unless forced.
    code, out = doudi("restore", str(file), "--database", target)
    assert code == 1 and "is not empty" in out and "--force" in out, out
    assert described(target) == before
    code, out = doudi("restore", str(file), "--database", target, "--force")
    assert code == 0, out
    assert described(target) == before

    # The service carries on from the restored database: a new settlement, the chain continued.
    library = services.open_library()
    engine = create_engine(target)
    claim = parse_claim({**FAMILY[1], "claim_id": "AFTER-RESTORE"})
    assert settle_claim(engine, library, "jl-meihekou", claim, NOW).created
    engine.dispose()
    code, out = doudi("audit", "verify", "--database", target)
    assert code == 0 and f"intact: {before['audit']['entries'] + 1} entries" in out, out


def test_a_backup_taken_while_a_desk_settles_restores_to_what_its_manifest_says(
    source_and_target: tuple[str, str], tmp_path: Path
) -> None:
    source, target = source_and_target
    seed_service(source)
    library = services.open_library()
    engine = create_engine(source, connect_args={"timeout": 30} if source.startswith("sqlite") else {})
    done, settled = threading.Event(), []

    def desk() -> None:
        i = 0
        while not done.is_set() and i < 200:
            claim = parse_claim({**FAMILY[2], "claim_id": f"DURING-{i:03d}"})
            settled.append(settle_claim(engine, library, "jl-meihekou", claim, NOW + dt.timedelta(seconds=i)))
            i += 1

    writer = threading.Thread(target=desk)
    writer.start()
    try:
        while len(settled) < 3:
            writer.join(0.05)
        file = tmp_path / "during.backup"
        code, out = doudi("backup", "--out", str(file), "--database", source)
    finally:
        done.set()
        writer.join(60)
        engine.dispose()
    assert code == 0, out
    manifest = backup.read_manifest(file)
    assert 12 + 3 <= manifest["tables"]["settlements"] <= 12 + len(settled)
    assert manifest["audit"]["intact"]
    code, out = doudi("restore", str(file), "--database", target)
    assert code == 0, out  # the restore compares every table's rows and totals with the manifest


def test_a_damaged_or_foreign_file_is_refused_and_the_target_left_alone(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path / 'source.sqlite3'}"
    seed_service(source)
    file = tmp_path / "good.backup"
    assert doudi("backup", "--out", str(file), "--database", source)[0] == 0

    damaged = tmp_path / "damaged.backup"
    with tarfile.open(file) as archive:
        inside = archive.getmember("database.sqlite3").offset_data + 3000
    data = bytearray(file.read_bytes())
    data[inside] ^= 0xFF  # one byte of the database copy
    damaged.write_bytes(bytes(data))
    target = tmp_path / "target.sqlite3"
    code, out = doudi("restore", str(damaged), "--database", f"sqlite:///{target}")
    assert code == 1 and "does not match the SHA-256 in its manifest" in out, out
    assert not target.exists()

    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as archive:
        archive.add(tmp_path / "source.sqlite3", arcname="database.sqlite3")
    code, out = doudi("restore", str(foreign), "--database", f"sqlite:///{target}")
    assert code == 1 and "not a backup written by `doudi backup`" in out, out
    code, out = doudi("restore", str(tmp_path / "source.sqlite3"), "--database", f"sqlite:///{target}")
    assert code == 1 and "not a backup" in out, out
    code, out = doudi("restore", str(file), "--database", "postgresql://postgres@127.0.0.1:1/none")
    assert code == 1 and "is a sqlite backup" in out, out
    assert not target.exists()


def test_missing_postgresql_tools_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOUDI_PG_BIN", str(tmp_path))  # a folder without them
    code, out = doudi("backup", "--out", str(tmp_path / "x.backup"), "--database", "postgresql://u@127.0.0.1:1/db")
    assert code == 1 and "pg_dump was not found on DOUDI_PG_BIN" in out and "postgresql-client" in out, out
    assert not (tmp_path / "x.backup").exists()


def _old_tool(folder: Path, name: str, version: str) -> None:
    tool = folder / name
    tool.write_text(f'#!/bin/sh\necho "{name} (PostgreSQL) {version}"\n', encoding="utf-8")
    tool.chmod(0o755)


@pytest.mark.postgres
def test_postgresql_tools_older_than_the_server_or_the_backup_are_refused(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_service(postgres_url)
    file = tmp_path / "pg.backup"
    assert doudi("backup", "--out", str(file), "--database", postgres_url)[0] == 0
    old = tmp_path / "old-tools"
    old.mkdir()
    _old_tool(old, "pg_dump", "9.6.24")
    _old_tool(old, "pg_restore", "9.6.24")
    monkeypatch.setenv("DOUDI_PG_BIN", str(old))
    code, out = doudi("backup", "--out", str(tmp_path / "again.backup"), "--database", postgres_url)
    assert code == 1 and "is version 9, older than the server" in out, out
    code, out = doudi("restore", str(file), "--database", postgres_url, "--force")
    assert code == 1 and "which cannot read it" in out, out
