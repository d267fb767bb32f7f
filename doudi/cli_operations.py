"""The `doudi` commands for the county's IT staff: `audit verify`, `backup`, `restore` (registered in
doudi/cli.py). Exit codes as the rest of the command: 0 done, 1 a problem (printed), 2 a usage error."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from sqlalchemy.exc import SQLAlchemyError

audit_app = typer.Typer(help="The audit log: check its hash chain.", no_args_is_help=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database", "--database-url", help="SQLAlchemy URL; default DOUDI_DATABASE_URL, else var/doudi.sqlite3."
    ),
]


def _fail(lines: list[str]) -> NoReturn:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(1)


def _url(database_url: str | None) -> str:
    from api.app import database_url as resolve_url

    return resolve_url(database_url)


@audit_app.command("verify")
def audit_verify(
    anchor: Annotated[
        list[str] | None, typer.Option("--anchor", help="SEQ:SHA256 noted earlier, which must still be in the chain.")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Walk the audit log's hash chain. Exit 0 and the count when intact; 1 and the first broken entry
    (changed, deleted, inserted or reordered) otherwise."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url

    from doudi import audit

    anchors = []
    for text in anchor or []:
        seq, sep, digest = text.partition(":")
        if not (sep and seq.isdigit() and len(digest) == 64):
            _fail([f"--anchor: {text!r}: write SEQ:SHA256, like 1200:{'0' * 64}"])
        anchors.append((int(seq), digest.lower()))
    url = _url(database_url)
    where = make_url(url)
    if where.get_backend_name() == "sqlite" and not Path(where.database or "").is_file():
        _fail([f"no SQLite database at {where.database}"])  # and none is made by looking
    engine = create_engine(url)
    try:
        if "audit_chain" not in inspect(engine).get_table_names():
            _fail(
                [
                    f"{where.render_as_string(hide_password=True)} has no chained audit log: not a Doudi database, "
                    "or one not yet migrated (the service migrates it when it starts)"
                ]
            )
        verdict = audit.verify(engine, anchors)
    except SQLAlchemyError as err:
        _fail([f"cannot read the audit log: {err.__class__.__name__}: {str(err).splitlines()[0]}"])
    finally:
        engine.dispose()
    if verdict.broken is not None:
        _fail(
            [
                f"audit log BROKEN at entry #{verdict.broken.seq} ({verdict.broken.kind}): {verdict.broken.message}",
                f"the {verdict.entries} entries before it are intact (up to #{verdict.head_seq})",
            ]
        )
    typer.echo(f"audit log intact: {verdict.entries} entries; head #{verdict.head_seq} {verdict.head_sha256}")


def backup(
    out: Annotated[Path, typer.Option("--out", help="The backup file to write (a tar: the data and a manifest).")],
    database_url: DatabaseUrl = None,
) -> None:
    """Back up the database with its own tools (SQLite's online backup; pg_dump), with a manifest of row
    counts, ledger totals, table hashes and the audit chain's head, all taken from the copy itself."""
    from doudi import backup as backups

    try:
        manifest = backups.backup(_url(database_url), out)
    except backups.BackupError as err:
        _fail([str(err)])
    except SQLAlchemyError as err:
        _fail([f"the database did not answer: {err.__class__.__name__}: {str(err).splitlines()[0]}"])
    chain = manifest["audit"]
    rows = sum(manifest["tables"].values())
    typer.echo(f"backed up {rows} rows in {len(manifest['tables'])} tables to {out}")
    typer.echo(f"audit chain head #{chain['head_seq']} {chain['head_sha256']} (note it: `doudi audit verify --anchor`)")


def restore(
    file: Annotated[Path, typer.Argument(help="A file written by `doudi backup`.")],
    force: Annotated[bool, typer.Option("--force", help="Replace what the target database holds.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Restore a backup into an empty database (or, with --force, over a non-empty one), then check row
    counts, ledger totals, table hashes and the audit chain against the backup's manifest."""
    from doudi import backup as backups

    try:
        manifest = backups.restore(file, _url(database_url), force=force)
    except backups.BackupError as err:
        _fail([str(err)])
    except SQLAlchemyError as err:
        _fail([f"the database did not answer: {err.__class__.__name__}: {str(err).splitlines()[0]}"])
    rows = sum(manifest["tables"].values())
    typer.echo(f"restored {rows} rows in {len(manifest['tables'])} tables from {file}; every check holds")
