"""Benchmark ``opencohort registry load``: a synthetic feed into SQLite and into PostgreSQL.

Targets (issue 3): 1,000,000 participants with consents, surveys and samples load in at most
10 minutes into SQLite and 15 minutes into PostgreSQL, with peak memory at most 2 GB. Each load
runs the real command line in its own child process; its peak RSS comes from ``os.wait4``.
Feeds are generated once per size under ``--data`` (only the registry feed: no EHR, no
genomes). Prints a table and writes ``bench/results/registry_load.json``.

    python bench/registry_load.py --sizes 100000,1000000 --pg-url postgresql+psycopg://...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from machine import machine
from opencohort.config import HOME_FILE, init_home
from opencohort.registry import models as m
from opencohort.synth.feed import REGISTRY_DIR, write_feed, write_sites
from opencohort.synth.models import SynthConfig
from opencohort.synth.participants import participant_batch

RESULTS = Path(__file__).parent / "results"
LIMITS = {"sqlite": 600.0, "postgresql": 900.0}
LIMIT_RSS_GB = 2.0
PM_COLUMNS = ("height_cm", "weight_kg", "waist_cm", "hip_cm", "systolic_bp", "diastolic_bp",
              "heart_rate")  # fmt: skip
COUNTED = ("participant", "consent", "survey_completion", "physical_measurement",
           "biospecimen_order", "sample", "sample_event", "withdrawal_event", "suspension_event",
           "deceased_report")  # fmt: skip
READY = "READY"


def generate(n: int, out: Path, progress: Progress) -> Path:
    """Write the registry feed of `n` synthetic participants under `out` (once) and return it.

    Physical measurements get plausible random values: the synthetic program draws them from
    simulated phenotypes, which the registry does not need.
    """
    feed = out / REGISTRY_DIR
    if (out / READY).exists():
        return feed
    shutil.rmtree(out, ignore_errors=True)
    config = SynthConfig(participants=n, genomes=0, sites=10, seed=1)
    write_sites(config, out)
    rng = np.random.default_rng(1)
    task = progress.add_task(f"feed {n:,}", total=config.n_batches)
    for index in range(config.n_batches):
        batch = participant_batch(config, index)
        write_feed(batch, config, out, append=index > 0)
        measured = batch.loc[batch["pm_date"].notna(), ["participant_id", "pm_date"]]
        values = rng.normal(100.0, 10.0, (len(measured), len(PM_COLUMNS))).round(1)
        measured.assign(**dict(zip(PM_COLUMNS, values.T, strict=True))).to_csv(
            feed / "physical_measurements.csv",
            mode="a" if index else "w",
            header=not index,
            index=False,
            date_format="%Y-%m-%d",
        )
        progress.advance(task)
    (out / READY).write_text(str(n))
    return feed


def _fresh_pg(base_url: str, name: str) -> str:
    url = make_url(base_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _home(engine: str, n: int, work: Path, pg_url: str) -> tuple[Path, str]:
    home = work / f"{engine}-{n}"
    shutil.rmtree(home, ignore_errors=True)
    init_home(home)
    if engine == "sqlite":
        return home, f"sqlite:///{home / 'registry.db'}"
    url = _fresh_pg(pg_url, "opencohort_bench")
    toml = home / HOME_FILE
    toml.write_text(toml.read_text().replace('"sqlite:///registry.db"', json.dumps(url)))
    return home, url


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    tables = {t.name: t for t in m.Base.metadata.sorted_tables}
    with engine.connect() as connection:
        counts = {
            name: connection.execute(select(func.count()).select_from(tables[name])).scalar_one()
            for name in COUNTED
        }
    engine.dispose()
    return counts


def load(engine: str, n: int, feed: Path, work: Path, pg_url: str) -> dict:
    """Load `feed` into a fresh `engine` registry in a child process; return time and memory."""
    home, url = _home(engine, n, work, pg_url)
    cli = [sys.executable, "-c", "from opencohort.cli import main; main()", "registry"]
    command = [*cli, "load", "--home", str(home), "--json", str(feed)]
    loadavg = os.getloadavg()
    out, err = home / "load.out", home / "load.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{engine} load of {n} failed:\n{err.read_text()[-4000:]}")
    peak_gb = usage.ru_maxrss * 1024 / 1e9  # Linux reports kilobytes
    verify = subprocess.run([*cli, "audit", "verify", "--home", str(home)], capture_output=True)
    limit = LIMITS[engine]
    return {
        "participants": n,
        "feed_bytes": sum(path.stat().st_size for path in feed.glob("*.csv")),
        "seconds": round(seconds, 1),
        "participants_per_s": round(n / seconds),
        "peak_rss_gb": round(peak_gb, 3),
        "limit_seconds": limit,
        "limit_rss_gb": LIMIT_RSS_GB,
        "pass": seconds <= limit and peak_gb <= LIMIT_RSS_GB,
        "loadavg_before": [round(v, 2) for v in loadavg],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "new_rows": json.loads(out.read_text()),
        "rows": _counts(url),
        "audit_chain_ok": verify.returncode == 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="Comma-separated sizes.")
    parser.add_argument("--engines", default="sqlite,postgresql", help="sqlite and/or postgresql.")
    parser.add_argument("--data", type=Path, default=Path("/work/benchdata/registry"),
                        help="Cache of generated feeds, one folder per size.")  # fmt: skip
    parser.add_argument("--work", type=Path, default=Path("/work/benchdata/registry-homes"),
                        help="Where the fresh program homes are made.")  # fmt: skip
    parser.add_argument("--pg-url", default=os.environ.get("OPENCOHORT_TEST_PG_URL", ""),
                        help="A database URL on the PostgreSQL server to use.")  # fmt: skip
    parser.add_argument("--generate-only", action="store_true", help="Only write the feeds.")
    parser.add_argument("--out", type=Path, default=RESULTS / "registry_load.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    engines = args.engines.split(",")
    if "postgresql" in engines and not args.pg_url and not args.generate_only:
        parser.error("--pg-url (or OPENCOHORT_TEST_PG_URL) is needed for postgresql")
    result = {"machine": machine(), "started": datetime.now(UTC).isoformat(timespec="seconds"),
              "loadavg": [round(v, 2) for v in os.getloadavg()], "runs": {}}  # fmt: skip
    with Progress(transient=True) as progress:
        feeds = {n: generate(n, args.data / str(n), progress) for n in sizes}
        if args.generate_only:
            return
        task = progress.add_task("loads", total=len(sizes) * len(engines))
        for n in sizes:
            for engine in engines:
                progress.update(task, description=f"{engine} {n:,}")
                run = load(engine, n, feeds[n], args.work, args.pg_url)
                result["runs"].setdefault(engine, {})[str(n)] = run
                progress.advance(task)
    shutil.rmtree(args.work, ignore_errors=True)
    result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title="registry load")
    for column in ("engine", "participants", "seconds", "participants/s", "peak RSS GB", "pass"):
        table.add_column(column, justify="right")
    for engine, runs in result["runs"].items():
        for run in runs.values():
            table.add_row(engine, f"{run['participants']:,}", str(run["seconds"]),
                          f"{run['participants_per_s']:,}", str(run["peak_rss_gb"]),
                          "yes" if run["pass"] else "NO")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
