"""The registry's append-only, hash-chained audit log of every change.

Each service function that changes the registry appends one row in the same transaction as
the change: who, when, what action on which entity, and the entity before and after as JSON.
Each row stores the sha256 of its canonical content, which includes the previous row's hash,
so editing, deleting or reordering any row breaks the chain from that row on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING

from sqlalchemy import Connection, func, select, text

from opencohort.registry import models as m

if TYPE_CHECKING:
    from opencohort.registry.service import Registry

#: ``prev_sha256`` of the first row.
GENESIS = "0" * 64
#: Key of the PostgreSQL advisory lock that serialises appends (b"ocau" as an integer).
_PG_LOCK = 0x6F636175
_AUDIT = m.AuditEntry.__table__
#: Statements run on every append, built once (building one costs about as much as running it).
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_LAST = select(_AUDIT.c.audit_id, _AUDIT.c.row_sha256).order_by(_AUDIT.c.audit_id.desc()).limit(1)


@dataclass(frozen=True)
class AuditReport:
    """Outcome of checking the audit chain.

    ``broken_id`` is the audit id of the first row that fails (None when the chain is intact),
    ``problem`` says what failed there, and ``last_sha256`` is the hash of the last row, to be
    written down elsewhere: truncating the newest rows is detectable only against it.
    """

    rows: int
    broken_id: int | None
    problem: str
    last_sha256: str

    @property
    def ok(self) -> bool:
        """Whether every row checked out."""
        return self.broken_id is None


def _plain(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def to_json(value: Mapping | None) -> str | None:
    """Return canonical JSON of `value` (sorted keys, dates as ISO strings), or None."""
    if value is None:
        return None
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_sha256(row: Mapping) -> str:
    """Return the sha256 of an audit row's content (every column but ``row_sha256``)."""
    content = {
        "audit_id": int(row["audit_id"]),
        "recorded_at": row["recorded_at"].isoformat(timespec="microseconds"),
        "actor": row["actor"],
        "action": row["action"],
        "entity": row["entity"],
        "entity_id": row["entity_id"],
        "before": row["before"],
        "after": row["after"],
        "prev_sha256": row["prev_sha256"],
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record(
    connection: Connection,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    before: Mapping | None = None,
    after: Mapping | None = None,
) -> int:
    """Append one audit row inside the caller's transaction and return its audit id.

    Call it after the change itself (flush an ORM session first) so that, on SQLite, the
    transaction already holds the write lock. On PostgreSQL an advisory lock serialises
    appends; on both, a unique ``prev_sha256`` refuses a forked chain.
    """
    entry = {"action": action, "entity": entity, "entity_id": entity_id, "before": before,
             "after": after}  # fmt: skip
    return record_many(connection, [entry], actor=actor)[0]


def record_many(connection: Connection, entries: list[Mapping], *, actor: str) -> list[int]:
    """Append several audit rows (dicts of `record`'s keyword arguments but actor) in order.

    One lock and one insert for all of them, as `record` does for one; returns their ids.
    """
    if not entries:
        return []
    if connection.dialect.name == "postgresql":
        connection.execute(_LOCK, {"key": _PG_LOCK})
    last = connection.execute(_LAST).first()
    audit_id, prev = (last.audit_id, last.row_sha256) if last else (0, GENESIS)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = []
    for entry in entries:
        audit_id += 1
        row = {
            "audit_id": audit_id,
            "recorded_at": now,
            "actor": actor,
            "action": entry["action"],
            "entity": entry["entity"],
            "entity_id": str(entry["entity_id"]),
            "before": to_json(entry.get("before")),
            "after": to_json(entry.get("after")),
            "prev_sha256": prev,
        }
        row["row_sha256"] = prev = row_sha256(row)
        rows.append(row)
    connection.execute(_AUDIT.insert(), rows)
    return [row["audit_id"] for row in rows]


def verify_audit_chain(registry: Registry) -> AuditReport:
    """Check every audit row in id order and name the first one that breaks the chain."""
    with registry.engine.connect() as connection:
        return _verify(connection)


def _verify(connection: Connection) -> AuditReport:
    count = connection.execute(select(func.count()).select_from(_AUDIT)).scalar_one()
    expected_id, prev = 1, GENESIS
    rows = connection.execution_options(yield_per=5000).execute(
        select(_AUDIT).order_by(_AUDIT.c.audit_id)
    )
    for row in rows.mappings():
        problem = None
        if row["audit_id"] != expected_id:
            problem = f"should have audit id {expected_id}: a row was deleted or renumbered"
        elif row["prev_sha256"] != prev:
            problem = "does not follow the previous row: a row was deleted, inserted or reordered"
        elif row_sha256(row) != row["row_sha256"]:
            problem = "its content does not match its hash: the row was edited"
        if problem:
            rows.close()
            return AuditReport(count, row["audit_id"], f"row {row['audit_id']} {problem}", prev)
        expected_id, prev = expected_id + 1, row["row_sha256"]
    return AuditReport(count, None, f"{count} rows, chain intact", prev)


def audit_trail(
    registry: Registry, *, entity_id: str | None = None, limit: int = 100
) -> list[dict]:
    """Return the newest audit rows (of one entity when `entity_id` is given), newest first."""
    statement = select(_AUDIT).order_by(_AUDIT.c.audit_id.desc()).limit(limit)
    if entity_id is not None:
        statement = statement.where(_AUDIT.c.entity_id == entity_id)
    out = []
    with registry.engine.connect() as connection:
        rows = connection.execute(statement).mappings().all()
    for row in rows:
        entry = dict(row)
        entry["before"] = json.loads(row["before"]) if row["before"] else None
        entry["after"] = json.loads(row["after"]) if row["after"] else None
        out.append(entry)
    return out
