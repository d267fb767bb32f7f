"""web sign-in: password hashes, browser sessions, sign-in attempts

Revision ID: 0006
Revises: 0005

Accounts so far had bearer tokens only. The web pages sign people in with a password; a session cookie
stands for the signed-in browser, and failed attempts are kept so that guessing can be slowed down.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.String(length=255), nullable=True))
    op.create_table(
        "web_sessions",
        sa.Column("session_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_name"], ["users.name"], name=op.f("fk_web_sessions_user_name_users")),
        sa.PrimaryKeyConstraint("session_sha256", name=op.f("pk_web_sessions")),
    )
    with op.batch_alter_table("web_sessions") as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_user_name"), ["user_name"], unique=False)
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("remote", sa.String(length=64), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_attempts")),
    )
    with op.batch_alter_table("login_attempts") as batch_op:
        batch_op.create_index(batch_op.f("ix_login_attempts_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_login_attempts_user_name"), ["user_name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_attempts") as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_attempts_user_name"))
        batch_op.drop_index(batch_op.f("ix_login_attempts_at"))
    op.drop_table("login_attempts")
    with op.batch_alter_table("web_sessions") as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_user_name"))
    op.drop_table("web_sessions")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("password_hash")
