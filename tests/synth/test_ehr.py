"""Tests of site EHR submissions: structure, planted truth and injected errors."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from opencohort.synth._clinical import BACKGROUND_CONDITIONS, INVALID_ICD
from opencohort.synth.ehr import ERROR_COLUMNS, EVENT_DATE, TABLES, write_site_submissions
from opencohort.synth.measurements import IMPERIAL, measurement_concepts
from opencohort.synth.models import Messiness, SynthConfig
from opencohort.synth.participants import participant_batch, site_table
from opencohort.synth.traits import ANCESTRIES, assign_effects, diseases, phenotypes
from opencohort.vocab import icd10cm_codes

GROUPS = [f"af_{g}" for g in ANCESTRIES]
PK = {name: cols[0] for name, cols in TABLES.items() if cols[0].endswith("_id")}
PK.pop("pii_name"), PK.pop("pii_email"), PK.pop("pii_phone_number"), PK.pop("pii_address")
PK.pop("pii_mrn")
PK.pop("death")


def make_candidates(m: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    base = rng.uniform(0.15, 0.85, m)
    frame = pd.DataFrame({"variant_id": [f"1:{100 + i}:C:T" for i in range(m)]})
    for col, g in zip(["chrom", "pos", "ref", "alt"], ["1", 0, "C", "T"], strict=True):
        frame[col] = g
    for g in GROUPS:
        frame[g] = np.clip(base + rng.normal(0, 0.03, m), 0.05, 0.95)
    return frame


def generate(out: Path, config: SynthConfig) -> dict:
    """Run phenotypes and site submissions over every batch of `config` into `out`."""
    candidates = make_candidates()
    effects = assign_effects(candidates, config)
    sites = site_table(config)
    errors, phenos, dosages, batches = [], [], [], []
    for index in range(config.n_batches):
        batch = participant_batch(config, index)
        anc = batch[[f"anc_{g}" for g in ANCESTRIES]].to_numpy()
        rng = np.random.default_rng([99, index])
        dosage = rng.binomial(2, anc @ candidates[GROUPS].to_numpy().T).astype(float)
        ids = list(candidates["variant_id"])
        pheno = phenotypes(batch, dosage, effects, ids, config, index=index)
        _, err = write_site_submissions(batch, pheno, sites, config, out, append=index > 0)
        errors.append(err)
        phenos.append(pheno)
        dosages.append(dosage)
        batches.append(batch)
    return {
        "errors": pd.concat(errors, ignore_index=True),
        "pheno": pd.concat(phenos, ignore_index=True),
        "dosage": np.vstack(dosages),
        "batch": pd.concat(batches, ignore_index=True),
        "effects": effects,
        "candidates": candidates,
        "sites": sites,
    }


def read(out: Path, table: str) -> pd.DataFrame:
    """Every site's rows of one table, with a site_id column."""
    parts = []
    for folder in sorted((out / "ehr").iterdir()):
        frame = pd.read_csv(folder / f"{table}.csv", dtype=str, keep_default_na=False)
        parts.append(frame.assign(site_id=folder.name))
    return pd.concat(parts, ignore_index=True)


CONFIG = SynthConfig(participants=3000, batch_size=1500, sites=3, genomes=0, seed=7)


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ehr")
    return out, generate(out, CONFIG)


def keyed(errors: pd.DataFrame, kind: str, table: str | None = None) -> set[tuple[str, str]]:
    rows = errors[(errors["kind"] == kind) & ((errors["table"] == table) if table else True)]
    return set(zip(rows["site_id"], rows["row_key"].astype(str), strict=True))


def test_write_site_submissions__files_and_headers(program) -> None:
    out, _ = program
    for folder in (out / "ehr").iterdir():
        for table, columns in TABLES.items():
            text = (folder / f"{table}.csv").read_text()
            assert text.split("\n", 1)[0].split(",") == list(columns), (folder.name, table)
            assert text.count(",".join(columns)) == 1


def test_write_site_submissions__deterministic(program, tmp_path) -> None:
    out, result = program
    again = generate(tmp_path, CONFIG)
    pd.testing.assert_frame_equal(result["errors"], again["errors"])
    for table in ("measurement", "note", "condition_occurrence"):
        for folder in (out / "ehr").iterdir():
            first = (folder / f"{table}.csv").read_bytes()
            assert first == (tmp_path / "ehr" / folder.name / f"{table}.csv").read_bytes()


def test_write_site_submissions__referential_integrity(program) -> None:
    out, result = program
    errors = result["errors"]
    assert list(errors.columns) == ERROR_COLUMNS
    person = read(out, "person")
    people = set(zip(person["site_id"], person["person_id"], strict=True))
    visits = read(out, "visit_occurrence")
    visit_keys = set(zip(visits["site_id"], visits["visit_occurrence_id"], strict=True))
    for table in (*EVENT_DATE, "visit_occurrence", "note", "death", "observation_period"):
        frame = read(out, table)
        assert set(zip(frame["site_id"], frame["person_id"], strict=True)) <= people, table
        if "visit_occurrence_id" in frame and table != "visit_occurrence":
            linked = frame[frame["visit_occurrence_id"] != ""]
            assert set(zip(linked["site_id"], linked["visit_occurrence_id"], strict=True)) <= (
                visit_keys
            ), table
    for table, key in PK.items():
        frame = read(out, table)
        counts = frame.groupby(["site_id", key]).size()
        repeated = {(s, k) for (s, k), c in counts.items() if c > 1}
        assert repeated == keyed(errors, "duplicate_id", table), table
    location = read(out, "location")
    address = read(out, "pii_address")
    assert set(address["location_id"]) <= set(location["location_id"])


def test_write_site_submissions__dates_within_observation(program) -> None:
    out, result = program
    errors = result["errors"]
    period = read(out, "observation_period").set_index(["site_id", "person_id"])
    for table, column in EVENT_DATE.items():
        frame = read(out, table)
        key = TABLES[table][0]
        bounds = period.loc[list(zip(frame["site_id"], frame["person_id"], strict=True))]
        date = frame[column].to_numpy()
        inside = (date >= bounds["observation_period_start_date"].to_numpy()) & (
            date <= bounds["observation_period_end_date"].to_numpy()
        )
        outside = set(zip(frame["site_id"][~inside], frame[key][~inside], strict=True))
        flagged = set()
        for kind in ("event_before_birth", "date_9999", "event_after_death"):
            flagged |= keyed(errors, kind, table)
        assert outside == flagged, table
        assert flagged, table


def test_write_site_submissions__error_rates(program) -> None:
    out, result = program
    errors = result["errors"]
    m = CONFIG.messiness
    event_rows = sum(len(read(out, t)) for t in EVENT_DATE)
    for kind, rate in (("event_before_birth", m.event_before_birth), ("date_9999", m.date_9999)):
        observed = (errors["kind"] == kind).sum()
        expected = rate * event_rows
        assert abs(observed - expected) < 4 * np.sqrt(expected) + 2, kind
    measurement = read(out, "measurement")
    implausible = (errors["kind"] == "implausible_value").sum()
    expected = m.implausible_value * len(measurement)
    assert abs(implausible - expected) < 4 * np.sqrt(expected) + 2
    conditions = read(out, "condition_occurrence")
    unmapped = len(keyed(errors, "unmapped_code", "condition_occurrence"))
    expected = m.unmapped_code * len(conditions)
    assert abs(unmapped - expected) < 4 * np.sqrt(expected) + 2
    person = read(out, "person")
    no_consent = (errors["kind"] == "no_ehr_consent").sum()
    assert 0.005 < no_consent / len(person) < 0.04


def test_write_site_submissions__consent_and_identity(program) -> None:
    out, result = program
    batch, errors = result["batch"], result["errors"]
    person = read(out, "person")
    ids = ("P" + person["person_id"].str.zfill(9)).to_numpy()
    sent = batch.set_index("participant_id").loc[ids]
    unconsented = set(ids[sent["ehr_consent_date"].isna().to_numpy()])
    assert unconsented == set(errors.loc[errors["kind"] == "no_ehr_consent", "participant_id"])
    names = read(out, "pii_name")
    registry = batch.set_index("participant_id").loc["P" + names["person_id"].str.zfill(9)]
    other = names["last_name"].to_numpy() != registry["last_name"].to_numpy()
    differ = set(names["person_id"][other])
    flagged = errors.loc[errors["kind"] == "identity_mismatch", "row_key"].astype(str)
    assert differ == set(flagged)


def test_write_site_submissions__icd_codes_real_except_unmapped(program) -> None:
    out, result = program
    conditions = read(out, "condition_occurrence")
    valid = conditions["condition_source_value"].isin(set(icd10cm_codes()["code"]))
    bad = set(zip(conditions["site_id"][~valid], conditions["condition_occurrence_id"][~valid],
                  strict=True))  # fmt: skip
    assert bad == keyed(result["errors"], "unmapped_code", "condition_occurrence")
    assert (conditions.loc[~valid, "condition_source_concept_id"] == "0").all()
    assert (conditions.loc[valid, "condition_source_concept_id"] != "0").all()


def test_background_codes__never_map_to_planted_phecodes() -> None:
    path = resources.files("pyphewas").joinpath("phecode_maps/phecode12.csv")
    with path.open("rb") as fh:
        table = pd.read_csv(fh, dtype=str)
    table = table[table["flag"] == "10"]
    planted = {d.phecode for d in diseases()}
    background = {c[0] for c in BACKGROUND_CONDITIONS}
    codes = set(icd10cm_codes()["code"])
    assert background <= codes
    assert not set(INVALID_ICD) & codes
    assert not set(table.loc[table["ICD"].isin(background), "phecode"]) & planted


def test_write_site_submissions__cases_coded_from_onset(program) -> None:
    out, result = program
    batch, pheno = result["batch"], result["pheno"]
    conditions = read(out, "condition_occurrence")
    conditions["participant_id"] = "P" + conditions["person_id"].str.zfill(9)
    person = read(out, "person")
    sent = set("P" + person["person_id"].str.zfill(9))
    truth = pheno.set_index("participant_id")
    for disease in diseases():
        coded = conditions[conditions["condition_source_value"] == disease.icd10cm]
        dates = coded.groupby("participant_id")["condition_start_date"].nunique()
        cases = set(truth.index[truth[disease.name]]) & sent
        assert set(dates.index) <= cases, disease.name
        if len(cases) >= 20:
            assert (dates >= 2).sum() / len(cases) > 0.7, disease.name
        onset = truth.loc[coded["participant_id"], f"{disease.name}_onset"]
        onset = onset.dt.strftime("%Y-%m-%d")
        valid = coded["condition_start_date"].str[:4] != "9999"
        early = coded["condition_start_date"].to_numpy() < onset.to_numpy()
        flagged = keyed(result["errors"], "event_before_birth", "condition_occurrence")
        wrong = coded[valid & early]
        late = set(zip(wrong["site_id"], wrong["condition_occurrence_id"], strict=True))
        assert late <= flagged, disease.name
    assert len(batch) == len(pheno)


def test_write_site_submissions__ldl_effect_recovered_by_ols(program) -> None:
    out, result = program
    effects, candidates = result["effects"], result["candidates"]
    measurement = read(out, "measurement")
    ldl_id = str(measurement_concepts().loc["ldl", "concept_id"])
    ldl = measurement[measurement["measurement_concept_id"] == ldl_id].copy()
    ldl["value"] = ldl["value_as_number"].astype(float)
    ldl = ldl[(ldl["value"] > 5) & (ldl["value"] < 600)]
    mean = ldl.groupby("person_id")["value"].mean()
    pid = result["batch"]["participant_id"].str[1:].astype(int).astype(str)
    rows = pd.Index(pid).get_indexer(mean.index)
    ids = list(candidates["variant_id"])
    causal = effects[(effects["trait"] == "ldl") & (effects["effect_ancestry"] == "")]
    col = ids.index(causal["variant_id"].iloc[0])
    null = ids.index(effects.loc[effects["kind"] == "null", "variant_id"].iloc[0])
    dosage = result["dosage"][rows]
    fit = sm.OLS(mean.to_numpy(), sm.add_constant(dosage[:, col])).fit()
    assert fit.pvalues[1] < 5e-8
    fit_null = sm.OLS(mean.to_numpy(), sm.add_constant(dosage[:, null])).fit()
    assert fit_null.pvalues[1] > 1e-4


def test_write_site_submissions__imperial_sites_convert_back(program) -> None:
    out, result = program
    measurement = read(out, "measurement")
    imperial = set(result["sites"].loc[result["sites"]["imperial_units"], "site_id"])
    errors = result["errors"]
    flagged = keyed(errors, "imperial_unit")
    silly = keyed(errors, "implausible_value")
    lb = measurement[measurement["unit_source_value"] == IMPERIAL["weight"][2]]
    assert set(lb["site_id"]) <= imperial
    keys = set(zip(lb["site_id"], lb["measurement_id"], strict=True))
    assert keys <= flagged
    ok = [k not in silly for k in zip(lb["site_id"], lb["measurement_id"], strict=True)]
    kg = lb["value_as_number"].astype(float)[ok] / IMPERIAL["weight"][0]
    assert kg.between(25, 300).all() and len(kg) > 0
    metric = measurement[~measurement["site_id"].isin(imperial)]
    assert not metric["unit_source_value"].isin([u for _, _, u, _ in IMPERIAL.values()]).any()


def test_write_site_submissions__implausible_values_flagged(program) -> None:
    out, result = program
    measurement = read(out, "measurement")
    concepts = measurement_concepts().reset_index()
    by_id = concepts.set_index(concepts["concept_id"].astype(str))
    metric = measurement[measurement["measurement_concept_id"].isin(by_id.index)]
    metric = metric[~metric["unit_source_value"].isin([u for _, _, u, _ in IMPERIAL.values()])]
    spec = by_id.loc[metric["measurement_concept_id"]]
    value = metric["value_as_number"].astype(float).to_numpy()
    out_of_range = (value < spec["plausible_low"].to_numpy()) | (
        value > spec["plausible_high"].to_numpy()
    )
    found = set(zip(metric["site_id"][out_of_range], metric["measurement_id"][out_of_range],
                    strict=True))  # fmt: skip
    assert found and found <= keyed(result["errors"], "implausible_value")


def test_write_site_submissions__identifiers_in_notes(program) -> None:
    out, result = program
    notes = read(out, "note")
    flagged = result["errors"][result["errors"]["kind"] == "identifier_in_note"]
    rate = CONFIG.messiness.identifier_in_note
    assert abs(len(flagged) / len(notes) - rate) < 4 * np.sqrt(rate * (1 - rate) / len(notes))
    mrn = result["batch"].set_index("participant_id")["mrn"]
    with_mrn = flagged[flagged["detail"] == "mrn"]
    keys = zip(notes["site_id"], notes["note_id"], strict=True)
    text = dict(zip(keys, notes["note_text"], strict=True))
    assert len(with_mrn) > 0
    for row in with_mrn.itertuples():
        assert mrn[row.participant_id] in text[(row.site_id, str(row.row_key))]


def test_write_site_submissions__no_messiness_is_clean(tmp_path) -> None:
    clean = SynthConfig(
        participants=400, batch_size=400, sites=2, genomes=0, seed=3,
        messiness=Messiness(0, 0, 0, 0, 0, 0.5, 0, 0),
    )  # fmt: skip
    result = generate(tmp_path, clean)
    assert set(result["errors"]["kind"]) <= {"no_ehr_consent", "identity_mismatch", "imperial_unit"}
