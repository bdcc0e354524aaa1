"""``release check``: a published release's checksums, cross-tier invariants and privacy scan.

Every check returns problems as sentences (empty when it passes); a release passes only
when all of them are empty. Values are never quoted, only where they are and how many.
"""

from __future__ import annotations

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
from opencohort.release._tables import NUMBER_TYPES, TEXT_TYPES, column_types, quote, release_views
from opencohort.release.privacy import Finder
from opencohort.release.read import Release, read_release

REGISTERED, CONTROLLED = "registered", "controlled"
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


def _days_sql(column: str) -> str:
    """SQL for a date or timestamp column as (fractional) day numbers since 1970-01-01."""
    return f"epoch(CAST({quote(column)} AS TIMESTAMP)) / 86400.0"


def cross_tier(release: Release, people: pd.DataFrame) -> list[str]:
    """Problems with the invariants that tie the two tiers together.

    Parameters
    ----------
    release
        The release.
    people
        The registry's participants: research_id, date_shift_days and no_use (bool).
    """
    with release_views(release, (REGISTERED, CONTROLLED)) as con:
        return _cross_tier(con, release, people)


def _cross_tier(con, release: Release, people: pd.DataFrame) -> list[str]:
    person = {f"{t}/person": release.table(t, "person") for t in (REGISTERED, CONTROLLED)}
    persons = {t: set(person[f"{t}/person"]["person_id"]) for t in (REGISTERED, CONTROLLED)}
    problems = []
    if not persons[REGISTERED] <= persons[CONTROLLED]:
        n = len(persons[REGISTERED] - persons[CONTROLLED])
        problems.append(f"{n} registered persons are not in the controlled tier")
    research_id = pd.to_numeric(people["research_id"], errors="coerce").astype("Int64")
    shift = pd.Series(people["date_shift_days"].astype("float64").to_numpy(),
                      index=research_id.astype("float64").to_numpy())  # fmt: skip
    con.register("check_shift", pd.DataFrame({"research_id": research_id,
                                              "shift": shift.to_numpy()}))  # fmt: skip
    con.register("check_withdrawn", pd.DataFrame({"research_id": research_id[people["no_use"]]}))
    for label in _labels(release):
        problems += _person_ids(con, label)
    problems += _age_cap(person, shift, date.fromisoformat(release.manifest["cutoff"]))
    for table in release.tables(REGISTERED):
        if table in release.tables(CONTROLLED):
            problems += _shifted(con, table)
    return problems


def _person_ids(con, label: str) -> list[str]:
    """Problems with the person ids of one table: not in its tier's person table, withdrawn."""
    if "person_id" not in column_types(con, label):
        return []
    person = quote(f"{label.split('/')[0]}/person")
    stray, gone = con.execute(
        f"""SELECT count(*) FILTER (WHERE p.person_id IS NULL),
                   count(*) FILTER (WHERE w.research_id IS NOT NULL)
            FROM (SELECT DISTINCT person_id FROM {quote(label)} WHERE person_id IS NOT NULL) t
            LEFT JOIN (SELECT DISTINCT person_id FROM {person}) p USING (person_id)
            LEFT JOIN (SELECT DISTINCT research_id FROM check_withdrawn) w
              ON w.research_id = t.person_id"""
    ).fetchone()
    problems = []
    if stray:
        problems.append(f"{label}: {stray} person ids not in that tier's person table")
    if gone:
        problems.append(f"{label}: {gone} withdrawn participants (run 'opencohort "
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


def _shifted(con, table: str) -> list[str]:
    """Problems where a registered date is not the controlled date minus the person's shift."""
    key, columns = primary_key(table), date_columns(table)
    if table == "person":  # controlled keeps the year of birth only
        return []
    registered, controlled = quote(f"{REGISTERED}/{table}"), quote(f"{CONTROLLED}/{table}")
    if table in FEED_TABLES:
        return _shifted_by_person(con, table, registered, controlled)
    if not key or not columns or "person_id" not in column_types(con, f"{REGISTERED}/{table}"):
        return []
    on = " AND ".join(f"r.{quote(c)} = c.{quote(c)}" for c in dict.fromkeys([key, "person_id"]))
    wrong = [
        f"count(*) FILTER (WHERE (r.{quote(c)} IS NULL) <> (c.{quote(c)} IS NULL) OR "
        f"abs(r_{i} - (c_{i} - s.shift)) > 1e-6)"
        for i, c in enumerate(columns)
    ]
    days = ", ".join(f"{_days_sql(c)} AS {{t}}_{i}" for i, c in enumerate(columns))
    n_registered, n_both, *n_wrong = con.execute(
        f"""SELECT (SELECT count(*) FROM {registered}), count(*), {", ".join(wrong)}
            FROM (SELECT *, {days.format(t="r")} FROM {registered}) r
            JOIN (SELECT *, {days.format(t="c")} FROM {controlled}) c ON {on}
            LEFT JOIN check_shift s ON s.research_id = r.person_id"""
    ).fetchone()
    if n_both != n_registered:
        return [f"{REGISTERED}/{table}: {n_registered - n_both} rows have no controlled "
                f"row of the same {key} and person"]  # fmt: skip
    return [f"{REGISTERED}/{table}.{column}: {n} dates are not the controlled date minus the "
            "person's shift" for column, n in zip(columns, n_wrong, strict=True) if n]  # fmt: skip


def _shifted_by_person(con, table: str, registered: str, controlled: str) -> list[str]:
    """As `_shifted` for a table without a key: each person's sorted dates are compared."""
    (column,) = date_columns(table)
    day = _days_sql(column)
    n_expected, n_found, n_wrong = con.execute(
        f"""WITH e AS (
                SELECT c.person_id AS p, {day} - s.shift AS d FROM {controlled} c
                LEFT JOIN check_shift s ON s.research_id = c.person_id
                WHERE c.person_id IN (SELECT person_id FROM {registered})),
            f AS (SELECT person_id AS p, {day} AS d FROM {registered}),
            es AS (SELECT *, row_number() OVER (ORDER BY p NULLS LAST, d NULLS LAST) AS n FROM e),
            fs AS (SELECT *, row_number() OVER (ORDER BY p NULLS LAST, d NULLS LAST) AS n FROM f)
            SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM f),
                   count(*) FILTER (WHERE es.p IS DISTINCT FROM fs.p OR abs(es.d - fs.d) > 1e-6)
            FROM es JOIN fs USING (n)"""
    ).fetchone()
    if n_expected != n_found:
        return [f"{REGISTERED}/{table}: {n_found} rows where the controlled tier has "
                f"{n_expected} for the same persons"]  # fmt: skip
    if n_wrong:
        return [f"{REGISTERED}/{table}.{column}: {n_wrong} dates are not the controlled date "
                "minus the person's shift"]  # fmt: skip
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
            _, tables = read_submission(submission, only=(*_PII, "pii_address", "location"))
            parts.append(_site_identities(tables))
            if "location" in tables:
                zips |= {z[:5] for z in tables["location"].frame["zip"].dropna().astype(str)}
    return pd.concat(parts, ignore_index=True), zips


def privacy(
    release: Release, identifiers: pd.DataFrame, zips: set[str], birth: pd.Series
) -> list[str]:
    """Problems found scanning both tiers for direct identifiers, ZIP5s, birth dates and free text.

    Every distinct text and number of every column is read once, in DuckDB, straight from the
    Parquet files; each distinct text is judged once (:class:`Finder`).

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
    finder = Finder(identifiers, zips=zips)
    problems, zip_problems, free_text = [], [], []
    with release_views(release, (REGISTERED, CONTROLLED)) as con:
        for label in _labels(release):
            view = quote(label)
            for name, kind in column_types(con, label).items():
                column = quote(name)
                if kind in TEXT_TYPES:
                    values = [v for (v,) in con.execute(
                        f"SELECT DISTINCT {column} FROM {view} WHERE {column} IS NOT NULL"
                    ).fetchall()]  # fmt: skip
                    n, n_zip = finder.text_hits(values), finder.zip_hits(values)
                elif kind in NUMBER_TYPES:
                    found = con.execute(
                        f"SELECT DISTINCT {column} AS v FROM {view} WHERE abs({column}) >= 1e6"
                    ).fetchnumpy()["v"]
                    n, n_zip = finder.number_hits(np.asarray(found)), 0
                else:
                    continue
                if n:
                    problems.append(f"{label}.{name}: {n} values hold a direct identifier")
                if n_zip:
                    zip_problems.append(f"{label}.{name}: {n_zip} values hold a five-digit ZIP")
            for name in FREE_TEXT.get(label.split("/")[-1], ()):
                if name in column_types(con, label):
                    (n,) = con.execute(f"SELECT count({quote(name)}) FROM {view}").fetchone()
                    if n:
                        free_text.append(f"{label}.{name}: {n} free-text values (must be empty)")
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
