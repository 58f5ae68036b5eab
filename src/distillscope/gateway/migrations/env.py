"""Alembic environment of the gateway database.

Run programmatically by :func:`distillscope.gateway.db.upgrade_database`, which passes an open
connection in ``config.attributes["connection"]``. For ``alembic`` on the command line, set
``sqlalchemy.url`` (``-x url=...`` is also accepted).
"""

from __future__ import annotations

from alembic import context

from distillscope.gateway.db import make_engine
from distillscope.gateway.tables import metadata

config = context.config


def _configure(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = make_engine(url)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
