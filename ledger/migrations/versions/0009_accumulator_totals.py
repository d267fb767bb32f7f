"""year-to-date totals kept by the database as ledger entries are appended

Revision ID: 0009
Revises: 0008

A settlement starts from the year-to-date figures of its person and household, which were summed from
every ledger entry they ever had: a read that grew with each stay (under the benchmark's load, 0.7 ms of
the group desk's 2 ms first exchange after 13,000 settlements, and a fifth fewer quotes a second after
another 12,000; BENCHMARKS.md). `accumulator_totals` holds one row per accumulator, person or household and
policy year. A trigger on `ledger_entries` adds each appended entry to its row in the same statement's
transaction, whichever code path appended it, so the totals commit (or roll back) with the entries and
always equal their sums; `ledger.repository.totals_differences` checks that they do. The ledger stays
append-only; only this derived table changes in place.

On PostgreSQL one trigger per INSERT statement adds the statement's entries grouped; on SQLite, which has no
statement triggers, one per row. Both upsert, so the first entry of a year makes its row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Sums of what each entry moved, as `ledger.repository.ledger_sums` computes them.
BACKFILL = """
INSERT INTO accumulator_totals (entity, accumulator, policy_year, base, paid, claims)
SELECT entity, accumulator, policy_year, sum(base_delta), sum(paid_delta), sum(claims_delta)
FROM ledger_entries WHERE accumulator IS NOT NULL
GROUP BY entity, accumulator, policy_year
"""

POSTGRES_FUNCTION = """
CREATE FUNCTION doudi_add_to_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accumulator_totals AS t (entity, accumulator, policy_year, base, paid, claims)
    SELECT entity, accumulator, policy_year, sum(base_delta), sum(paid_delta), sum(claims_delta)
    FROM appended WHERE accumulator IS NOT NULL
    GROUP BY entity, accumulator, policy_year
    ON CONFLICT (entity, accumulator, policy_year) DO UPDATE
    SET base = t.base + excluded.base, paid = t.paid + excluded.paid, claims = t.claims + excluded.claims;
    RETURN NULL;
END
$$
"""
POSTGRES_TRIGGER = """
CREATE TRIGGER ledger_entries_totals AFTER INSERT ON ledger_entries
REFERENCING NEW TABLE AS appended FOR EACH STATEMENT EXECUTE FUNCTION doudi_add_to_totals()
"""

# SQLite stores money as whole fen (ledger.models.Money): the totals add integers.
SQLITE_TRIGGER = """
CREATE TRIGGER ledger_entries_totals AFTER INSERT ON ledger_entries
WHEN NEW.accumulator IS NOT NULL
BEGIN
    INSERT INTO accumulator_totals (entity, accumulator, policy_year, base, paid, claims)
    VALUES (NEW.entity, NEW.accumulator, NEW.policy_year, NEW.base_delta, NEW.paid_delta, NEW.claims_delta)
    ON CONFLICT (entity, accumulator, policy_year) DO UPDATE
    SET base = base + excluded.base, paid = paid + excluded.paid, claims = claims + excluded.claims;
END
"""


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    money = sa.Numeric(precision=16, scale=2) if postgresql else sa.BigInteger()  # as revision 0004 left them
    op.create_table(
        "accumulator_totals",
        sa.Column("entity", sa.String(length=64), nullable=False),
        sa.Column("accumulator", sa.String(length=80), nullable=False),
        sa.Column("policy_year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("base", money, nullable=False),
        sa.Column("paid", money, nullable=False),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("entity", "accumulator", "policy_year", name=op.f("pk_accumulator_totals")),
    )
    if postgresql:
        # No entry may be appended between the backfill and the trigger: it would be in neither.
        op.execute("LOCK TABLE ledger_entries IN SHARE ROW EXCLUSIVE MODE")
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)  # a migration on SQLite holds the write lock throughout
    op.execute(BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_totals ON ledger_entries")
        op.execute("DROP FUNCTION IF EXISTS doudi_add_to_totals()")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_totals")
    op.drop_table("accumulator_totals")
