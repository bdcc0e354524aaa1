"""The Alembic migrations and the ORM models describe the same schema, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from opencohort.registry import Base, open_registry
from opencohort.registry._db import make_engine


def _schema(engine) -> dict:
    found = inspect(engine)
    tables = sorted(t for t in found.get_table_names() if t != "alembic_version")
    return {
        t: {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(t)
            ),
            "unique": sorted(tuple(u["column_names"]) for u in found.get_unique_constraints(t)),
            "foreign": sorted(tuple(f["constrained_columns"]) for f in found.get_foreign_keys(t)),
            "indexes": sorted(i["name"] for i in found.get_indexes(t)),
        }
        for t in tables
    }


def test_migrations__upgrade_head_equals_create_all(db_url) -> None:
    registry = open_registry(db_url)
    with registry.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    migrated = _schema(registry.engine)
    registry.close()
    assert set(migrated) == set(Base.metadata.tables)


def test_migrations__same_schema_as_create_all_sqlite(tmp_path) -> None:
    migrated = open_registry(f"sqlite:///{tmp_path / 'a.db'}")
    created = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    Base.metadata.create_all(created)
    assert _schema(migrated.engine) == _schema(created)
    migrated.close()
    created.dispose()


def test_open_registry__reopen_is_noop(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    open_registry(url).close()
    again = open_registry(url)
    assert "participant" in inspect(again.engine).get_table_names()
    again.close()
