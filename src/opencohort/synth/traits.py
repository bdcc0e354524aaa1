"""Planted truth of the synthetic program: traits, their causal variants and phenotype values.

The synthetic program plants known genetic effects so that the analysis areas (GWAS, PheWAS,
replication) can be checked against the truth. Three quantitative traits (BMI, LDL cholesterol,
HbA1c) and seven binary diseases are declared in :data:`TRAITS`; :func:`assign_effects` picks
causal variants among the genome simulator's candidates and :func:`phenotypes` turns a batch of
participants plus their allele dosages into true trait values and disease onsets.

Expected power (reference sample of :data:`POWER_N` = 2,000 genomes, genome-wide alpha 5e-8,
assumed ancestry mix :data:`COHORT_ANCESTRY`):

- each quantitative variant explains about 5% of the trait variance, a non-centrality of about
  100, so ordinary linear regression finds it at p < 5e-8 with power above 0.99 even when only
  two thirds of the sequenced have the measurement and ancestry is adjusted for (the per-SD
  effect is capped at 1.0, which only binds for rare candidates);
- the first ("strong") variant of each both-sex disease is sized for a non-centrality of 60
  (power about 0.99) and the second for 30 (power about 0.5); the per-allele log odds ratio is
  capped at log(4), so the strong variant of a rare or one-sex disease (breast and prostate cancer,
  gout) has lower power. :func:`planted_power` reports the expected non-centrality and power of
  every causal variant for a given sample size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from opencohort.synth.models import SynthConfig

ANCESTRIES = ("afr", "eur", "eas", "sas", "mid", "nat")
#: Mean ancestry proportions assumed when sizing effects (an All of Us-like mix).
COHORT_ANCESTRY = {"afr": 0.21, "eur": 0.50, "eas": 0.06, "sas": 0.03, "mid": 0.04, "nat": 0.16}
#: Sample size the effects are sized for.
POWER_N = 2000
_Z_ALPHA = 5.4513  # two-sided normal quantile for alpha = 5e-8
_QUANT_Q2 = 0.05  # variance explained per quantitative variant
_DISEASE_NCP = (60.0, 30.0)  # target non-centrality of a disease's first and later variants
_MAX_QUANT_EFFECT = 1.0
_MAX_LOG_OR = math.log(4.0)
_REFERENCE_AGE = 55.0
_STREAM_EFFECTS = 7101
_STREAM_PHENO = 7102


@dataclass(frozen=True)
class QuantitativeTrait:
    """A planted quantitative trait measured in the EHR and at the program's own visits.

    Parameters are in the trait's unit (``unit``, as in ``opencohort.vocab.measurements()``);
    age and sex effects are in SD units; ``slots`` lists the ancestry of each causal variant
    ('' for an effect shared by every ancestry).
    """

    name: str
    unit: str
    mean: float
    sd: float
    floor: float
    age_per_decade: float
    male: float
    slots: tuple[str, ...] = ("", "", "")


@dataclass(frozen=True)
class Disease:
    """A planted binary disease under a liability-threshold model with logistic residual.

    ``prevalence`` is the share of cases by the cutoff in the sex(es) at risk at the reference
    age; ``age_per_decade`` and ``male`` are log odds ratios; ``traits`` pairs a quantitative
    trait with the log odds ratio per SD of it; ``drugs`` are the usual treatments; ``slots``
    lists the ancestry of each causal variant (the first one is the strong one).
    """

    name: str
    icd10cm: str
    phecode: str
    sex: str  # "both", "female" or "male"
    prevalence: float
    age_per_decade: float
    male: float = 0.0
    traits: tuple[tuple[str, float], ...] = ()
    drugs: tuple[str, ...] = ()
    slots: tuple[str, ...] = ("", "")


TRAITS: tuple[QuantitativeTrait | Disease, ...] = (
    QuantitativeTrait(
        "bmi", "kg/m2", mean=29.0, sd=6.0, floor=14.0, age_per_decade=0.08, male=-0.05,
    ),
    QuantitativeTrait(
        "ldl", "mg/dL", mean=110.0, sd=33.0, floor=20.0, age_per_decade=0.12, male=0.05,
        slots=("", "", "afr"),
    ),
    QuantitativeTrait(
        "hba1c", "%", mean=5.6, sd=0.7, floor=3.8, age_per_decade=0.15, male=0.05,
        slots=("", "", "afr"),
    ),
    Disease(
        "type_2_diabetes", "E11.9", "250.2", sex="both", prevalence=0.12, age_per_decade=0.5,
        male=0.2, traits=(("bmi", 0.5), ("hba1c", 0.9)), drugs=("metformin", "insulin_glargine"),
        slots=("", "nat"),
    ),
    Disease(
        "coronary_atherosclerosis", "I25.10", "411.4", sex="both", prevalence=0.06,
        age_per_decade=0.8, male=0.8, traits=(("ldl", 0.5),),
        drugs=("atorvastatin", "clopidogrel", "metoprolol"),
    ),
    Disease(
        "gout", "M10.9", "274.1", sex="both", prevalence=0.04, age_per_decade=0.4, male=1.3,
        traits=(("bmi", 0.4),), drugs=("allopurinol",),
    ),
    Disease(
        "asthma", "J45.909", "495", sex="both", prevalence=0.09, age_per_decade=-0.1, male=-0.2,
        traits=(("bmi", 0.2),), drugs=("albuterol",),
    ),
    Disease(
        "hypothyroidism", "E03.9", "244.4", sex="both", prevalence=0.07, age_per_decade=0.4,
        male=-1.2, drugs=("levothyroxine",),
    ),
    Disease(
        "breast_cancer", "C50.911", "174.11", sex="female", prevalence=0.04, age_per_decade=0.5,
        drugs=("capecitabine", "fluorouracil"), slots=("",),
    ),
    Disease(
        "prostate_cancer", "C61", "185", sex="male", prevalence=0.04, age_per_decade=0.9,
        slots=("",),
    ),
)  # fmt: skip


def quantitative_traits() -> tuple[QuantitativeTrait, ...]:
    """The planted quantitative traits, in declaration order."""
    return tuple(t for t in TRAITS if isinstance(t, QuantitativeTrait))


def diseases() -> tuple[Disease, ...]:
    """The planted binary diseases, in declaration order."""
    return tuple(t for t in TRAITS if isinstance(t, Disease))


def _af_matrix(candidates: pd.DataFrame) -> np.ndarray:
    return candidates[[f"af_{g}" for g in ANCESTRIES]].to_numpy(dtype=float)


def _variance_terms(af: np.ndarray, ancestry: str) -> tuple[float, float]:
    """Var(G) and Cov(x, G) in the assumed cohort, where x is the effect-bearing dosage.

    People are treated as unadmixed members of each group with the group's share, so for an
    ancestry-specific effect x is the dosage in that group and 0 elsewhere.
    """
    w = np.array([COHORT_ANCESTRY[g] for g in ANCESTRIES])
    second = 2 * af * (1 - af) + 4 * af**2  # E[G^2] per group
    mean_g = float(w @ (2 * af))
    var_g = float(w @ second) - mean_g**2
    if not ancestry:
        return var_g, var_g
    k = ANCESTRIES.index(ancestry)
    cov = w[k] * second[k] - (w[k] * 2 * af[k]) * mean_g
    return var_g, float(cov)


def _effect_size(
    trait: QuantitativeTrait | Disease, rank: int, af: np.ndarray, ancestry: str
) -> float:
    var_g, cov = _variance_terms(af, ancestry)
    if var_g <= 0 or cov <= 0:
        return 0.0
    if isinstance(trait, QuantitativeTrait):
        return min(math.sqrt(_QUANT_Q2 * var_g) / cov, _MAX_QUANT_EFFECT)
    ncp = _DISEASE_NCP[min(rank, 1)]
    n = POWER_N * (1.0 if trait.sex == "both" else 0.5)
    phi = trait.prevalence
    beta = math.sqrt(ncp * var_g / (n * phi * (1 - phi))) / cov
    return min(beta, _MAX_LOG_OR)


def _pick(rng: np.random.Generator, af: np.ndarray, free: np.ndarray, ancestry: str) -> int | None:
    """Index of a free candidate for a slot, or None when none is left."""
    pooled = af @ np.array([COHORT_ANCESTRY[g] for g in ANCESTRIES])
    if ancestry:
        k = ANCESTRIES.index(ancestry)
        others = np.delete(af, k, axis=1).max(axis=1)
        score = np.where(free, af[:, k] - others, -np.inf)
        ok = np.flatnonzero(score >= 0.15)
        if ok.size:
            top = ok[np.argsort(-score[ok], kind="stable")][:5]
            return int(rng.choice(top))
    maf = np.minimum(pooled, 1 - pooled)
    for low in (0.1, 0.02, 0.0):
        ok = np.flatnonzero(free & (maf > low))
        if ok.size:
            return int(rng.choice(ok))
    return None


def assign_effects(candidates: pd.DataFrame, config: SynthConfig) -> pd.DataFrame:
    """Choose the causal variants of every planted trait and their per-allele effects.

    Parameters
    ----------
    candidates
        Candidate variants from the genome simulator: variant_id, chrom, pos, ref, alt and
        af_afr, af_eur, af_eas, af_sas, af_mid, af_nat.
    config
        The synthetic program's options; only ``seed`` is used.

    Returns
    -------
    pd.DataFrame
        One row per candidate: trait ('' for nulls), variant_id, effect (per alt allele; SD
        units for a quantitative trait, log odds ratio for a disease; 0 for nulls),
        effect_ancestry ('' or the group whose background carries the effect) and kind
        ('causal' or 'null'). Causal rows come first, in the order of :data:`TRAITS`.

    Notes
    -----
    1. Slots are filled round-robin over the traits (every trait's first slot before any
       second slot), so a small candidate set still gives each trait a causal variant.
    2. A slot with an ancestry takes a variant whose frequency in that group exceeds every
       other group's by at least 0.15 (one of the five most differentiated, at random); the
       effect then applies only in that background, scaled by the person's ancestry share.
    3. Other slots take a random variant with pooled minor allele frequency above 0.1.
    4. Effect sizes follow the power targets in the module docstring (random sign).
    """
    af = _af_matrix(candidates)
    free = np.ones(len(candidates), dtype=bool)
    rng = np.random.default_rng([config.seed, _STREAM_EFFECTS, 0])
    rows: list[tuple[str, int, float, str]] = []
    depth = max(len(t.slots) for t in TRAITS)
    for rank in range(depth):
        for trait in TRAITS:
            if rank >= len(trait.slots):
                continue
            ancestry = trait.slots[rank]
            j = _pick(rng, af, free, ancestry)
            if j is None:
                continue
            free[j] = False
            sign = 1.0 if rng.random() < 0.7 else -1.0
            size = _effect_size(trait, rank, af[j], ancestry)
            rows.append((trait.name, j, sign * size, ancestry))
    order = {t.name: i for i, t in enumerate(TRAITS)}
    rows.sort(key=lambda r: order[r[0]])
    ids = candidates["variant_id"].astype(str).to_numpy()
    causal = pd.DataFrame(
        {
            "trait": [r[0] for r in rows],
            "variant_id": [ids[r[1]] for r in rows],
            "effect": np.array([r[2] for r in rows], dtype=float),
            "effect_ancestry": [r[3] for r in rows],
            "kind": "causal",
        }
    )
    null = pd.DataFrame(
        {"trait": "", "variant_id": ids[free], "effect": 0.0, "effect_ancestry": "", "kind": "null"}
    )
    return pd.concat([causal, null], ignore_index=True)


def planted_power(
    effects: pd.DataFrame, candidates: pd.DataFrame, *, n: int = POWER_N, alpha: float = 5e-8
) -> pd.DataFrame:
    """Expected non-centrality and power of each causal variant's single-variant test.

    Parameters
    ----------
    effects
        Output of :func:`assign_effects`.
    candidates
        The candidates it was given.
    n
        Number of genomes tested.
    alpha
        Significance level (two-sided); only 5e-8 and 0.05 are tabulated exactly, other levels
        use a normal-quantile approximation.

    Returns
    -------
    pd.DataFrame
        trait, variant_id, effect, effect_ancestry, ncp (chi-square non-centrality under the
        assumed ancestry mix) and power.
    """
    by_name = {t.name: t for t in TRAITS}
    causal = effects[effects["kind"] == "causal"].reset_index(drop=True)
    af = _af_matrix(candidates.set_index("variant_id").loc[causal["variant_id"]])
    z = _Z_ALPHA if alpha == 5e-8 else 1.959964 if alpha == 0.05 else _normal_quantile(alpha)
    ncp = np.zeros(len(causal))
    for i, row in causal.iterrows():
        trait = by_name[row["trait"]]
        var_g, cov = _variance_terms(af[i], row["effect_ancestry"])
        signal = (row["effect"] * cov) ** 2 / var_g if var_g > 0 else 0.0
        if isinstance(trait, QuantitativeTrait):
            ncp[i] = n * signal / (1 - signal)
        else:
            share = 1.0 if trait.sex == "both" else 0.5
            ncp[i] = n * share * trait.prevalence * (1 - trait.prevalence) * signal
    root = np.sqrt(ncp)
    power = np.array([_phi(r - z) + _phi(-r - z) for r in root])
    return causal.assign(ncp=ncp, power=power)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _normal_quantile(alpha: float) -> float:
    lo, hi = 0.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 2 * (1 - _phi(mid)) > alpha else (lo, mid)
    return (lo + hi) / 2


def _ages(batch: pd.DataFrame, config: SynthConfig) -> np.ndarray:
    cutoff = np.datetime64(config.cutoff, "D")
    birth = batch["birth_date"].to_numpy(dtype="datetime64[D]")
    return (cutoff - birth).astype(float) / 365.25


def _genetic_scores(
    batch: pd.DataFrame, dosage: np.ndarray, effects: pd.DataFrame, candidate_ids: list[str]
) -> dict[str, np.ndarray]:
    column = {v: i for i, v in enumerate(candidate_ids)}
    causal = effects[(effects["kind"] == "causal") & effects["variant_id"].isin(column)]
    scores: dict[str, np.ndarray] = {}
    n = len(batch)
    for trait, rows in causal.groupby("trait", sort=False):
        cols = rows["variant_id"].map(column).to_numpy()
        x = np.asarray(dosage[:, cols], dtype=float)
        scale = np.ones_like(x)
        for k, anc in enumerate(rows["effect_ancestry"]):
            if anc:
                scale[:, k] = batch[f"anc_{anc}"].to_numpy(dtype=float)
        x = x * scale
        if n:
            x = x - x.mean(axis=0)
        scores[str(trait)] = x @ rows["effect"].to_numpy(dtype=float)
    return scores


def phenotypes(
    batch: pd.DataFrame,
    dosage: np.ndarray,
    effects: pd.DataFrame,
    candidate_ids: list[str],
    config: SynthConfig,
    *,
    index: int,
) -> pd.DataFrame:
    """True trait values and disease onsets of one participant batch.

    Parameters
    ----------
    batch
        The participant batch (see ``participant_batch``); uses participant_id, birth_date,
        sex_at_birth, death_date and the anc_* columns.
    dosage
        Alt-allele counts, shape (len(batch), len(candidate_ids)), aligned with the rows of
        `batch` and `candidate_ids` (zeros for people without simulated genotypes).
    effects
        Output of :func:`assign_effects`.
    candidate_ids
        Variant ids of the columns of `dosage`.
    config
        The synthetic program's options (seed and cutoff).
    index
        Batch index; with the seed it decides the random draws.

    Returns
    -------
    pd.DataFrame
        participant_id; one float column per quantitative trait (true value in its unit);
        for each disease ``<name>`` (bool, case by the cutoff) and ``<name>_onset``
        (datetime64, NaT for controls).

    Notes
    -----
    1. Genetic value of a trait: sum over its causal variants of effect times dosage
       (times the person's anc_<group> share for an ancestry-specific effect), each variant's
       term centred on its batch mean.
    2. Quantitative: z = age and sex terms + genetic value + normal noise; value =
       mean + sd * z, floored at a physiological minimum.
    3. Disease: liability = intercept + age + sex + sum(trait coupling * trait z) + genetic
       value + logistic noise; a case when the liability exceeds 0, so effects are log odds
       ratios. The intercept is the logit of the prevalence inflated by the probit-logit
       variance correction so the marginal prevalence stays near the target. One-sex diseases
       only occur in that sex at birth.
    4. Onset age lies between about 18 (half the age for younger people) and the age at the
       cutoff, skewed to later ages, and never after death.
    """
    n = len(batch)
    if dosage.shape != (n, len(candidate_ids)):
        raise ValueError(
            f"phenotypes: dosage has shape {dosage.shape}; expected {(n, len(candidate_ids))}"
        )
    rng = np.random.default_rng([config.seed, _STREAM_PHENO, index])
    age = _ages(batch, config)
    decades = (age - _REFERENCE_AGE) / 10.0
    sex = batch["sex_at_birth"].astype(str).to_numpy()
    male = (sex == "male").astype(float)
    scores = _genetic_scores(batch, dosage, effects, candidate_ids)
    zero = np.zeros(n)
    out: dict[str, object] = {"participant_id": batch["participant_id"].to_numpy()}
    zs: dict[str, np.ndarray] = {}
    for trait in quantitative_traits():
        g = scores.get(trait.name, zero)
        z = trait.age_per_decade * decades + trait.male * male + g + rng.normal(0, 0.9, n)
        zs[trait.name] = z
        out[trait.name] = np.maximum(trait.mean + trait.sd * z, trait.floor)
    birth = batch["birth_date"].to_numpy(dtype="datetime64[D]")
    cutoff = np.datetime64(config.cutoff, "D")
    death = batch["death_date"].to_numpy(dtype="datetime64[D]")
    last = np.where(np.isnat(death), cutoff, np.minimum(death, cutoff))
    span = np.maximum((last - birth).astype(float), 1.0)
    for dis in diseases():
        at_risk = np.ones(n, dtype=bool) if dis.sex == "both" else sex == dis.sex
        linear = dis.age_per_decade * decades + dis.male * (male - 0.5) + scores.get(dis.name, zero)
        for name, coupling in dis.traits:
            linear = linear + coupling * zs[name]
        spread = dis.age_per_decade**2 * 2.9 + dis.male**2 * 0.25
        spread += sum(c**2 for _, c in dis.traits)
        intercept = math.log(dis.prevalence / (1 - dis.prevalence))
        intercept *= math.sqrt(1 + math.pi * spread / 8)
        case = at_risk & (intercept + linear + rng.logistic(0.0, 1.0, n) > 0)
        low = np.minimum(18 * 365.25, span / 2)
        frac = rng.random(n) ** 0.6
        days = np.floor(low + (span - low) * frac).astype("timedelta64[D]")
        onset = np.where(case, birth + days, np.datetime64("NaT"))
        out[dis.name] = case
        out[f"{dis.name}_onset"] = pd.to_datetime(np.minimum(onset, last).astype("datetime64[ns]"))
    return pd.DataFrame(out)
