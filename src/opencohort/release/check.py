"""``release check``: a published release's checksums, cross-tier invariants and privacy scan.

Every check returns problems as sentences (empty when it passes); a release passes only
when all of them are empty. Values are never quoted, only where they are and how many.
"""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import pandas as pd

from opencohort.config import Home
from opencohort.curate import read_identifiers
from opencohort.curate._omop import FEED_TABLES, SURVEY, WEARABLE_TABLES, date_columns, primary_key
from opencohort.curate.deid import MAX_AGE, ages_on
from opencohort.curate.facts import latest_consent
from opencohort.errors import ReleaseError
from opencohort.genomics.release import GENOMICS, check_genomic_release, genomic_identifiers
from opencohort.ingest import read_submission, submissions
from opencohort.registry import curation_export, open_registry
from opencohort.release.privacy import distinct_text, scanner
from opencohort.release.read import Release, read_release

REGISTERED, CONTROLLED = "registered", "controlled"
_ZIP5 = re.compile(r"(?<!\d)(\d{5})(?:-\d{4})?(?!\d)")
#: Free-text columns that must be empty in every tier (their answers become concepts).
FREE_TEXT = {SURVEY: ("value_text",)}


def _days(values: pd.Series) -> np.ndarray:
    """Dates or timestamps as float day numbers (NaN where missing)."""
    stamps = pd.to_datetime(values, errors="coerce")
    return ((stamps - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400).to_numpy()


def _labels(release: Release) -> list[str]:
    """``tier/table`` of every table of both tiers, registered first."""
    return [
        f"{tier}/{table}" for tier in (REGISTERED, CONTROLLED) for table in release.tables(tier)
    ]


def _read(release: Release, label: str) -> pd.DataFrame:
    tier, table = label.split("/")
    return release.table(tier, table)


def cross_tier(release: Release, people: pd.DataFrame) -> list[str]:
    """Problems with the invariants that tie the two tiers together.

    Parameters
    ----------
    release
        The release.
    people
        The registry's participants: research_id, date_shift_days and no_use (bool).
    """
    person = {f"{t}/person": release.table(t, "person") for t in (REGISTERED, CONTROLLED)}
    persons = {t: set(person[f"{t}/person"]["person_id"]) for t in (REGISTERED, CONTROLLED)}
    problems = []
    if not persons[REGISTERED] <= persons[CONTROLLED]:
        n = len(persons[REGISTERED] - persons[CONTROLLED])
        problems.append(f"{n} registered persons are not in the controlled tier")
    withdrawn = set(people.loc[people["no_use"], "research_id"])
    shift = people.set_index("research_id")["date_shift_days"].astype("float64")
    by_label: dict[str, list[str]] = {}
    shifted = []
    for table in sorted(set(release.tables(REGISTERED)) | set(release.tables(CONTROLLED))):
        pair = {f"{t}/{table}": release.table(t, table) for t in (REGISTERED, CONTROLLED)
                if table in release.tables(t)}  # fmt: skip
        for label, frame in pair.items():
            by_label[label] = _person_ids(label, frame, persons, withdrawn)
        if table in release.tables(REGISTERED):
            shifted += _shifted(table, pair, shift)
        del pair
    problems += [p for label in _labels(release) for p in by_label[label]]
    problems += _age_cap(person, shift, date.fromisoformat(release.manifest["cutoff"]))
    return problems + shifted


def _person_ids(label: str, frame: pd.DataFrame, persons: dict, withdrawn: set) -> list[str]:
    """Problems with the person ids of one table: not in its tier's person table, withdrawn."""
    if "person_id" not in frame:
        return []
    problems, ids = [], set(frame["person_id"].dropna())
    if stray := ids - persons[label.split("/")[0]]:
        problems.append(f"{label}: {len(stray)} person ids not in that tier's person table")
    if gone := ids & withdrawn:
        problems.append(f"{label}: {len(gone)} withdrawn participants (run 'opencohort "
                        "retract' to rebuild without them)")  # fmt: skip
    return problems


def _age_cap(frames: dict[str, pd.DataFrame], shift: pd.Series, cutoff: date) -> list[str]:
    """Problems with the 89+ cap: none registered, every missing one possibly 89+.

    A registered birth date plus the person's shift is the true one, so registered ages are
    exact; controlled keeps the year only, so a person is possibly 89+ when the cut-off year
    minus the birth year is 89 or more.
    """
    registered, control = frames[f"{REGISTERED}/person"], frames[f"{CONTROLLED}/person"]
    days = shift.reindex(registered["person_id"].astype("float64")).to_numpy()
    birth = pd.Series(_days(registered["birth_datetime"]) + days)
    problems = []
    if n := int((ages_on(birth, (cutoff - date(1970, 1, 1)).days) >= MAX_AGE).sum()):
        problems.append(f"{n} registered persons are {MAX_AGE}+")
    possibly_old = cutoff.year - control["year_of_birth"].astype("float64") >= MAX_AGE
    kept = set(registered["person_id"]) | set(control.loc[possibly_old, "person_id"])
    if missing := set(control["person_id"]) - kept:
        problems.append(f"{len(missing)} controlled persons under {MAX_AGE} are not registered")
    return problems


def _shifted(table: str, frames: dict[str, pd.DataFrame], shift: pd.Series) -> list[str]:
    """Problems where a registered date is not the controlled date minus the person's shift."""
    key, columns = primary_key(table), date_columns(table)
    if table == "person":  # controlled keeps the year of birth only
        return []
    if table in FEED_TABLES:
        return _shifted_by_person(table, frames, shift)
    registered, controlled = frames[f"{REGISTERED}/{table}"], frames.get(f"{CONTROLLED}/{table}")
    if not key or not columns or controlled is None or "person_id" not in registered:
        return []
    on = [key] if key == "person_id" else [key, "person_id"]
    both = registered.merge(controlled, on=on, suffixes=("_r", "_c"))
    if len(both) != len(registered):
        return [f"{REGISTERED}/{table}: {len(registered) - len(both)} rows have no controlled "
                f"row of the same {key} and person"]  # fmt: skip
    days = shift.reindex(both["person_id"].astype("float64")).to_numpy()
    problems = []
    for column in columns:
        r, c = _days(both[f"{column}_r"]), _days(both[f"{column}_c"])
        wrong = (np.isnan(r) != np.isnan(c)) | (np.abs(r - (c - days)) > 1e-6)
        if n := int(np.nansum(wrong)):
            problems.append(f"{REGISTERED}/{table}.{column}: {n} dates are not the "
                            "controlled date minus the person's shift")  # fmt: skip
    return problems


def _shifted_by_person(table: str, frames: dict[str, pd.DataFrame], shift: pd.Series):
    """As `_shifted` for a table without a key: each person's sorted dates are compared."""
    (column,) = date_columns(table)
    registered, controlled = frames[f"{REGISTERED}/{table}"], frames.get(f"{CONTROLLED}/{table}")
    if controlled is None:
        return []
    kept = controlled[controlled["person_id"].isin(set(registered["person_id"]))]
    days = shift.reindex(kept["person_id"].astype("float64")).to_numpy()
    expected = pd.DataFrame({"p": kept["person_id"].to_numpy(),
                             "d": _days(kept[column]) - days}).sort_values(["p", "d"])  # fmt: skip
    found = pd.DataFrame({"p": registered["person_id"].to_numpy(),
                          "d": _days(registered[column])}).sort_values(["p", "d"])  # fmt: skip
    if len(expected) != len(found):
        return [f"{REGISTERED}/{table}: {len(found)} rows where the controlled tier has "
                f"{len(expected)} for the same persons"]  # fmt: skip
    wrong = (expected["p"].to_numpy() != found["p"].to_numpy()) | (
        np.abs(expected["d"].to_numpy() - found["d"].to_numpy()) > 1e-6
    )
    if n := int(wrong.sum()):
        return [f"{REGISTERED}/{table}.{column}: {n} dates are not the controlled date minus "
                "the person's shift"]  # fmt: skip
    return []


def wearables_consented(release: Release, consented: set) -> list[str]:
    """Problems where a wearable row belongs to a person without a wearables consent."""
    problems = []
    for tier in (REGISTERED, CONTROLLED):
        for table in WEARABLE_TABLES:
            if table in release.tables(tier):
                ids = set(release.table(tier, table, columns=["person_id"])["person_id"])
                if n := len(ids - consented):
                    problems.append(f"{tier}/{table}: {n} persons without a wearables consent")
    return problems


#: PII table -> (its column, the registry identity column it holds).
_PII = {"pii_name": (("first_name", "first_name"), ("middle_name", "middle_name"),
                     ("last_name", "last_name")),
        "pii_email": (("email", "email"),), "pii_phone_number": (("phone_number", "phone"),),
        "pii_mrn": (("mrn", "mrn"),)}  # fmt: skip
_IDENTITY = ("first_name", "middle_name", "last_name", "email", "phone", "mrn",
             "street_address", "ssn")  # fmt: skip


def _site_identities(tables: dict) -> pd.DataFrame:
    """One row per person of a submission's PII files, in the registry's identity columns."""
    people = pd.DataFrame({"person_id": pd.Series(dtype="Int64")})
    for table, columns in _PII.items():
        if table in tables:
            frame = tables[table].frame.drop_duplicates("person_id")
            renamed = frame[["person_id", *(c for c, _ in columns)]].rename(columns=dict(columns))
            people = people.merge(renamed, on="person_id", how="outer")
    if "pii_address" in tables and "location" in tables:
        where = tables["location"].frame[["location_id", "address_1"]]
        address = tables["pii_address"].frame.merge(where, on="location_id")
        address = address.drop_duplicates("person_id")[["person_id", "address_1"]]
        people = people.merge(address.rename(columns={"address_1": "street_address"}),
                              on="person_id", how="outer")  # fmt: skip
    return people.reindex(columns=list(_IDENTITY)).astype("string")


def raw_identifiers(home: Home) -> tuple[pd.DataFrame, set[str]]:
    """Direct identifiers and ZIP5s in every stored site submission (all kept in ``raw/``).

    Returns
    -------
    identifiers : pandas.DataFrame
        One row per person and submission, in the registry's identity columns (see
        `scan_frames`), from the PII files.
    zips : set of str
        Five-digit ZIP codes of the submissions' locations.
    """
    parts = [pd.DataFrame(columns=list(_IDENTITY), dtype="string")]
    zips: set[str] = set()
    ehr = home.raw / "ehr"
    for site in sorted(p.name for p in ehr.iterdir() if p.is_dir()) if ehr.is_dir() else []:
        for submission in submissions(home, site):
            _, tables = read_submission(submission)
            parts.append(_site_identities(tables))
            if "location" in tables:
                zips |= {z[:5] for z in tables["location"].frame["zip"].dropna().astype(str)}
    return pd.concat(parts, ignore_index=True), zips


def privacy(
    release: Release, identifiers: pd.DataFrame, zips: set[str], birth: pd.Series
) -> list[str]:
    """Problems found scanning both tiers for direct identifiers, ZIP5s, birth dates and free text.

    Parameters
    ----------
    release
        The release.
    identifiers
        Direct identifiers to look for (registry and raw PII; see `scan_frames`).
    zips
        Five-digit ZIP codes of the program's people and sites.
    birth
        Real birth dates (day numbers) by research id.
    """
    scan = scanner(identifiers)
    problems, zip_problems, free_text = [], [], []
    for label in _labels(release):
        frame = _read(release, label)
        problems += [f"{h['table']}.{h['column']}: {h['values']} values hold a direct "
                     "identifier" for h in scan(label, frame)]  # fmt: skip
        for name in frame.columns:
            if frame[name].dtype != object:
                continue
            values = distinct_text(frame[name])
            n = sum(any(z in zips for z in _ZIP5.findall(v)) for v in values)
            if n:
                zip_problems.append(f"{label}.{name}: {n} values hold a five-digit ZIP")
        for name in FREE_TEXT.get(label.split("/")[-1], ()):
            if name in frame and (n := int(frame[name].notna().sum())):
                free_text.append(f"{label}.{name}: {n} free-text values (must be empty)")
        del frame
    problems += zip_problems + free_text
    person = release.table(REGISTERED, "person")
    if person[["month_of_birth", "day_of_birth"]].notna().any().any():
        problems.append(f"{REGISTERED}/person: month or day of birth present")
    real = birth.reindex(person["person_id"].astype("float64")).to_numpy()
    if n := int(np.sum(_days(person["birth_datetime"]) == real)):
        problems.append(f"{REGISTERED}/person.birth_datetime: {n} real (unshifted) birth dates")
    return problems


#: File endings of genotype data, allowed in the Controlled tier only.
_GENOTYPE_FILES = (".pgen", ".pvar", ".psam", ".bed", ".bim", ".fam", ".vcf", ".vcf.gz", ".bgen")


def genomics(release: Release, home: Home, people: pd.DataFrame) -> list[str]:
    """Problems with the genomic files: none in Registered, and the Controlled folder's checks.

    Parameters
    ----------
    release
        The release.
    home
        The program home (its genotype store and deliveries give the sample ids to look for).
    people
        The registry's participants: participant_id, research_id and no_use (bool).
    """
    problems = []
    registered = release.path / REGISTERED
    stray = [p for p in registered.rglob("*") if p.is_file() and (p.name.endswith(_GENOTYPE_FILES)
             or GENOMICS in p.relative_to(registered).parts)]  # fmt: skip
    if stray:
        problems.append(f"{REGISTERED}: {len(stray)} genomic files (genomic data are Controlled "
                        "only)")  # fmt: skip
    folder = release.path / CONTROLLED / GENOMICS
    if "genomics" not in release.manifest:
        if folder.exists():
            problems.append(f"{CONTROLLED}/{GENOMICS}: present but not in the manifest")
        return problems
    persons = release.table(CONTROLLED, "person", columns=["person_id"])["person_id"]
    withdrawn = people.loc[people["no_use"], "research_id"]
    ids = set(people["participant_id"]) | genomic_identifiers(home)
    found = check_genomic_release(folder, persons=persons, withdrawn=withdrawn, identifiers=ids)
    return problems + [f"{CONTROLLED}/{GENOMICS}/{p}" for p in found]


def check_release(home: Home, name: str) -> list[str]:
    """Every problem with release `name`: checksums, cross-tier invariants, privacy, genomics.

    Raises
    ------
    NotFound
        If there is no release of that name.
    """
    try:
        release = read_release(home, name)
    except ReleaseError as exc:
        return [str(exc)]
    registry = open_registry(home.registry_url)
    try:
        export = curation_export(registry)
    finally:
        registry.close()
    people, withdrawals = export["participants"], export["withdrawals"]
    no_use = set(withdrawals.loc[withdrawals["status"] == "no_use", "participant_id"])
    people = people.assign(no_use=people["participant_id"].isin(no_use))
    raw, raw_zips = raw_identifiers(home)
    identifiers = pd.concat([read_identifiers(home), raw], ignore_index=True)
    zips = raw_zips | set(people["zip"].dropna().astype(str).str[:5])
    birth = pd.Series(_days(people["birth_date"]), index=people["research_id"].astype("float64"))
    as_of = date.fromisoformat(release.manifest["cutoff"])
    wearables = latest_consent(export["consents"], "wearables", as_of)
    consented = set(people.loc[people["participant_id"].map(wearables).eq(True), "research_id"])
    return (
        cross_tier(release, people)
        + wearables_consented(release, consented)
        + privacy(release, identifiers, zips, birth)
        + genomics(release, home, people)
    )
