"""settlements' stored claim and record compressed with lz4 on PostgreSQL

Revision ID: 0008
Revises: 0007

A settlement's record is about 17 kB of JSON, which PostgreSQL compresses out of line (TOAST) as the row is
inserted. With its default method (pglz) that compression was most of the database's work per settlement:
inserting 40 settlements of a benchmark run took 19 ms with pglz and 8 ms with lz4 (EXPLAIN ANALYZE of the
group desk's own statements, BENCHMARKS.md). Values already stored keep their method and stay readable;
only new ones use lz4. A server built without lz4 keeps pglz, and so does SQLite, which does not compress.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = ("record_json", "claim_json")

# EXECUTE, so that a server that does not know the syntax (before PostgreSQL 14) or was built without lz4
# answers with an error this block catches, rather than failing the migration.
SET_LZ4 = """
DO $$
BEGIN
    EXECUTE 'ALTER TABLE settlements {alters}';
EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
    RAISE NOTICE 'column compression cannot be set on this server: settlements keep its default';
END
$$
"""


def _alters(method: str) -> str:
    return ", ".join(f"ALTER COLUMN {column} SET COMPRESSION {method}" for column in COLUMNS)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SET_LZ4.format(alters=_alters("lz4")))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(SET_LZ4.format(alters=_alters("default")))
