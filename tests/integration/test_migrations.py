"""The ledger's Alembic migrations on SQLite and PostgreSQL: from an empty database to the newest revision
the schema is exactly what the models declare (what autogenerate compares: tables, columns, types,
nullability, server defaults, keys, indexes), each revision's downgrade puts the schema back as it was
before that revision, down to an empty database, and the database can then be brought up again. A model
changed without a migration, or a downgrade that leaves a column, index or type behind, fails here before
it reaches a hospital's database.

Written against `head` and `base`, never a revision number, so that it covers each migration as it is added.
"""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from ledger.migrations import config
from ledger.models import Base


def schema_differences(url: str) -> list[Any]:
    """What autogenerate would write to bring the database to the models; empty when they agree."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            opts = {"compare_type": True, "compare_server_default": True}
            return list(compare_metadata(MigrationContext.configure(connection, opts=opts), Base.metadata))
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def _column_compression(engine: Any) -> dict[str, str]:
    """Columns whose compression method is set (PostgreSQL: 'p' pglz, 'l' lz4), as table.column."""
    query = text(
        "SELECT c.relname || '.' || a.attname AS name, a.attcompression AS method FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = current_schema() AND a.attnum > 0 AND NOT a.attisdropped AND a.attcompression <> ''"
    )
    with engine.connect() as connection:
        return {row.name: row.method for row in connection.execute(query)}


def reflected_schema(url: str) -> dict[str, Any]:
    """The database's schema as reflected (Alembic's own table aside), in a form two states compare in."""
    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        schema: dict[str, Any] = {"views": sorted(inspector.get_view_names()), "tables": {}}
        if engine.dialect.name == "postgresql":  # objects a dropped table can leave behind
            schema["sequences"] = sorted(inspector.get_sequence_names())
            schema["enums"] = sorted(e["name"] for e in inspector.get_enums())  # type: ignore[attr-defined]
            schema["compression"] = _column_compression(engine)
        for table in inspector.get_table_names():
            if table == "alembic_version":
                continue
            schema["tables"][table] = {
                "columns": sorted((c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)),
                "primary key": inspector.get_pk_constraint(table)["constrained_columns"],
                "foreign keys": sorted(
                    (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                    for fk in inspector.get_foreign_keys(table)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), i["unique"]) for i in inspector.get_indexes(table)
                ),
                "unique": sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)),
            }
        return schema
    finally:
        engine.dispose()


def test_upgrading_an_empty_database_gives_exactly_the_models_schema(database_url: str) -> None:
    cfg = config(database_url)
    command.upgrade(cfg, "head")
    assert current_revision(database_url) == ScriptDirectory.from_config(cfg).get_current_head()
    assert set(reflected_schema(database_url)["tables"]) == set(Base.metadata.tables)
    assert schema_differences(database_url) == []
    if database_url.startswith("postgresql"):
        # Revision 0008: the settlement's large JSON columns compressed with lz4 (the server here has it).
        engine = create_engine(database_url)
        try:
            assert _column_compression(engine) == {"settlements.claim_json": "l", "settlements.record_json": "l"}
        finally:
            engine.dispose()


def test_each_downgrade_restores_the_schema_before_its_upgrade(database_url: str) -> None:
    cfg = config(database_url)
    script = ScriptDirectory.from_config(cfg)
    revisions = [r.revision for r in reversed(list(script.walk_revisions("base", "heads")))]
    assert revisions and revisions[-1] == script.get_current_head()  # one line of history, no branches
    before = [reflected_schema(database_url)]  # before[i]: the schema before revisions[i] is applied
    assert before[0]["tables"] == {}  # so back at base, nothing but Alembic's own table may be left
    for revision in revisions:
        command.upgrade(cfg, revision)
        assert current_revision(database_url) == revision
        before.append(reflected_schema(database_url))
    for i in reversed(range(len(revisions))):
        command.downgrade(cfg, "-1")
        assert current_revision(database_url) == (revisions[i - 1] if i else None)
        assert reflected_schema(database_url) == before[i], f"downgrade of {revisions[i]}"

    command.upgrade(cfg, "head")
    assert current_revision(database_url) == script.get_current_head()
    assert schema_differences(database_url) == []
