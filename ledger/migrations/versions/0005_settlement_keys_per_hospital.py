"""settlement keys unique per hospital

Revision ID: 0005
Revises: 0004

A settlement key (medins_setl_id) is the hospital's own: two hospitals may use the same one. It was unique
across all hospitals, so a desk could be refused a key another hospital had used.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("settlements") as batch_op:
        batch_op.drop_constraint("uq_settlements_medins_setl_id", type_="unique")
        batch_op.create_unique_constraint("uq_settlements_hospital_key", ["hospital_id", "medins_setl_id"])


def downgrade() -> None:
    with op.batch_alter_table("settlements") as batch_op:
        batch_op.drop_constraint("uq_settlements_hospital_key", type_="unique")
        batch_op.create_unique_constraint("uq_settlements_medins_setl_id", ["medins_setl_id"])
