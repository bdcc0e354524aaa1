"""Registry fixtures: every engine test runs on SQLite and on a real PostgreSQL on loopback.

The PostgreSQL URL comes from ``OPENCOHORT_TEST_PG_URL``; when unset, ``scripts/postgres.sh``
starts a throwaway server once per session. Each xdist worker and each test gets its own
database, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from opencohort.registry import open_registry
from opencohort.synth.feed import write_feed, write_sites
from opencohort.synth.models import SynthConfig
from opencohort.synth.participants import participant_batch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres.sh"
PM_VALUES = {"height_cm": 170.0, "weight_kg": 70.0, "waist_cm": 85.0, "hip_cm": 95.0,
             "systolic_bp": 120.0, "diastolic_bp": 80.0, "heart_rate": 70.0}  # fmt: skip


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a PostgreSQL server for the tests (started by scripts/postgres.sh if needed)."""
    url = os.environ.get("OPENCOHORT_TEST_PG_URL")
    if not url:
        done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(f"scripts/postgres.sh failed:\n{done.stderr}")
        url = done.stdout.strip().splitlines()[-1]
    return url


def _fresh_postgres(base_url: str) -> str:
    url = make_url(base_url)
    name = f"reg_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_postgres(db_url: str) -> None:
    url = make_url(db_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A URL of an empty database, once per engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        return
    url = _fresh_postgres(request.getfixturevalue("postgres_url"))
    yield url
    _drop_postgres(url)


@pytest.fixture
def registry(db_url):
    """An empty registry at the newest schema, on each engine."""
    opened = open_registry(db_url)
    yield opened
    opened.close()


def write_program_feed(out: Path, *, participants: int, seed: int = 11) -> pd.DataFrame:
    """Write a synthetic feed (plus physical measurements) to ``out/registry``; return people."""
    config = SynthConfig(participants=participants, genomes=0, sites=3, seed=seed,
                         batch_size=max(participants // 2, 1))  # fmt: skip
    write_sites(config, out)
    frames = []
    for index in range(config.n_batches):
        batch = participant_batch(config, index)
        frames.append(batch)
        write_feed(batch, config, out, append=index > 0)
        measured = batch.loc[batch["pm_date"].notna(), ["participant_id", "pm_date"]]
        measured.assign(**PM_VALUES).to_csv(
            out / "registry" / "physical_measurements.csv",
            mode="a" if index else "w",
            header=not index,
            index=False,
            date_format="%Y-%m-%d",
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="session")
def feed(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A 400-participant synthetic feed directory and the participant frame behind it."""
    out = tmp_path_factory.mktemp("feed")
    people = write_program_feed(out, participants=400)
    return out / "registry", people
