"""Identity matching against the registry."""

from __future__ import annotations

import pandas as pd
import pytest

from opencohort.ingest import (
    match_identities,
    parse_table,
    participant_number,
    registry_identities,
    site_identities,
)
from opencohort.ingest.identity import FIELDS


def _tables(files: dict[str, str]) -> dict:
    return {name: parse_table(text.encode(), name, file=name) for name, text in files.items()}


def _site_tables(site_dir) -> dict:
    return {
        p.stem: parse_table(p.read_bytes(), p.stem, file=p.name) for p in site_dir.glob("*.csv")
    }


def test_match_identities__drops_exactly_the_injected_mismatches(feed, participants, truth):
    registry = registry_identities(participants)
    dropped = []
    for site_dir in sorted((feed / "ehr").iterdir()):
        outcome = match_identities(site_identities(_site_tables(site_dir)), registry)
        dropped += outcome.loc[outcome["drop"], "participant_id"].tolist()
    expected = truth.loc[truth["kind"] == "identity_mismatch", "participant_id"]
    assert len(expected) >= 5
    assert sorted(dropped) == sorted(expected)


REGISTRY = pd.DataFrame(
    {
        "participant_id": ["P000123", "P000456"],
        "first_name": ["José", "Ann"],
        "last_name": ["O'Neil", "Lee"],
        "birth_date": ["1970-02-03", "1980-05-06"],
        "email": ["Jose@Example.org", "ann@example.org"],
        "phone": ["(555) 123-4567", "555.987.6543"],
        "street_address": ["12 Main Street", "3 Oak Road"],
        "zip": ["02139", "10001"],
        "sex_at_birth": ["male", "female"],
    }
)


def _site(rows: list[tuple]) -> dict:
    person = (
        "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,"
        "race_concept_id,ethnicity_concept_id\n"
    )
    name, email, phone = (
        "person_id,first_name,last_name\n",
        "person_id,email\n",
        "person_id,phone_number\n",
    )
    address, location = "person_id,location_id\n", "location_id,address_1,zip\n"
    for pid, first, last, birth, mail, tel, street, zip_code, sex in rows:
        y, m, d = birth.split("-")
        person += f"{pid},{sex},{y},{int(m)},{int(d)},0,0\n"
        name += f'{pid},"{first}","{last}"\n'
        email += f"{pid},{mail}\n"
        phone += f"{pid},{tel}\n"
        address += f"{pid},{pid}\n"
        location += f"{pid},{street},{zip_code}\n"
    return _tables(
        {
            "person": person,
            "pii_name": name,
            "pii_email": email,
            "pii_phone_number": phone,
            "pii_address": address,
            "location": location,
        }
    )


def test_match_identities__normalises_case_accents_punctuation():
    site = _site(
        [
            (
                123,
                "JOSE ",
                "ONeil",
                "1970-02-03",
                "jose@example.org",
                "+1 555 123 4567",
                "12 main st.",
                "02139-1234",
                8507,
            ),
        ]
    )
    outcome = match_identities(site_identities(site), registry_identities(REGISTRY))
    assert (outcome.loc[123, list(FIELDS)] == "match").all()
    assert not outcome.loc[123, "drop"]


@pytest.mark.parametrize(
    ("row", "drop"),
    [
        # one key field and two others differ: kept (1 key, 3 in all)
        (
            (456, "Ann", "Lee", "1981-05-06", "x@y.org", "5550000000", "3 Oak Road", "10001", 8532),
            False,
        ),
        # two key fields differ: dropped
        (
            (
                456,
                "Anne",
                "Lee",
                "1981-05-06",
                "ann@example.org",
                "5559876543",
                "3 Oak Road",
                "10001",
                8532,
            ),
            True,
        ),
        # four non-key fields differ: dropped
        (
            (456, "Ann", "Lee", "1980-05-06", "x@y.org", "5550000000", "9 Elm Road", "99999", 8532),
            True,
        ),
        # unknown to the registry: every field missing_rdr, dropped
        (
            (
                789,
                "Ann",
                "Lee",
                "1980-05-06",
                "ann@example.org",
                "5559876543",
                "3 Oak Road",
                "10001",
                8532,
            ),
            True,
        ),
    ],
)
def test_match_identities__drop_rule(row, drop):
    outcome = match_identities(site_identities(_site([row])), registry_identities(REGISTRY))
    assert bool(outcome.loc[row[0], "drop"]) is drop


def test_match_identities__missing_site_values_are_missing_ehr():
    site = _tables(
        {
            "person": "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,"
            "race_concept_id,ethnicity_concept_id\n123,8507,1970,2,3,0,0\n",
        }
    )
    outcome = match_identities(site_identities(site), registry_identities(REGISTRY))
    assert outcome.loc[123, "first_name"] == "missing_ehr"
    assert outcome.loc[123, "birth_date"] == "match"
    assert outcome.loc[123, "drop"]


def test_participant_number__numeric_part():
    ids = pd.Series(["P000123", "P9", "bad", None])
    assert participant_number(ids).tolist() == [123, 9, pd.NA, pd.NA]
