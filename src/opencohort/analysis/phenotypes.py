"""Phenotypes from a release: phecode case/control traits, measurement traits and covariates.

A release's OMOP tables go in (read through :mod:`opencohort.release`); one tidy table keyed
by research id comes out, with binary phecode traits (``phe_<phecode>``: 1 case, 0 control,
missing when excluded), quantitative traits from measurements and the usual PheWAS/GWAS
covariates. :func:`write_phenotypes` also writes plink2-style ``--pheno``/``--covar`` files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from opencohort.errors import ConfigError, NotFound
from opencohort.release import Release
from opencohort.vocab import build_vocabulary, measurements, phecode_definitions, phecode_map

RESEARCH_ID = "research_id"
PHECODE_PREFIX = "phe_"
"""Prefix of a binary phecode trait's column: ``phe_250.2`` is phecode 250.2."""
SEX_AT_BIRTH = "sex_at_birth"
COVARIATES = ("age_at_last_event", "sex_male", "ehr_length")
"""Numeric covariates always computed (years, 1 = male at birth, years)."""
ICD10_START = pd.Timestamp("2015-10-01")
"""US switch from ICD-9-CM to ICD-10-CM; decides the vocabulary of an ambiguous bare code."""
PHYSICAL_EXAM_TYPE = 44818701
"""OMOP type concept "From physical examination": the program's own measurements, not EHR."""
_SEX = {8507: "male", 8532: "female"}
_EVENT_DATES = {
    "condition_occurrence": "condition_start_date",
    "visit_occurrence": "visit_start_date",
    "procedure_occurrence": "procedure_date",
    "drug_exposure": "drug_exposure_start_date",
    "measurement": "measurement_date",
    "observation": "observation_date",
}
_STATISTICS = ("median", "mean", "max", "min", "last", "first")
_ANCESTRY_LABELS = ("sample_ancestry", "ancestry", "label")


@dataclass(frozen=True)
class MeasurementTrait:
    """A quantitative trait: one statistic of a person's values of one measurement.

    ``measurement`` is a key of :func:`opencohort.vocab.measurements` (``"bmi"``); rows in
    another unit than that table's UCUM unit are dropped and counted.
    """

    name: str
    measurement: str
    statistic: str

    def __post_init__(self) -> None:
        if self.statistic not in _STATISTICS:
            raise ConfigError(
                f"MeasurementTrait {self.name}: statistic {self.statistic!r}; "
                f"expected one of {', '.join(_STATISTICS)}"
            )


DEFAULT_TRAITS = (
    MeasurementTrait("bmi_median", "bmi", "median"),
    MeasurementTrait("ldl_max", "ldl", "max"),
    MeasurementTrait("hba1c_mean", "hba1c", "mean"),
    MeasurementTrait("height_median", "height", "median"),
    MeasurementTrait("systolic_bp_median", "systolic_bp", "median"),
)


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, errors="coerce")


def _dotless(codes: pd.Series) -> pd.Series:
    return codes.astype(str).str.strip().str.upper().str.replace(".", "", regex=False)


def source_codes(conditions: pd.DataFrame) -> pd.DataFrame:
    """ICD-9-CM/ICD-10-CM source codes of condition occurrences.

    Parameters
    ----------
    conditions
        ``person_id``, ``condition_start_date``, ``condition_source_concept_id`` and,
        optionally, ``condition_source_value``.

    Returns
    -------
    pandas.DataFrame
        ``person_id``, ``date`` (datetime64), ``vocabulary_id`` (``ICD9CM``/``ICD10CM``) and
        ``icd_code`` (with dots, as in the phecode maps); rows with no ICD code are dropped.

    Notes
    -----
    1. A source concept id is looked up in the vocabulary (``opencohort vocab``) first.
    2. Otherwise the source value is used, with or without its dot (``250.00``, ``25000``):
       a code found in one ICD vocabulary only takes that one; a code found in both takes
       ICD-10-CM from 2015-10-01 (the US switch) and ICD-9-CM before.
    """
    concept = build_vocabulary().concept
    icd = concept[concept["vocabulary_id"].isin(["ICD9CM", "ICD10CM"])]
    by_id = icd.set_index("concept_id")[["vocabulary_id", "concept_code"]]
    ids = pd.to_numeric(conditions["condition_source_concept_id"], errors="coerce")
    hit = by_id.reindex(ids.to_numpy())
    out = pd.DataFrame(
        {
            "person_id": conditions["person_id"].to_numpy(),
            "date": _dates(conditions["condition_start_date"]).to_numpy(),
            "vocabulary_id": hit["vocabulary_id"].to_numpy(),
            "icd_code": hit["concept_code"].to_numpy(),
        }
    )
    if "condition_source_value" in conditions:
        todo = out["icd_code"].isna().to_numpy() & conditions["condition_source_value"].notna()
        todo = np.asarray(todo, dtype=bool)
        if todo.any():
            vocab, code = _from_values(
                conditions.loc[todo, "condition_source_value"], out.loc[todo, "date"], icd
            )
            out.loc[todo, "vocabulary_id"] = vocab
            out.loc[todo, "icd_code"] = code
    return out.dropna(subset=["icd_code", "date"]).reset_index(drop=True)


def _from_values(
    values: pd.Series, dates: pd.Series, icd: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Vocabulary and dotted code of bare source values (see :func:`source_codes`)."""
    key = _dotless(values)
    found = {}
    for vocabulary in ("ICD9CM", "ICD10CM"):
        part = icd[icd["vocabulary_id"] == vocabulary]
        lookup = pd.Series(part["concept_code"].to_numpy(), index=_dotless(part["concept_code"]))
        found[vocabulary] = key.map(lookup[~lookup.index.duplicated()])
    as9, as10 = found["ICD9CM"], found["ICD10CM"]
    late = dates.to_numpy() >= ICD10_START.to_datetime64()
    use10 = as10.notna().to_numpy() & (as9.isna().to_numpy() | late)
    vocab = np.where(use10, "ICD10CM", np.where(as9.notna(), "ICD9CM", None))
    return vocab, np.where(use10, as10, as9)


def phecode_counts(codes: pd.DataFrame, *, version: str = "1.2") -> pd.DataFrame:
    """Distinct code dates per person and phecode (codes rolled up to every parent phecode).

    Parameters
    ----------
    codes
        Output of :func:`source_codes`.
    version
        ``"1.2"`` or ``"X"``.

    Returns
    -------
    pandas.DataFrame
        ``person_id``, ``phecode`` and ``n_dates`` (distinct dates with a code mapping to it).
    """
    pairs = phecode_map(version, rollup=True)[["icd_code", "vocabulary_id", "phecode"]]
    hits = codes.merge(pairs, on=["icd_code", "vocabulary_id"])[["person_id", "phecode", "date"]]
    counted = hits.drop_duplicates().groupby(["person_id", "phecode"], sort=True).size()
    return counted.rename("n_dates").reset_index()


def phecode_traits(
    counts: pd.DataFrame,
    persons: pd.DataFrame,
    *,
    version: str = "1.2",
    min_dates: int = 2,
    use_exclusion: bool = True,
) -> pd.DataFrame:
    """Case/control status of every person for every phecode with at least one case.

    Parameters
    ----------
    counts
        Output of :func:`phecode_counts`.
    persons
        Indexed by person id, with ``sex_at_birth`` (``male``, ``female`` or missing).
    version
        ``"1.2"`` or ``"X"``.
    min_dates
        Distinct code dates that make a case.
    use_exclusion
        Drop from a phecode's controls anyone with a phecode of its exclusion range (phecode
        1.2 only; phecode X ships none).

    Returns
    -------
    pandas.DataFrame
        Indexed like `persons`; one float32 column ``phe_<phecode>`` per phecode: 1 case,
        0 control, NaN when the person has the phecode on fewer than `min_dates` dates,
        has a phecode of its exclusion range, or is not of the phecode's sex.

    Raises
    ------
    ConfigError
        If `min_dates` is below 1.

    Notes
    -----
    1. A case has the phecode (or one rolling up to it) on at least `min_dates` dates.
    2. Controls are everyone else, less anyone with the phecode at all or, with
       `use_exclusion`, with any phecode of its exclusion range (PheTK ``use_exclusion``).
    3. A Female/Male phecode leaves everyone else, and people of unknown sex, missing.
    """
    if min_dates < 1:
        raise ConfigError(f"phecode_traits: min_dates={min_dates}; expected at least 1")
    defs = phecode_definitions(version).set_index("phecode")
    counts = counts[counts["person_id"].isin(persons.index)]
    tested = np.sort(counts.loc[counts["n_dates"] >= min_dates, "phecode"].unique())
    seen = np.sort(counts["phecode"].unique())
    row = pd.Index(persons.index).get_indexer(counts["person_id"])
    col_seen = pd.Index(seen).get_indexer(counts["phecode"])
    n = len(persons)
    has = sp.csr_matrix(
        (np.ones(len(counts)), (row, col_seen)), shape=(n, len(seen)), dtype=np.float64
    )
    excl_rows, excl_cols = [], []
    seen_index = pd.Index(seen)
    for j, code in enumerate(tested):
        related = {code, *(defs.at[code, "exclude_phecodes"] if use_exclusion else ())}
        pos = seen_index.get_indexer(list(related))
        pos = pos[pos >= 0]
        excl_rows.extend(pos)
        excl_cols.extend([j] * len(pos))
    spread = sp.csr_matrix(
        (np.ones(len(excl_rows)), (excl_rows, excl_cols)), shape=(len(seen), len(tested))
    )
    excluded = (has @ spread).tocoo()
    case_rows = counts["n_dates"].to_numpy() >= min_dates
    values = np.zeros((n, len(tested)), dtype=np.float32)
    values[excluded.row, excluded.col] = np.nan
    values[row[case_rows], pd.Index(tested).get_indexer(counts["phecode"][case_rows])] = 1.0
    sex = persons[SEX_AT_BIRTH].to_numpy(dtype=object)
    restriction = defs.loc[tested, "sex"].to_numpy()
    for label, wanted in (("Female", "female"), ("Male", "male")):
        cols = np.flatnonzero(restriction == label)
        values[np.ix_(sex != wanted, cols)] = np.nan
    names = [f"{PHECODE_PREFIX}{code}" for code in tested]
    return pd.DataFrame(values, index=persons.index, columns=names, copy=False)


def measurement_traits(
    table: pd.DataFrame, persons: pd.Index, traits: tuple[MeasurementTrait, ...] = DEFAULT_TRAITS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Quantitative traits from measurement rows, with unit and plausibility checks.

    Parameters
    ----------
    table
        OMOP ``measurement`` rows: person_id, measurement_concept_id, measurement_date,
        value_as_number, unit_concept_id.
    persons
        Person ids of the output rows.
    traits
        Which statistic of which measurement makes each trait.

    Returns
    -------
    tuple of pandas.DataFrame
        The traits (indexed by `persons`, one float column per trait) and a report: one row
        per trait with ``trait``, ``measurement``, ``unit``, ``rows_used``,
        ``rows_wrong_unit``, ``rows_no_value``, ``rows_implausible`` and ``persons``.

    Raises
    ------
    ConfigError
        If a trait names an unknown measurement.

    Notes
    -----
    A row counts only in the measurement's UCUM unit (``unit_concept_id``) and inside its
    plausible range; the others are dropped and counted, never converted.
    """
    known = measurements().set_index("key")
    out, report = pd.DataFrame(index=persons), []
    for trait in traits:
        if trait.measurement not in known.index:
            raise ConfigError(
                f"trait {trait.name}: unknown measurement {trait.measurement!r}; expected one "
                f"of {', '.join(known.index)}"
            )
        spec = known.loc[trait.measurement]
        rows = table[table["measurement_concept_id"] == spec["concept_id"]]
        rows = rows[rows["person_id"].isin(persons)]
        value = pd.to_numeric(rows["value_as_number"], errors="coerce")
        no_value = value.isna()
        wrong_unit = ~no_value & (rows["unit_concept_id"] != spec["unit_concept_id"])
        implausible = ~no_value & ~wrong_unit
        implausible &= (value < spec["plausible_low"]) | (value > spec["plausible_high"])
        good = rows.assign(value=value)[~(no_value | wrong_unit | implausible)]
        out[trait.name] = _statistic(good, trait.statistic).reindex(persons)
        report.append(
            {
                "trait": trait.name,
                "measurement": trait.measurement,
                "unit": spec["unit_ucum"],
                "rows_used": len(good),
                "rows_wrong_unit": int(wrong_unit.sum()),
                "rows_no_value": int(no_value.sum()),
                "rows_implausible": int(implausible.sum()),
                "persons": int(out[trait.name].notna().sum()),
            }  # fmt: skip
        )
    return out, pd.DataFrame(report)


def _statistic(rows: pd.DataFrame, statistic: str) -> pd.Series:
    if statistic in ("last", "first"):
        rows = rows.assign(date=_dates(rows["measurement_date"])).sort_values(["person_id", "date"])
    return rows.groupby("person_id")["value"].agg(statistic)


def covariates(person: pd.DataFrame, events: list[pd.DataFrame]) -> pd.DataFrame:
    """Sex at birth, age at the last EHR event and EHR length of every person.

    Parameters
    ----------
    person
        OMOP ``person`` rows: person_id, gender_concept_id (sex at birth, as the reference
        program writes it), year_of_birth and birth_datetime.
    events
        Frames of (person_id, date), one per EHR table.

    Returns
    -------
    pandas.DataFrame
        Indexed by person_id: ``sex_at_birth`` (``male``/``female``/missing), ``sex_male``
        (1.0/0.0/NaN), ``age_at_last_event`` and ``ehr_length`` (years, NaN with no event),
        ``first_event_date`` and ``last_event_date``.
    """
    index = pd.Index(person["person_id"].to_numpy(), name="person_id")
    stacked = (
        pd.concat(events, ignore_index=True)
        if events
        else pd.DataFrame({"person_id": [], "date": pd.to_datetime([])})
    )
    span = stacked.dropna().groupby("person_id")["date"].agg(["min", "max"]).reindex(index)
    birth = _dates(person["birth_datetime"]).to_numpy()
    fallback = pd.to_datetime(person["year_of_birth"].astype("Int64").astype(str) + "-07-01",
                              errors="coerce").to_numpy()  # fmt: skip
    birth = np.where(pd.isna(birth), fallback, birth)
    sex = person["gender_concept_id"].map(_SEX).to_numpy(dtype=object)
    year = pd.Timedelta(days=365.25)
    return pd.DataFrame(
        {
            SEX_AT_BIRTH: sex,
            "sex_male": np.where(sex == "male", 1.0, np.where(sex == "female", 0.0, np.nan)),
            "age_at_last_event": (span["max"].to_numpy() - birth) / year,
            "ehr_length": (span["max"] - span["min"]).to_numpy() / year,
            "first_event_date": span["min"].to_numpy(),
            "last_event_date": span["max"].to_numpy(),
        },
        index=index,
    )


def _event_dates(release: Release, tier: str) -> list[pd.DataFrame]:
    """(person_id, date) of EHR rows; the program's own physical measurements do not count."""
    frames = []
    for table, column in _EVENT_DATES.items():
        if table not in release.tables(tier):
            continue
        columns = ["person_id", column]
        if table == "measurement":
            columns.append("measurement_type_concept_id")
        rows = release.table(tier, table, columns=columns)
        if table == "measurement":
            rows = rows[rows["measurement_type_concept_id"] != PHYSICAL_EXAM_TYPE]
        frames.append(pd.DataFrame({"person_id": rows["person_id"], "date": _dates(rows[column])}))
    return frames


def ancestry_covariates(release: Release, tier: str, *, n_pcs: int = 10) -> pd.DataFrame | None:
    """Ancestry label and the first `n_pcs` PCs from ``controlled/genomics/ancestry.parquet``.

    Returns None for the registered tier or when the release has no ancestry table. Columns:
    ``ancestry`` and ``pc1`` ... ``pc<n_pcs>``, indexed by research id.
    """
    if tier != "controlled":
        return None
    try:
        table = release.table(tier, "ancestry")
    except NotFound:
        return None
    key = next(c for c in (RESEARCH_ID, "person_id", "sample_id") if c in table.columns)
    pcs = table.filter(regex=r"^(sample_)?pc\d+$")
    pcs.columns = [c.replace("sample_", "") for c in pcs.columns]
    wanted = [f"pc{i}" for i in range(1, n_pcs + 1) if f"pc{i}" in pcs.columns]
    out = pcs[wanted].set_axis(table[key].to_numpy(), axis=0)
    label = next((c for c in _ANCESTRY_LABELS if c in table.columns), None)
    if label:
        out.insert(0, "ancestry", table[label].to_numpy())
    return out


@dataclass(frozen=True)
class PhenotypeOptions:
    """Options of :func:`build_phenotypes`, checked before anything is read."""

    version: str = "1.2"
    min_dates: int = 2
    use_exclusion: bool = True
    n_pcs: int = 10
    traits: tuple[MeasurementTrait, ...] = DEFAULT_TRAITS

    def __post_init__(self) -> None:
        if self.version not in ("1.2", "X"):
            raise ConfigError(f"phenotype: version {self.version!r}; expected '1.2' or 'X'")
        if self.min_dates < 1:
            raise ConfigError(f"phenotype: min_dates={self.min_dates}; expected at least 1")


def build_phenotypes(
    release: Release, *, tier: str = "registered", options: PhenotypeOptions | None = None
) -> tuple[pd.DataFrame, dict]:
    """The tidy phenotype table of one tier of a release.

    Parameters
    ----------
    release
        An opened release (:func:`opencohort.release.read_release`).
    tier
        ``registered`` or ``controlled`` (only the latter has ancestry covariates).
    options
        Phecode version, case rule, PCs and measurement traits.

    Returns
    -------
    tuple
        The table (one row per research id: covariates, ancestry when present,
        measurement traits, then ``phe_*`` traits, missing for anyone without an EHR
        event) and a summary dict (options, counts, measurement report rows, phecode case
        counts).

    Raises
    ------
    ConfigError
        If `tier` is not one of the release's tiers.
    """
    options = options or PhenotypeOptions()
    if tier not in release.manifest["row_counts"]:
        raise ConfigError(f"phenotype: release {release.name} has no tier {tier!r}")
    columns = ["person_id", "gender_concept_id", "year_of_birth", "birth_datetime"]
    person = release.table(tier, "person", columns=columns)
    covar = covariates(person, _event_dates(release, tier))
    cond = release.table(tier, "condition_occurrence")
    wanted = [
        c for c in ("person_id", "condition_start_date", "condition_source_concept_id",
                    "condition_source_value") if c in cond.columns
    ]  # fmt: skip
    counts = phecode_counts(source_codes(cond[wanted]), version=options.version)
    binary = phecode_traits(
        counts, covar, version=options.version, min_dates=options.min_dates,
        use_exclusion=options.use_exclusion,
    )  # fmt: skip
    measurement = release.table(
        tier, "measurement",
        columns=["person_id", "measurement_concept_id", "measurement_date", "value_as_number",
                 "unit_concept_id"],
    )  # fmt: skip
    binary.loc[covar["last_event_date"].isna().to_numpy()] = np.nan
    quantitative, report = measurement_traits(measurement, covar.index, options.traits)
    parts = [covar]
    ancestry = ancestry_covariates(release, tier, n_pcs=options.n_pcs)
    if ancestry is not None:
        parts.append(ancestry.reindex(covar.index))
    table = pd.concat([*parts, quantitative, binary], axis=1).rename_axis(RESEARCH_ID)
    cases = (binary == 1).sum().astype(int)
    summary = {
        "release": release.name,
        "tier": tier,
        "options": {**asdict(options), "traits": [asdict(t) for t in options.traits]},
        "persons": len(table),
        "phecodes_with_cases": int(binary.shape[1]),
        "ancestry": ancestry is not None,
        "measurements": report.to_dict(orient="records"),
        "cases": {c.removeprefix(PHECODE_PREFIX): int(v) for c, v in cases.items()},
    }
    return table.reset_index(), summary


def pheno_columns(table: pd.DataFrame) -> list[str]:
    """Trait columns of a phenotype table: measurement traits then ``phe_*`` phecodes."""
    skip = {RESEARCH_ID, SEX_AT_BIRTH, "ancestry", "first_event_date", "last_event_date"}
    skip |= set(COVARIATES) | {c for c in table.columns if c.startswith("pc") and c[2:].isdigit()}
    return [c for c in table.columns if c not in skip]


def covariate_columns(table: pd.DataFrame) -> list[str]:
    """Numeric covariate columns of a phenotype table (age, sex, EHR length, PCs)."""
    pcs = [c for c in table.columns if c.startswith("pc") and c[2:].isdigit()]
    return [c for c in COVARIATES if c in table.columns] + pcs


def write_phenotypes(table: pd.DataFrame, summary: dict, out: Path) -> dict[str, Path]:
    """Write ``phenotypes.parquet``, plink2 ``pheno.tsv``/``covar.tsv`` and ``summary.json``.

    In ``pheno.tsv`` phecode traits use plink2's case/control coding (1 control, 2 case,
    ``NA`` missing) and the ``#IID`` column holds research ids.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("phenotypes.parquet", "pheno.tsv", "covar.tsv",
                                           "summary.json")}  # fmt: skip
    table.to_parquet(paths["phenotypes.parquet"], index=False)
    ids = table[RESEARCH_ID].astype(str).rename("#IID")
    traits = table[pheno_columns(table)].astype("float64")
    binary = [c for c in traits.columns if c.startswith(PHECODE_PREFIX)]
    traits[binary] = traits[binary] + 1.0
    traits.set_axis(ids, axis=0).to_csv(paths["pheno.tsv"], sep="\t", na_rep="NA")
    table[covariate_columns(table)].set_axis(ids, axis=0).to_csv(
        paths["covar.tsv"], sep="\t", na_rep="NA"
    )
    paths["summary.json"].write_text(json.dumps(summary, indent=2, default=str))
    return paths
