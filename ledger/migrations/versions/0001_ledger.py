"""the ledger: hospitals, people, category periods, settlements, reversals, entries

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hospitals",
        sa.Column("hospital_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("region", sa.String(length=6), nullable=False),
        sa.PrimaryKeyConstraint("hospital_id", name=op.f("pk_hospitals")),
    )
    op.create_table(
        "people",
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("insurance_scheme", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_people")),
    )
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_people_household_id"), ["household_id"], unique=False)

    op.create_table(
        "settlements",
        sa.Column("setl_id", sa.String(length=40), nullable=False),
        sa.Column("medins_setl_id", sa.String(length=64), nullable=False),
        sa.Column("hospital_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("household_id", sa.String(length=64), nullable=False),
        sa.Column("policy", sa.String(length=128), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("claim_json", sa.Text(), nullable=False),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.Column("total", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("fund_paid", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("patient_burden", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("settled_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("setl_id", name=op.f("pk_settlements")),
        sa.UniqueConstraint("medins_setl_id", name=op.f("uq_settlements_medins_setl_id")),
    )
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_settlements_hospital_id"), ["hospital_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_settlements_household_id"), ["household_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_settlements_person_id"), ["person_id"], unique=False)

    op.create_table(
        "category_periods",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["people.person_id"], name=op.f("fk_category_periods_person_id_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_category_periods")),
    )
    with op.batch_alter_table("category_periods", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_category_periods_person_id"), ["person_id"], unique=False)

    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("setl_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("tier", sa.String(length=80), nullable=False),
        sa.Column("fund_pay_type", sa.String(length=10), nullable=False),
        sa.Column("amount", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("accumulator", sa.String(length=80), nullable=True),
        sa.Column("entity", sa.String(length=64), nullable=True),
        sa.Column("policy_year", sa.Integer(), nullable=True),
        sa.Column("base_delta", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("paid_delta", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("claims_delta", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["setl_id"], ["settlements.setl_id"], name=op.f("fk_ledger_entries_setl_id_settlements")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_entries_entity"), ["entity"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_entries_setl_id"), ["setl_id"], unique=False)

    op.create_table(
        "reversals",
        sa.Column("setl_id", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("reversed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["setl_id"], ["settlements.setl_id"], name=op.f("fk_reversals_setl_id_settlements")),
        sa.PrimaryKeyConstraint("setl_id", name=op.f("pk_reversals")),
    )


def downgrade() -> None:
    op.drop_table("reversals")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entries_setl_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_entries_entity"))

    op.drop_table("ledger_entries")
    with op.batch_alter_table("category_periods", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_category_periods_person_id"))

    op.drop_table("category_periods")
    with op.batch_alter_table("settlements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlements_person_id"))
        batch_op.drop_index(batch_op.f("ix_settlements_household_id"))
        batch_op.drop_index(batch_op.f("ix_settlements_hospital_id"))

    op.drop_table("settlements")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_people_household_id"))

    op.drop_table("people")
    op.drop_table("hospitals")
