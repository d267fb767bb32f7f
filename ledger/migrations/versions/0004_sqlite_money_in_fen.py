"""money in whole fen on SQLite

Revision ID: 0004
Revises: 0003

SQLite has no exact decimal: its NUMERIC columns held binary floating point, and sums of them drifted by
fractions of a fen. On SQLite every money column becomes an integer count of fen (the stored values are
rounded to the fen they always meant). PostgreSQL keeps NUMERIC(16, 2) and is not touched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MONEY_COLUMNS = {
    "settlements": (
        "total",
        "fund_paid",
        "patient_burden",
        "fully_self_paid",
        "over_limit_self_paid",
        "pre_self_paid",
        "in_scope",
    ),
    "ledger_entries": ("amount", "base", "quota_used", "quota_left", "base_delta", "paid_delta"),
}
NULLABLE = {"quota_used", "quota_left"}
NUMERIC = sa.Numeric(precision=16, scale=2)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in MONEY_COLUMNS.items():
        for column in columns:
            op.execute(f"UPDATE {table} SET {column} = CAST(ROUND({column} * 100) AS INTEGER)")
        with op.batch_alter_table(table) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column, existing_type=NUMERIC, type_=sa.BigInteger(), existing_nullable=column in NULLABLE
                )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in MONEY_COLUMNS.items():
        with op.batch_alter_table(table) as batch_op:
            for column in columns:
                batch_op.alter_column(
                    column, existing_type=sa.BigInteger(), type_=NUMERIC, existing_nullable=column in NULLABLE
                )
        for column in columns:
            op.execute(f"UPDATE {table} SET {column} = {column} / 100.0")
