"""Delivery ingest: raw copy, split and counts against bcftools, pgen against plink2, merging."""

import gzip
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pgenlib
import pysam
import pytest

from opencohort.config import Home, init_home
from opencohort.errors import InputError
from opencohort.genomics import GenotypeFilter, ingest_delivery, parse_delivery, read_vcf
from opencohort.genomics._store import read_genotypes, read_pvar, read_samples, read_variants

LENIENT = GenotypeFilter(min_gq=0, min_dp=0, min_ab=0.0, max_ab=1.0)


def _batch_delivery(feed: Path, batch: str, out: Path) -> Path:
    """A delivery holding one batch of the feed (its manifest rows and VCF folder)."""
    out.mkdir(parents=True)
    manifest = pd.read_csv(feed / "genomes" / "manifest.csv", dtype=str, keep_default_na=False)
    manifest[manifest["batch"] == batch].to_csv(out / "manifest.csv", index=False)
    shutil.copytree(feed / "genomes" / batch, out / batch)
    return out


@pytest.fixture(scope="module")
def single(feed: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Home, Path]:
    """Home with batch_001 alone ingested without genotype filters, and that delivery."""
    base = tmp_path_factory.mktemp("single")
    delivery = _batch_delivery(feed, "batch_001", base / "d1")
    home = init_home(base / "home")
    ingest_delivery(delivery, home, genotype_filter=LENIENT, check_registry=False)
    return home, delivery


def _sh(command: str) -> str:
    return subprocess.run(command, shell=True, check=True, capture_output=True, text=True).stdout


def _vcfs(delivery: Path) -> list[Path]:
    return sorted((delivery / "batch_001").glob("*.vcf.gz"))


def test_ingest_delivery__raw_copy_is_byte_identical(feed: Path, home: Home) -> None:
    source = feed / "genomes"
    kept = home.raw / "genomes" / "genomes"
    files = [p.relative_to(source) for p in source.rglob("*") if p.is_file()]
    assert files
    for rel in files:
        assert (kept / rel).read_bytes() == (source / rel).read_bytes(), rel


def test_read_vcf__split_matches_bcftools_norm(single: tuple[Home, Path]) -> None:
    _, delivery = single
    n_multi = 0
    for vcf in _vcfs(delivery):
        text = _sh(
            f"bcftools norm -m-any {vcf} 2>/dev/null "
            "| bcftools query -f '%POS\\t%REF\\t%ALT[\\t%GT]\\n'"
        )
        rows = [line.split("\t") for line in text.splitlines()]
        calls = read_vcf(vcf, genotype_filter=LENIENT)
        n_multi += calls.n_multiallelic
        assert [(int(r[0]), r[1], r[2]) for r in rows] == list(
            zip(calls.pos.tolist(), calls.ref.tolist(), calls.alt.tolist(), strict=True)
        )
        gts = np.array([r[3:] for r in rows])
        dosage = np.char.count(gts, "1") * np.where(np.char.str_len(gts) == 1, 2, 1)
        dosage = np.where(np.char.count(gts, ".") > 0, -9, dosage)
        np.testing.assert_array_equal(calls.genotypes, dosage)
    assert n_multi > 0


def test_ingest_delivery__ac_an_match_bcftools_fill_tags(single: tuple[Home, Path]) -> None:
    home, delivery = single
    ours = read_variants(home.root / "genomics" / "store").set_index("variant_id")
    for vcf in _vcfs(delivery):
        text = _sh(
            f"bcftools norm -m-any {vcf} 2>/dev/null | bcftools +fill-tags -- -t AC,AN "
            "| bcftools query -f '%CHROM:%POS:%REF:%ALT\\t%AC\\t%AN\\n'"
        )
        peer = pd.DataFrame([line.split("\t") for line in text.splitlines()]).set_index(0)
        mine = ours.loc[peer.index]
        np.testing.assert_array_equal(mine["variant_ac"].to_numpy(), peer[1].astype(int))
        np.testing.assert_array_equal(mine["variant_an"].to_numpy(), peer[2].astype(int))


def test_ingest_delivery__pgen_matches_plink2(single: tuple[Home, Path], tmp_path: Path) -> None:
    home, delivery = single
    store = home.root / "genomics" / "store"
    for vcf in _vcfs(delivery):
        contig = vcf.name.removesuffix(".vcf.gz")
        prefix = tmp_path / contig
        _sh(
            f"plink2 --vcf {vcf} --make-pgen --max-alleles 2 --allow-extra-chr "
            f"--set-all-var-ids '@:#:$r:$a' --threads 1 --out {prefix}"
        )
        peer = read_pvar(prefix.with_suffix(".pvar"))
        with pgenlib.PgenReader(str(prefix.with_suffix(".pgen")).encode()) as reader:
            theirs = np.empty((len(peer), reader.get_raw_sample_ct()), dtype=np.int8)
            reader.read_range(0, len(peer), theirs)
        ours = read_pvar(store / f"{contig}.pvar")
        index = pd.Index(ours["variant_id"].str.replace("^chr", "", regex=True))
        rows = index.get_indexer(peer["variant_id"])
        assert (rows >= 0).all()
        their_ids = pd.read_csv(prefix.with_suffix(".psam"), sep="\t")["#IID"]
        cols = pd.Index(read_samples(store)["sample_id"]).get_indexer(their_ids)
        mine = read_genotypes(store / f"{contig}.pgen")[np.ix_(rows, cols)]
        np.testing.assert_array_equal(mine, theirs)


def test_ingest_delivery__absent_records_are_hom_ref_within_batch(feed: Path, home: Home) -> None:
    store = home.root / "genomics" / "store"
    samples = read_samples(store)
    first = (samples["batch"] == "batch_001").to_numpy()
    pvar = read_pvar(store / "chr1.pvar")
    genotypes = read_genotypes(store / "chr1.pgen")
    in_first = read_vcf(feed / "genomes" / "batch_001" / "chr1.vcf.gz")
    keys = set(
        zip(in_first.pos.tolist(), in_first.ref.tolist(), in_first.alt.tolist(), strict=True)
    )
    absent = ~np.array([k in keys for k in zip(pvar["pos"], pvar["ref"], pvar["alt"], strict=True)])
    assert absent.any()
    assert (genotypes[np.ix_(absent, first)] == 0).all()


def test_ingest_delivery__two_deliveries_equal_one(feed: Path, home: Home, tmp_path: Path) -> None:
    sequential = init_home(tmp_path / "home")
    for batch in ("batch_001", "batch_002"):
        ingest_delivery(
            _batch_delivery(feed, batch, tmp_path / batch), sequential, check_registry=False
        )
    one = home.root / "genomics" / "store"
    two = sequential.root / "genomics" / "store"
    assert read_samples(one)["sample_id"].tolist() == read_samples(two)["sample_id"].tolist()
    for contig in ("chr1", "chrX"):
        a, b = read_pvar(one / f"{contig}.pvar"), read_pvar(two / f"{contig}.pvar")
        assert sorted(a["variant_id"]) == sorted(b["variant_id"])
        order = pd.Index(b["variant_id"]).get_indexer(a["variant_id"])
        np.testing.assert_array_equal(
            read_genotypes(one / f"{contig}.pgen"), read_genotypes(two / f"{contig}.pgen")[order]
        )
    va = read_variants(one).set_index("variant_id").sort_index()
    vb = read_variants(two).set_index("variant_id").sort_index()
    pd.testing.assert_frame_equal(va, vb)


def test_ingest_delivery__repeat_and_clash_raise_without_change(
    single: tuple[Home, Path], tmp_path: Path
) -> None:
    home, delivery = single
    store = home.root / "genomics" / "store"
    before = {p.name: p.read_bytes() for p in store.iterdir()}
    with pytest.raises(InputError, match="already in the store"):
        ingest_delivery(delivery, home, check_registry=False)
    renamed = tmp_path / "again"
    shutil.copytree(delivery, renamed)
    with pytest.raises(InputError, match="already in the store"):
        ingest_delivery(renamed, home, check_registry=False)
    assert {p.name: p.read_bytes() for p in store.iterdir()} == before
    assert not (home.raw / "genomes" / "again").exists()


def test_parse_delivery__sample_disagreements_are_problems(
    single: tuple[Home, Path], tmp_path: Path
) -> None:
    _, delivery = single
    changed = tmp_path / "changed"
    shutil.copytree(delivery, changed)
    manifest = pd.read_csv(changed / "manifest.csv", dtype=str, keep_default_na=False)
    dropped = manifest["sample_id"].iloc[0]
    extra = manifest.iloc[[1]].assign(sample_id="S000000001")
    pd.concat([manifest.iloc[1:], extra]).to_csv(changed / "manifest.csv", index=False)
    home = init_home(tmp_path / "home")
    result = ingest_delivery(changed, home, check_registry=False)
    messages = [p.message for p in result.problems]
    assert any(dropped in m and "not in the manifest" in m for m in messages)
    assert any("S000000001" in m and "no column" in m for m in messages)
    assert all(p.line is not None and p.field == "sample" for p in result.problems)
    ids = read_samples(home.root / "genomics" / "store")["sample_id"]
    assert dropped not in set(ids) and "S000000001" not in set(ids)
    assert result.samples == len(manifest) - 1


def test_parse_delivery__duplicate_sample_id_names_line(tmp_path: Path, feed: Path) -> None:
    delivery = _batch_delivery(feed, "batch_002", tmp_path / "d")
    manifest = pd.read_csv(delivery / "manifest.csv", dtype=str, keep_default_na=False)
    pd.concat([manifest, manifest.iloc[[2]]]).to_csv(delivery / "manifest.csv", index=False)
    with pytest.raises(InputError, match=r"line 4, field sample_id"):
        parse_delivery(delivery)


def test_ingest_delivery__workers_give_same_store(
    single: tuple[Home, Path], tmp_path: Path
) -> None:
    home, delivery = single
    other = init_home(tmp_path / "home")
    ingest_delivery(delivery, other, genotype_filter=LENIENT, workers=2, check_registry=False)
    a, b = home.root / "genomics" / "store", other.root / "genomics" / "store"
    pd.testing.assert_frame_equal(read_variants(a), read_variants(b))
    for contig in ("chr1", "chrX"):
        np.testing.assert_array_equal(
            read_genotypes(a / f"{contig}.pgen"), read_genotypes(b / f"{contig}.pgen")
        )


def test_ingest_delivery__bad_record_reported_rest_ingested(
    single: tuple[Home, Path], tmp_path: Path
) -> None:
    _, delivery = single
    broken = tmp_path / "broken"
    shutil.copytree(delivery, broken)
    vcf = broken / "batch_001" / "chr2.vcf.gz"
    lines = gzip.decompress(vcf.read_bytes()).decode().split("\n")
    first = next(i for i, text in enumerate(lines) if not text.startswith("#"))
    fields = lines[first + 3].split("\t")
    fields[1] = "12x"
    lines[first + 3] = "\t".join(fields)
    with pysam.BGZFile(str(vcf), "wb") as handle:
        handle.write("\n".join(lines).encode())
    home = init_home(tmp_path / "home")
    result = ingest_delivery(broken, home, check_registry=False)
    assert [(p.file, p.line, p.field) for p in result.problems] == [
        ("broken/batch_001/chr2.vcf.gz", first + 4, "record")
    ]
    report = pd.read_csv(home.root / "genomics" / "reports" / "ingest-broken.csv")
    assert report[["line", "field"]].values.tolist() == [[first + 4, "record"]]
    n_records = len([t for t in lines[first:] if t])
    original = read_vcf(delivery / "batch_001" / "chr2.vcf.gz")
    kept = read_pvar(home.root / "genomics" / "store" / "chr2.pvar")
    assert original.n_records == n_records
    assert len(original.pos) - 2 <= len(kept) < len(original.pos)
