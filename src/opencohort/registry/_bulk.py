"""Bulk inserts of Arrow blocks: executemany on SQLite, COPY on PostgreSQL, in the caller's
transaction."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Table

#: SQLite page cache (KiB) while a large feed loads: the unique indexes on random ids stay in
#: memory instead of being spilled to the WAL and read back on every insert.
SQLITE_CACHE_KIB = 512 * 1024


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
        columns = [
            (c.cast(pa.string()) if pa.types.is_date(c.type) else c).to_pylist()
            for c in rows.columns
        ]
        self.connection.exec_driver_sql(sql, list(zip(*columns, strict=True)))

    def _copy(self, table: Table, rows: pa.Table, *, skip_existing: bool) -> None:
        names = _quoted(rows.column_names)
        buffer = io.BytesIO()
        pacsv.write_csv(rows, buffer, pacsv.WriteOptions(include_header=False))
        raw = self.connection.connection.driver_connection
        target = f'"{table.name}"'
        if skip_existing:
            target = f'"_load_{table.name}"'
            if table.name not in self._staged:
                self.connection.exec_driver_sql(
                    f"CREATE TEMP TABLE {target} ON COMMIT DROP AS "
                    f'SELECT {names} FROM "{table.name}" WITH NO DATA'
                )
                self._staged.add(table.name)
            self.connection.exec_driver_sql(f"TRUNCATE {target}")
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY {target} ({names}) FROM STDIN (FORMAT csv)") as copy,
        ):
            copy.write(buffer.getbuffer())
        if skip_existing:
            self.connection.exec_driver_sql(
                f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM {target} '
                "ON CONFLICT DO NOTHING"
            )


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
