"""Shared genomics fixtures: one small synthetic delivery and its ingested store per session."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import pysam
import pytest

from opencohort.config import Home, init_home
from opencohort.genomics import ingest
from opencohort.registry import load_feed, open_registry, send_for_sequencing
from opencohort.synth.models import SynthConfig
from opencohort.synth.program import generate_program

FEED = SynthConfig(
    participants=700, genomes=500, sites=1, seed=7, batch_size=700,
    region_megabases=0.1, reference_per_group=4,
)  # fmt: skip


@pytest.fixture(scope="session")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Output root of a small synthetic program (genomes/ and truth/)."""
    out = tmp_path_factory.mktemp("genomics-feed") / "feeds"
    generate_program(FEED, out)
    return out


SENT = date(2025, 12, 31)
"""Day the delivered samples were sent for sequencing."""


def registry_home(root: Path, feed: Path) -> Home:
    """A home with the feed's registry loaded and its genomes' participants sent to sequencing.

    The registry sends each participant's first DNA sample, as the synthetic program names
    them, so every delivered sample is known; a duplicate (second) sample is never sent.
    """
    found = init_home(root)
    manifest = pd.read_csv(feed / "genomes" / "manifest.csv", dtype=str)
    registry = open_registry(found.registry_url)
    try:
        load_feed(registry, feed / "registry", seed=1)
        send_for_sequencing(registry, list(dict.fromkeys(manifest["participant_id"])), day=SENT)
    finally:
        registry.close()
    return found


@pytest.fixture(scope="session")
def home(feed: Path, tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A program home (:func:`registry_home`) with the feed's delivery ingested (read-only)."""
    found = registry_home(tmp_path_factory.mktemp("genomics-home") / "home", feed)
    ingest(feed / "genomes", found)
    return found


@pytest.fixture(scope="session")
def store(home: Home) -> Path:
    """The ingested store directory."""
    return home.root / "genomics" / "store"


HEADER = """##fileformat=VCFv4.2
##contig=<ID=chr1,length=1000>
##contig=<ID=chr2,length=1000>
##INFO=<ID=AC,Number=A,Type=Integer,Description="AC">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">
"""


def _write_vcf(path: Path, samples: list[str], records: list[str], *, index: bool = True) -> Path:
    """Write a bgzipped (and tabix-indexed) VCF from tab-separated record lines."""
    cols = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples)
    text = HEADER + cols + "\n" + "".join(r + "\n" for r in records)
    plain = path.with_suffix("")
    plain.write_text(text)
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    if index:
        pysam.tabix_index(str(path), preset="vcf", force=True)
    return path


@pytest.fixture(scope="session")
def write_vcf() -> Callable[..., Path]:
    """``write_vcf(path, samples, records, index=True)``: a bgzipped VCF from record lines."""
    return _write_vcf
