"""Ingest fixtures: one small synthetic program per session, with raised error rates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from opencohort.config import Home, init_home
from opencohort.synth import generate_program
from opencohort.synth.models import Messiness, SynthConfig

#: Received after the synthetic cutoff (2025-12-31), so only injected dates lie in the future.
RECEIVED = datetime(2026, 3, 1, tzinfo=UTC)
MESSY = Messiness(
    duplicate_id=0.01,
    event_before_birth=0.01,
    event_after_death=1.0,
    date_9999=0.01,
    implausible_value=0.02,
    unmapped_code=0.02,
    identity_mismatch=0.05,
)


@pytest.fixture(scope="session")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic program's output folder (ehr/, registry/, truth/ ...)."""
    out = tmp_path_factory.mktemp("feed")
    config = SynthConfig(
        participants=600, genomes=0, sites=3, seed=11, region_megabases=0.05, messiness=MESSY
    )
    generate_program(config, out, force=True)
    return out


@pytest.fixture(scope="session")
def participants(feed: Path) -> pd.DataFrame:
    """The registry's participants, as the synthetic feed gives them."""
    return pd.read_csv(feed / "registry/participants.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def truth(feed: Path) -> pd.DataFrame:
    """Every injected error."""
    return pd.read_csv(feed / "truth/errors.csv", dtype={"row_key": "int64"})


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """A fresh program home."""
    return init_home(tmp_path / "home")
