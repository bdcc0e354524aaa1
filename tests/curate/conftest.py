"""A small synthetic program and a home with its registry loaded and EHR ingested (per session)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from opencohort.config import Home, init_home
from opencohort.ingest import ingest_ehr_dir
from opencohort.registry import load_feed, open_registry
from opencohort.synth import SynthConfig, generate_program

CUTOFF = date(2025, 12, 31)


def make_home(root: Path, program: Path) -> Home:
    """Init a home, load the program's registry feed and ingest its EHR."""
    home = init_home(root)
    registry = open_registry(home.registry_url)
    try:
        load_feed(registry, program / "registry", seed=1)
    finally:
        registry.close()
    ingest_ehr_dir(home, program / "ehr")
    return home


@pytest.fixture(scope="session")
def program(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("program") / "feeds"
    generate_program(SynthConfig(participants=400, genomes=0, sites=2, seed=1), out)
    return out


@pytest.fixture(scope="session")
def home(tmp_path_factory, program) -> Home:
    return make_home(tmp_path_factory.mktemp("home") / "h", program)


@pytest.fixture(scope="session")
def sources(home):
    from opencohort.curate import gather

    return gather(home, cutoff=CUTOFF)
