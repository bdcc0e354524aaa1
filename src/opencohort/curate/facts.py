"""Registry facts curation needs, read in bulk; the person and demographics tables from them."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from sqlalchemy import select

from opencohort.config import Home
from opencohort.curate._omop import DEMOGRAPHIC_COLUMNS, PERSON, empty
from opencohort.ingest import participant_number
from opencohort.registry import Base, curation_export, open_registry

_EPOCH = np.datetime64("1970-01-01", "D")
_GENDER = {"male": 8507, "female": 8532}
_RACE = {"white": 8527, "black": 8516, "asian": 8515, "nhpi": 8557, "aian": 8657}
_HISPANIC, _NOT_HISPANIC = 38003563, 38003564
_CONSENT_RANK = {"submitted": 0, "not_sure": 1, "no": 2}
#: Direct identifier columns of the registry's identity table (never in a release).
IDENTIFIER_COLUMNS = ("first_name", "last_name", "street_address", "phone", "email", "ssn", "mrn")


def day_number(values: pd.Series) -> pd.Series:
    """Dates (any parseable form) as Int64 days since 1970-01-01."""
    parsed = pd.to_datetime(values, errors="coerce").to_numpy(dtype="datetime64[D]")
    days = (parsed - _EPOCH).astype("timedelta64[D]").astype("int64")
    return pd.Series(days, index=values.index).where(~np.isnat(parsed)).astype("Int64")


def to_day(value: date) -> int:
    """One date as days since 1970-01-01."""
    return int((np.datetime64(value, "D") - _EPOCH).astype(int))


def latest_consent(consents: pd.DataFrame, kind: str, as_of: date) -> pd.Series:
    """Whether each participant's latest `kind` consent form on `as_of` is a submission."""
    c = consents[(consents["consent_type"] == kind) & (consents["authored_date"] <= as_of)]
    c = c.assign(rank=c["status"].map(_CONSENT_RANK).fillna(3))
    c = c.sort_values(["participant_id", "authored_date", "rank", "version"])
    latest = c.groupby("participant_id").tail(1).set_index("participant_id")["status"]
    return latest == "submitted"


def read_facts(home: Home, *, as_of: date) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read every participant's curation facts and each site's state from the registry.

    Parameters
    ----------
    home
        The program home.
    as_of
        Consents authored after this day are ignored. Withdrawals count whatever their date:
        a participant withdrawn (no use) when a release is built is never in it.

    Returns
    -------
    people : pandas.DataFrame
        Indexed by ``person_id`` (the site person number); columns participant_id,
        research_id, date_shift_days, birth_date (day number), ehr_consent, primary_consent,
        wearables_consent, gror_consent (genomic), no_use, death_date (day number, NA if
        none approved),
        deactivated_date (day number from which contact is suspended, NA if not suspended),
        site_id and the demographic answers (sex_at_birth, gender_identity,
        sexual_orientation, race_ethnicity, education, employment, state, zip).
    site_states : dict
        Site id -> state.
    """
    registry = open_registry(home.registry_url)
    try:
        export = curation_export(registry)
    finally:
        registry.close()
    people, consents, sites = export["participants"], export["consents"], export["sites"]
    withdrawals, deaths = export["withdrawals"], export["deaths"]
    pid = people["participant_id"]
    ehr = latest_consent(consents, "ehr", as_of)
    primary = latest_consent(consents, "primary", as_of)
    wearables = latest_consent(consents, "wearables", as_of)
    gror = latest_consent(consents, "gror", as_of)
    no_use = set(withdrawals.loc[withdrawals["status"] == "no_use", "participant_id"])
    approved = deaths[deaths["review_status"].isin(["approved", "final"])].dropna(
        subset=["death_date"]
    )
    death = day_number(approved["death_date"]).groupby(approved["participant_id"]).min()
    deactivations = export["deactivations"]
    deactivated = day_number(deactivations["deactivated_date"])
    deactivated.index = deactivations["participant_id"].to_numpy()
    out = people.assign(
        birth_date=day_number(people["birth_date"]),
        ehr_consent=pid.map(ehr).eq(True).to_numpy(),
        primary_consent=pid.map(primary).eq(True).to_numpy(),
        wearables_consent=pid.map(wearables).eq(True).to_numpy(),
        gror_consent=pid.map(gror).eq(True).to_numpy(),
        no_use=pid.isin(no_use),
        death_date=pid.map(death).astype("Int64"),
        deactivated_date=pid.map(deactivated).astype("Int64"),
    )
    out.index = pd.Index(participant_number(pid), name="person_id")
    out = out[~out.index.isna() & ~out.index.duplicated()]
    return out, dict(zip(sites["site_id"], sites["state"], strict=True))


def read_identifiers(home: Home) -> pd.DataFrame:
    """The registry's direct identifiers (:data:`IDENTIFIER_COLUMNS`) of every participant."""
    table = Base.metadata.tables["participant_identity"]
    registry = open_registry(home.registry_url)
    try:
        with registry.engine.connect() as con:
            columns = [table.c[c] for c in ("participant_id", "middle_name", *IDENTIFIER_COLUMNS)]
            return pd.read_sql(select(*columns), con)
    finally:
        registry.close()


def person_table(people: pd.DataFrame) -> pd.DataFrame:
    """The OMOP person table of every registry participant, from registry facts."""
    frame = empty(PERSON)
    birth = people["birth_date"].astype("Int64")
    when = pd.to_datetime(birth.astype("float64"), unit="D")
    race = people["race_ethnicity"].astype(str)
    data = {
        "person_id": people.index.to_numpy(),
        "gender_concept_id": people["sex_at_birth"].map(_GENDER).fillna(0).to_numpy(),
        "year_of_birth": when.dt.year.to_numpy(),
        "month_of_birth": when.dt.month.to_numpy(),
        "day_of_birth": when.dt.day.to_numpy(),
        "birth_datetime": birth.to_numpy(),
        "race_concept_id": race.map(_RACE).fillna(0).to_numpy(),
        "ethnicity_concept_id": np.where(
            race == "hispanic", _HISPANIC, np.where(race == "skip", 0, _NOT_HISPANIC)
        ),
        "gender_source_value": people["sex_at_birth"].to_numpy(),
        "race_source_value": race.to_numpy(),
    }
    out = pd.DataFrame({c: pd.Series(data.get(c), dtype=frame[c].dtype) for c in frame.columns})
    return out


def demographics_table(people: pd.DataFrame) -> pd.DataFrame:
    """Self-reported demographics of every participant, ZIP cut to its first 3 digits."""
    zip3 = people["zip"].astype("string").str.extract(r"^(\d{3})")[0]
    out = people.reindex(columns=list(DEMOGRAPHIC_COLUMNS[1:-1])).astype(object)
    out.insert(0, "person_id", people.index.astype("Int64"))
    out["zip3"] = zip3.astype(object).where(zip3.notna(), None).to_numpy()
    return out.reset_index(drop=True)[list(DEMOGRAPHIC_COLUMNS)]
