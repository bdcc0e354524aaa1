"""Fixtures shared across areas."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from opencohort.config import Home, init_home
from opencohort.ingest import ingest_dir
from opencohort.registry import curation_export, load_feed, open_registry


def _program_home(root: Path, program: Path) -> Home:
    """Init a home, load a synthetic program's registry feed and ingest all its feeds."""
    home = init_home(root)
    registry = open_registry(home.registry_url)
    try:
        load_feed(registry, program / "registry", seed=1)
    finally:
        registry.close()
    ingest_dir(home, program)
    return home


@pytest.fixture(scope="session")
def program_home() -> Callable[[Path, Path], Home]:
    """``program_home(root, program)``: a home at `root` fed from synthetic output `program`."""
    return _program_home


@pytest.fixture(scope="session")
def spark():
    """The one Spark session (``local[2]``) shared by every test that runs on Spark."""
    from opencohort.curate.engine import spark_session

    return spark_session()


@pytest.fixture(scope="session")
def research_ids() -> Callable[[Home], pd.DataFrame]:
    """``research_ids(home)``: every registry participant's participant_id and research_id."""

    def read(home: Home) -> pd.DataFrame:
        registry = open_registry(home.registry_url)
        try:
            return curation_export(registry)["participants"][["participant_id", "research_id"]]
        finally:
            registry.close()

    return read
