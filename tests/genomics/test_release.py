"""The genomic release: who is in it, research ids only, frequencies equal plink2, the checks."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opencohort.config import Home, find_home
from opencohort.curate.facts import latest_consent
from opencohort.errors import ReleaseError
from opencohort.genomics import ingest, run_ancestry, run_kinship, run_qc
from opencohort.genomics.annotation import release_counts
from opencohort.genomics.release import (
    check_genomic_release,
    released_samples,
    write_genomic_release,
)
from opencohort.ingest import ingest_dir
from opencohort.registry import (
    ConsentStatus,
    ConsentType,
    WithdrawalStatus,
    curation_export,
    open_registry,
    record_consent,
    withdraw,
)
from opencohort.release import build_release, read_release
from opencohort.release.check import check_release, genomics

from .conftest import registry_home

CUTOFF = date(2025, 12, 31)


@pytest.fixture(scope="module")
def home(tmp_path_factory, feed: Path) -> Home:
    """A home with registry, EHR and genomes of the small feed, QC'd, with ancestry, kinship."""
    root = tmp_path_factory.mktemp("genrel") / "home"
    registry_home(root, feed)
    with (root / "opencohort.toml").open("a") as toml:  # novelty against the synthetic truth
        toml.write('\n[genomics]\nknown_variants = "known.csv"\n')
    shutil.copy(feed / "truth" / "candidate_variants.csv", root / "known.csv")
    found = find_home(root)
    ingest_dir(found, feed)
    ingest(feed / "genomes", found)
    run_qc(found)
    run_ancestry(found, feed / "genomes" / "reference_panel")
    run_kinship(found)
    return found


@pytest.fixture(scope="module")
def r1(home: Home) -> dict:
    return build_release(home, "R1", cutoff=CUTOFF)


def _folder(home: Home, name: str) -> Path:
    return home.releases / name / "controlled" / "genomics"


def _iids(folder: Path) -> set[str]:
    return set(pd.read_csv(folder / "genotypes.chr2.psam", sep="\t", dtype=str)["#IID"])


def _registry(home: Home) -> dict:
    registry = open_registry(home.registry_url)
    try:
        return curation_export(registry)
    finally:
        registry.close()


def _expected_ids(home: Home) -> set[str]:
    """Research ids that should be released, from the registry and QC table directly."""
    export = _registry(home)
    people = export["participants"]
    gror = latest_consent(export["consents"], "gror", CUTOFF)
    withdrawals = export["withdrawals"]
    gone = set(withdrawals.loc[withdrawals["status"] == "no_use", "participant_id"])
    ok = people[people["participant_id"].map(gror).eq(True) & ~people["participant_id"].isin(gone)]
    qc = pd.read_parquet(home.root / "genomics/store/sample_qc.parquet")
    passed = set(qc.loc[qc["sample_qc_pass"], "participant_id"])
    return {str(r) for r in ok.loc[ok["participant_id"].isin(passed), "research_id"]}


def test_build_release__genomics_layout_manifest_and_check(home, r1):
    folder = _folder(home, "R1")
    record = r1["genomics"]
    for contig in record["contigs"]:
        for ext in ("pgen", "pvar", "psam"):
            assert f"controlled/genomics/genotypes.{contig}.{ext}" in r1["files"]
    for name in ("variants.parquet", "ancestry.parquet", "kinship.parquet", "qc/report.html"):
        assert f"controlled/genomics/{name}" in r1["files"]
    assert not [f for f in r1["files"] if f.startswith("registered/") and "genom" in f]
    assert record["samples"] == len(_iids(folder)) > 200
    assert record["left_out"]["qc_not_passed"] > 0
    assert record["variants"] == len(pd.read_parquet(folder / "variants.parquet"))
    assert check_release(home, "R1") == []


def test_build_release__variants_annotated_and_counted(home, r1):
    folder = _folder(home, "R1")
    variants = pd.read_parquet(folder / "variants.parquet")
    counts = r1["genomics"]["annotation"]
    assert counts == release_counts(variants)
    known = set(pd.read_csv(home.root / "known.csv")["variant_id"])
    assert counts["novel"] == len(set(variants["variant_id"]) - known) > 0
    assert 0 < counts["coding_gene_exonic"] < counts["genic"] < counts["variants"]
    assert {"DPYD", "TPMT"} <= set(variants["variant_gene"].dropna())
    html = (folder / "qc" / "report.html").read_text()
    assert "coding_gene_exonic" in html and "qc_not_passed" in html


def test_build_release__genomics_holds_consented_qc_passed_research_ids(home, r1):
    folder = _folder(home, "R1")
    assert _iids(folder) == _expected_ids(home)
    for contig in r1["genomics"]["contigs"]:
        psam = pd.read_csv(folder / f"genotypes.{contig}.psam", sep="\t", dtype=str)
        assert set(psam["#IID"]) == _iids(folder)
    ancestry = pd.read_parquet(folder / "ancestry.parquet")
    assert set(ancestry["research_id"].astype(str)) == _iids(folder)
    kinship = pd.read_parquet(folder / "kinship.parquet")
    assert len(kinship) > 0
    pairs = set(kinship["research_id_1"].astype(str)) | set(kinship["research_id_2"].astype(str))
    assert pairs <= _iids(folder)


def test_build_release__no_sample_or_participant_id_in_any_genomic_file(home, r1):
    export = _registry(home)
    samples = pd.read_parquet(home.root / "genomics/store/samples.parquet")
    ids = set(export["participants"]["participant_id"]) | set(samples["sample_id"])
    for path in sorted(_folder(home, "R1").rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            hits = [i for i in ids if i.encode() in data]
            assert not hits, (path.name, hits[:3])


@pytest.mark.parametrize("contig", ["chr2", "chrX"])
def test_build_release__frequencies_equal_plink2(home, r1, tmp_path, contig):
    folder = _folder(home, "R1")
    cmd = ["plink2", "--pfile", str(folder / f"genotypes.{contig}"), "--freq", "counts",
           "--threads", "1", "--out", str(tmp_path / "f")]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    peer = pd.read_csv(tmp_path / "f.acount", sep="\t")
    ours = pd.read_parquet(folder / "variants.parquet").set_index("variant_id").loc[peer["ID"]]
    assert len(peer) > 100
    np.testing.assert_array_equal(ours["variant_ac_all"].to_numpy(), peer["ALT_CTS"].to_numpy())
    np.testing.assert_array_equal(ours["variant_an_all"].to_numpy(), peer["OBS_CT"].to_numpy())
    assert (ours["variant_ac_all"] > 0).all()


def test_build_release__withdrawn_or_unconsented_between_releases(home, r1):
    iids = sorted(_iids(_folder(home, "R1")))
    people = _registry(home)["participants"]
    pid = people.set_index(people["research_id"].astype(str))["participant_id"]
    gone, unconsented = pid[iids[0]], pid[iids[1]]
    registry = open_registry(home.registry_url)
    try:
        withdraw(registry, gone, status=WithdrawalStatus.NO_USE, authored=date(2026, 1, 5))
        record_consent(
            registry,
            unconsented,
            consent_type=ConsentType.GROR,
            version="v2",
            status=ConsentStatus.NO,
            authored=CUTOFF,
            document_sha256="0" * 64,
        )
    finally:
        registry.close()
    r2 = build_release(home, "R2", cutoff=CUTOFF)
    second = _iids(_folder(home, "R2"))
    assert iids[0] not in second and iids[1] not in second
    assert second == set(iids) - {iids[0], iids[1]}
    assert r2["genomics"]["left_out"]["withdrawn"] == 1
    assert r2["genomics"]["left_out"]["no_genomic_consent"] == 1
    assert {iids[0], iids[1]} <= _iids(_folder(home, "R1"))
    assert check_release(home, "R2") == []
    assert any(
        p.startswith("controlled/genomics/genotypes") and "withdrawn" in p
        for p in check_release(home, "R1")
    )


def _copy(home: Home, tmp_path: Path) -> Path:
    target = tmp_path / "genomics"
    shutil.copytree(_folder(home, "R1"), target)
    return target


def _problems(folder: Path, *, withdrawn=(), identifiers=()) -> list[str]:
    persons = _iids(folder)
    return check_genomic_release(
        folder, persons=persons, withdrawn=withdrawn, identifiers=identifiers
    )


def test_check_genomic_release__finds_each_problem(home, r1, tmp_path):
    folder = _copy(home, tmp_path)
    assert _problems(folder) == []
    one = sorted(_iids(folder))[0]
    assert any("withdrawn" in p for p in _problems(folder, withdrawn=[one]))
    stray = check_genomic_release(folder, persons=set(), withdrawn=(), identifiers=())
    assert any("not Controlled persons" in p for p in stray)
    variants = pd.read_parquet(folder / "variants.parquet")
    variants.loc[3, "variant_ac_all"] += 1
    variants.to_parquet(folder / "variants.parquet", index=False)
    assert any("1 variants whose AC, AN or AF differ" in p for p in _problems(folder))
    psam = folder / "genotypes.chr1.psam"
    psam.write_text(psam.read_text().replace(one, "S123456789", 1))
    leaks = _problems(folder, identifiers={"S123456789"})
    assert any("genotypes.chr1.psam: 1 sample or participant ids" in p for p in leaks)


def test_check_release__genomic_file_in_registered_found(home, r1, tmp_path):
    copy = tmp_path / "R1"
    shutil.copytree(home.releases / "R1", copy)
    (copy / "registered" / "genomics").mkdir()
    (copy / "registered" / "genomics" / "genotypes.chr1.pvar").write_text("#CHROM\n")
    release = replace(read_release(home, "R1"), path=copy)
    people = _registry(home)["participants"].assign(no_use=False)
    assert any("registered: 1 genomic files" in p for p in genomics(release, home, people))


def test_released_samples__each_reason_counted_once():
    samples = pd.DataFrame(
        {
            "sample_id": [f"S{i}" for i in range(8)],
            "participant_id": ["P0", "P1", "P2", "P3", "P4", "P5", "P5", "PX"],
        }
    )
    qc = pd.DataFrame(
        {
            "sample_id": samples["sample_id"],
            "sample_call_rate": [0.99, 0.99, 0.99, 0.99, 0.5, 0.97, 0.98, 0.99],
            "sample_qc_pass": [True, True, True, True, False, True, True, True],
        }
    )
    people = pd.DataFrame(
        {
            "participant_id": ["P0", "P1", "P2", "P3", "P4", "P5"],
            "research_id": [10, 11, 12, 13, 14, 15],
            "no_use": [False, True, True, False, False, False],
            "gror_consent": [True, True, False, False, True, True],
            "retracted": [False, False, False, False, False, False],
        }
    )
    kept, left_out = released_samples(samples, qc, people)
    assert kept["sample_id"].tolist() == ["S0", "S6"]
    assert kept["research_id"].tolist() == [10, 15]
    assert left_out == {
        "not_in_registry": 1,
        "withdrawn": 2,
        "retracted": 0,
        "no_genomic_consent": 1,
        "qc_not_passed": 1,
        "second_sample": 1,
    }


def test_write_genomic_release__store_without_qc_refused(home, tmp_path):
    copy = Home(tmp_path / "h", home.settings)
    shutil.copytree(home.root / "genomics" / "store", copy.root / "genomics" / "store")
    (copy.root / "genomics" / "store" / "sample_qc.parquet").unlink()
    with pytest.raises(ReleaseError, match="genomics qc"):
        write_genomic_release(copy, tmp_path / "controlled", pd.DataFrame())
    assert not (tmp_path / "controlled").exists()
