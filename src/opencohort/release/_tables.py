"""A release's Parquet tables as DuckDB views, for checks that scan every row."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from opencohort.release.read import Release

_MEMORY_LIMIT = "3GB"
#: DuckDB types scanned as text, and as numbers, by the privacy scan.
TEXT_TYPES = ("VARCHAR",)
NUMBER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE")  # fmt: skip


def quote(name: str) -> str:
    """A SQL identifier (``registered/person`` names a view)."""
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def release_views(release: Release, tiers: tuple[str, ...]) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with one view ``<tier>/<table>`` per table of `tiers`.

    Two threads and a memory limit keep the check lean; a join larger than memory spills to
    a temporary folder (never inside the release, whose files are checksummed).
    """
    with tempfile.TemporaryDirectory(prefix="opencohort-check-") as spill:
        config = {"threads": 2, "memory_limit": _MEMORY_LIMIT, "temp_directory": spill}
        con = duckdb.connect(config=config)
        try:
            for tier in tiers:
                for table in release.tables(tier):
                    path = next((release.path / tier).glob(f"*/{table}.parquet")).as_posix()
                    literal = "'" + path.replace("'", "''") + "'"
                    con.execute(f"CREATE VIEW {quote(f'{tier}/{table}')} AS "
                                f"SELECT * FROM read_parquet({literal})")  # fmt: skip
            yield con
        finally:
            con.close()


def column_types(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    """Column name -> DuckDB type of a view."""
    rows = con.execute(f"DESCRIBE {quote(view)}").fetchall()
    return {name: kind for name, kind, *_ in rows}
