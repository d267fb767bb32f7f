"""Alembic's environment: the URL comes from the config that `ledger.migrations.config` builds."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from ledger.models import Base


def run() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None, "ledger.migrations.config sets the URL"
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
