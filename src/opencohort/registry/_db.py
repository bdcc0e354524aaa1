"""Engines and schema migrations of the registry database."""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, Select, create_engine, event

MIGRATIONS = Path(__file__).with_name("migrations")


#: Connections an engine keeps open (and may add on top when all are busy), by default.
POOL_SIZE, POOL_OVERFLOW = 5, 10
#: Age after which a PostgreSQL connection is replaced on its next checkout.
RECYCLE_SECONDS = 1800


def make_engine(url: str, *, pool_size: int = POOL_SIZE) -> Engine:
    """Return an engine for `url` keeping up to `pool_size` connections open.

    SQLite gets foreign keys enforced, write-ahead logging (readers never wait for the
    writer) with ``synchronous=NORMAL`` (a commit is not flushed to disk on its own, only at
    checkpoints: a crash of the server loses nothing, a power cut may lose the last commits
    but never corrupts the file) and a 30 s busy timeout (a writer waits for the one before
    it instead of failing).
    PostgreSQL connections are not pinged at each checkout (``pool_pre_ping`` costs a round
    trip per request on both cores of a small server); instead they are recycled after
    ``RECYCLE_SECONDS``, and a connection found broken (a restarted server) invalidates the
    whole pool, so only the requests in flight at that moment fail.
    Size the pool to the threads that use the engine at once, so none waits for a connection.
    """
    pool = {"pool_size": pool_size, "max_overflow": max(POOL_OVERFLOW, pool_size // 2)}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_recycle=RECYCLE_SECONDS, **pool)


def alembic_config(url: str | None = None) -> Config:
    """Return an Alembic configuration pointing at the registry's migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database behind `engine` to `revision` (default: the newest)."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


class OneRowReader:
    """Run one fixed ``SELECT`` for one row on a DBAPI connection of its own.

    For a lookup made on every request (an API token): skipping SQLAlchemy's pool checkout,
    execution context and result objects makes it a few microseconds of driver work. The
    read is never cached and ends its transaction at once, so it sees every committed change.
    A broken connection (a restarted server) is replaced and the query run again, once.
    Thread-safe: a lock lets one caller at a time use the connection.
    """

    def __init__(self, engine: Engine, statement: Select) -> None:
        self._engine = engine
        self._compiled = statement.compile(dialect=engine.dialect)
        self._connection = None
        self._lock = threading.Lock()

    def one(self, **params: object):
        """Return the first row (a tuple in the statement's column order) or None."""
        values = self._compiled.construct_params(params)
        if self._compiled.positional:
            values = tuple(values[name] for name in self._compiled.positiontup)
        with self._lock:
            for attempt in (1, 2):
                try:
                    return self._fetch(values)
                except self._engine.dialect.loaded_dbapi.Error:
                    connection, self._connection = self._connection, None
                    if connection is not None:
                        connection.invalidate()
                    if attempt == 2:
                        raise
        return None

    def _fetch(self, values):
        if self._connection is None:
            self._connection = self._engine.raw_connection()
        cursor = self._connection.cursor()
        try:
            cursor.execute(self._compiled.string, values)
            return cursor.fetchone()
        finally:
            cursor.close()
            self._connection.rollback()

    def close(self) -> None:
        """Give the connection back to the pool (a later `one` takes another)."""
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                connection.close()
