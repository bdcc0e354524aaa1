"""Bulk load of a participant feed (``registry/*.csv``), streamed in blocks of rows.

Each file is read in blocks of about ``block_bytes`` of CSV, so memory stays bounded whatever the
feed's size. Every block is checked and inserted in the caller's transaction; after the first bad
row nothing more is inserted but checking goes on, and the caller's rollback undoes the rest, so
a bad feed (or a killed load) stores nothing and every problem is reported at once.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Table, func, select

from opencohort.errors import InputError
from opencohort.registry import models as m
from opencohort.registry._bulk import BulkWriter, load_settings
from opencohort.registry.status import (
    ConsentStatus,
    ConsentType,
    SampleState,
    WithdrawalStatus,
)

#: CSV bytes per block: about 7,000 participants or 30,000 survey rows. Arrow's streaming
#: reader holds about 30 times this while a file is read (8 MB blocks: ~250 MB).
BLOCK_BYTES = 2 << 20
BOOL = {"true": True, "false": False, "True": True, "False": False, "1": True, "0": False}

# kind codes: pid, date, date?, bool, float?, str, str?, sha, or a frozenset of allowed values.
_SPECS: dict[str, dict[str, object]] = {
    "sites.csv": {
        "site_id": "str",
        "site_name": "str",
        "organization_id": "str",
        "awardee_id": "str",
        "state": "str?",
        "imperial_units": "bool",
    },
    "participants.csv": {
        "participant_id": "pid",
        "site_id": "str?",
        "origin": frozenset({"site", "self"}),
        "sign_up_date": "date",
        "birth_date": "date",
        "guardian_consent": "bool",
        **dict.fromkeys(
            [
                "sex_at_birth",
                "gender_identity",
                "sexual_orientation",
                "race_ethnicity",
                "education",
                "income",
                "employment",
            ],
            "str",
        ),
        "disability": "bool",
        "limited_access_to_care": "bool",
        **dict.fromkeys(["first_name", "last_name"], "str"),
        **dict.fromkeys(
            ["middle_name", "street_address", "city", "state", "zip", "phone", "email", "ssn"],
            "str?",
        ),
        "mrn": "str?",
    },
    "consents.csv": {
        "participant_id": "pid",
        "consent_type": frozenset(ConsentType),
        "version": "str",
        "status": frozenset(s.value for s in ConsentStatus if s != ConsentStatus.UNSET),
        "signer": frozenset({"participant", "guardian"}),
        "authored_date": "date",
        "document_sha256": "sha",
    },
    "surveys.csv": {"participant_id": "pid", "module": "str", "authored_date": "date"},
    "physical_measurements.csv": {
        "participant_id": "pid",
        "pm_date": "date",
        **dict.fromkeys(
            [
                "height_cm",
                "weight_kg",
                "waist_cm",
                "hip_cm",
                "systolic_bp",
                "diastolic_bp",
                "heart_rate",
            ],
            "float?",
        ),
    },
    "biospecimens.csv": {
        "participant_id": "pid",
        "order_id": "str",
        "sample_id": "str",
        "test_code": "str",
        "collection_method": frozenset({"on_site", "mail_kit"}),
        "created_date": "date",
        "collected_date": "date?",
        "processed_date": "date?",
        "finalized_date": "date?",
        "received_date": "date?",
        "sample_status": frozenset(
            {"", SampleState.RECEIVED, SampleState.DISPOSED, SampleState.QUALITY_ISSUE}
        ),
        "status_date": "date?",
    },
    "withdrawals.csv": {
        "participant_id": "pid",
        "withdrawal_date": "date",
        "withdrawal_status": frozenset(WithdrawalStatus),
        "withdrawal_reason": "str?",
        "aian_ceremony": frozenset({"", "requested", "declined"}),
    },
    "suspensions.csv": {
        "participant_id": "pid",
        "suspension_date": "date",
        "suspension_status": frozenset({"no_contact", "not_suspended"}),
    },
    "deaths.csv": {
        "participant_id": "pid",
        "death_date": "date?",
        "reported_date": "date",
        "report_source": "str",
        "report_status": frozenset({"pending", "approved", "denied"}),
    },
}
FEED_FILES = tuple(_SPECS)


class FeedError(InputError):
    """A feed has bad rows; nothing was stored. Fix every row in ``problems`` and load again."""

    def __init__(self, problems: list[dict]) -> None:
        self.problems = problems
        shown = "; ".join(
            f"{p['file']} line {p['line']} field {p['field']}: {p['message']}"
            for p in problems[:20]
        )
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} bad rows, nothing loaded: {shown}{more}")


def _problem(file: str, line: int, field: str, value: object, message: str) -> dict:
    return {"file": file, "line": int(line), "field": field, "value": value, "message": message}


def _report(problems, name, frame, bad: np.ndarray, field: str, message: str) -> None:
    rows = np.flatnonzero(bad)
    values = frame[field].to_numpy()[rows]
    for row, value in zip(frame.index.to_numpy()[rows], values, strict=True):
        problems.append(_problem(name, row + 2, field, value, message.format(value=value)))


def _matches(text: pd.Series, pattern: str) -> np.ndarray:
    """Mask of `text` values that match `pattern` whole.

    Arrow's regex, not ``Series.str``: the accessor and its Series form a reference cycle that
    keeps the block's strings alive until a full garbage collection (at 1,000,000 participants
    that held hundreds of MB of finished blocks).
    """
    matched = pc.match_substring_regex(pa.array(text.to_numpy(), pa.string()), f"^{pattern}$")
    return matched.to_numpy(zero_copy_only=False)


def _check(name: str, frame: pd.DataFrame, spec: dict, problems: list[dict]) -> pd.DataFrame:
    out = frame.copy()
    for field, kind in spec.items():
        text = frame[field]
        empty = (text == "").to_numpy()
        if isinstance(kind, frozenset):
            allowed = ", ".join(sorted(str(v) for v in kind))
            bad = ~text.isin({str(v) for v in kind}).to_numpy()
            _report(problems, name, frame, bad, field, f"'{{value}}' is not one of: {allowed}")
        elif kind == "pid":
            bad = ~_matches(text, _PID)
            _report(problems, name, frame, bad, field, "'{value}' is not P followed by digits")
        elif kind in ("date", "date?"):
            parsed = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
            bad = parsed.isna().to_numpy() & (~empty if kind == "date?" else True)
            _report(
                problems, name, frame, bad, field, "'{value}' is not a date; expected YYYY-MM-DD"
            )
            out[field] = parsed
        elif kind == "bool":
            bad = ~text.isin(BOOL).to_numpy()
            _report(problems, name, frame, bad, field, "'{value}' is not true or false")
            out[field] = text.map(BOOL).fillna(False).astype(bool)
        elif kind == "float?":
            parsed = pd.to_numeric(text.where(~empty), errors="coerce")
            bad = parsed.isna().to_numpy() & ~empty
            _report(problems, name, frame, bad, field, "'{value}' is not a number")
            out[field] = parsed
        elif kind == "sha":
            bad = ~_matches(text, "[0-9a-f]{64}")
            _report(problems, name, frame, bad, field, "'{value}' is not a sha256 hex digest")
        elif kind == "str":
            _report(problems, name, frame, empty, field, "value is empty")
    return out


def _options(columns: list[str]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        include_columns=columns,
        column_types=dict.fromkeys(columns, pa.string()),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )


#: A participant id is "P" and up to this many digits; its key is the digits' value plus their
#: count times 10**_DIGITS, so "P01" and "P1" get different keys.
_DIGITS = 15
_PID = rf"P[0-9]{{1,{_DIGITS}}}"


def _keys(ids: pd.Series | pa.Array) -> np.ndarray:
    """Return int64 keys of participant ids (-1 for an id that is not "P" and 1-15 digits).

    Keys stand for the ids in the load's lookups: 8 bytes each instead of a Python string and
    its hash-table slot (at 1,000,000 participants about 200 MB less held through the load).
    """
    text = pa.array(ids, pa.string())
    valid = pc.match_substring_regex(text, f"^{_PID}$")
    digits = pc.if_else(valid, pc.utf8_slice_codeunits(text, 1), "0")
    keys = pc.add(pc.cast(digits, pa.int64()), pc.multiply(pc.utf8_length(digits), 10**_DIGITS))
    return pc.if_else(valid, keys, -1).to_numpy(zero_copy_only=False)


def _known(known: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Mask of `keys` found in the sorted array `known`."""
    at = np.searchsorted(known, keys).clip(max=max(len(known) - 1, 0))
    return known[at] == keys if len(known) else np.zeros(len(keys), bool)


def _blocks(path: Path, columns: list[str], block_bytes: int) -> Iterator[pd.DataFrame]:
    """Yield `path`'s `columns` in blocks of string frames, indexed by row number from 0."""
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=block_bytes),
        convert_options=_options(columns),
    )
    offset = 0
    for batch in reader:
        frame = batch.to_pandas()
        frame.index = pd.RangeIndex(offset, offset + len(frame))
        offset += len(frame)
        yield frame


def _whole(path: Path, columns: list[str]) -> pd.DataFrame:
    """Read `columns` of `path` (as strings) block by block: a few columns of a large file, or
    a small file, without holding the whole CSV in memory."""
    frames = list(_blocks(path, columns, BLOCK_BYTES))
    return (
        pd.concat(frames) if frames else pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    )


def _present(feed_dir: Path, problems: list[dict]) -> dict[str, Path]:
    """Return the feed files that exist and whose header holds every column of their spec."""
    present = {}
    for name, spec in _SPECS.items():
        path = feed_dir / name
        if not path.exists():
            continue
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), [])
        missing = [c for c in spec if c not in header]
        for column in missing:
            problems.append(_problem(name, 1, column, "", "column is missing from the header"))
        if not missing:
            present[name] = path
    return present


def _arrow(frame: pd.DataFrame, columns: dict[str, str]) -> pa.Table:
    """Return `frame`'s columns renamed by `columns` as Arrow (dates as date32, NaN as null)."""
    arrays = {}
    for source, target in columns.items():
        values = frame[source].to_numpy()
        if values.dtype.kind == "M":
            arrays[target] = pa.array(values.astype("datetime64[D]"), pa.date32(), from_pandas=True)
        elif values.dtype == object:
            arrays[target] = pa.array(values, pa.string(), from_pandas=True)
        else:
            arrays[target] = pa.array(values, from_pandas=True)
    return pa.table(arrays)


def count(connection: Connection, table: Table) -> int:
    """Return the number of rows in `table`."""
    return connection.execute(select(func.count()).select_from(table)).scalar_one()


def _same(name: str) -> dict[str, str]:
    return {c: c for c in _SPECS[name]}


#: Feed file -> (table, {feed column: table column}) for files that map one row to one row.
_ROW_TABLES = {
    "consents.csv": (m.Consent.__table__, _same("consents.csv")),
    "surveys.csv": (m.SurveyCompletion.__table__, _same("surveys.csv")),
    "physical_measurements.csv": (
        m.PhysicalMeasurement.__table__,
        {**_same("physical_measurements.csv"), "pm_date": "measured_date"},
    ),
    "withdrawals.csv": (
        m.WithdrawalEvent.__table__,
        {"participant_id": "participant_id", "withdrawal_status": "status",
         "withdrawal_date": "authored_date", "withdrawal_reason": "reason",
         "aian_ceremony": "aian_ceremony"},
    ),
    "suspensions.csv": (
        m.SuspensionEvent.__table__,
        {"participant_id": "participant_id", "suspension_status": "status",
         "suspension_date": "event_date"},
    ),
    "deaths.csv": (
        m.DeceasedReport.__table__,
        {"participant_id": "participant_id", "death_date": "death_date",
         "reported_date": "reported_date", "report_source": "source",
         "report_status": "review_status"},
    ),
}  # fmt: skip
_ORDER_COLUMNS = ["order_id", "participant_id", "collection_method", "created_date",
                  "collected_date", "processed_date", "finalized_date"]  # fmt: skip
_SAMPLE_COLUMNS = ["sample_id", "order_id", "participant_id", "test_code", "received_date"]


def _site_tables(sites: pd.DataFrame) -> Iterator[tuple[Table, pa.Table]]:
    awardees = sites.drop_duplicates("awardee_id")
    awardees = awardees.assign(name=awardees["awardee_id"])
    yield m.Awardee.__table__, _arrow(awardees, {"awardee_id": "awardee_id", "name": "name"})
    orgs = sites.drop_duplicates("organization_id")
    orgs = orgs.assign(name=orgs["organization_id"])
    columns = {"organization_id": "organization_id", "awardee_id": "awardee_id", "name": "name"}
    yield m.Organization.__table__, _arrow(orgs, columns)
    columns = {"site_id": "site_id", "organization_id": "organization_id", "site_name": "name",
               "state": "state", "imperial_units": "imperial_units"}  # fmt: skip
    yield m.Site.__table__, _arrow(sites, columns)


def _people_tables(people: pd.DataFrame) -> Iterator[tuple[Table, pa.Table]]:
    """Participant and identity rows of new `people` (with drawn ids and ``version``)."""
    site = people["site_id"]
    people = people.assign(site_id=site.astype(object).where(site != "", None))
    people = people.rename(columns={"guardian_consent": "guardian_linked"})
    for model in (m.Participant, m.ParticipantIdentity):
        names = [c.name for c in model.__table__.columns]
        yield model.__table__, _arrow(people, dict(zip(names, names, strict=True)))


def _file_tables(name: str, frame: pd.DataFrame) -> Iterator[tuple[Table, pa.Table]]:
    """Rows of a checked block of feed file `name` (not sites or participants)."""
    if name in _ROW_TABLES:
        table, columns = _ROW_TABLES[name]
        yield table, _arrow(frame, columns)
        return
    orders = frame.drop_duplicates("order_id")
    yield m.BiospecimenOrder.__table__, _arrow(orders, {c: c for c in _ORDER_COLUMNS})
    yield m.Sample.__table__, _arrow(frame, {c: c for c in _SAMPLE_COLUMNS})
    later = frame[frame["sample_status"].isin(["disposed", "quality_issue"])]
    yield (
        m.SampleEvent.__table__,
        _arrow(later, {"sample_id": "sample_id", "sample_status": "state",
                       "status_date": "event_date"}),
    )  # fmt: skip


def _first_no_use(connection: Connection, path: Path | None) -> pd.Series:
    """First no-use withdrawal date per participant, stored or in the feed's withdrawals."""
    w = m.WithdrawalEvent
    stored = pd.read_sql(
        select(w.participant_id, w.authored_date.label("withdrawal_date")).where(
            w.status == WithdrawalStatus.NO_USE
        ),
        connection,
        parse_dates=["withdrawal_date"],
    )
    frames = [stored]
    if path is not None:
        feed = _whole(path, ["participant_id", "withdrawal_status", "withdrawal_date"])
        feed = feed[feed["withdrawal_status"] == WithdrawalStatus.NO_USE]
        dates = pd.to_datetime(feed["withdrawal_date"], format="%Y-%m-%d", errors="coerce")
        frames.append(feed[["participant_id"]].assign(withdrawal_date=dates))
    both = pd.concat(frames, ignore_index=True)
    return both.groupby("participant_id")["withdrawal_date"].min()


class _Load:
    """One load's state: the ids it knows, the problems found, and the writer."""

    def __init__(self, connection: Connection, feed_dir: Path, block_bytes: int) -> None:
        self.connection = connection
        self.block_bytes = block_bytes
        self.problems: list[dict] = []
        self.present = _present(feed_dir, self.problems)
        if "participants.csv" not in self.present:
            raise FeedError(self.problems)
        self.writer = BulkWriter(connection)

    def stored(self, column) -> pd.Index:
        return pd.Index(self.connection.execute(select(column)).scalars().all(), dtype=object)

    def stored_keys(self) -> np.ndarray:
        """Keys of the stored participants' ids, read a block of rows at a time."""
        result = self.connection.execute(select(m.Participant.participant_id))
        parts = [
            _keys(pa.array(rows, pa.string())) for rows in result.scalars().partitions(1 << 16)
        ]
        return np.concatenate(parts) if parts else np.empty(0, np.int64)

    def insert(self, tables: Iterator[tuple[Table, pa.Table]]) -> None:
        """Insert `tables` while the feed has no problems; the caller rolls back otherwise."""
        for table, rows in tables:
            if not self.problems:
                self.writer.insert(table, rows, skip_existing=table.name != "participant")

    def sites(self) -> pd.Index:
        """Load sites.csv (small, read whole); return every known site id."""
        known = self.stored(m.Site.site_id)
        path = self.present.get("sites.csv")
        if path is None:
            return known
        spec = _SPECS["sites.csv"]
        sites = _check("sites.csv", _whole(path, list(spec)), spec, self.problems)
        self.insert(_site_tables(sites))
        return known.append(pd.Index(sites["site_id"], dtype=object)).unique()

    def participants(self, sites: pd.Index, draw_ids: Callable[[int], pd.DataFrame]) -> np.ndarray:
        """Check and load participants.csv; return the sorted keys of every known participant."""
        name, spec = "participants.csv", _SPECS["participants.csv"]
        path = self.present[name]
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
                                convert_options=_options(["participant_id"]))  # fmt: skip
        parts = [_keys(batch.column(0)) for batch in reader]
        keys = np.concatenate(parts) if parts else np.empty(0, np.int64)
        twice = pd.Series(keys).duplicated().to_numpy() & (keys >= 0)
        stored = np.sort(self.stored_keys())
        new = ~_known(stored, keys)
        drawn = draw_ids(int(new.sum()))
        before = np.concatenate([[0], np.cumsum(new)])
        for block in _blocks(path, list(spec), self.block_bytes):
            checked = _check(name, block, spec, self.problems)
            _report(self.problems, name, block, twice[block.index], "participant_id",
                    "'{value}' appears twice in participants.csv")  # fmt: skip
            site = block["site_id"]
            bad = ~(sites.get_indexer(site) >= 0) & (site != "").to_numpy()
            _report(self.problems, name, block, bad, "site_id",
                    "'{value}' is not a known site; add it to sites.csv")  # fmt: skip
            rows = new[block.index]
            first = before[block.index[0]]
            people = checked[rows].reset_index(drop=True)
            people = pd.concat([people, drawn.iloc[first : first + len(people)]
                                .reset_index(drop=True)], axis=1)  # fmt: skip
            self.insert(_people_tables(people.assign(version=1)))
        return np.union1d(stored, keys[keys >= 0])

    def file(self, name: str, people: np.ndarray, no_use: pd.Series) -> None:
        """Check and load one feed file that refers to participants."""
        spec = _SPECS[name]
        for block in _blocks(self.present[name], list(spec), self.block_bytes):
            if name == "surveys.csv":
                block = block.drop_duplicates(["participant_id", "module", "authored_date"])
            checked = _check(name, block, spec, self.problems)
            keys = _keys(block["participant_id"])
            bad = (keys >= 0) & ~_known(people, keys)
            _report(self.problems, name, block, bad, "participant_id",
                    "'{value}' is not in participants.csv or the registry")  # fmt: skip
            if name == "withdrawals.csv":
                since = checked["participant_id"].map(no_use)
                status = checked["withdrawal_status"]
                bad = ((status != WithdrawalStatus.NO_USE)
                       & (checked["withdrawal_date"] > since)).to_numpy()  # fmt: skip
                _report(self.problems, name, block, bad, "withdrawal_status",
                        "'{value}' after a no_use withdrawal; no_use is irreversible")  # fmt: skip
            self.insert(_file_tables(name, checked))


def load(
    connection: Connection,
    feed_dir: Path,
    *,
    draw_ids: Callable[[int], pd.DataFrame],
    block_bytes: int = BLOCK_BYTES,
) -> dict[str, int]:
    """Check and insert the feed at `feed_dir` in `connection`'s transaction, block by block.

    `draw_ids(n)` returns ``research_id``, ``biobank_id`` and ``date_shift_days`` for the `n`
    new participants, in feed order. Returns the new rows per fact table.

    Raises
    ------
    FeedError
        If any row is bad (rows may have been inserted: the caller must roll back).
    InputError
        If `feed_dir` holds no participants.csv.
    """
    feed_dir = Path(feed_dir)
    if not (feed_dir / "participants.csv").exists():
        raise InputError(
            "no participants.csv here; pass the synthetic program's registry directory",
            file=str(feed_dir),
        )
    tables = [t for t in m.Base.metadata.sorted_tables if t.name not in m.SERVICE_TABLES]
    before = {t.name: count(connection, t) for t in tables}
    with load_settings(connection):
        run = _Load(connection, feed_dir, block_bytes)
        people = run.participants(run.sites(), draw_ids)
        no_use = _first_no_use(connection, run.present.get("withdrawals.csv"))
        for name in _SPECS:
            if name in run.present and name not in ("sites.csv", "participants.csv"):
                run.file(name, people, no_use)
    if run.problems:
        raise FeedError(run.problems)
    return {t.name: count(connection, t) - before[t.name] for t in tables}
