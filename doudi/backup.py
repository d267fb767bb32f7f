"""Backups of the ledger database with the database's own tools, and restoring them, checked.

A backup is one tar file holding `manifest.json` and the data: `database.sqlite3` (SQLite's online backup
API: a consistent copy while the service runs) or `database.pgdump` (pg_dump's custom format). The manifest
describes the copy itself, not the live database: per-table row counts and SHA-256 of every table's rows in
key order, ledger totals, the schema revision and the audit chain's head and verdict. On PostgreSQL the
manifest is read inside the very snapshot pg_dump dumps (`pg_export_snapshot`), so the two agree even while
desks keep settling.

Restoring refuses a target that holds any table unless forced, restores (SQLite's backup API; pg_restore in
one transaction, so a failed restore leaves the target as it was), and then describes the restored
database and compares it with the manifest, field by field: any difference is an error.

PostgreSQL's tools are found in DOUDI_PG_BIN (a folder, e.g. /usr/lib/postgresql/15/bin) or on PATH; the
password, if the URL has one, reaches them through the environment (PGPASSWORD), never the command line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, MetaData, create_engine, func, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from doudi import audit
from ledger.models import LedgerEntry, Reversal, Settlement

FORMAT: Final = "doudi-backup/1"
MANIFEST: Final = "manifest.json"
DATA: Final = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
PG_BIN_ENV: Final = "DOUDI_PG_BIN"


class BackupError(Exception):
    """A backup or restore that cannot be done or did not check out; the message says why and what to do."""


def backup(url: str, out: Path) -> dict[str, Any]:
    """Write a backup of the database at `url` to `out` (replaced only once complete); its manifest."""
    kind = _kind(url)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="doudi-backup-", dir=out.parent) as work:
        data = Path(work) / DATA[kind]
        if kind == "sqlite":
            _sqlite_copy(_sqlite_path(url), data)
            manifest = _sqlite_describe(data)
            manifest["tool"] = f"SQLite {sqlite3.sqlite_version} online backup API"
        else:
            manifest = _pg_dump(url, data)
        manifest = {
            "format": FORMAT,
            "created_at": dt.datetime.now().isoformat(timespec="seconds"),
            "database": kind,
            **manifest,
            "data": {"name": data.name, "bytes": data.stat().st_size, "sha256": _file_sha256(data)},
        }
        partial = Path(work) / "backup.tar"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
            body = (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode("utf-8")
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(body), 0o600, int(dt.datetime.now().timestamp())
            archive.addfile(info, io.BytesIO(body))
            archive.add(data, arcname=data.name)
        partial.chmod(0o600)  # a backup holds everything: people, settlements, token hashes
        os.replace(partial, out)
    return manifest


def read_manifest(file: Path) -> dict[str, Any]:
    with _open_backup(file) as archive:
        return _manifest_of(archive, file)


def restore(file: Path, url: str, force: bool = False) -> dict[str, Any]:
    """Restore the backup `file` into the database at `url` and check it against the manifest; the manifest."""
    kind = _kind(url)
    with _open_backup(file) as archive, tempfile.TemporaryDirectory(prefix="doudi-restore-") as work:
        manifest = _manifest_of(archive, file)
        if manifest["database"] != kind:
            raise BackupError(
                f"{file} is a {manifest['database']} backup; it restores into a {manifest['database']} database, "
                f"not {kind}"
            )
        data = Path(work) / DATA[kind]
        member = archive.getmember(manifest["data"]["name"]) if manifest["data"]["name"] in archive.getnames() else None
        source = archive.extractfile(member) if member is not None and member.isfile() else None
        if source is None:
            raise BackupError(f"{file}: the data ({manifest['data']['name']}) is missing from the backup")
        with source, data.open("wb") as copy:
            shutil.copyfileobj(source, copy)
        if _file_sha256(data) != manifest["data"]["sha256"]:
            raise BackupError(f"{file}: the data does not match the SHA-256 in its manifest; the file is damaged")
        if kind == "sqlite":
            _sqlite_restore(data, _sqlite_path(url), force)
            found = _sqlite_describe(_sqlite_path(url))
        else:
            found = _pg_restore(data, url, manifest, force)
    differences = _differences(manifest, found)
    if differences:
        raise BackupError(
            "the restored database does not match the backup's manifest:\n  " + "\n  ".join(differences[:20])
        )
    return manifest


# What a database holds, as the manifest records it.

_COMPARED: Final = ("schema_revision", "tables", "table_sha256", "ledger", "audit")


def describe(connection: Connection) -> dict[str, Any]:
    """Row counts and row hashes of every table, ledger totals, schema revision, audit chain: read in
    `connection`'s transaction (one snapshot)."""
    metadata = MetaData()
    metadata.reflect(bind=connection)
    counts, digests = {}, {}
    for name in sorted(metadata.tables):
        table = metadata.tables[name]
        order = list(table.primary_key.columns) or list(table.columns)
        digest, count = hashlib.sha256(), 0
        rows = connection.execution_options(yield_per=10_000).execute(select(table).order_by(*order))
        for row in rows:
            digest.update(json.dumps(list(row), ensure_ascii=False, default=str).encode("utf-8") + b"\n")
            count += 1
        counts[name], digests[name] = count, digest.hexdigest()
    revision = None
    if "alembic_version" in metadata.tables:
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return {
        "schema_revision": revision,
        "tables": counts,
        "table_sha256": digests,
        "ledger": _ledger_totals(connection) if "ledger_entries" in metadata.tables else None,
        "audit": _audit_state(connection, metadata),
    }


def _ledger_totals(connection: Connection) -> dict[str, Any]:
    with Session(bind=connection) as session:
        return _totals(session)


def _totals(session: Session) -> dict[str, Any]:
    by_fund = session.execute(
        select(LedgerEntry.kind, LedgerEntry.tier, func.count(), func.sum(LedgerEntry.amount))
        .group_by(LedgerEntry.kind, LedgerEntry.tier)
        .order_by(LedgerEntry.kind, LedgerEntry.tier)
    ).all()
    settled = session.execute(
        select(
            func.count(),
            func.sum(Settlement.total),
            func.sum(Settlement.fund_paid),
            func.sum(Settlement.patient_burden),
        )
    ).one()
    net = sum((amount for *_, amount in by_fund), start=0)
    return {
        "entries": {f"{kind} {tier}": {"count": count, "amount": str(amount)} for kind, tier, count, amount in by_fund},
        "net_amount": str(net),
        "settlements": {
            "count": settled[0],
            "total": str(settled[1] or 0),
            "fund_paid": str(settled[2] or 0),
            "patient_burden": str(settled[3] or 0),
        },
        "reversals": session.scalar(select(func.count()).select_from(Reversal)),
    }


def _audit_state(connection: Connection, metadata: MetaData) -> dict[str, Any] | None:
    if "audit_log" not in metadata.tables:
        return None
    if "entry_sha256" not in metadata.tables["audit_log"].columns:  # a database from before the chain (0007)
        return {"entries": connection.scalar(text("SELECT count(*) FROM audit_log")), "chained": False}
    verdict = audit.verify(connection)
    return {
        "entries": verdict.entries,
        "chained": True,
        "intact": verdict.intact,
        "head_seq": verdict.head_seq,
        "head_sha256": verdict.head_sha256,
        "broken": None if verdict.broken is None else verdict.broken.message,
    }


def _differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    out = []
    for key in _COMPARED:
        want, got = expected.get(key), found.get(key)
        if isinstance(want, dict) and isinstance(got, dict):
            for name in sorted(set(want) | set(got)):
                if want.get(name) != got.get(name):
                    out.append(f"{key}.{name}: backup {want.get(name)!r}, restored {got.get(name)!r}")
        elif want != got:
            out.append(f"{key}: backup {want!r}, restored {got!r}")
    return out


# SQLite.


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError(f"{url}: an in-memory SQLite database cannot be backed up or restored; name a file")
    return Path(database)


def _sqlite_copy(source: Path, target: Path) -> None:
    if not source.is_file():
        raise BackupError(f"no SQLite database at {source}")
    with _closing(sqlite3.connect(source, timeout=30)) as src, _closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it


def _sqlite_describe(path: Path) -> dict[str, Any]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            return describe(connection)
    finally:
        engine.dispose()


def _sqlite_restore(data: Path, target: Path, force: bool) -> None:
    if target.exists():
        with _closing(sqlite3.connect(target)) as existing:
            tables = [r[0] for r in existing.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if tables and not force:
            raise BackupError(_not_empty(str(target), tables))
    target.parent.mkdir(parents=True, exist_ok=True)
    with _closing(sqlite3.connect(data)) as src, _closing(sqlite3.connect(target, timeout=30)) as dst:
        # Replaces every page of the target in one step; a service still using the file would be in the way.
        src.backup(dst)


@contextmanager
def _closing(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        yield connection
    finally:
        connection.close()


# PostgreSQL.


def _pg_dump(url: str, data: Path) -> dict[str, Any]:
    tool = _pg_tool("pg_dump")
    tool_major = _tool_major(tool)
    engine = create_engine(_psycopg(url))
    try:
        with engine.connect() as plain:
            connection = plain.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                connection.execute(text("SET TRANSACTION READ ONLY"))
                server = int(connection.execute(text("SHOW server_version_num")).scalar_one())
                if tool_major < server // 10000:
                    raise BackupError(
                        f"{tool} is version {tool_major}, older than the server (PostgreSQL {server // 10000}), and "
                        f"cannot dump it: install the PostgreSQL {server // 10000} client tools (Debian: "
                        f"postgresql-client-{server // 10000}) and put them first on PATH or in {PG_BIN_ENV}"
                    )
                snapshot = connection.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                _run([tool, "--format=custom", f"--snapshot={snapshot}", f"--file={data}"], url)
                manifest = describe(connection)
    finally:
        engine.dispose()
    return {**manifest, "tool": f"pg_dump {tool_major}", "server_version": server}


def _pg_restore(data: Path, url: str, manifest: dict[str, Any], force: bool) -> dict[str, Any]:
    tool = _pg_tool("pg_restore")
    tool_major = _tool_major(tool)
    dumped_by = int(str(manifest.get("tool", "pg_dump 0")).split()[-1])
    if tool_major < dumped_by:
        raise BackupError(
            f"the backup was written by pg_dump {dumped_by} and {tool} is version {tool_major}, which cannot read "
            f"it: install the PostgreSQL {dumped_by} client tools and put them first on PATH or in {PG_BIN_ENV}"
        )
    engine = create_engine(_psycopg(url))
    try:
        with engine.connect() as connection:
            server = int(connection.execute(text("SHOW server_version_num")).scalar_one())
            tables = inspect(connection).get_table_names()
        source_server = int(manifest.get("server_version", 0))
        if server // 10000 < source_server // 10000:
            raise BackupError(
                f"the backup comes from PostgreSQL {source_server // 10000}; restore it into that version or newer, "
                f"not {server // 10000}"
            )
        if tables and not force:
            raise BackupError(_not_empty(_safe(url), tables))
        options = ["--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error"]
        if tables:
            options += ["--clean", "--if-exists"]
        _run([tool, *options, "--dbname", _dbname(url), str(data)], url)
        with engine.connect() as connection, connection.begin():
            return describe(connection)
    finally:
        engine.dispose()


def _pg_tool(name: str) -> str:
    folder = os.environ.get(PG_BIN_ENV)
    found = shutil.which(name, path=folder) if folder else shutil.which(name)
    if found is None:
        where = f"{PG_BIN_ENV} ({folder})" if folder else "PATH"
        raise BackupError(
            f"{name} was not found on {where}: install PostgreSQL's client tools of the server's version "
            f"(Debian: apt install postgresql-client-15) or set {PG_BIN_ENV} to the folder holding {name}"
        )
    return found


def _tool_major(tool: str) -> int:
    done = subprocess.run([tool, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"\) (\d+)", done.stdout)
    if done.returncode != 0 or match is None:
        raise BackupError(f"{tool} --version did not say its version: {done.stdout.strip() or done.stderr.strip()}")
    return int(match[1])


def _run(command: list[str], url: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env=_libpq_env(url), check=False)
    if done.returncode != 0:
        said = "\n  ".join(done.stderr.strip().splitlines()[-8:])
        raise BackupError(f"{Path(command[0]).name} failed (exit {done.returncode}):\n  {said}")


def _libpq_env(url: str) -> dict[str, str]:
    """The connection as libpq's environment variables, so that no password appears on a command line."""
    parsed = make_url(url)
    env = dict(os.environ)
    values = {
        "PGHOST": parsed.host or parsed.query.get("host"),
        "PGPORT": str(parsed.port) if parsed.port else parsed.query.get("port"),
        "PGUSER": parsed.username,
        "PGPASSWORD": parsed.password,
        "PGDATABASE": parsed.database,
        "PGSSLMODE": parsed.query.get("sslmode"),
    }
    env.update({k: str(v) for k, v in values.items() if v})
    return env


def _dbname(url: str) -> str:
    return str(make_url(url).database)


def _psycopg(url: str) -> URL:
    return make_url(url).set(drivername="postgresql+psycopg")


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# Both.


def _kind(url: str) -> str:
    backend = make_url(url).get_backend_name()
    if backend not in DATA:
        raise BackupError(f"{url}: only SQLite and PostgreSQL databases are backed up, not {backend}")
    return backend


def _not_empty(where: str, tables: list[str]) -> str:
    shown = ", ".join(sorted(tables)[:5]) + (" …" if len(tables) > 5 else "")
    return (
        f"the target database {where} is not empty ({len(tables)} tables: {shown}); restore into an empty "
        "database, or pass --force to replace what it holds"
    )


@contextmanager
def _open_backup(file: Path) -> Iterator[tarfile.TarFile]:
    try:
        archive = tarfile.open(file, "r:")  # noqa: SIM115 - closed below; opening is what may fail
    except (OSError, tarfile.TarError) as err:
        raise BackupError(f"{file}: not a backup written by `doudi backup` ({err})") from None
    with archive:
        yield archive


def _manifest_of(archive: tarfile.TarFile, file: Path) -> dict[str, Any]:
    try:
        member = archive.getmember(MANIFEST)
        raw = archive.extractfile(member) if member.isfile() else None
        manifest = json.load(raw) if raw is not None else None
    except (KeyError, ValueError, tarfile.TarError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{file}: no {FORMAT} manifest in it; not a backup written by `doudi backup`")
    return manifest


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
