"""Bulk load of a participant feed (``registry/*.csv``): validate everything, then insert."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from opencohort.errors import InputError
from opencohort.registry import models as m
from opencohort.registry.status import (
    ConsentStatus,
    ConsentType,
    SampleState,
    WithdrawalStatus,
)

CHUNK = 50_000
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


def read_feed(feed_dir: Path) -> tuple[dict[str, pd.DataFrame], list[dict]]:
    """Read the feed files that exist (all values as strings) and check each value.

    Returns the frames (typed columns added as ``<name>`` replaced by parsed values) and the
    list of problems found, each naming file, line, field, value and message.
    """
    feed_dir = Path(feed_dir)
    if not (feed_dir / "participants.csv").exists():
        raise InputError(
            "no participants.csv here; pass the synthetic program's registry directory",
            file=str(feed_dir),
        )
    frames: dict[str, pd.DataFrame] = {}
    problems: list[dict] = []
    for name, spec in _SPECS.items():
        path = feed_dir / name
        if not path.exists():
            continue
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), [])
        missing = [c for c in spec if c not in header]
        for column in missing:
            problems.append(_problem(name, 1, column, "", "column is missing from the header"))
        if missing:
            continue
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                include_columns=list(spec),
                column_types=dict.fromkeys(spec, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        frame = table.to_pandas()
        if name == "surveys.csv":
            frame = frame.drop_duplicates(["participant_id", "module", "authored_date"])
        frames[name] = _check(name, frame, spec, problems)
    return frames, problems


def _problem(file: str, line: int, field: str, value: object, message: str) -> dict:
    return {"file": file, "line": int(line), "field": field, "value": value, "message": message}


def _report(problems, name, frame, bad: np.ndarray, field: str, message: str) -> None:
    rows = np.flatnonzero(bad)
    values = frame[field].to_numpy()[rows]
    for row, value in zip(frame.index.to_numpy()[rows], values, strict=True):
        problems.append(_problem(name, row + 2, field, value, message.format(value=value)))


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
            bad = ~text.str.fullmatch(r"P\d{1,15}").to_numpy()
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
            bad = ~text.str.fullmatch(r"[0-9a-f]{64}").to_numpy()
            _report(problems, name, frame, bad, field, "'{value}' is not a sha256 hex digest")
        elif kind == "str":
            _report(problems, name, frame, empty, field, "value is empty")
    return out


def check_references(
    frames: dict[str, pd.DataFrame], known: Callable[[str], set[str]], problems: list[dict]
) -> None:
    """Check ids that point elsewhere: sites, participants, and irreversible withdrawals.

    `known(column)` returns the ids already stored for ``site_id`` or ``participant_id``.
    """
    people = frames["participants.csv"]
    duplicated = people["participant_id"].duplicated(keep="first").to_numpy()
    _report(problems, "participants.csv", people, duplicated, "participant_id",
            "'{value}' appears twice in participants.csv")  # fmt: skip
    sites = set(known("site_id"))
    if "sites.csv" in frames:
        sites |= set(frames["sites.csv"]["site_id"])
    bad = ~(people["site_id"].isin(sites) | (people["site_id"] == "")).to_numpy()
    _report(problems, "participants.csv", people, bad, "site_id",
            "'{value}' is not a known site; add it to sites.csv")  # fmt: skip
    ids = set(people["participant_id"]) | known("participant_id")
    for name, frame in frames.items():
        if name in ("participants.csv", "sites.csv"):
            continue
        bad = ~frame["participant_id"].isin(ids).to_numpy()
        _report(problems, name, frame, bad, "participant_id",
                "'{value}' is not in participants.csv or the registry")  # fmt: skip


def check_withdrawals(
    frames: dict[str, pd.DataFrame], stored_no_use: pd.DataFrame, problems: list[dict]
) -> None:
    """Report feed withdrawals that would revert a no-use withdrawal (stored or in the feed)."""
    frame = frames.get("withdrawals.csv")
    if frame is None or frame.empty:
        return
    feed_no_use = frame.loc[
        frame["withdrawal_status"] == WithdrawalStatus.NO_USE, ["participant_id", "withdrawal_date"]
    ]
    first = (
        pd.concat([feed_no_use, stored_no_use], ignore_index=True)
        .groupby("participant_id")["withdrawal_date"]
        .min()
    )
    since = frame["participant_id"].map(first)
    bad = (
        (frame["withdrawal_status"] != WithdrawalStatus.NO_USE) & (frame["withdrawal_date"] > since)
    ).to_numpy()
    _report(problems, "withdrawals.csv", frame, bad, "withdrawal_status",
            "'{value}' after a no_use withdrawal; no_use is irreversible")  # fmt: skip


def _python(frame: pd.DataFrame, columns: dict[str, str]) -> list[dict]:
    """Return rows as dicts of Python values (dates, None for missing), renamed by `columns`."""
    values = {}
    for source, target in columns.items():
        series = frame[source]
        if series.dtype.kind == "M":
            dates = series.dt.date.astype(object)
            values[target] = dates.where(series.notna(), None).tolist()
        elif series.dtype.kind == "f":
            values[target] = series.astype(object).where(series.notna(), None).tolist()
        else:
            values[target] = series.tolist()
    names = list(values)
    return [dict(zip(names, row, strict=True)) for row in zip(*values.values(), strict=True)]


def _chunks(records: list[dict]) -> Iterator[list[dict]]:
    for start in range(0, len(records), CHUNK):
        yield records[start : start + CHUNK]


def insert(
    connection: Connection, table: Table, records: list[dict], *, skip_existing: bool
) -> None:
    """Insert `records` in chunks; `skip_existing` skips rows clashing on a unique key."""
    if not records:
        return
    if skip_existing:
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table).on_conflict_do_nothing()
    else:
        statement = table.insert()
    for chunk in _chunks(records):
        connection.execute(statement, chunk)


def count(connection: Connection, table: Table) -> int:
    """Return the number of rows in `table`."""
    return connection.execute(select(func.count()).select_from(table)).scalar_one()


def feed_tables(frames: dict[str, pd.DataFrame], new_people: pd.DataFrame) -> Iterator[tuple]:
    """Yield ``(table, records)`` in foreign-key order for everything the feed holds.

    `new_people` are the participants.csv rows not yet stored, with drawn ``research_id``,
    ``biobank_id`` and ``date_shift_days`` columns.
    """
    if "sites.csv" in frames:
        sites = frames["sites.csv"]
        awardees = sites.drop_duplicates("awardee_id")
        awardees = awardees.assign(name=awardees["awardee_id"])
        yield m.Awardee.__table__, _python(awardees, {"awardee_id": "awardee_id", "name": "name"})
        orgs = sites.drop_duplicates("organization_id")
        orgs = orgs.assign(name=orgs["organization_id"])
        yield (
            m.Organization.__table__,
            _python(
                orgs,
                {"organization_id": "organization_id", "awardee_id": "awardee_id", "name": "name"},
            ),
        )
        yield (
            m.Site.__table__,
            _python(
                sites,
                {
                    "site_id": "site_id",
                    "organization_id": "organization_id",
                    "site_name": "name",
                    "state": "state",
                    "imperial_units": "imperial_units",
                },
            ),
        )
    site = new_people["site_id"]
    people = new_people.assign(site_id=site.astype(object).where(site != "", None))
    yield (
        m.Participant.__table__,
        _python(
            people.rename(columns={"guardian_consent": "guardian_linked"}),
            {c.name: c.name for c in m.Participant.__table__.columns},
        ),
    )
    yield (
        m.ParticipantIdentity.__table__,
        _python(people, {c.name: c.name for c in m.ParticipantIdentity.__table__.columns}),
    )
    simple = {
        "consents.csv": (m.Consent, {c: c for c in _SPECS["consents.csv"]}),
        "surveys.csv": (m.SurveyCompletion, {c: c for c in _SPECS["surveys.csv"]}),
        "physical_measurements.csv": (
            m.PhysicalMeasurement,
            {**{c: c for c in _SPECS["physical_measurements.csv"]}, "pm_date": "measured_date"},
        ),
    }
    for name, (model, columns) in simple.items():
        if name in frames:
            yield model.__table__, _python(frames[name], columns)
    if "biospecimens.csv" in frames:
        specimens = frames["biospecimens.csv"]
        orders = specimens.drop_duplicates("order_id")
        order_columns = ["order_id", "participant_id", "collection_method", "created_date",
                         "collected_date", "processed_date", "finalized_date"]  # fmt: skip
        yield m.BiospecimenOrder.__table__, _python(orders, {c: c for c in order_columns})
        sample_columns = ["sample_id", "order_id", "participant_id", "test_code", "received_date"]
        yield m.Sample.__table__, _python(specimens, {c: c for c in sample_columns})
        later = specimens[specimens["sample_status"].isin(["disposed", "quality_issue"])]
        yield (
            m.SampleEvent.__table__,
            _python(
                later,
                {"sample_id": "sample_id", "sample_status": "state", "status_date": "event_date"},
            ),
        )
    renamed = {
        "withdrawals.csv": (
            m.WithdrawalEvent,
            {"participant_id": "participant_id", "withdrawal_status": "status",
             "withdrawal_date": "authored_date", "withdrawal_reason": "reason",
             "aian_ceremony": "aian_ceremony"},
        ),
        "suspensions.csv": (
            m.SuspensionEvent,
            {"participant_id": "participant_id", "suspension_status": "status",
             "suspension_date": "event_date"},
        ),
        "deaths.csv": (
            m.DeceasedReport,
            {"participant_id": "participant_id", "death_date": "death_date",
             "reported_date": "reported_date", "report_source": "source",
             "report_status": "review_status"},
        ),
    }  # fmt: skip
    for name, (model, columns) in renamed.items():
        if name in frames:
            yield model.__table__, _python(frames[name], columns)
