"""A small synthetic program (per session) and a home per module, with release R1 built."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from opencohort.config import Home
from opencohort.synth import SynthConfig, generate_program

CUTOFF = date(2025, 12, 31)


@pytest.fixture(scope="session")
def release_program(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("program") / "feeds"
    generate_program(SynthConfig(participants=300, genomes=0, sites=2, seed=3), out)
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory, release_program, program_home) -> Home:
    return program_home(tmp_path_factory.mktemp("home") / "h", release_program)


@pytest.fixture(scope="module")
def r1(home) -> dict:
    from opencohort.release import build_release

    return build_release(home, "R1", cutoff=CUTOFF)


@pytest.fixture(scope="module")
def registry_ids(home, research_ids) -> Callable[[], pd.DataFrame]:
    """``registry_ids()``: every participant's participant_id and research_id, read now."""
    return lambda: research_ids(home)
