"""Identity matching: does the person a site sends match the participant in the registry?

A site's ``person_id`` is the numeric part of the program's participant id (``P`` followed by
digits), as the reference program's sites use. For every person a site sends, each identity
field of the site's PII files is compared with the registry after normalising case, whitespace,
accents and punctuation, and scored ``match``, ``no_match``, ``missing_ehr`` (the site sent
nothing) or ``missing_rdr`` (the registry has nothing, or the person is unknown to it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from functools import wraps

import numpy as np
import pandas as pd

from opencohort.config import Home
from opencohort.ingest.omop_files import ParsedTable

#: Compared fields, in report order.
FIELDS = ("first_name", "last_name", "birth_date", "email", "phone", "address", "zip", "sex")
#: The fields of which 2 or more not matching drop a person.
KEY_FIELDS = ("first_name", "last_name", "birth_date")
MAX_KEY_MISMATCHES = 1
MAX_ALL_MISMATCHES = 3
#: Registry columns a participants frame needs (the synthetic registry/participants.csv has them).
PARTICIPANT_COLUMNS = (
    "participant_id",
    "first_name",
    "last_name",
    "birth_date",
    "email",
    "phone",
    "street_address",
    "zip",
    "sex_at_birth",
)
_ABBREVIATIONS = {
    "street": "st",
    "avenue": "ave",
    "road": "rd",
    "drive": "dr",
    "lane": "ln",
    "boulevard": "blvd",
    "court": "ct",
    "place": "pl",
    "apartment": "apt",
    "suite": "ste",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "highway": "hwy",
    "parkway": "pkwy",
}
_ABBREVIATED = re.compile(r"\b(?:" + "|".join(_ABBREVIATIONS) + r")\b")
_SEX = {
    "f": "female",
    "female": "female",
    "8532": "female",
    "m": "male",
    "male": "male",
    "8507": "male",
    "intersex": "intersex",
}


def _distinct(normalise: Callable[[pd.Series], pd.Series]) -> Callable[[pd.Series], pd.Series]:
    """Run a normaliser on the distinct values only (names and codes repeat), as strings."""

    @wraps(normalise)
    def run(values: pd.Series) -> pd.Series:
        codes, distinct = pd.factorize(values.astype("string"))
        done = normalise(pd.Series(distinct, dtype="string")).astype("string").array
        return pd.Series(done.take(codes, allow_fill=True), index=values.index, dtype="string")

    return run


@_distinct
def _text(values: pd.Series) -> pd.Series:
    """Lower-case, accents and punctuation removed, whitespace collapsed; '' becomes NA."""
    s = values.astype("string").map(
        lambda v: unicodedata.normalize("NFKD", v).encode("ascii", "ignore").decode(),
        na_action="ignore",
    )
    s = s.str.lower().str.replace(r"[^\w\s]|_", " ", regex=True)
    s = s.str.replace(r"\s+", " ", regex=True).str.strip()
    return s.mask(s == "")


@_distinct
def _name(values: pd.Series) -> pd.Series:
    """Names compare without spaces, so O'Neil, O Neil and ONeil agree."""
    return _text(values).str.replace(" ", "", regex=False)


@_distinct
def _address(values: pd.Series) -> pd.Series:
    # after _text a word is a run of word characters, so \b falls between words
    return _text(values).str.replace(_ABBREVIATED, lambda m: _ABBREVIATIONS[m[0]], regex=True)


@_distinct
def _digits(values: pd.Series) -> pd.Series:
    s = values.astype("string").str.replace(r"\D", "", regex=True)
    return s.mask(s == "")


def _phone(values: pd.Series) -> pd.Series:
    s = _digits(values)
    s = s.where(~((s.str.len() == 11) & s.str.startswith("1")), s.str[1:])
    return s


def _email(values: pd.Series) -> pd.Series:
    s = values.astype("string").str.strip().str.lower()
    return s.mask(s == "")


@_distinct
def _sex(values: pd.Series) -> pd.Series:
    return _text(values).map(_SEX).astype("string")


def participant_number(participant_id: pd.Series) -> pd.Series:
    """Numeric person id a site uses for each participant id (``P000123`` -> 123)."""
    codes, distinct = pd.factorize(participant_id.astype("string"))
    digits = pd.Series(distinct, dtype="string").str.extract(r"^[A-Za-z]*0*(\d+)$")[0]
    numbers = pd.to_numeric(digits, errors="coerce").astype("Int64").array
    return pd.Series(numbers.take(codes, allow_fill=True), index=participant_id.index, name=0)


def site_identities(tables: Mapping[str, ParsedTable]) -> pd.DataFrame:
    """Collect one site's identity fields per person_id from its person and PII tables.

    Returns
    -------
    pandas.DataFrame
        Indexed by person_id; columns :data:`FIELDS`, normalised (NA where the site sent none).
    """
    if "person" not in tables:
        return pd.DataFrame(columns=list(FIELDS), index=pd.Index([], name="person_id"))
    person = tables["person"].frame.dropna(subset=["person_id"])
    person = person.drop_duplicates("person_id").set_index("person_id")
    out = pd.DataFrame(index=person.index)
    year = person["year_of_birth"].astype("string")
    month = person["month_of_birth"].astype("string").str.zfill(2)
    day = person["day_of_birth"].astype("string").str.zfill(2)
    out["birth_date"] = year + "-" + month + "-" + day
    concept_sex = _sex(person["gender_concept_id"].astype("string"))
    out["sex"] = concept_sex.fillna(_sex(person["gender_source_value"]))

    def first(table: str, column: str) -> pd.Series:
        if table not in tables:
            return pd.Series(pd.NA, index=out.index, dtype="string")
        frame = tables[table].frame.dropna(subset=["person_id"])
        values = frame.drop_duplicates("person_id").set_index("person_id")[column]
        return values.reindex(out.index)

    out["first_name"] = _name(first("pii_name", "first_name"))
    out["last_name"] = _name(first("pii_name", "last_name"))
    out["email"] = _email(first("pii_email", "email"))
    out["phone"] = _phone(first("pii_phone_number", "phone_number"))
    location_id = first("pii_address", "location_id")
    address = pd.Series(pd.NA, index=out.index, dtype="string")
    zip_code = address.copy()
    if "location" in tables:
        loc = tables["location"].frame.drop_duplicates("location_id").set_index("location_id")
        address = loc["address_1"].reindex(location_id).set_axis(out.index)
        zip_code = loc["zip"].reindex(location_id).set_axis(out.index)
    out["address"] = _address(address)
    out["zip"] = _digits(zip_code).str[:5]
    return out[list(FIELDS)]


def registry_identities(participants: pd.DataFrame) -> pd.DataFrame:
    """Normalise registry participants (:data:`PARTICIPANT_COLUMNS`) to :data:`FIELDS`.

    Returns
    -------
    pandas.DataFrame
        Indexed by the site person number (:func:`participant_number`), with column
        ``participant_id`` and the normalised :data:`FIELDS`.
    """
    p = participants
    birth = pd.to_datetime(p["birth_date"], errors="coerce").dt.strftime("%Y-%m-%d")
    out = pd.DataFrame(
        {
            "participant_id": p["participant_id"].astype("string").to_numpy(),
            "first_name": _name(p["first_name"]).to_numpy(),
            "last_name": _name(p["last_name"]).to_numpy(),
            "birth_date": birth.astype("string").to_numpy(),
            "email": _email(p["email"]).to_numpy(),
            "phone": _phone(p["phone"]).to_numpy(),
            "address": _address(p["street_address"]).to_numpy(),
            "zip": _digits(p["zip"]).str[:5].to_numpy(),
            "sex": _sex(p["sex_at_birth"]).to_numpy(),
        },
        index=pd.Index(participant_number(p["participant_id"]), name="person_id"),
    )
    return out[~out.index.isna() & ~out.index.duplicated()]


def match_identities(site: pd.DataFrame, registry: pd.DataFrame) -> pd.DataFrame:
    """Score every field of every site person against the registry and decide who is dropped.

    Parameters
    ----------
    site
        Output of :func:`site_identities`.
    registry
        Output of :func:`registry_identities`.

    Returns
    -------
    pandas.DataFrame
        One row per site person_id: ``participant_id`` (NA when unknown to the registry), one
        column per field of :data:`FIELDS` holding ``match``, ``no_match``, ``missing_ehr`` or
        ``missing_rdr``, ``key_mismatches`` and ``mismatches`` (fields not ``match``) and
        ``drop``.

    Notes
    -----
    A person's rows are dropped when 2 or more of :data:`KEY_FIELDS` or 4 or more of all
    fields are not ``match`` (the reference program's ``RemoveNonMatchingParticipant``:
    ``NUM_OF_MISSING_KEY_FIELDS = 2``, ``NUM_OF_MISSING_ALL_FIELDS = 4``).
    """
    reg = registry.reindex(site.index)
    out = pd.DataFrame({"participant_id": reg["participant_id"]}, index=site.index)
    for name in FIELDS:
        ours, theirs = site[name].astype("string"), reg[name].astype("string")
        same = (ours == theirs).fillna(False).to_numpy(dtype=bool)
        result = np.where(
            theirs.isna().to_numpy(),
            "missing_rdr",
            np.where(ours.isna().to_numpy(), "missing_ehr", np.where(same, "match", "no_match")),
        )
        out[name] = result
    fields = out[list(FIELDS)]
    out["key_mismatches"] = (fields[list(KEY_FIELDS)] != "match").sum(axis=1)
    out["mismatches"] = (fields != "match").sum(axis=1)
    out["drop"] = (out["key_mismatches"] > MAX_KEY_MISMATCHES) | (
        out["mismatches"] > MAX_ALL_MISMATCHES
    )
    return out


def registry_participants(home: Home) -> pd.DataFrame:
    """Read the identity columns (:data:`PARTICIPANT_COLUMNS`) of every registry participant."""
    from sqlalchemy import select

    from opencohort.registry import Base, open_registry

    participant = Base.metadata.tables["participant"]
    identity = Base.metadata.tables["participant_identity"]
    query = select(
        participant.c.participant_id,
        identity.c.first_name,
        identity.c.last_name,
        participant.c.birth_date,
        identity.c.email,
        identity.c.phone,
        identity.c.street_address,
        participant.c.zip,
        participant.c.sex_at_birth,
    ).join(identity, identity.c.participant_id == participant.c.participant_id)
    registry = open_registry(home.registry_url)
    try:
        with registry.engine.connect() as connection:
            return pd.read_sql(query, connection)
    finally:
        registry.close()
