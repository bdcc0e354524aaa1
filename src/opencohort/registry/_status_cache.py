"""Every participant's statuses and the registry counts, kept per process and brought up to
date from the audit log instead of being derived again from every row on each read.

Every change to a participant's facts appends an audit row naming the participant in the
same transaction, and audit ids are committed in order (one writer at a time holds the audit
lock), so the newest audit id is a change counter. An entry remembers the audit id it is
current to; a read first looks up the newest id and, when it moved, re-derives only the
participants named since (the pure path, ``_facts.derive``) and moves the counts by their
difference. A change the cache cannot pin to participants (a feed load, anything it does not
know) rebuilds the whole entry with ``_status_frame``. Reads therefore see every committed
write, in every process: each process checks the counter itself.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import Connection, func, select

from opencohort.registry import _facts, _status_frame
from opencohort.registry import models as m
from opencohort.registry.status import ConsentType, UbrCategory

_AUDIT = m.AuditEntry.__table__
#: Audited entities whose ``entity_id`` is the participant whose facts changed.
PARTICIPANT_ENTITIES = frozenset(
    table.name for table in m.Base.metadata.sorted_tables if "participant_id" in table.c
)
#: Audited entities that change no participant's facts (a manifest's samples are audited
#: one by one as genomic events).
INERT_ENTITIES = frozenset({"api_token", "manifest"})
#: Above this many changed participants a rebuild is cheaper than re-deriving each one.
MAX_DELTA = 5_000
#: Days (``as_of``) kept at once; the oldest is dropped first.
MAX_DAYS = 4
#: Text columns are fixed-width unicode (filters compare in C; site ids are at most 32
#: characters, ``models.CODE``); None is stored as "".
_TEXT = np.dtype("U64")


def _cell(value):
    """A value as a text column stores it: None (an unpaired site) as ""."""
    return "" if value is None else value


@dataclass
class _Entry:
    """Statuses on one day, current to audit id `head`: one array per ``status_frame``
    column, rows in participant id order (``ids``; ``position`` maps an id to its row), and
    the counts as flat keys (``tally``), nested like `template` on demand."""

    head: int
    ids: np.ndarray
    position: dict[str, int]
    columns: dict[str, np.ndarray]
    flat: Counter
    template: dict
    counts: dict | None = None

    @classmethod
    def build(cls, head: int, frame: pd.DataFrame) -> _Entry:
        """Return the entry of a whole `status_frame`."""
        ids = frame.index.to_numpy(dtype=object)
        columns = {}
        for name in frame.columns:
            column = frame[name]
            text = column.dtype == object
            columns[name] = column.fillna("").to_numpy(_TEXT if text else None, copy=True)
        counts = _status_frame.summarise(frame)
        position = {pid: i for i, pid in enumerate(ids)}
        return cls(head, ids, position, columns, flatten(counts), counts, counts)

    def row(self, participant_id: str) -> dict:
        """Return a participant's status row as a dict."""
        i = self.position[participant_id]
        return {name: values[i] for name, values in self.columns.items()}

    def put(self, rows: dict[str, dict]) -> None:
        """Store status rows by participant id; new participants go in at their place."""
        added = sorted(pid for pid in rows if pid not in self.position)
        if added:
            at = np.searchsorted(self.ids, np.array(added, dtype=object))
            self.ids = np.insert(self.ids, at, np.array(added, dtype=object))
            for name, values in self.columns.items():
                fill = np.array([_cell(rows[pid][name]) for pid in added], dtype=values.dtype)
                self.columns[name] = np.insert(values, at, fill)
            self.position = {pid: i for i, pid in enumerate(self.ids)}
        for pid, row in rows.items():
            i = self.position[pid]
            for name, values in self.columns.items():
                values[i] = _cell(row[name])


def _head(connection: Connection) -> int:
    return connection.execute(select(func.max(_AUDIT.c.audit_id))).scalar() or 0


def _status_row(facts: _facts.ParticipantFacts, as_of: date) -> dict:
    """Return one participant's ``status_frame`` row, derived by the pure functions."""
    status = _facts.derive(facts, as_of=as_of)
    row = {"site_id": facts.row["site_id"], "enrolment": status.enrolment.value.label}
    for kind in ConsentType:
        row[f"consent_{kind.value}"] = status.consents[kind].value.value
    row["withdrawal"] = status.withdrawal.value.value
    row["genomic_eligible"] = status.genomic.eligible
    for category in UbrCategory:
        row[f"ubr_{category.value}"] = category in status.ubr.value
    return row


def tally(rows: list[dict]) -> Counter:
    """Count `status_frame` rows (dicts) into flat ``(section, ..., value)`` keys.

    ``nest(tally(rows))`` equals ``_status_frame.summarise`` of the same rows (a test checks);
    counts of disjoint row sets add up, which is what lets the cache move them by a delta.
    """
    out: Counter = Counter()
    for row in rows:
        out["participants",] += 1
        out["enrolment", row["enrolment"]] += 1
        out["site", row["site_id"] or "unpaired"] += 1
        for kind in ConsentType:
            out["consent", kind.value, row[f"consent_{kind.value}"]] += 1
        out["withdrawal", row["withdrawal"]] += 1
        flags = [bool(row[f"ubr_{c.value}"]) for c in UbrCategory]
        for category, flag in zip(UbrCategory, flags, strict=True):
            out["ubr", category.value] += flag
        out["ubr", "any"] += any(flags)
        out["genomic_eligible",] += bool(row["genomic_eligible"])
    return out


def flatten(counts: dict) -> Counter:
    """Turn a ``summarise`` dict into the flat keys of `tally`."""
    out: Counter = Counter()

    def walk(prefix: tuple, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk((*prefix, key), inner)
        else:
            out[prefix] += value

    walk((), counts)
    return out


def nest(flat: Counter, template: dict) -> dict:
    """Turn flat counts back into a ``summarise`` dict shaped like `template` (one of them):
    sites with nobody are left out and sites are sorted, as ``summarise`` does."""
    out = _copy(template) | {"site": {}}
    for key, value in flat.items():
        if key[0] == "site":
            if value:
                out["site"][key[1]] = value
            continue
        target = out
        for part in key[:-1]:
            target = target[part]
        target[key[-1]] = value
    out["site"] = dict(sorted(out["site"].items()))
    return out


class StatusCache:
    """Per-process statuses and counts of the registry, current to the newest audit id.

    Thread-safe: one lock guards the entries, so concurrent reads that find the cache behind
    bring it up to date once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[date, _Entry] = OrderedDict()

    def counts(self, connection: Connection, *, as_of: date) -> dict:
        """Return ``_status_frame.summarise`` of every participant's statuses on `as_of`."""
        with self._lock:
            entry = self._current(connection, as_of)
            if entry.counts is None:
                entry.counts = nest(entry.flat, entry.template)
            return _copy(entry.counts)

    def select(self, connection: Connection, *, as_of: date, where) -> np.ndarray:
        """Return the ids (in order) of the participants whose statuses pass `where`, a
        function of the ``status_frame`` columns (a dict of arrays) returning a mask."""
        with self._lock:
            entry = self._current(connection, as_of)
            return entry.ids[where(entry.columns)]

    def _current(self, connection: Connection, as_of: date) -> _Entry:
        head = _head(connection)
        entry = self._entries.get(as_of)
        if entry is None or not self._catch_up(connection, entry, head, as_of):
            entry = _Entry.build(head, _status_frame.status_frame(connection, as_of=as_of))
        self._entries[as_of] = entry
        self._entries.move_to_end(as_of)
        while len(self._entries) > MAX_DAYS:
            self._entries.popitem(last=False)
        return entry

    def _catch_up(self, connection: Connection, entry: _Entry, head: int, as_of: date) -> bool:
        """Re-derive the participants changed after ``entry.head``; False if it cannot."""
        if head == entry.head:
            return True
        if head < entry.head:
            return False
        changed = connection.execute(
            select(_AUDIT.c.entity, _AUDIT.c.entity_id)
            .where(_AUDIT.c.audit_id > entry.head, _AUDIT.c.audit_id <= head)
        ).all()  # fmt: skip
        ids = set()
        for entity, entity_id in changed:
            if entity in PARTICIPANT_ENTITIES:
                ids.add(entity_id)
            elif entity not in INERT_ENTITIES:
                return False
        if len(ids) > MAX_DELTA:
            return False
        facts = _facts.load_facts(connection, sorted(ids)) if ids else []
        new = {f.row["participant_id"]: _status_row(f, as_of) for f in facts}
        old = [entry.row(pid) for pid in new if pid in entry.position]
        entry.flat.update(tally(list(new.values())))
        entry.flat.subtract(tally(old))
        entry.put(new)
        entry.head, entry.counts = head, None
        return True


def _copy(counts: dict) -> dict:
    """Copy a counts dict (nested dicts of ints) so callers cannot change the cached one."""
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in counts.items()}
