"""reconciliation columns and month closes

Revision ID: 0003
Revises: 0002

Monthly statements read a month's settlements and entries as columns, without parsing each settlement's
JSON. Settlements recorded before this revision get the new columns from their own stored claim and record.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.types import TypeEngine

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=16, scale=2)
SETTLEMENT_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("category", sa.String(length=32)),
    ("insurance_scheme", sa.String(length=16)),
    ("visit_type", sa.String(length=32)),
    ("diagnosis", sa.String(length=16)),
    ("admitted_on", sa.Date()),
    ("discharged_on", sa.Date()),
    ("fully_self_paid", MONEY),
    ("over_limit_self_paid", MONEY),
    ("pre_self_paid", MONEY),
    ("in_scope", MONEY),
]
ENTRY_COLUMNS: list[tuple[str, TypeEngine[Any]]] = [
    ("stage", sa.String(length=40)),
    ("bucket", sa.String(length=80)),
    ("base", MONEY),
]


def upgrade() -> None:
    op.create_table(
        "month_closes",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=False),
        sa.Column("closed_by", sa.String(length=64), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_month_closes")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        for name, type_ in ENTRY_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
        batch_op.add_column(sa.Column("quota_used", MONEY, nullable=True))
        batch_op.add_column(sa.Column("quota_left", MONEY, nullable=True))
    with op.batch_alter_table("reversals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reversals_reversed_at"), ["reversed_at"], unique=False)
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        for name, type_ in SETTLEMENT_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
        batch_op.create_index(batch_op.f("ix_settlements_settled_at"), ["settled_at"], unique=False)

    _backfill(op.get_bind())

    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        for name, type_ in ENTRY_COLUMNS:
            batch_op.alter_column(name, existing_type=type_, nullable=False)
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        for name, type_ in SETTLEMENT_COLUMNS:
            batch_op.alter_column(name, existing_type=type_, nullable=False)


def _backfill(connection: Any) -> None:
    settlements = sa.table("settlements", *(sa.column(n) for n in ("setl_id", "claim_json", "record_json")))
    # Typed columns: SQLite's driver binds a Decimal only through the Numeric type.
    settlement_update = sa.table("settlements", sa.column("setl_id"), *(sa.column(n, t) for n, t in SETTLEMENT_COLUMNS))
    entries = sa.table("ledger_entries", *(sa.column(n) for n in ("id", "setl_id", "tier", "kind")))
    entry_update = sa.table("ledger_entries", sa.column("id"), *(sa.column(n, t) for n, t in ENTRY_COLUMNS))
    quota = sa.table("ledger_entries", sa.column("id"), sa.column("quota_used", MONEY), sa.column("quota_left", MONEY))
    for setl_id, claim_json, record_json in connection.execute(sa.select(settlements)).all():
        claim, record = json.loads(claim_json), json.loads(record_json)
        amounts = record["amounts"]
        values = {
            "category": record["category"],
            "insurance_scheme": record["insurance_scheme"],
            "visit_type": record["visit_type"],
            "diagnosis": claim["diagnoses"][0],
            "admitted_on": dt.date.fromisoformat(claim["admitted_on"]),
            "discharged_on": dt.date.fromisoformat(claim["discharged_on"]),
            "fully_self_paid": Decimal(amounts["fully_self_paid"]),
            "over_limit_self_paid": Decimal(amounts["over_limit_self_paid"]),
            "pre_self_paid": Decimal(amounts["pre_self_paid"]),
            "in_scope": Decimal(amounts["in_scope"]),
        }
        connection.execute(settlement_update.update().where(settlement_update.c.setl_id == setl_id).values(**values))
        tiers = {t["tier"]: t for t in record["tiers"]}
        for entry_id, tier_name, kind in connection.execute(
            sa.select(entries.c.id, entries.c.tier, entries.c.kind).where(entries.c.setl_id == setl_id)
        ).all():
            tier = tiers.get(tier_name)
            sign = -1 if kind == "reversal" else 1
            base = Decimal(tier.get("base") or "0.00") * sign if tier else Decimal("0.00")
            connection.execute(
                entry_update.update()
                .where(entry_update.c.id == entry_id)
                .values(stage=tier["stage"] if tier else "", bucket=tier.get("bucket", "") if tier else "", base=base)
            )
            if tier and kind == "settlement" and tier.get("accumulator"):
                connection.execute(
                    quota.update()
                    .where(quota.c.id == entry_id)
                    .values(quota_used=Decimal(tier["accumulator"]["paid_after"]), quota_left=_quota_left(tier))
                )


def _quota_left(tier: dict[str, Any]) -> Decimal | None:
    cap_left = tier.get("annual_cap_left")
    return None if cap_left is None else Decimal(cap_left) - Decimal(tier["paid"])


def downgrade() -> None:
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlements_settled_at"))
        for name, _ in reversed(SETTLEMENT_COLUMNS):
            batch_op.drop_column(name)
    with op.batch_alter_table("reversals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reversals_reversed_at"))
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_column("quota_left")
        batch_op.drop_column("quota_used")
        for name, _ in reversed(ENTRY_COLUMNS):
            batch_op.drop_column(name)
    op.drop_table("month_closes")
