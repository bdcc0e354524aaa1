"""The whole synthetic program, end to end: determinism, eligibility, planted truth found again."""

import hashlib
from pathlib import Path

import cyvcf2
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from opencohort.errors import ConfigError
from opencohort.synth.models import SynthConfig
from opencohort.synth.participants import participant_batch
from opencohort.synth.program import ANCESTRY_COLUMNS, generate_program, genome_eligible

TINY = SynthConfig(
    participants=240, genomes=60, sites=2, seed=3, batch_size=100,
    region_megabases=0.05, reference_per_group=4,
)  # fmt: skip
GWAS = SynthConfig(
    participants=3000, genomes=2000, sites=3, seed=8, batch_size=1200,
    region_megabases=0.25, reference_per_group=10,
)  # fmt: skip


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "feeds"
    generate_program(TINY, out)
    return out


@pytest.fixture(scope="module")
def gwas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gwas") / "feeds"
    generate_program(GWAS, out)
    return out


def test_generate_program__same_seed_same_bytes(tiny: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_program(TINY, again)
    assert _digests(again) == _digests(tiny)


def test_generate_program__other_seed_differs(tiny: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate_program(SynthConfig(**{**TINY.__dict__, "seed": 4}), other)
    a, b = _digests(tiny), _digests(other)
    assert a["registry/participants.csv"] != b["registry/participants.csv"]
    assert a["genomes/manifest.csv"] != b["genomes/manifest.csv"]


def test_generate_program__refuses_non_empty_out(tiny: Path) -> None:
    before = _digests(tiny)
    with pytest.raises(ConfigError, match="not empty"):
        generate_program(TINY, tiny)
    assert _digests(tiny) == before


def test_generate_program__every_feed_written(tiny: Path) -> None:
    for name in ("participants", "consents", "surveys", "biospecimens", "physical_measurements"):
        assert (tiny / "registry" / f"{name}.csv").stat().st_size > 0
    assert len(list((tiny / "ehr").iterdir())) == TINY.sites
    for name in ("effects", "phenotypes", "ancestry", "errors", "related_pairs", "sample_issues"):
        assert (tiny / "truth" / f"{name}.csv").exists(), name
    assert list((tiny / "genomes").glob("batch_*/chr*.vcf.gz"))
    assert list((tiny / "genomes" / "reference_panel").glob("chr*.vcf.gz"))


def test_generate_program__sequenced_only_eligible(tiny: Path) -> None:
    people = pd.concat(participant_batch(TINY, i) for i in range(TINY.n_batches))
    eligible = set(people.loc[genome_eligible(people), "participant_id"])
    manifest = pd.read_csv(tiny / "genomes" / "manifest.csv")
    assert manifest["participant_id"].nunique() == TINY.genomes
    assert set(manifest["participant_id"]) <= eligible


def test_generate_program__summary_counts_match_files(tiny: Path) -> None:
    import json

    summary = json.loads((tiny / "summary.json").read_text())
    assert sum(summary["categories"]["race_ethnicity"].values()) == TINY.participants
    rows = pd.read_csv(tiny / "registry" / "participants.csv")
    assert summary["rows"]["registry/participants.csv"] == len(rows) == TINY.participants


def _vcf_dosage(out: Path, variant_id: str) -> pd.Series:
    """Alt-allele count per sample, read from every batch's VCF with cyvcf2."""
    chrom, pos, ref, alt = variant_id.split(":")
    dosage: dict[str, float] = {}
    for path in sorted((out / "genomes").glob(f"batch_*/{chrom}.vcf.gz")):
        vcf = cyvcf2.VCF(str(path))
        found = {s: 0.0 for s in vcf.samples}  # a batch without an ALT call has no record
        for rec in vcf(f"{chrom}:{pos}-{pos}"):
            if int(pos) != rec.POS or ref != rec.REF or alt not in rec.ALT:
                continue
            allele = rec.ALT.index(alt) + 1
            for sample, call in zip(vcf.samples, rec.genotypes, strict=True):
                alleles = call[:-1]
                found[sample] = (
                    np.nan if min(alleles) < 0 else float(sum(a == allele for a in alleles))
                )
        dosage.update(found)
    return pd.Series(dosage, name="dosage")


def _bmi_scan(out: Path, variant_id: str) -> float:
    """p-value of BMI (program physical measurements) on VCF genotype, adjusted for ancestry."""
    manifest = pd.read_csv(out / "genomes" / "manifest.csv")
    issues = pd.read_csv(out / "truth" / "sample_issues.csv")
    manifest = manifest[~manifest["sample_id"].isin(issues["sample_id"])]
    manifest = manifest.drop_duplicates("participant_id")
    geno = _vcf_dosage(out, variant_id).rename_axis("sample_id").reset_index()
    bmi = pd.read_csv(
        out / "registry" / "physical_measurements.csv", usecols=["participant_id", "bmi"]
    )
    ancestry = pd.read_csv(out / "truth" / "ancestry.csv")
    data = manifest.merge(geno, on="sample_id").merge(bmi).merge(ancestry)
    data = data.dropna(subset=["dosage", "bmi"])
    assert len(data) > 1000, "too few sequenced people with BMI for a fair test"
    design = sm.add_constant(data[["dosage", *ANCESTRY_COLUMNS[1:]]])
    return float(sm.OLS(data["bmi"], design).fit().pvalues["dosage"])


def test_generate_program__planted_variant_found_in_vcf_and_ehr(gwas: Path) -> None:
    effects = pd.read_csv(gwas / "truth" / "effects.csv", keep_default_na=False)
    causal = effects[(effects["trait"] == "bmi") & (effects["effect_ancestry"] == "")]
    assert len(causal)
    p_values = {variant: _bmi_scan(gwas, variant) for variant in causal["variant_id"]}
    assert min(p_values.values()) < 5e-8, p_values
    assert max(p_values.values()) < 1e-4, p_values


def test_generate_program__null_variant_not_found(gwas: Path) -> None:
    effects = pd.read_csv(gwas / "truth" / "effects.csv", keep_default_na=False)
    chrom = effects["variant_id"].str.split(":").str[0]
    bmi_chroms = set(chrom[effects["trait"] == "bmi"])
    nulls = effects[(effects["kind"] == "null") & ~chrom.isin(bmi_chroms)]
    assert len(nulls), "need a null variant unlinked to every BMI causal variant"
    assert _bmi_scan(gwas, nulls["variant_id"].iloc[0]) > 1e-3
