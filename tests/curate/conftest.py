"""A small synthetic program and a home with its registry loaded and EHR ingested (per session)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from opencohort.config import Home
from opencohort.synth import SynthConfig, generate_program

CUTOFF = date(2025, 12, 31)


@pytest.fixture(scope="session")
def program(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("program") / "feeds"
    generate_program(SynthConfig(participants=400, genomes=0, sites=2, seed=1), out)
    return out


@pytest.fixture(scope="session")
def home(tmp_path_factory, program, program_home) -> Home:
    return program_home(tmp_path_factory.mktemp("home") / "h", program)


@pytest.fixture(scope="session")
def sources(home):
    from opencohort.curate import gather

    return gather(home, cutoff=CUTOFF)
