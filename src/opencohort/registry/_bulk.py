"""Bulk inserts of Arrow blocks: executemany on SQLite, COPY on PostgreSQL, in the caller's
transaction."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Table, UniqueConstraint

#: SQLite page cache (KiB) while a feed loads: more of the indexes on random ids stay in memory
#: (the default is 2 MB). Measured at 1M participants, 512 MB took the load's peak RSS to 2.9 GB
#: (over the 2 GB limit) and 64 MB to 1.6 GB.
SQLITE_CACHE_KIB = 128 * 1024
#: Rows handed to one SQLite executemany: each value becomes a Python object on the way, so
#: a whole block at once (up to 80,000 rows of up to 26 columns) held ~300 MB more at the peak.
SQLITE_ROWS = 10_000


def _quoted(names: list[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


class BulkWriter:
    """Insert Arrow tables into registry tables over one open connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.postgres = connection.dialect.name == "postgresql"
        self._staged: set[str] = set()

    def insert(self, table: Table, rows: pa.Table, *, skip_existing: bool) -> None:
        """Insert `rows` (columns named as `table`'s); `skip_existing` skips unique-key clashes."""
        if rows.num_rows == 0:
            return
        if self.postgres:
            self._copy(table, rows, skip_existing=skip_existing)
        else:
            self._executemany(table, rows, skip_existing=skip_existing)

    def _executemany(self, table: Table, rows: pa.Table, *, skip_existing: bool) -> None:
        names = rows.column_names
        marks = ", ".join("?" * len(names))
        conflict = " ON CONFLICT DO NOTHING" if skip_existing else ""
        sql = f'INSERT INTO "{table.name}" ({_quoted(names)}) VALUES ({marks}){conflict}'
        for start in range(0, rows.num_rows, SQLITE_ROWS):
            chunk = rows.slice(start, SQLITE_ROWS)
            columns = [
                (c.cast(pa.string()) if pa.types.is_date(c.type) else c).to_pylist()
                for c in chunk.columns
            ]
            self.connection.exec_driver_sql(sql, list(zip(*columns, strict=True)))

    def _copy(self, table: Table, rows: pa.Table, *, skip_existing: bool) -> None:
        names = rows.column_names
        if not skip_existing:
            self._copy_into(f'"{table.name}"', rows)
            return
        key = _surrogate_key(table, names)
        if key:
            rows = rows.filter(pa.array(~_duplicated(rows, key)))
        stage = f'"_load_{table.name}"'
        if table.name not in self._staged:
            self.connection.exec_driver_sql(
                f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "
                f'SELECT {_quoted(names)} FROM "{table.name}" WITH NO DATA'
            )
            self._staged.add(table.name)
        self.connection.exec_driver_sql(f"TRUNCATE {stage}")
        self._copy_into(stage, rows)
        picked = ", ".join(f's."{name}"' for name in names)
        new = ""
        if key:
            on = " AND ".join(f't."{c}" = s."{c}"' for c in key)
            new = (
                f'LEFT JOIN LATERAL (SELECT 1 AS hit FROM "{table.name}" t WHERE {on} LIMIT 1) '
                "x ON true WHERE x.hit IS NULL ORDER BY s.ctid"
            )
        self.connection.exec_driver_sql(
            f'INSERT INTO "{table.name}" ({_quoted(names)}) SELECT {picked} FROM {stage} s '
            f"{new} ON CONFLICT DO NOTHING"
        )

    def _copy_into(self, target: str, rows: pa.Table) -> None:
        buffer = io.BytesIO()
        pacsv.write_csv(rows, buffer, pacsv.WriteOptions(include_header=False))
        raw = self.connection.connection.driver_connection
        sql = f"COPY {target} ({_quoted(rows.column_names)}) FROM STDIN (FORMAT csv)"
        with raw.cursor() as cursor, cursor.copy(sql) as copy:
            copy.write(buffer.getbuffer())


def _surrogate_key(table: Table, names: list[str]) -> list[str]:
    """The unique key of a table whose primary key the database draws, else ``[]``.

    PostgreSQL draws a sequence value for every row offered, clashing or not; offering only new
    rows, in feed order, keeps the ids the same whatever the block size.
    """
    if any(c.name in names for c in table.primary_key.columns):
        return []
    unique = [c for c in table.constraints if isinstance(c, UniqueConstraint)]
    return [c.name for c in unique[0].columns] if unique else []


def _duplicated(rows: pa.Table, key: list[str]) -> np.ndarray:
    """Rows whose `key` repeats an earlier row's."""
    frame = pd.DataFrame({c: rows.column(c).to_pandas() for c in key})
    return frame.duplicated().to_numpy()


@contextmanager
def load_settings(connection: Connection) -> Iterator[None]:
    """Give a SQLite connection a large page cache for the load, and restore it afterwards."""
    if connection.dialect.name != "sqlite":
        yield
        return
    before = connection.exec_driver_sql("PRAGMA cache_size").scalar_one()
    connection.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size = {before}")
