"""Tests of the synthetic genome simulator: files, truth, ancestry, relatedness, QC issues."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cyvcf2 import VCF

from opencohort.errors import InputError
from opencohort.synth.genomes import GenomeResult, population_dosage, simulate_genomes
from opencohort.synth.models import SynthConfig

POPS = ("afr", "eur", "eas", "sas", "mid", "nat")
GROUPS = {  # race_ethnicity -> (share, typical ancestry)
    "white": (0.40, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]),
    "black": (0.25, [0.8, 0.2, 0.0, 0.0, 0.0, 0.0]),
    "hispanic": (0.15, [0.08, 0.5, 0.0, 0.0, 0.0, 0.42]),
    "asian": (0.10, [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
    "mena": (0.05, [0.0, 0.1, 0.0, 0.0, 0.9, 0.0]),
    "none_of_these": (0.05, [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]),
}


def make_people(n: int, seed: int = 0) -> pd.DataFrame:
    """A participant frame slice with plausible ancestry by race/ethnicity."""
    rng = np.random.default_rng(seed)
    names = list(GROUPS)
    group = rng.choice(len(names), size=n, p=[GROUPS[g][0] for g in names])
    anc = np.array([GROUPS[names[g]][1] for g in group], dtype=float)
    black = group == names.index("black")
    anc[black, 0] = rng.uniform(0.6, 1.0, black.sum())
    anc[black, 1] = 1 - anc[black, 0]
    frame = pd.DataFrame(
        {
            "participant_id": [f"P{100_000_000 + 7919 * i:09d}" for i in range(n)],
            "sex_at_birth": rng.choice(
                ["female", "male", "intersex", "skip"], size=n, p=[0.5, 0.46, 0.02, 0.02]
            ),
            "race_ethnicity": [names[g] for g in group],
        }
    )
    for j, pop in enumerate(POPS):
        frame[f"anc_{pop}"] = anc[:, j]
    return frame


CONFIG = SynthConfig(
    participants=200, genomes=200, seed=7, region_megabases=0.1, reference_per_group=40
)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, GenomeResult]:
    out = tmp_path_factory.mktemp("genomes")
    people = make_people(200)
    return out, people, simulate_genomes(people, CONFIG, out)


def read_vcf(path: Path) -> tuple[list[str], pd.DataFrame, np.ndarray]:
    """Samples, records (chrom, pos, ref, alt) and (records, samples) allele arrays.

    The array holds allele counts for biallelic records: alt dosage, -1 if missing;
    multi-allelic records hold -9.
    """
    vcf = VCF(str(path))
    rows, dosage = [], []
    for v in vcf:
        gt = v.genotype.array()[:, :2].astype(int)
        alt = np.where(gt > 0, 1, 0).sum(axis=1)
        alt[(gt == -1).any(axis=1)] = -1
        if len(v.ALT) > 1:
            alt[:] = -9
        rows.append((v.CHROM, v.POS, v.REF, ",".join(v.ALT)))
        dosage.append(alt)
    records = pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alt"])
    return list(vcf.samples), records, np.array(dosage).reshape(len(rows), len(vcf.samples))


def batch_vcfs(out: Path) -> list[Path]:
    return sorted((out / "genomes").glob("batch_*/chr*.vcf.gz"))


def test_simulate_genomes__writes_batches_panel_and_truth(run):
    out, people, result = run
    assert result.sample_ids == people["participant_id"].tolist()
    chroms = {p.name for p in batch_vcfs(out)}
    assert "chrX.vcf.gz" in chroms and len(chroms) >= 8
    for vcf in [*batch_vcfs(out), *(out / "genomes" / "reference_panel").glob("*.vcf.gz")]:
        assert vcf.with_name(vcf.name + ".tbi").exists()
    manifest = pd.read_csv(out / "genomes" / "manifest.csv")
    assert set(manifest["participant_id"]) == set(people["participant_id"])
    assert manifest["sample_id"].is_unique
    labels = pd.read_csv(out / "genomes" / "reference_panel" / "labels.csv")
    assert labels["group"].value_counts().to_dict() == {
        g: 40 for g in ("afr", "amr", "eas", "eur", "mid", "sas")
    }
    issues = pd.read_csv(out / "truth" / "sample_issues.csv")
    assert set(issues["issue"]) == {"duplicate", "swap", "contaminated"}
    related = pd.read_csv(out / "truth" / "related_pairs.csv")
    assert set(related["relationship"]) == {"parent_offspring", "full_sibling"}
    sex = pd.read_csv(out / "truth" / "genetic_sex.csv")
    assert set(sex["genetic_sex"]) == {"female", "male"}
    assert (sex.loc[sex["sex_at_birth"] == "male", "genetic_sex"] == "male").all()
    candidates = pd.read_csv(out / "truth" / "candidate_variants.csv")
    pd.testing.assert_frame_equal(candidates, result.candidates, check_dtype=False)
    assert result.counts["samples"] == len(manifest)


def test_simulate_genomes__bcftools_and_cyvcf2_agree(run):
    out, _, _ = run
    manifest = pd.read_csv(out / "genomes" / "manifest.csv")
    for path in batch_vcfs(out):
        body = subprocess.run(
            ["bcftools", "view", "-H", str(path)], capture_output=True, check=True
        )
        n_records = body.stdout.count(b"\n")
        stats = subprocess.run(["bcftools", "stats", str(path)], capture_output=True, text=True)
        summary = {
            line.split("\t")[2]: int(line.split("\t")[3])
            for line in stats.stdout.splitlines()
            if line.startswith("SN\t")
        }
        samples, records, _ = read_vcf(path)
        expected = manifest.loc[manifest["batch"] == path.parent.name, "sample_id"]
        assert sorted(samples) == sorted(expected)
        assert not stats.stderr
        assert summary["number of samples:"] == len(samples)
        assert summary["number of records:"] == n_records == len(records) > 0
        assert records["pos"].is_monotonic_increasing


def test_simulate_genomes__tabix_index_answers_region_queries(run):
    out, _, _ = run
    path = out / "genomes" / "batch_001" / "chr10.vcf.gz"
    _, records, _ = read_vcf(path)
    lo, hi = int(records["pos"].quantile(0.3)), int(records["pos"].quantile(0.6))
    query = subprocess.run(
        ["bcftools", "view", "-H", "-r", f"chr10:{lo}-{hi}", str(path)],
        capture_output=True,
        check=True,
        text=True,
    )
    got = [int(line.split("\t")[1]) for line in query.stdout.splitlines()]
    assert got == records.loc[records["pos"].between(lo, hi), "pos"].tolist()


def test_simulate_genomes__vcf_genotypes_equal_true_dosage(run):
    out, people, result = run
    manifest = pd.read_csv(out / "genomes" / "manifest.csv")
    issues = pd.read_csv(out / "truth" / "sample_issues.csv")
    clean = manifest[~manifest["sample_id"].isin(issues["sample_id"])]
    person = {pid: i for i, pid in enumerate(result.sample_ids)}
    cand = result.candidates.reset_index(drop=True)
    checked = 0
    for path in batch_vcfs(out):
        if path.name == "chrX.vcf.gz":
            continue
        samples, records, dos = read_vcf(path)
        at = {
            (c, p): i for i, (c, p) in enumerate(zip(records["chrom"], records["pos"], strict=True))
        }
        cols = [j for j, s in enumerate(samples) if s in set(clean["sample_id"])]
        pids = clean.set_index("sample_id").loc[[samples[j] for j in cols], "participant_id"]
        rows = [person[p] for p in pids]
        for k, c in enumerate(cand.itertuples()):
            if c.chrom != records["chrom"].iloc[0]:
                continue
            truth = result.dosage[rows, k]
            if (c.chrom, c.pos) not in at:
                assert (truth == 0).all()
                continue
            vcf = dos[at[(c.chrom, c.pos)], cols]
            called = vcf >= 0
            assert (vcf[called] == truth[called]).all()
            checked += int(called.sum())
    assert checked > 1000


def test_simulate_genomes__males_haploid_on_chrx(run):
    out, _, _ = run
    manifest = pd.read_csv(out / "genomes" / "manifest.csv")
    issues = pd.read_csv(out / "truth" / "sample_issues.csv")
    sex = pd.read_csv(out / "truth" / "genetic_sex.csv").set_index("participant_id")
    for path in sorted((out / "genomes").glob("batch_*/chrX.vcf.gz")):
        vcf = VCF(str(path))
        record = next(iter(vcf))
        ploidy = (record.genotype.array()[:, :2] != -2).sum(axis=1)
        ids = manifest.set_index("sample_id").loc[vcf.samples, "participant_id"]
        male = (sex.loc[ids, "genetic_sex"] == "male").to_numpy()
        swapped = np.isin(vcf.samples, issues.loc[issues["issue"] == "swap", "sample_id"])
        assert (ploidy[male & ~swapped] == 1).all()
        assert (ploidy[~male & ~swapped] == 2).all()
    autosome = VCF(str(out / "genomes" / "batch_001" / "chr1.vcf.gz"))
    assert (next(iter(autosome)).genotype.array()[:, 1] != -2).all()


def _autosomal_matrix(directory: Path, samples_of: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Biallelic autosomal dosages (records x samples) for the named samples of a folder."""
    frames, mats = [], []
    for path in sorted(directory.glob("chr*.vcf.gz")):
        if path.name == "chrX.vcf.gz":
            continue
        samples, records, dos = read_vcf(path)
        index = [samples.index(s) for s in samples_of]
        frames.append(records)
        mats.append(dos[:, index])
    return pd.concat(frames, ignore_index=True), np.concatenate(mats)


def _cohort_and_panel(out: Path, batch: str = "batch_001"):
    manifest = pd.read_csv(out / "genomes" / "manifest.csv")
    issues = pd.read_csv(out / "truth" / "sample_issues.csv")
    members = manifest[
        (manifest["batch"] == batch) & ~manifest["sample_id"].isin(issues["sample_id"])
    ]
    labels = pd.read_csv(out / "genomes" / "reference_panel" / "labels.csv")
    rec_c, cohort = _autosomal_matrix(out / "genomes" / batch, members["sample_id"].tolist())
    rec_p, panel = _autosomal_matrix(
        out / "genomes" / "reference_panel", labels["sample_id"].tolist()
    )
    key_c = rec_c["chrom"] + ":" + rec_c["pos"].astype(str)
    key_p = rec_p["chrom"] + ":" + rec_p["pos"].astype(str)
    shared = np.intersect1d(key_c[rec_c["alt"].str.len() == 1], key_p[rec_p["alt"].str.len() == 1])
    cohort = cohort[pd.Index(key_c).get_indexer(shared)]
    panel = panel[pd.Index(key_p).get_indexer(shared)]
    return members, labels, cohort, panel


def test_simulate_genomes__ancestry_pca_separates_groups(run):
    out, people, _ = run
    members, labels, cohort, panel = _cohort_and_panel(out)
    geno = np.concatenate([cohort, panel], axis=1).astype(float)
    geno[geno < 0] = np.nan
    freq = np.nanmean(geno, axis=1) / 2
    keep = (freq > 0.05) & (freq < 0.95)
    g = geno[keep]
    std = (g - 2 * freq[keep, None]) / np.sqrt(2 * freq[keep, None] * (1 - freq[keep, None]))
    std = np.nan_to_num(std)
    u, s, _ = np.linalg.svd(std.T, full_matrices=False)
    pcs = u[:, :4] * s[:4]
    n_c = cohort.shape[1]
    anc = people.set_index("participant_id").loc[members["participant_id"]]
    design = np.c_[np.ones(n_c), pcs[:n_c]]
    beta, *_ = np.linalg.lstsq(design, anc["anc_afr"], rcond=None)
    assert np.corrcoef(design @ beta, anc["anc_afr"])[0, 1] > 0.8
    centroid = {g: pcs[n_c:][labels["group"].to_numpy() == g].mean(axis=0) for g in ("afr", "eur")}
    for group, other in (("afr", "eur"), ("eur", "afr")):
        pure = (anc[f"anc_{group}"] > 0.9).to_numpy()
        assert pure.sum() >= 3
        d_own = np.linalg.norm(pcs[:n_c][pure] - centroid[group], axis=1)
        d_other = np.linalg.norm(pcs[:n_c][pure] - centroid[other], axis=1)
        assert (d_own < d_other).all()


def _king(a: np.ndarray, b: np.ndarray) -> float:
    """KING-robust kinship (within-family form) from two alt-dosage vectors."""
    ok = (a >= 0) & (b >= 0)
    a, b = a[ok], b[ok]
    het_both = ((a == 1) & (b == 1)).sum()
    opposite = (np.abs(a - b) == 2).sum()
    return (het_both - 2 * opposite) / ((a == 1).sum() + (b == 1).sum())


def test_simulate_genomes__relatives_have_high_kinship_duplicates_match(run):
    out, _, _ = run
    manifest = pd.read_csv(out / "genomes" / "manifest.csv")
    issues = pd.read_csv(out / "truth" / "sample_issues.csv")
    related = pd.read_csv(out / "truth" / "related_pairs.csv")
    genomes = {}
    for batch in sorted(manifest["batch"].unique()):
        ids = manifest.loc[manifest["batch"] == batch, "sample_id"].tolist()
        records, mat = _autosomal_matrix(out / "genomes" / batch, ids)
        key = records["chrom"] + ":" + records["pos"].astype(str)
        for j, sample in enumerate(ids):
            genomes[sample] = pd.Series(mat[:, j], index=key)

    def vector(sample: str, other: str) -> tuple[np.ndarray, np.ndarray]:
        pair = pd.concat([genomes[sample], genomes[other]], axis=1).fillna(0)
        pair = pair[(pair >= -1).all(axis=1)]
        return pair.iloc[:, 0].to_numpy(), pair.iloc[:, 1].to_numpy()

    first = manifest.drop_duplicates("participant_id").set_index("participant_id")["sample_id"]
    kin = [
        _king(*vector(first[a], first[b]))
        for a, b in zip(related.iloc[:, 0], related.iloc[:, 1], strict=True)
    ]
    assert min(kin) > 0.15
    rng = np.random.default_rng(1)
    clean = first[~first.isin(issues["sample_id"])].to_numpy()
    random_pairs = [rng.choice(clean, 2, replace=False) for _ in range(30)]
    assert np.median([_king(*vector(a, b)) for a, b in random_pairs]) < 0.05
    for dup in issues.loc[issues["issue"] == "duplicate"].itertuples():
        a, b = vector(first[dup.participant_id], dup.sample_id)
        called = (a >= 0) & (b >= 0)
        concordance = (a[called] == b[called]).mean()
        assert 0.98 < concordance < 1.0


def test_simulate_genomes__contaminated_samples_have_skewed_hets(run):
    out, _, _ = run
    issues = pd.read_csv(out / "truth" / "sample_issues.csv")
    manifest = pd.read_csv(out / "genomes" / "manifest.csv").set_index("sample_id")
    bad = issues.loc[issues["issue"] == "contaminated", "sample_id"].iloc[0]
    path = out / "genomes" / manifest.loc[bad, "batch"] / "chr1.vcf.gz"
    vcf = VCF(str(path))
    skewed = np.zeros(len(vcf.samples))
    for v in vcf:
        ad = v.format("AD")
        het = v.gt_types == 1
        if len(v.ALT) == 1:
            balance = ad[:, 1] / np.maximum(ad.sum(axis=1), 1)
            skewed += het & (balance < 0.25)
    assert skewed[vcf.samples.index(bad)] > 3 * np.median(skewed) + 2


def test_simulate_genomes__missing_calls_and_depth_are_realistic(run):
    out, _, _ = run
    path = out / "genomes" / "batch_002" / "chr2.vcf.gz"
    missing, calls, depth = 0, 0, []
    for v in VCF(str(path)):
        gt = v.genotype.array()[:, 0]
        missing += int((gt == -1).sum())
        calls += len(gt)
        dp = v.format("DP").ravel()
        depth.append(dp[gt >= 0])
    assert 0.002 < missing / calls < 0.015
    assert 25 < np.concatenate(depth).mean() < 36


def test_simulate_genomes__candidates_are_common_autosomal_snps(run):
    _, _, result = run
    cand = result.candidates
    assert 30 <= len(cand) <= 60
    assert cand["variant_id"].is_unique
    assert cand["chrom"].nunique() >= 5 and "chrX" not in set(cand["chrom"])
    assert (cand["ref"].str.len() == 1).all() and (cand["alt"].str.len() == 1).all()
    assert result.dosage.dtype == np.int8 and result.dosage.shape == (200, len(cand))
    assert (result.dosage.mean(axis=0) / 2 >= 0.05).all()
    specific = (cand["af_eur"] <= 0.02) & (cand[["af_afr", "af_eas", "af_nat"]].max(axis=1) >= 0.2)
    assert specific.sum() >= 5


def test_population_dosage__matches_panel_frequencies(run):
    out, _, result = run
    labels = pd.read_csv(out / "genomes" / "reference_panel" / "labels.csv")
    samples, records, dos = [], [], []
    for path in sorted((out / "genomes" / "reference_panel").glob("chr*.vcf.gz")):
        s, r, d = read_vcf(path)
        samples, records, dos = s, [*records, r], [*dos, d]
    records, dos = pd.concat(records, ignore_index=True), np.concatenate(dos)
    afr = np.isin(samples, labels.loc[labels["group"] == "afr", "sample_id"])
    key = records["chrom"] + ":" + records["pos"].astype(str)
    cand = result.candidates
    index = pd.Index(key).get_indexer(cand["chrom"] + ":" + cand["pos"].astype(str))
    present = index >= 0
    panel_af = np.zeros(len(cand))
    sub = dos[index[present]][:, afr].astype(float)
    sub[sub < 0] = np.nan
    panel_af[present] = np.nanmean(sub, axis=1) / 2
    ancestry = np.tile([1.0, 0, 0, 0, 0, 0], (4000, 1))
    drawn = population_dosage(cand, ancestry, np.random.default_rng(3))
    assert drawn.dtype == np.int8 and drawn.shape == (4000, len(cand))
    drawn_af = drawn.mean(axis=0) / 2
    se = np.sqrt(cand["af_afr"] * (1 - cand["af_afr"]) / 80) + 0.01
    assert (np.abs(drawn_af - panel_af) < 4 * se + 0.02).mean() > 0.95


def test_population_dosage__rejects_bad_ancestry_shape(run):
    _, _, result = run
    with pytest.raises(InputError, match="expected"):
        population_dosage(result.candidates, np.ones((3, 5)), np.random.default_rng(0))


def test_simulate_genomes__same_seed_same_bytes(tmp_path):
    config = SynthConfig(
        participants=60, genomes=60, seed=11, region_megabases=0.02, reference_per_group=5
    )
    people = make_people(60, seed=5)
    first = simulate_genomes(people, config, tmp_path / "a")
    second = simulate_genomes(people, config, tmp_path / "b")
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert len(files) > 50
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    np.testing.assert_array_equal(first.dosage, second.dosage)
    other = SynthConfig(
        participants=60, genomes=60, seed=12, region_megabases=0.02, reference_per_group=5
    )
    simulate_genomes(people, other, tmp_path / "c")
    rel = Path("genomes/batch_001/chr1.vcf.gz")
    assert (tmp_path / "a" / rel).read_bytes() != (tmp_path / "c" / rel).read_bytes()


def test_simulate_genomes__rejects_bad_ancestry(tmp_path):
    people = make_people(10)
    people.loc[3, "anc_afr"] = 0.7
    with pytest.raises(InputError, match="summing to 1"):
        simulate_genomes(people, CONFIG, tmp_path)
    assert not (tmp_path / "genomes").exists()
    with pytest.raises(InputError, match="lacks columns"):
        simulate_genomes(people.drop(columns="anc_nat"), CONFIG, tmp_path)
