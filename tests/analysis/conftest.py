"""Shared fixtures for the analysis tests: small PLINK 2 filesets made with numpy and pgenlib."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pgenlib
import pytest

PLINK2 = shutil.which("plink2")


def write_pfile(
    prefix: Path,
    genotypes: np.ndarray,
    *,
    chrom: str = "1",
    positions: np.ndarray | None = None,
) -> None:
    """Write variants x samples hardcalls (0/1/2, -9 missing) as prefix.pgen/.pvar/.psam."""
    n_variants, n_samples = genotypes.shape
    if positions is None:
        positions = 1000 + 1000 * np.arange(n_variants)
    with open(f"{prefix}.psam", "w") as fh:
        fh.write("#IID\tSEX\n")
        fh.writelines(f"s{i}\t{1 + i % 2}\n" for i in range(n_samples))
    pvar = pd.DataFrame(
        {
            "#CHROM": chrom,
            "POS": positions,
            "ID": [f"v{i}" for i in range(n_variants)],
            "REF": "A",
            "ALT": "G",
        }
    )
    pvar.to_csv(f"{prefix}.pvar", sep="\t", index=False)
    writer = pgenlib.PgenWriter(str(prefix).encode() + b".pgen", n_samples, n_variants, False)
    writer.append_biallelic_batch(np.ascontiguousarray(genotypes, dtype=np.int8))
    writer.close()


def simulate_genotypes(
    rng: np.random.Generator, n_variants: int, n_samples: int, missing_rate: float = 0.0
) -> np.ndarray:
    """Return variants x samples hardcalls under Hardy-Weinberg with varied allele frequencies."""
    freqs = rng.uniform(0.05, 0.6, size=(n_variants, 1))
    genotypes = rng.binomial(2, freqs, size=(n_variants, n_samples)).astype(np.int8)
    if missing_rate:
        genotypes[rng.random(genotypes.shape) < missing_rate] = -9
    return genotypes


def run_plink2(*args: str) -> None:
    """Run plink2 quietly, failing the test with its log on error."""
    result = subprocess.run(
        [PLINK2, "--threads", "1", "--silent", *args], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"plink2 failed: {result.stdout}\n{result.stderr}")


def read_plink_glm(path: Path) -> pd.DataFrame:
    """Read a plink2 --glm output table, keeping ADD rows."""
    table = pd.read_csv(path, sep="\t", na_values=["NA"])
    return table[table["TEST"] == "ADD"].reset_index(drop=True)


N_SAMPLES, N_VARIANTS, CAUSAL = 400, 300, 40


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A fileset with missing calls, a constant variant, a separated rare variant and traits."""
    root = tmp_path_factory.mktemp("gwas")
    rng = np.random.default_rng([6, 1])
    g = simulate_genotypes(rng, N_VARIANTS, N_SAMPLES, missing_rate=0.02)
    g[0] = 0
    g[1] = 0
    g[1, :4] = 1  # carried only by cases below: quasi-separation
    g[2] = 2 - np.clip(g[2], 0, 2)  # ALT is the major allele
    prefix = root / "cohort"
    write_pfile(prefix, g)
    iid = [f"s{i}" for i in range(N_SAMPLES)]
    covar = pd.DataFrame(rng.normal(size=(N_SAMPLES, 3)), index=iid, columns=["c1", "c2", "c3"])
    dose = np.where(g[CAUSAL] < 0, 1, g[CAUSAL])
    quant = 0.8 * dose + 0.5 * covar["c1"].to_numpy() + rng.normal(size=N_SAMPLES)
    null = rng.normal(size=N_SAMPLES)
    null[rng.random(N_SAMPLES) < 0.05] = np.nan
    logit = -0.7 + 0.4 * covar["c2"].to_numpy() + 0.3 * dose
    case = (rng.random(N_SAMPLES) < 1 / (1 + np.exp(-logit))).astype(float)
    case[:4] = 1
    pheno = pd.DataFrame({"quant": quant, "null": null, "case": case}, index=iid)
    pheno.index.name = "IID"
    plink_pheno = pheno.assign(case=pheno["case"] + 1)
    plink_pheno.rename_axis("#IID").to_csv(root / "pheno.tsv", sep="\t", na_rep="NA")
    covar.rename_axis("#IID").to_csv(root / "covar.tsv", sep="\t")
    return {
        "root": root, "prefix": prefix, "genotypes": g, "pheno": pheno, "covar": covar,
    }  # fmt: skip


requires_plink2 = pytest.mark.skipif(PLINK2 is None, reason="plink2 binary not installed")


BCFTOOLS = shutil.which("bcftools")
SYNTH = {"participants": 3000, "genomes": 2000, "sites": 2, "seed": 11}
"""The synthetic program of the phenotype and PheWAS tests: about 1,350 sequenced people
with EHR, enough for the strong planted disease variants to reach p < 1e-5."""


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory: pytest.TempPathFactory, program_home, research_ids) -> dict:
    """A synthetic program, its home with release R1, and research ids."""
    from datetime import date

    from opencohort.release import build_release, read_release
    from opencohort.synth import SynthConfig, generate_program

    root = tmp_path_factory.mktemp("synthetic")
    program = root / "program"
    generate_program(SynthConfig(**SYNTH), program)
    home = program_home(root / "home", program)
    build_release(home, "R1", cutoff=date(2025, 12, 31))
    return {
        "root": root, "program": program, "home": home,
        "release": read_release(home, "R1"), "ids": research_ids(home),
    }  # fmt: skip
