"""Tests of the planted traits: declarations, causal-variant choice and phenotype draws."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from opencohort.synth.models import SynthConfig
from opencohort.synth.participants import participant_batch
from opencohort.synth.traits import (
    ANCESTRIES,
    TRAITS,
    assign_effects,
    diseases,
    phenotypes,
    planted_power,
    quantitative_traits,
)
from opencohort.vocab import measurements

GROUPS = [f"af_{g}" for g in ANCESTRIES]


def make_candidates(m: int = 120, seed: int = 1) -> pd.DataFrame:
    """Candidates like the genome simulator's: shared frequencies plus 8 AFR-specific ones."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.1, 0.9, m)
    frame = pd.DataFrame(
        {
            "variant_id": [f"1:{1000 + 10 * i}:A:G" for i in range(m)],
            "chrom": "1",
            "pos": 1000 + 10 * np.arange(m),
            "ref": "A",
            "alt": "G",
        }
    )
    for g in GROUPS:
        frame[g] = np.clip(base + rng.normal(0, 0.05, m), 0.02, 0.98)
    frame.loc[:7, GROUPS] = 0.02
    frame.loc[:7, "af_afr"] = 0.45
    return frame


def simulate_dosage(batch: pd.DataFrame, candidates: pd.DataFrame, seed: int) -> np.ndarray:
    """Binomial dosages from each person's ancestry-weighted allele frequency."""
    anc = batch[[f"anc_{g}" for g in ANCESTRIES]].to_numpy()
    p = anc @ candidates[GROUPS].to_numpy().T
    return np.random.default_rng(seed).binomial(2, p).astype(float)


def phecode12() -> pd.DataFrame:
    path = resources.files("pyphewas").joinpath("phecode_maps/phecode12.csv")
    with path.open("rb") as fh:
        table = pd.read_csv(fh, dtype=str)
    return table[table["flag"] == "10"]


@pytest.fixture(scope="module")
def cohort() -> tuple[SynthConfig, pd.DataFrame, pd.DataFrame, np.ndarray, pd.DataFrame]:
    config = SynthConfig(participants=4000, batch_size=4000, genomes=0, seed=11)
    candidates = make_candidates()
    effects = assign_effects(candidates, config)
    batch = participant_batch(config, 0)
    dosage = simulate_dosage(batch, candidates, seed=5)
    pheno = phenotypes(batch, dosage, effects, list(candidates["variant_id"]), config, index=0)
    return config, candidates, effects, dosage, pheno


def test_traits__disease_codes_map_to_their_phecode() -> None:
    table = phecode12()
    for disease in diseases():
        rows = table[table["ICD"] == disease.icd10cm]
        assert set(rows["phecode"]) == {disease.phecode}, disease.name
        expected = {"both": "Both", "female": "Female", "male": "Male"}[disease.sex]
        assert set(rows["sex"]) == {expected}, disease.name


def test_traits__quantitative_units_match_vocab() -> None:
    units = measurements().set_index("key")["unit_ucum"]
    for trait in quantitative_traits():
        assert units[trait.name] == trait.unit


def test_assign_effects__deterministic_and_complete(cohort) -> None:
    config, candidates, effects, _, _ = cohort
    again = assign_effects(candidates, config)
    pd.testing.assert_frame_equal(effects, again)
    other = assign_effects(candidates, SynthConfig(seed=config.seed + 1))
    assert not other.equals(effects)
    assert sorted(effects["variant_id"]) == sorted(candidates["variant_id"])
    causal = effects[effects["kind"] == "causal"]
    assert set(causal["trait"]) == {t.name for t in TRAITS}
    nulls = effects[effects["kind"] == "null"]
    assert (nulls["effect"] == 0).all() and (nulls["trait"] == "").all()
    assert list(effects.columns) == ["trait", "variant_id", "effect", "effect_ancestry", "kind"]


def test_assign_effects__ancestry_specific_variant_is_differentiated(cohort) -> None:
    _, candidates, effects, _, _ = cohort
    specific = effects[effects["effect_ancestry"] == "afr"]
    assert set(specific["trait"]) >= {"ldl", "hba1c"}
    freqs = candidates.set_index("variant_id").loc[specific["variant_id"]]
    others = freqs[[g for g in GROUPS if g != "af_afr"]].max(axis=1)
    assert (freqs["af_afr"] - others >= 0.15).all()


def test_assign_effects__few_candidates_still_cover_every_trait() -> None:
    effects = assign_effects(make_candidates(m=len(TRAITS)), SynthConfig())
    assert set(effects["trait"]) == {t.name for t in TRAITS}


def test_planted_power__strong_variants_are_powered(cohort) -> None:
    _, candidates, effects, _, _ = cohort
    power = planted_power(effects, candidates)
    quantitative = power[power["trait"].isin([t.name for t in quantitative_traits()])]
    assert (quantitative["power"] > 0.95).all()
    first = power.drop_duplicates("trait")
    both_sex = {d.name for d in diseases() if d.sex == "both"}
    assert (first[first["trait"].isin(both_sex)]["power"] > 0.9).all()


def test_phenotypes__deterministic_and_shaped(cohort) -> None:
    config, candidates, effects, dosage, pheno = cohort
    batch = participant_batch(config, 0)
    again = phenotypes(batch, dosage, effects, list(candidates["variant_id"]), config, index=0)
    pd.testing.assert_frame_equal(pheno, again)
    assert pheno.columns[0] == "participant_id"
    assert len(pheno) == len(batch)
    with pytest.raises(ValueError, match="dosage"):
        phenotypes(batch, dosage[:, :3], effects, list(candidates["variant_id"]), config, index=0)


def test_phenotypes__onsets_and_sex_restrictions(cohort) -> None:
    config, _, _, _, pheno = cohort
    batch = participant_batch(config, 0)
    cutoff = pd.Timestamp(config.cutoff)
    for disease in diseases():
        case = pheno[disease.name]
        onset = pheno[f"{disease.name}_onset"]
        assert onset[~case].isna().all() and onset[case].notna().all()
        assert (onset[case] >= batch.loc[case, "birth_date"]).all()
        assert (onset[case] <= cutoff).all()
        dead = case & batch["death_date"].notna()
        assert (onset[dead] <= batch.loc[dead, "death_date"]).all()
        if disease.sex != "both":
            assert not case[batch["sex_at_birth"] != disease.sex].any()
        assert 0.3 * disease.prevalence < case.mean() < 3 * disease.prevalence


def test_phenotypes__quantitative_effect_recovered_by_ols(cohort) -> None:
    _, candidates, effects, dosage, pheno = cohort
    causal = effects[(effects["trait"] == "bmi") & (effects["effect_ancestry"] == "")]
    col = list(candidates["variant_id"]).index(causal["variant_id"].iloc[0])
    fit = sm.OLS(pheno["bmi"].to_numpy(), sm.add_constant(dosage[:, col])).fit()
    assert fit.pvalues[1] < 5e-8
    assert np.sign(fit.params[1]) == np.sign(causal["effect"].iloc[0])


def test_phenotypes__strong_disease_variant_recovered_by_logistic(cohort) -> None:
    _, candidates, effects, dosage, pheno = cohort
    strong = effects[effects["trait"] == "type_2_diabetes"].iloc[0]
    col = list(candidates["variant_id"]).index(strong["variant_id"])
    y = pheno["type_2_diabetes"].to_numpy(dtype=float)
    fit = sm.Logit(y, sm.add_constant(dosage[:, col])).fit(disp=0)
    assert fit.pvalues[1] < 5e-8
    assert abs(fit.params[1] - strong["effect"]) < 0.5
