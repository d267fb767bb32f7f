"""ledger entries indexed by entity and id, in place of entity alone

Revision ID: 0009
Revises: 0008

The group desk keeps, for each person and household it has settled, what it summed of their entries and the
last id it summed, and reads only the entries after that id (`doudi.group_desk`). An index on the entity
alone leads to every entry of the entity, each on its own page of the table; one on (entity, id) leads
straight to the new ones. It serves a look-up by entity alone as well, so it replaces that index. Building
it holds back new settlements until it is built (seconds for a county's ledger): upgrade at a quiet hour.
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch_op:
        batch_op.create_index("ix_ledger_entries_entity_id", ["entity", "id"], unique=False)
        batch_op.drop_index("ix_ledger_entries_entity")


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries") as batch_op:
        batch_op.create_index("ix_ledger_entries_entity", ["entity"], unique=False)
        batch_op.drop_index("ix_ledger_entries_entity_id")
