"""audit log chained by hash; audit log and ledger entries append-only in the database

Revision ID: 0007
Revises: 0006

Each audit entry gets its place in one chain (`seq`), the previous entry's hash and its own
(ledger/audit_chain.py); entries written before this revision are chained in the order they were written
(by id). `audit_chain` holds the last entry, and writers lock it to append.

The database itself then refuses UPDATE and DELETE (and, on PostgreSQL, TRUNCATE) on `audit_log` and
`ledger_entries`, whoever asks: no code path of Doudi changes them, so a refusal can only meet a mistake or
someone working around the service. A database owner can still disable the triggers (that is what
`doudi audit verify` exists for). On SQLite the triggers belong to the table: a later migration that
rebuilds either table in batch mode must create them again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger.audit_chain import GENESIS, entry_sha256

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

APPEND_ONLY = ("audit_log", "ledger_entries")

POSTGRES_REFUSE = """
CREATE FUNCTION doudi_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'doudi: % is append-only; % refused', TG_TABLE_NAME, TG_OP;
END
$$
"""


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.add_column(sa.Column("seq", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("prev_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("entry_sha256", sa.String(length=64), nullable=True))
    head_seq, head_sha256 = _chain_existing_entries()
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.alter_column("seq", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("prev_sha256", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("entry_sha256", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_audit_log_seq"), ["seq"])
    chain = op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("entry_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
    )
    op.bulk_insert(chain, [{"id": 1, "seq": head_seq, "entry_sha256": head_sha256}])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_REFUSE)
        for table in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION doudi_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION doudi_append_only()"
            )
    else:
        for table in APPEND_ONLY:
            for statement in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{statement.lower()} BEFORE {statement} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'doudi: {table} is append-only; {statement} refused'); END"
                )


def _chain_existing_entries() -> tuple[int, str]:
    """Chain the entries already written, in id order; the last one's (seq, hash)."""
    log = sa.table(
        "audit_log",
        sa.column("id", sa.Integer()),
        sa.column("at", sa.DateTime()),
        sa.column("user_name", sa.String()),
        sa.column("token_id", sa.String()),
        sa.column("action", sa.String()),
        sa.column("target", sa.String()),
        sa.column("detail", sa.Text()),
        sa.column("seq", sa.Integer()),
        sa.column("prev_sha256", sa.String()),
        sa.column("entry_sha256", sa.String()),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            log.c.id, log.c.at, log.c.user_name, log.c.token_id, log.c.action, log.c.target, log.c.detail
        ).order_by(log.c.id)
    ).all()
    prev, changes = GENESIS, []
    for seq, row in enumerate(rows, start=1):
        own = entry_sha256(seq, prev, row.at, row.user_name, row.token_id, row.action, row.target, row.detail)
        changes.append({"row_id": row.id, "new_seq": seq, "new_prev": prev, "new_own": own})
        prev = own
    if changes:
        connection.execute(
            log.update()
            .where(log.c.id == sa.bindparam("row_id"))
            .values(
                seq=sa.bindparam("new_seq"), prev_sha256=sa.bindparam("new_prev"), entry_sha256=sa.bindparam("new_own")
            ),
            changes,
        )
    return len(rows), prev


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_no_truncate ON {table}")
            op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
        op.execute("DROP FUNCTION doudi_append_only()")
    else:
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER {table}_no_delete")
            op.execute(f"DROP TRIGGER {table}_no_update")
    op.drop_table("audit_chain")
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_log_seq"), type_="unique")
        batch_op.drop_column("entry_sha256")
        batch_op.drop_column("prev_sha256")
        batch_op.drop_column("seq")
