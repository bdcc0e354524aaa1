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

A rebuild takes seconds on a large registry, and every read waits for it. So that the day
rolling over does not stall reads at midnight, a read of today's statuses in the last
``PREPARE_AHEAD`` seconds before it starts deriving tomorrow's entry in a background thread;
the first read of tomorrow then only catches that entry up.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, bindparam, func, select

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
#: Seconds before midnight from which reads of today start deriving tomorrow's entry.
PREPARE_AHEAD = 900.0
#: Type of the codes that stand for a text column's values.
_CODE = np.int32


class _Column:
    """A column of the status frame: a numpy array, text as integer codes of its values
    (filters then compare small integers, in C)."""

    def __init__(self, column: pd.Series) -> None:
        self.text = column.dtype == object
        if self.text:
            codes, values = pd.factorize(column.fillna(""))
            self.array = codes.astype(_CODE)
            self.values = list(values)
            self.code = {value: i for i, value in enumerate(self.values)}
        else:
            self.array = column.to_numpy(copy=True)

    def encode(self, value) -> object:
        """Return the cell storing `value` (a new text value gets the next code; None, as an
        unpaired site, is stored as "")."""
        if not self.text:
            return value
        value = "" if value is None else value
        if value not in self.code:
            self.code[value] = len(self.values)
            self.values.append(value)
        return self.code[value]

    def decode(self, i: int) -> object:
        """Return the value in row `i`."""
        return self.values[self.array[i]] if self.text else self.array[i]

    def isin(self, values: frozenset) -> np.ndarray:
        """Return the mask of the rows holding one of `values` (a text column)."""
        codes = [self.code[value] for value in values if value in self.code]
        if len(codes) == 1:
            return self.array == codes[0]
        return np.isin(self.array, np.array(codes, dtype=_CODE))


@dataclass
class _Entry:
    """Statuses on one day, current to audit id `head`: the ``status_frame`` columns, rows in
    participant id order (``ids``; ``position`` maps an id to its row), and the counts as
    flat keys (``tally``), nested like `template` on demand."""

    head: int
    ids: np.ndarray
    position: dict[str, int]
    columns: dict[str, _Column]
    flat: Counter
    template: dict
    counts: dict | None = None

    @classmethod
    def build(cls, head: int, frame: pd.DataFrame) -> _Entry:
        """Return the entry of a whole `status_frame`."""
        ids = frame.index.to_numpy(dtype=object)
        columns = {name: _Column(frame[name]) for name in frame.columns}
        counts = _status_frame.summarise(frame)
        position = {pid: i for i, pid in enumerate(ids)}
        return cls(head, ids, position, columns, flatten(counts), counts, counts)

    def row(self, participant_id: str) -> dict:
        """Return a participant's status row as a dict."""
        i = self.position[participant_id]
        return {name: column.decode(i) for name, column in self.columns.items()}

    def put(self, rows: dict[str, dict]) -> None:
        """Store status rows by participant id; new participants go in at their place."""
        added = sorted(pid for pid in rows if pid not in self.position)
        if added:
            at = np.searchsorted(self.ids, np.array(added, dtype=object))
            self.ids = np.insert(self.ids, at, np.array(added, dtype=object))
            for name, column in self.columns.items():
                fill = [column.encode(rows[pid][name]) for pid in added]
                column.array = np.insert(column.array, at, np.array(fill, column.array.dtype))
            self.position = {pid: i for i, pid in enumerate(self.ids)}
        for pid, row in rows.items():
            i = self.position[pid]
            for name, column in self.columns.items():
                column.array[i] = column.encode(row[name])


#: The newest audit id (callers read it, e.g. with a ``_db.OneRowReader``, and pass it in), and
#: the entities audited in a range of ids (built once: building a statement costs about as much
#: as running it).
HEAD = select(func.max(_AUDIT.c.audit_id))
_CHANGED = select(_AUDIT.c.entity, _AUDIT.c.entity_id).where(
    _AUDIT.c.audit_id > bindparam("after"), _AUDIT.c.audit_id <= bindparam("head")
)


def _head(connection: Connection) -> int:
    return connection.execute(HEAD).scalar() or 0


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
        #: Entries being derived in the background, by day (``prepare``).
        self._preparing: dict[date, Future] = {}

    def prepare(self, engine: Engine, as_of: date) -> Future:
        """Start deriving the entry of `as_of` in a background thread on its own connection
        to `engine` (unless one is kept or being derived); return its future (its result is
        None when the entry was kept already)."""
        with self._lock:
            return self._prepare(engine, as_of)

    def _prepare(self, engine: Engine, as_of: date) -> Future:
        if as_of in self._preparing:
            return self._preparing[as_of]
        future: Future = Future()
        if as_of in self._entries:
            future.set_result(None)
            return future

        def build() -> None:
            try:
                with engine.connect() as connection:
                    head = _head(connection)
                    frame = _status_frame.status_frame(connection, as_of=as_of)
                future.set_result(_Entry.build(head, frame))
            except Exception as exc:  # noqa: BLE001 (the reader that needs it rebuilds)
                future.set_exception(exc)

        self._preparing[as_of] = future
        threading.Thread(target=build, name=f"status-cache-{as_of}", daemon=True).start()
        return future

    def counts(self, engine: Engine, *, head: int, as_of: date) -> dict:
        """Return ``_status_frame.summarise`` of every participant's statuses on `as_of`, as
        of audit id `head` (the newest: ``HEAD``)."""
        with self._lock:
            entry = self._current(engine, head, as_of)
            if entry.counts is None:
                entry.counts = nest(entry.flat, entry.template)
            return _copy(entry.counts)

    def select(
        self,
        engine: Engine,
        *,
        head: int,
        as_of: date,
        where: dict[str, frozenset],
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[str], int]:
        """Return one page (from `offset`, up to `limit` ids, in id order) of the participants
        whose status on `as_of` (as of audit id `head`) is, in each column named in `where`,
        one of the values given for it, and how many match in all (only the page's ids are
        gathered)."""
        with self._lock:
            entry = self._current(engine, head, as_of)
            keep = np.ones(len(entry.ids), dtype=bool)
            for name, values in where.items():
                keep &= entry.columns[name].isin(values)
            rows = np.flatnonzero(keep)
            end = None if limit is None else offset + limit
            return entry.ids[rows[offset:end]].tolist(), len(rows)

    def _current(self, engine: Engine, head: int, as_of: date) -> _Entry:
        """Return the entry of `as_of` current to `head`; only one behind opens a connection."""
        entry = self._entries.get(as_of) or self._prepared(as_of)
        if as_of == date.today() and _to_midnight() < PREPARE_AHEAD:
            self._prepare(engine, as_of + timedelta(days=1))
        # an entry past `head` (another reader caught it up since `head` was read) is current
        if entry is None or entry.head < head:
            with engine.connect() as connection:
                if entry is None or not self._catch_up(connection, entry, head, as_of):
                    entry = _Entry.build(head, _status_frame.status_frame(connection, as_of=as_of))
        self._entries[as_of] = entry
        self._entries.move_to_end(as_of)
        while len(self._entries) > MAX_DAYS:
            self._entries.popitem(last=False)
        return entry

    def _prepared(self, as_of: date) -> _Entry | None:
        """Return the entry derived in the background for `as_of` (waiting for it), if any."""
        future = self._preparing.pop(as_of, None)
        if future is None:
            return None
        try:
            return future.result()
        except Exception:  # noqa: BLE001 (rebuilt by the caller)
            return None

    def _catch_up(self, connection: Connection, entry: _Entry, head: int, as_of: date) -> bool:
        """Re-derive the participants changed after ``entry.head``; False if it cannot."""
        if head == entry.head:
            return True
        if head < entry.head:
            return False
        changed = connection.execute(_CHANGED, {"after": entry.head, "head": head}).all()
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


def _to_midnight() -> float:
    """Seconds until the local day (``date.today()``) changes."""
    now = datetime.now()
    return (
        datetime.combine(now.date() + timedelta(days=1), datetime.min.time()) - now
    ).total_seconds()


def _copy(counts: dict) -> dict:
    """Copy a counts dict (nested dicts of ints) so callers cannot change the cached one."""
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in counts.items()}
