"""Site EHR submissions: OMOP CDM v5.4 CSVs and PII files per site, with injected errors.

Each site of the synthetic program sends what the reference program asks of its sites: the
clinical CDM tables of its participants (person, observation_period, visit_occurrence,
condition_occurrence, drug_exposure, measurement, procedure_occurrence, observation, death,
note), the PII files used to match identities (pii_name, pii_email, pii_phone_number,
pii_address with location rows, pii_mrn) and nothing else. ``person_id`` is the numeric part of
the participant id, as the reference program's sites use.

The data carry the planted truth (disease codes from onset on, trait measurements around the
true values, drugs following diseases) and the errors curation has to catch; every injected
error is returned as one row of the errors frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from opencohort.synth import _clinical as clinical
from opencohort.synth._ehr_csv import append_table, as_dates, nulls
from opencohort.synth._random import batch_index
from opencohort.synth.measurements import (
    IMPERIAL,
    implausible_values,
    measurement_concepts,
    person_profile,
    sample_values,
    to_imperial,
)
from opencohort.synth.models import SynthConfig
from opencohort.synth.notes import build_notes
from opencohort.synth.traits import diseases
from opencohort.vocab import drugs, icd10cm_codes, local_concept_id

_STREAM_EHR = 7104
_MEAN_VISITS = 11.0
_VISIT_SIGMA = 1.0
_MAX_VISITS = 3000
_PER_VISIT = {"condition": 1.5, "drug": 0.9, "measurement": 3.3, "procedure": 0.6, "obs": 0.25}
_NOTE_SHARE = 0.25
_CHRONIC_SHARE = 0.6
_LOOKBACK_DAYS = 12 * 365
_ONCE_ONLY = 0.15  # share of cases whose code appears on one date only
_EHR = 32817  # type concept "EHR"
_ID_STRIDE = 1_000_000  # row ids are person_id * stride + sequence within the person
_DAY_9999 = int(np.datetime64("9999-12-31", "D").astype(np.int64))
_ALIVE = np.iinfo(np.int64).max // 4

TABLES: dict[str, tuple[str, ...]] = {
    "person": (
        "person_id", "gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth",
        "birth_datetime", "race_concept_id", "ethnicity_concept_id", "location_id",
        "provider_id", "care_site_id", "person_source_value", "gender_source_value",
        "gender_source_concept_id", "race_source_value", "race_source_concept_id",
        "ethnicity_source_value", "ethnicity_source_concept_id",
    ),
    "observation_period": (
        "observation_period_id", "person_id", "observation_period_start_date",
        "observation_period_end_date", "period_type_concept_id",
    ),
    "visit_occurrence": (
        "visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date",
        "visit_start_datetime", "visit_end_date", "visit_end_datetime", "visit_type_concept_id",
        "provider_id", "care_site_id", "visit_source_value", "visit_source_concept_id",
        "admitted_from_concept_id", "admitted_from_source_value", "discharged_to_concept_id",
        "discharged_to_source_value", "preceding_visit_occurrence_id",
    ),
    "condition_occurrence": (
        "condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date",
        "condition_start_datetime", "condition_end_date", "condition_end_datetime",
        "condition_type_concept_id", "condition_status_concept_id", "stop_reason",
        "provider_id", "visit_occurrence_id", "visit_detail_id", "condition_source_value",
        "condition_source_concept_id", "condition_status_source_value",
    ),
    "drug_exposure": (
        "drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date",
        "drug_exposure_start_datetime", "drug_exposure_end_date", "drug_exposure_end_datetime",
        "verbatim_end_date", "drug_type_concept_id", "stop_reason", "refills", "quantity",
        "days_supply", "sig", "route_concept_id", "lot_number", "provider_id",
        "visit_occurrence_id", "visit_detail_id", "drug_source_value", "drug_source_concept_id",
        "route_source_value", "dose_unit_source_value",
    ),
    "measurement": (
        "measurement_id", "person_id", "measurement_concept_id", "measurement_date",
        "measurement_datetime", "measurement_time", "measurement_type_concept_id",
        "operator_concept_id", "value_as_number", "value_as_concept_id", "unit_concept_id",
        "range_low", "range_high", "provider_id", "visit_occurrence_id", "visit_detail_id",
        "measurement_source_value", "measurement_source_concept_id", "unit_source_value",
        "unit_source_concept_id", "value_source_value", "measurement_event_id",
        "meas_event_field_concept_id",
    ),
    "procedure_occurrence": (
        "procedure_occurrence_id", "person_id", "procedure_concept_id", "procedure_date",
        "procedure_datetime", "procedure_end_date", "procedure_end_datetime",
        "procedure_type_concept_id", "modifier_concept_id", "quantity", "provider_id",
        "visit_occurrence_id", "visit_detail_id", "procedure_source_value",
        "procedure_source_concept_id", "modifier_source_value",
    ),
    "observation": (
        "observation_id", "person_id", "observation_concept_id", "observation_date",
        "observation_datetime", "observation_type_concept_id", "value_as_number",
        "value_as_string", "value_as_concept_id", "qualifier_concept_id", "unit_concept_id",
        "provider_id", "visit_occurrence_id", "visit_detail_id", "observation_source_value",
        "observation_source_concept_id", "unit_source_value", "qualifier_source_value",
        "value_source_value", "observation_event_id", "obs_event_field_concept_id",
    ),
    "death": (
        "person_id", "death_date", "death_datetime", "death_type_concept_id", "cause_concept_id",
        "cause_source_value", "cause_source_concept_id",
    ),
    "note": (
        "note_id", "person_id", "note_date", "note_datetime", "note_type_concept_id",
        "note_class_concept_id", "note_title", "note_text", "encoding_concept_id",
        "language_concept_id", "provider_id", "visit_occurrence_id", "visit_detail_id",
        "note_source_value", "note_event_id", "note_event_field_concept_id",
    ),
    "location": (
        "location_id", "address_1", "address_2", "city", "state", "zip", "county",
        "location_source_value", "country_concept_id", "country_source_value", "latitude",
        "longitude",
    ),
    "pii_name": ("person_id", "first_name", "middle_name", "last_name"),
    "pii_email": ("person_id", "email"),
    "pii_phone_number": ("person_id", "phone_number"),
    "pii_address": ("person_id", "location_id"),
    "pii_mrn": ("person_id", "mrn"),
}  # fmt: skip
#: The date column that injected date errors land in, per event table.
EVENT_DATE = {
    "condition_occurrence": "condition_start_date",
    "drug_exposure": "drug_exposure_start_date",
    "measurement": "measurement_date",
    "procedure_occurrence": "procedure_date",
    "observation": "observation_date",
}
ERROR_COLUMNS = ["kind", "site_id", "table", "row_key", "participant_id", "detail"]
_GENDER = {"female": 8532, "male": 8507}
_RACE = {"white": 8527, "black": 8516, "asian": 8515, "aian": 8657, "nhpi": 8557}
_HISPANIC, _NOT_HISPANIC = 38003563, 38003564
_ROUTES = {
    "albuterol": "inhalation",
    "insulin_glargine": "subcutaneous",
    "fluorouracil": "intravenous",
    "irinotecan": "intravenous",
    "rasburicase": "intravenous",
}


@dataclass
class _People:
    """Arrays of the persons a batch sends to sites (one entry per person)."""

    row: np.ndarray
    person_id: np.ndarray
    participant_id: np.ndarray
    site: np.ndarray  # position in the sites table
    birth: np.ndarray
    site_birth: np.ndarray
    death: np.ndarray  # day number, _ALIVE when alive
    start: np.ndarray
    end: np.ndarray
    sex: np.ndarray
    last_name: np.ndarray
    profile: pd.DataFrame


@dataclass
class _Table:
    """Columns of one CDM table (dates as int day numbers) and each row's person position."""

    cols: dict[str, object]
    pos: np.ndarray

    def extend(self, cols: dict[str, object], pos: np.ndarray) -> None:
        self.cols = {name: _concat(values, cols[name]) for name, values in self.cols.items()}
        self.pos = np.concatenate([self.pos, pos])

    def take(self, rows: np.ndarray) -> _Table:
        picked = {
            name: values.take(pa.array(rows)) if isinstance(values, pa.Array) else values[rows]
            for name, values in self.cols.items()
        }
        return _Table(picked, self.pos[rows])


class _Errors:
    """Collects injected-error rows."""

    def __init__(self, people: _People, site_ids: np.ndarray) -> None:
        self.people, self.site_ids, self.parts = people, site_ids, []

    def add(self, kind: str, table: str, pos: np.ndarray, key: np.ndarray, detail: object) -> None:
        if len(pos) == 0:
            return
        detail_arr = np.broadcast_to(np.asarray(detail, dtype=object), (len(pos),))
        self.parts.append(
            pd.DataFrame(
                {
                    "kind": kind,
                    "site_id": self.site_ids[self.people.site[pos]],
                    "table": table,
                    "row_key": np.asarray(key, dtype=np.int64),
                    "participant_id": self.people.participant_id[pos],
                    "detail": detail_arr,
                }
            )
        )

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in ERROR_COLUMNS}).astype(
                {"row_key": np.int64}
            )
        return pd.concat(self.parts, ignore_index=True)


def _days(values: pd.Series) -> np.ndarray:
    days = values.to_numpy(dtype="datetime64[D]")
    out = days.astype(np.int64)
    out[np.isnat(days)] = _ALIVE
    return out


def _select_people(
    batch: pd.DataFrame, pheno: pd.DataFrame, sites: pd.DataFrame, config: SynthConfig,
    rng: np.random.Generator,
) -> tuple[_People, np.ndarray]:  # fmt: skip
    site_pos = pd.Index(sites["site_id"]).get_indexer(batch["site_id"])
    consented = (
        batch["ehr_consent_date"].notna() & batch["primary_consent_date"].notna()
    ).to_numpy() & (site_pos >= 0)
    others = ~consented & (site_pos >= 0)
    share = config.messiness.without_ehr_consent * consented.sum() / max(others.sum(), 1)
    extra = others & (rng.random(len(batch)) < share)
    rows = np.flatnonzero(consented | extra)
    birth = _days(batch["birth_date"])[rows]
    death = _days(batch["death_date"])[rows]
    cutoff = int(np.datetime64(config.cutoff, "D").astype(np.int64))
    end = np.minimum(death, cutoff)
    sign_up = _days(batch["sign_up_date"])[rows]
    start = np.maximum(birth, sign_up - rng.integers(0, _LOOKBACK_DAYS, len(rows)))
    start = np.minimum(start, end)
    mismatch = rng.random(len(rows)) < config.messiness.identity_mismatch
    last = batch["last_name"].to_numpy(dtype=object)[rows].copy()
    other = np.roll(last, 1)
    last[mismatch] = np.where(other[mismatch] != last[mismatch], other[mismatch], "Smithson")
    site_birth = birth - np.where(mismatch, rng.integers(366, 5 * 365, len(rows)), 0)
    people = _People(
        row=rows,
        person_id=batch["participant_id"].str[1:].astype(np.int64).to_numpy()[rows],
        participant_id=batch["participant_id"].to_numpy(dtype=object)[rows],
        site=site_pos[rows],
        birth=birth,
        site_birth=site_birth,
        death=death,
        start=start,
        end=end,
        sex=batch["sex_at_birth"].to_numpy(dtype=object)[rows],
        last_name=last,
        profile=person_profile(batch, pheno, config).iloc[rows].reset_index(drop=True),
    )
    flags = np.zeros(len(rows), dtype=np.int8)
    flags[extra[rows]] = 1
    flags[mismatch] += 2
    return people, flags


def _sequence(pos: np.ndarray) -> np.ndarray:
    """Running number of each row within its (sorted) person."""
    n = len(pos)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(pos)) + 1]
    counts = np.diff(np.r_[starts, n])
    return np.arange(n) - np.repeat(starts, counts)


def _uniform_day(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return low + np.floor(rng.random(len(low)) * (high - low + 1)).astype(np.int64)


@dataclass
class _Visits:
    pos: np.ndarray
    date: np.ndarray
    end: np.ndarray
    kind: np.ndarray  # index into clinical.VISITS
    disease: np.ndarray  # index into diseases(), -1 for background visits
    visit_id: np.ndarray


def _visits(people: _People, pheno: pd.DataFrame, batch_rows: np.ndarray,
            rng: np.random.Generator) -> _Visits:  # fmt: skip
    n = len(people.row)
    mu = np.log(_MEAN_VISITS) - _VISIT_SIGMA**2 / 2
    count = np.clip(np.rint(rng.lognormal(mu, _VISIT_SIGMA, n)), 1, _MAX_VISITS).astype(int)
    pos = [np.repeat(np.arange(n), count)]
    dis = [np.full(len(pos[0]), -1)]
    for d, disease in enumerate(diseases()):
        case = pheno[disease.name].to_numpy(dtype=bool)[batch_rows]
        onset = _days(pheno[f"{disease.name}_onset"])[batch_rows]
        who = np.flatnonzero(case & (onset <= people.end))
        k = np.where(rng.random(len(who)) < _ONCE_ONLY, 1, 2 + rng.poisson(3.0, len(who)))
        pos.append(np.repeat(who, k))
        dis.append(np.full(k.sum(), d))
    all_pos = np.concatenate(pos)
    disease = np.concatenate(dis)
    low = people.start[all_pos]
    onset_all = np.full(len(all_pos), np.iinfo(np.int64).min)
    for d, disease_def in enumerate(diseases()):
        at = disease == d
        onset_all[at] = _days(pheno[f"{disease_def.name}_onset"])[batch_rows][all_pos[at]]
    low = np.maximum(low, onset_all)
    date = _uniform_day(rng, low, people.end[all_pos])
    kind = np.where(
        disease >= 0,
        0,
        rng.choice(len(clinical.VISITS), len(all_pos), p=clinical.weights(clinical.VISITS, 2)),
    )
    order = np.lexsort((date, all_pos))
    all_pos, date, kind, disease = all_pos[order], date[order], kind[order], disease[order]
    length = np.array([v[3] for v in clinical.VISITS])[kind]
    stay = np.where(length > 0, rng.integers(1, 2 * np.maximum(length, 1), len(kind)), 0)
    end = np.minimum(date + stay, people.end[all_pos])
    vid = people.person_id[all_pos] * _ID_STRIDE + _sequence(all_pos)
    return _Visits(all_pos, date, end, kind, disease, vid)


def _per_visit(visits: _Visits, rate: float, rng: np.random.Generator) -> np.ndarray:
    return np.repeat(np.arange(len(visits.pos)), rng.poisson(rate, len(visits.pos)))


def _ids(people: _People, pos: np.ndarray, date: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort order of rows by (person, date) and their primary keys in that order."""
    order = np.lexsort((date, pos))
    return order, people.person_id[pos[order]] * _ID_STRIDE + _sequence(pos[order])


def write_site_submissions(
    batch: pd.DataFrame,
    pheno: pd.DataFrame,
    sites: pd.DataFrame,
    config: SynthConfig,
    out: Path,
    *,
    append: bool,
) -> tuple[dict[str, int], pd.DataFrame]:
    """Write one batch's EHR submissions of every site and return row counts and injected errors.

    Parameters
    ----------
    batch
        Participant batch (see ``participant_batch``).
    pheno
        Output of ``phenotypes`` for the batch, row-aligned.
    sites
        ``site_table(config)``: site_id and imperial_units are used.
    config
        The synthetic program's options: seed, cutoff and ``messiness`` rates.
    out
        Program output directory; files go to ``ehr/<site_id>/<table>.csv``.
    append
        Append to existing files; when False every site's files are started afresh with a
        header (also for sites with no rows in this batch).

    Returns
    -------
    counts : dict of str to int
        Rows written per file, keyed ``ehr/<site_id>/<table>.csv``.
    errors : pandas.DataFrame
        One row per injected error: kind, site_id, table, row_key (the table's primary key;
        person_id for person-level kinds and death), participant_id, detail. Kinds:
        no_ehr_consent, identity_mismatch, duplicate_id, event_before_birth,
        event_after_death, date_9999, implausible_value, imperial_unit, unmapped_code,
        identifier_in_note.

    Notes
    -----
    1. Persons: everyone with EHR (and primary) consent, plus about
       ``messiness.without_ehr_consent`` as many without; ``messiness.identity_mismatch``
       of them get another last name and an earlier birth date at the site.
    2. Observation period: from up to 12 years before sign-up (not before birth) to the cutoff
       or death. Visits: a log-normal count per person (mean 11, heavy-tailed), uniform over
       the period; each case of a planted disease gets extra visits coded with the disease
       from onset on (85% on two or more dates).
    3. Each visit carries Poisson numbers of conditions (chronic personal codes, obesity for
       BMI >= 30, hyperlipidaemia for LDL >= 160, acute codes), drugs (background, plus the
       disease's drugs and statins for high LDL), measurements (vitals and labs around the
       person's true values), procedures, smoking-status observations and sometimes a note.
    4. Errors are injected at the ``config.messiness`` rates and recorded; date errors are
       mutually exclusive per row so every recorded error is present in the files.
    """
    index = batch_index(batch["person_index"].to_numpy(), config)
    rng = np.random.default_rng([config.seed, _STREAM_EHR, index])
    site_ids = sites["site_id"].to_numpy(dtype=object)
    people, flags = _select_people(batch, pheno, sites, config, rng)
    errors = _Errors(people, site_ids)
    every = np.arange(len(people.row))
    errors.add("no_ehr_consent", "person", every[flags & 1 == 1],
               people.person_id[flags & 1 == 1], "no EHR consent in the registry")  # fmt: skip
    mis = flags & 2 == 2
    errors.add("identity_mismatch", "person", every[mis], people.person_id[mis],
               "last name and birth date differ from the registry")  # fmt: skip
    visits = _visits(people, pheno, people.row, rng)
    tables: dict[str, _Table] = {}
    tables.update(_person_tables(batch, people))
    tables["visit_occurrence"] = _visit_table(people, visits)
    chronic = _chronic_codes(people, rng)
    tables["condition_occurrence"] = _conditions(people, visits, chronic, config, rng, errors)
    tables["drug_exposure"] = _drugs(people, visits, config, rng, errors)
    imperial = sites["imperial_units"].to_numpy(dtype=bool)
    tables["measurement"] = _measurements(people, visits, imperial, config, rng, errors)
    tables["procedure_occurrence"] = _procedures(people, visits, rng)
    tables["observation"] = _observations(people, visits, rng)
    for name, column in EVENT_DATE.items():
        _date_errors(name, column, tables[name], people, config, rng, errors)
    _after_death(tables["condition_occurrence"], people, chronic, config, rng, errors)
    tables["note"] = _notes(batch, people, visits, chronic, config, rng, errors)
    for name in ("visit_occurrence", *EVENT_DATE, "note"):
        tables[name] = _duplicates(name, tables[name], people, config, rng, errors)
    counts = _write(tables, people, site_ids, Path(out), fresh=not append)
    return counts, errors.frame()


def _person_tables(batch: pd.DataFrame, people: _People) -> dict[str, _Table]:
    n = len(people.row)
    rows, pid = people.row, people.person_id
    birth = people.site_birth.astype("datetime64[D]")
    years = birth.astype("datetime64[Y]")
    months = birth.astype("datetime64[M]")
    race = batch["race_ethnicity"].to_numpy(dtype=object)[rows]
    col = {c: batch[c].to_numpy(dtype=object)[rows] for c in (
        "first_name", "middle_name", "email", "phone", "mrn", "street_address", "city",
        "state", "zip")}  # fmt: skip
    every = np.arange(n)
    person = {
        "person_id": pid,
        "gender_concept_id": pd.Series(people.sex).map(_GENDER).fillna(0).astype(np.int64),
        "year_of_birth": years.astype(np.int64) + 1970,
        "month_of_birth": (months - years).astype(np.int64) + 1,
        "day_of_birth": (birth - months).astype(np.int64) + 1,
        "birth_datetime": nulls(n, "str"),
        "race_concept_id": pd.Series(race).map(_RACE).fillna(0).astype(np.int64),
        "ethnicity_concept_id": np.where(
            race == "hispanic", _HISPANIC, np.where(np.isin(race, list(_RACE)), _NOT_HISPANIC, 0)
        ),
        "location_id": pid,
        "provider_id": nulls(n),
        "care_site_id": nulls(n),
        "person_source_value": col["mrn"],
        "gender_source_value": people.sex,
        "gender_source_concept_id": np.zeros(n, dtype=np.int64),
        "race_source_value": race,
        "race_source_concept_id": np.zeros(n, dtype=np.int64),
        "ethnicity_source_value": np.where(race == "hispanic", "hispanic", "not hispanic"),
        "ethnicity_source_concept_id": np.zeros(n, dtype=np.int64),
    }
    period = {
        "observation_period_id": pid,
        "person_id": pid,
        "observation_period_start_date": as_dates(people.start),
        "observation_period_end_date": as_dates(people.end),
        "period_type_concept_id": np.full(n, _EHR),
    }
    dead = np.flatnonzero(people.death < _ALIVE)
    death = {
        "person_id": pid[dead],
        "death_date": as_dates(people.death[dead]),
        "death_datetime": nulls(len(dead), "str"),
        "death_type_concept_id": np.full(len(dead), _EHR),
        "cause_concept_id": np.zeros(len(dead), dtype=np.int64),
        "cause_source_value": nulls(len(dead), "str"),
        "cause_source_concept_id": np.zeros(len(dead), dtype=np.int64),
    }
    location = {
        "location_id": pid,
        "address_1": col["street_address"],
        "address_2": nulls(n, "str"),
        "city": col["city"],
        "state": col["state"],
        "zip": col["zip"],
        "county": nulls(n, "str"),
        "location_source_value": nulls(n, "str"),
        "country_concept_id": nulls(n),
        "country_source_value": np.full(n, "US", dtype=object),
        "latitude": nulls(n, "float"),
        "longitude": nulls(n, "float"),
    }
    return {
        "person": _Table(person, every),
        "observation_period": _Table(period, every),
        "death": _Table(death, dead),
        "location": _Table(location, every),
        "pii_name": _Table(
            {
                "person_id": pid,
                "first_name": col["first_name"],
                "middle_name": col["middle_name"],
                "last_name": people.last_name,
            },
            every,
        ),  # fmt: skip
        "pii_email": _Table({"person_id": pid, "email": col["email"]}, every),
        "pii_phone_number": _Table({"person_id": pid, "phone_number": col["phone"]}, every),
        "pii_address": _Table({"person_id": pid, "location_id": pid}, every),
        "pii_mrn": _Table({"person_id": pid, "mrn": col["mrn"]}, every),
    }


def _visit_table(people: _People, v: _Visits) -> _Table:
    n = len(v.pos)
    concept = np.array([x[0] for x in clinical.VISITS])[v.kind]
    source = np.array([x[1] for x in clinical.VISITS], dtype=object)[v.kind]
    cols = {
        "visit_occurrence_id": v.visit_id,
        "person_id": people.person_id[v.pos],
        "visit_concept_id": concept,
        "visit_start_date": as_dates(v.date),
        "visit_start_datetime": nulls(n, "str"),
        "visit_end_date": as_dates(v.end),
        "visit_end_datetime": nulls(n, "str"),
        "visit_type_concept_id": np.full(n, _EHR),
        "provider_id": nulls(n),
        "care_site_id": nulls(n),
        "visit_source_value": source,
        "visit_source_concept_id": np.zeros(n, dtype=np.int64),
        "admitted_from_concept_id": nulls(n),
        "admitted_from_source_value": nulls(n, "str"),
        "discharged_to_concept_id": nulls(n),
        "discharged_to_source_value": nulls(n, "str"),
        "preceding_visit_occurrence_id": nulls(n),
    }
    return _Table(cols, v.pos)


def _chronic_codes(people: _People, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each person's chronic background codes (index into BACKGROUND_CONDITIONS) and count."""
    table = clinical.BACKGROUND_CONDITIONS
    chronic = np.array([c[3] for c in table])
    w = clinical.weights(table) * chronic
    n = len(people.row)
    codes = rng.choice(len(table), (n, 6), p=w / w.sum())
    count = np.minimum(1 + rng.poisson(2.0, n), 6)
    index = {c[0]: i for i, c in enumerate(table)}
    obese = (people.profile["bmi"].to_numpy() >= 30) & (rng.random(n) < 0.6)
    codes[obese, 0] = index[clinical.OBESITY]
    high_ldl = (people.profile["ldl"].to_numpy() >= 160) & (rng.random(n) < 0.7)
    codes[high_ldl, 1] = index[clinical.HYPERLIPIDEMIA]
    count[high_ldl] = np.maximum(count[high_ldl], 2)
    return codes, count


def _condition_dictionary() -> tuple[np.ndarray, np.ndarray]:
    """Source values (background, planted, invalid) and their source concept ids."""
    values = [c[0] for c in clinical.BACKGROUND_CONDITIONS] + [d.icd10cm for d in diseases()]
    ids = [local_concept_id("ICD10CM", v) for v in values] + [0] * len(clinical.INVALID_ICD)
    return np.array(values + list(clinical.INVALID_ICD), dtype=object), np.array(ids)


def _sex_fix(codes: np.ndarray, sex: np.ndarray) -> np.ndarray:
    restriction = np.array([c[2] for c in clinical.BACKGROUND_CONDITIONS], dtype=object)[codes]
    wrong = (restriction != "") & (restriction != sex)
    neutral = [c[0] for c in clinical.BACKGROUND_CONDITIONS].index(clinical.NEUTRAL_CONDITION)
    return np.where(wrong, neutral, codes)


def _background_codes(
    people: _People, pos: np.ndarray, chronic: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    codes, count = chronic
    n = len(pos)
    pick = np.floor(rng.random(n) * count[pos]).astype(int)
    acute = rng.choice(len(clinical.BACKGROUND_CONDITIONS), n,
                       p=clinical.weights(clinical.BACKGROUND_CONDITIONS))  # fmt: skip
    out = np.where(rng.random(n) < _CHRONIC_SHARE, codes[pos, pick], acute)
    return _sex_fix(out, people.sex[pos])


def _conditions(
    people: _People, v: _Visits, chronic: tuple[np.ndarray, np.ndarray], config: SynthConfig,
    rng: np.random.Generator, errors: _Errors,
) -> _Table:  # fmt: skip
    n_background = len(clinical.BACKGROUND_CONDITIONS)
    ev = _per_visit(v, _PER_VISIT["condition"], rng)
    planted = np.flatnonzero(v.disease >= 0)
    code = np.concatenate(
        [_background_codes(people, v.pos[ev], chronic, rng), n_background + v.disease[planted]]
    )
    ev = np.concatenate([ev, planted])
    order, ids = _ids(people, v.pos[ev], v.date[ev])
    ev, code = ev[order], code[order]
    values, concept = _condition_dictionary()
    bad = rng.random(len(ev)) < config.messiness.unmapped_code
    code[bad] = (
        len(values)
        - len(clinical.INVALID_ICD)
        + rng.integers(0, len(clinical.INVALID_ICD), bad.sum())
    )
    pos = v.pos[ev]
    errors.add("unmapped_code", "condition_occurrence", pos[bad], ids[bad], values[code[bad]])
    return _Table(_condition_columns(people, pos, v.date[ev], v.visit_id[ev], code, ids), pos)


def _condition_columns(
    people: _People, pos: np.ndarray, date: np.ndarray, visit_id: np.ndarray | pa.Array,
    code: np.ndarray, ids: np.ndarray | None = None,
) -> dict[str, object]:  # fmt: skip
    n = len(pos)
    values, concept = _condition_dictionary()
    if ids is None:
        ids = people.person_id[pos] * _ID_STRIDE + _sequence(pos)
    return {
        "condition_occurrence_id": ids,
        "person_id": people.person_id[pos],
        "condition_concept_id": np.zeros(n, dtype=np.int64),
        "condition_start_date": date.copy(),
        "condition_start_datetime": nulls(n, "str"),
        "condition_end_date": nulls(n, "date"),
        "condition_end_datetime": nulls(n, "str"),
        "condition_type_concept_id": np.full(n, _EHR),
        "condition_status_concept_id": nulls(n),
        "stop_reason": nulls(n, "str"),
        "provider_id": nulls(n),
        "visit_occurrence_id": visit_id,
        "visit_detail_id": nulls(n),
        "condition_source_value": values[code],
        "condition_source_concept_id": concept[code],
        "condition_status_source_value": nulls(n, "str"),
    }


def _drugs(
    people: _People, v: _Visits, config: SynthConfig, rng: np.random.Generator, errors: _Errors
) -> _Table:
    catalogue = drugs().set_index("key")
    keys = list(catalogue.index)
    ev_parts = [_per_visit(v, _PER_VISIT["drug"], rng)]
    drug_parts = [
        rng.choice([keys.index(k) for k, _ in clinical.BACKGROUND_DRUGS], len(ev_parts[0]),
                   p=clinical.weights(clinical.BACKGROUND_DRUGS))
    ]  # fmt: skip
    for d, disease in enumerate(diseases()):
        at = np.flatnonzero(v.disease == d)
        for j, key in enumerate(disease.drugs):
            take = at[rng.random(len(at)) < (0.85 if j == 0 else 0.35)]
            ev_parts.append(take)
            drug_parts.append(np.full(len(take), keys.index(key)))
    high_ldl = people.profile["ldl"].to_numpy() >= 160
    statin_of = rng.choice([keys.index(s) for s in clinical.STATINS], len(people.row))
    take = np.flatnonzero(high_ldl[v.pos] & (rng.random(len(v.pos)) < 0.3))
    ev_parts.append(take)
    drug_parts.append(statin_of[v.pos[take]])
    ev = np.concatenate(ev_parts)
    drug = np.concatenate(drug_parts)
    order, ids = _ids(people, v.pos[ev], v.date[ev])
    ev, drug = ev[order], drug[order]
    pos, n = v.pos[ev], len(ev)
    supply = np.where(rng.random(n) < 0.6, 30, 90)
    start = v.date[ev]
    concept = catalogue["concept_id"].to_numpy(dtype=np.int64)[drug]
    source = catalogue["rxnorm"].to_numpy(dtype=object)[drug]
    bad = rng.random(n) < config.messiness.unmapped_code
    concept = np.where(bad, 0, concept)
    source[bad] = "LOCAL:" + catalogue["name"].to_numpy(dtype=object)[drug[bad]]
    errors.add("unmapped_code", "drug_exposure", pos[bad], ids[bad], source[bad])
    route = np.array([_ROUTES.get(k, "oral") for k in keys], dtype=object)[drug]
    cols = {
        "drug_exposure_id": ids,
        "person_id": people.person_id[pos],
        "drug_concept_id": concept,
        "drug_exposure_start_date": start,
        "drug_exposure_start_datetime": nulls(n, "str"),
        "drug_exposure_end_date": np.minimum(start + supply - 1, people.end[pos]),
        "drug_exposure_end_datetime": nulls(n, "str"),
        "verbatim_end_date": nulls(n, "date"),
        "drug_type_concept_id": np.full(n, 32838),  # EHR prescription
        "stop_reason": nulls(n, "str"),
        "refills": rng.integers(0, 4, n),
        "quantity": supply.astype(float),
        "days_supply": supply,
        "sig": nulls(n, "str"),
        "route_concept_id": nulls(n),
        "lot_number": nulls(n, "str"),
        "provider_id": nulls(n),
        "visit_occurrence_id": v.visit_id[ev],
        "visit_detail_id": nulls(n),
        "drug_source_value": source,
        "drug_source_concept_id": concept,
        "route_source_value": route,
        "dose_unit_source_value": nulls(n, "str"),
    }
    return _Table(cols, pos)


def _measurements(
    people: _People, v: _Visits, imperial_site: np.ndarray, config: SynthConfig,
    rng: np.random.Generator, errors: _Errors,
) -> _Table:  # fmt: skip
    mix = clinical.MEASUREMENT_MIX
    names = np.array([k for k, _ in mix], dtype=object)
    ev = _per_visit(v, _PER_VISIT["measurement"], rng)
    key_parts = [names[rng.choice(len(mix), len(ev), p=clinical.weights(mix))]]
    ev_parts = [ev]
    follow_up = {"type_2_diabetes": ("hba1c", "glucose"), "coronary_atherosclerosis": ("ldl",)}
    for d, disease in enumerate(diseases()):
        at = np.flatnonzero(v.disease == d)
        for key in follow_up.get(disease.name, ()):
            ev_parts.append(at)
            key_parts.append(np.full(len(at), key, dtype=object))
    ev = np.concatenate(ev_parts)
    keys = np.concatenate(key_parts)
    order, ids = _ids(people, v.pos[ev], v.date[ev])
    ev, keys = ev[order], keys[order].astype(str)
    pos, n = v.pos[ev], len(ev)
    value = sample_values(people.profile, pos, keys, rng)
    silly = rng.random(n) < config.messiness.implausible_value
    value[silly] = implausible_values(keys[silly], rng)
    concepts = measurement_concepts()
    at = concepts.index.get_indexer(names)[pd.Index(names).get_indexer(keys)]
    concept = concepts["concept_id"].to_numpy(dtype=np.int64)[at]
    unit = concepts["unit_concept_id"].to_numpy(dtype=np.int64)[at]
    unit_source = concepts["unit_ucum"].to_numpy(dtype=object)[at]
    source = concepts["loinc"].to_numpy(dtype=object)[at]
    errors.add("implausible_value", "measurement", pos[silly], ids[silly],
               keys[silly].astype(object) + "=" + value[silly].astype(str))  # fmt: skip
    imperial = imperial_site[people.site[pos]] & np.isin(keys, list(IMPERIAL))
    value[imperial] = to_imperial(keys[imperial], value[imperial])
    for key, (_, _, ucum, unit_id) in IMPERIAL.items():
        at = imperial & (keys == key)
        unit[at] = unit_id
        unit_source[at] = ucum
    errors.add("imperial_unit", "measurement", pos[imperial], ids[imperial], unit_source[imperial])
    bad = rng.random(n) < config.messiness.unmapped_code
    concept[bad] = 0
    source[bad] = "LOCAL-" + np.char.upper(keys[bad]).astype(object)
    errors.add("unmapped_code", "measurement", pos[bad], ids[bad], source[bad])
    cols = {
        "measurement_id": ids,
        "person_id": people.person_id[pos],
        "measurement_concept_id": concept,
        "measurement_date": v.date[ev],
        "measurement_datetime": nulls(n, "str"),
        "measurement_time": nulls(n, "str"),
        "measurement_type_concept_id": np.full(n, _EHR),
        "operator_concept_id": nulls(n),
        "value_as_number": value,
        "value_as_concept_id": nulls(n),
        "unit_concept_id": unit,
        "range_low": nulls(n, "float"),
        "range_high": nulls(n, "float"),
        "provider_id": nulls(n),
        "visit_occurrence_id": v.visit_id[ev],
        "visit_detail_id": nulls(n),
        "measurement_source_value": source,
        "measurement_source_concept_id": concept,
        "unit_source_value": unit_source,
        "unit_source_concept_id": unit,
        "value_source_value": nulls(n, "str"),
        "measurement_event_id": nulls(n),
        "meas_event_field_concept_id": nulls(n),
    }
    return _Table(cols, pos)


def _procedures(people: _People, v: _Visits, rng: np.random.Generator) -> _Table:
    codes = np.array([c for c, _ in clinical.PROCEDURES], dtype=object)
    ev = _per_visit(v, _PER_VISIT["procedure"], rng)
    code = rng.choice(len(codes), len(ev), p=clinical.weights(clinical.PROCEDURES))
    order, ids = _ids(people, v.pos[ev], v.date[ev])
    ev, code = ev[order], code[order]
    pos, n = v.pos[ev], len(ev)
    cols = {
        "procedure_occurrence_id": ids,
        "person_id": people.person_id[pos],
        "procedure_concept_id": np.zeros(n, dtype=np.int64),
        "procedure_date": v.date[ev],
        "procedure_datetime": nulls(n, "str"),
        "procedure_end_date": nulls(n, "date"),
        "procedure_end_datetime": nulls(n, "str"),
        "procedure_type_concept_id": np.full(n, _EHR),
        "modifier_concept_id": nulls(n),
        "quantity": np.ones(n, dtype=np.int64),
        "provider_id": nulls(n),
        "visit_occurrence_id": v.visit_id[ev],
        "visit_detail_id": nulls(n),
        "procedure_source_value": codes[code],
        "procedure_source_concept_id": np.zeros(n, dtype=np.int64),
        "modifier_source_value": nulls(n, "str"),
    }
    return _Table(cols, pos)


def _observations(people: _People, v: _Visits, rng: np.random.Generator) -> _Table:
    answers = np.array([a for a, _ in clinical.SMOKING_STATUS], dtype=object)
    status = rng.choice(len(answers), len(people.row), p=clinical.weights(clinical.SMOKING_STATUS))
    ev = _per_visit(v, _PER_VISIT["obs"], rng)
    order, ids = _ids(people, v.pos[ev], v.date[ev])
    ev = ev[order]
    pos, n = v.pos[ev], len(ev)
    cols = {
        "observation_id": ids,
        "person_id": people.person_id[pos],
        "observation_concept_id": np.zeros(n, dtype=np.int64),
        "observation_date": v.date[ev],
        "observation_datetime": nulls(n, "str"),
        "observation_type_concept_id": np.full(n, _EHR),
        "value_as_number": nulls(n, "float"),
        "value_as_string": answers[status[pos]],
        "value_as_concept_id": nulls(n),
        "qualifier_concept_id": nulls(n),
        "unit_concept_id": nulls(n),
        "provider_id": nulls(n),
        "visit_occurrence_id": v.visit_id[ev],
        "visit_detail_id": nulls(n),
        "observation_source_value": np.full(n, clinical.SMOKING_LOINC, dtype=object),
        "observation_source_concept_id": np.zeros(n, dtype=np.int64),
        "unit_source_value": nulls(n, "str"),
        "qualifier_source_value": nulls(n, "str"),
        "value_source_value": answers[status[pos]],
        "observation_event_id": nulls(n),
        "obs_event_field_concept_id": nulls(n),
    }
    return _Table(cols, pos)


def _date_errors(
    table: str, column: str, content: _Table, people: _People, config: SynthConfig,
    rng: np.random.Generator, errors: _Errors,
) -> None:  # fmt: skip
    """Move a share of rows before birth and another share to 9999-12-31 (never both)."""
    cols, pos = content.cols, content.pos
    date = cols[column]
    u = rng.random(len(pos))
    m = config.messiness
    early = u < m.event_before_birth
    far = (u >= m.event_before_birth) & (u < m.event_before_birth + m.date_9999)
    born = np.minimum(people.birth, people.site_birth)[pos[early]]
    date[early] = born - rng.integers(1, 3650, early.sum())
    date[far] = _DAY_9999
    if table == "drug_exposure":
        end = cols["drug_exposure_end_date"]
        end[early] = date[early] + cols["days_supply"][early] - 1
        end[far] = _DAY_9999
    key = cols[TABLES[table][0]]
    errors.add("event_before_birth", table, pos[early], key[early], "date before birth")
    errors.add("date_9999", table, pos[far], key[far], "9999-12-31")


def _after_death(
    content: _Table, people: _People, chronic: tuple[np.ndarray, np.ndarray],
    config: SynthConfig, rng: np.random.Generator, errors: _Errors,
) -> None:  # fmt: skip
    """Add 1-3 condition rows 31-730 days after death for a share of the deceased."""
    dead = np.flatnonzero(people.death < _ALIVE)
    chosen = dead[rng.random(len(dead)) < config.messiness.event_after_death]
    new_pos = np.repeat(chosen, rng.integers(1, 4, len(chosen)))
    date = people.death[new_pos] + rng.integers(31, 731, len(new_pos))
    code = _background_codes(people, new_pos, chronic, rng)
    ids = people.person_id[new_pos] * _ID_STRIDE + _ID_STRIDE // 2 + _sequence(new_pos)
    no_visit = np.full(len(new_pos), -1, dtype=np.int64)
    content.extend(_condition_columns(people, new_pos, date, no_visit, code, ids), new_pos)
    errors.add("event_after_death", "condition_occurrence", new_pos, ids,
               "more than 30 days after death")  # fmt: skip


def _notes(
    batch: pd.DataFrame, people: _People, v: _Visits, chronic: tuple[np.ndarray, np.ndarray],
    config: SynthConfig, rng: np.random.Generator, errors: _Errors,
) -> _Table:  # fmt: skip
    kind_source = np.array([x[1] for x in clinical.VISITS], dtype=object)
    ev = np.flatnonzero((rng.random(len(v.pos)) < _NOTE_SHARE) | (kind_source[v.kind] == "IP"))
    pos, n = v.pos[ev], len(ev)
    ids = people.person_id[pos] * _ID_STRIDE + _sequence(pos)
    descriptions = icd10cm_codes().set_index("code")["description"]
    background = np.array(
        [descriptions[c[0]] for c in clinical.BACKGROUND_CONDITIONS]
        + [descriptions[d.icd10cm] for d in diseases()],
        dtype=object,
    )
    codes, _ = chronic
    which = np.where(
        v.disease[ev] >= 0,
        len(clinical.BACKGROUND_CONDITIONS) + v.disease[ev],
        _sex_fix(codes[pos, 0], people.sex[pos]),
    )
    rows = people.row[pos]
    text_of = {c: batch[c].to_numpy(dtype=object)[rows] for c in ("first_name", "phone", "mrn")}
    title, text, quoted = build_notes(
        kind_source[v.kind[ev]], background[which], text_of["first_name"],
        people.last_name[pos], text_of["phone"], text_of["mrn"], rng,
        identifier_rate=config.messiness.identifier_in_note,
    )  # fmt: skip
    has = quoted != ""
    errors.add("identifier_in_note", "note", pos[has], ids[has], quoted[has])
    cols = {
        "note_id": ids,
        "person_id": people.person_id[pos],
        "note_date": v.date[ev],
        "note_datetime": nulls(n, "str"),
        "note_type_concept_id": np.full(n, _EHR),
        "note_class_concept_id": np.zeros(n, dtype=np.int64),
        "note_title": title,
        "note_text": text,
        "encoding_concept_id": np.full(n, 32678),  # UTF-8
        "language_concept_id": np.full(n, 4180186),  # English
        "provider_id": nulls(n),
        "visit_occurrence_id": v.visit_id[ev],
        "visit_detail_id": nulls(n),
        "note_source_value": nulls(n, "str"),
        "note_event_id": nulls(n),
        "note_event_field_concept_id": nulls(n),
    }
    return _Table(cols, pos)


def _duplicates(
    table: str, content: _Table, people: _People, config: SynthConfig,
    rng: np.random.Generator, errors: _Errors,
) -> _Table:  # fmt: skip
    """Repeat a share of rows right after themselves, so two rows share one primary key."""
    n = len(content.pos)
    twice = rng.random(n) < config.messiness.duplicate_id
    key = np.asarray(content.cols[TABLES[table][0]])
    errors.add("duplicate_id", table, content.pos[twice], key[twice], "primary key repeated")
    return content.take(np.repeat(np.arange(n), 1 + twice))


def _write(
    tables: dict[str, _Table], people: _People, site_ids: np.ndarray, out: Path, *, fresh: bool
) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, content in tables.items():
        site = people.site[content.pos]
        order = np.argsort(site, kind="stable")
        bounds = np.searchsorted(site[order], np.arange(len(site_ids) + 1))
        arrow = {c: _column(c, content.cols[c]).take(pa.array(order)) for c in TABLES[name]}
        for k, site_id in enumerate(site_ids):
            lo, hi = bounds[k], bounds[k + 1]
            if hi == lo and not fresh:
                continue
            part = {c: values.slice(lo, hi - lo) for c, values in arrow.items()}
            path = out / "ehr" / site_id / f"{name}.csv"
            counts[f"ehr/{site_id}/{name}.csv"] = append_table(part, path, fresh=fresh)
    return counts


def _column(name: str, values: object) -> pa.Array:
    """Arrow column: int day numbers become dates, negative ids become missing."""
    if isinstance(values, pa.Array):
        return values
    arr = np.asarray(values)
    if name.endswith("_date") and arr.dtype.kind == "i":
        return as_dates(arr)
    if arr.dtype.kind == "i" and name.endswith("_id"):
        return pa.array(arr, mask=arr < 0)
    if arr.dtype.kind == "f":
        return pa.array(arr, mask=np.isnan(arr))
    if arr.dtype.kind in "OU":
        return pa.array(arr.astype(object), type=pa.string())
    return pa.array(arr)


def _concat(a: object, b: object) -> object:
    if isinstance(a, pa.Array) or isinstance(b, pa.Array):
        return pa.concat_arrays([_column("", a), _column("", b)])
    return np.concatenate([np.asarray(a), np.asarray(b)])
