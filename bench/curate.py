"""Benchmark a full release: ingest the synthetic program, curate both tiers, check the release.

Each step is a real ``opencohort`` command in its own process, so each peak RSS and CPU time is
that step's alone (``os.wait4``). The program home is prepared once per size (synthesis,
vocabulary, registry load) and cached under ``--cache``; each run works in a fresh copy of it.
Prints a table and writes ``bench/results/curate.json`` with seconds, CPU seconds, peak RSS and
rows/s per step (ingest: rows read from the feeds; curate: rows released; check: rows of both
tiers scanned), rows/s per curation stage from the release manifest's rule log, and the load
average before each step. Targets (issue 4, 2 cores): a release (ingest + curate + check) of
100,000 participants in at most 3 minutes and 6 GB; of 1,000,000 (``--participants 1000000``)
in at most 30 minutes and 16 GB.

With ``--engine spark`` (after the default ``duckdb``) the same ingested home is curated once
per engine (``curate run --engine``), the two releases are compared table by table, and the
Spark/DuckDB ratio is reported for the whole curate step and for the stages of Ibis rules.

    python bench/curate.py --participants 100000 [--participants 1000000] [--engine spark]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from machine import machine

RESULTS = Path(__file__).parent / "results"
LIMITS = {100_000: (180, 6.0), 1_000_000: (1800, 16.0)}
console = Console()


def _step(*args: str) -> dict:
    """Run one ``opencohort`` command; return its seconds and peak RSS."""
    command = [sys.executable, "-m", "opencohort", *args]
    load = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            output.seek(0)
            sys.exit(f"{' '.join(args[:2])} failed:\n{output.read().decode()[-3000:]}")
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_gb": round(usage.ru_maxrss / 2**20, 2),
        "loadavg_before": load,
    }


def _per_second(step: dict, rows: int) -> dict:
    return {**step, "rows": rows, "rows_per_s": round(rows / max(step["seconds"], 1e-3))}


def _ingested_rows(home: Path) -> int:
    """Rows of every file the ingest reports of `home` say were read."""
    reports = (json.loads(p.read_text()) for p in (home / "reports" / "ingest").rglob("*.json"))
    return sum(f.get("rows") or 0 for r in reports for f in r["files"])


def _prepared(cache: Path, participants: int) -> Path:
    """A program home with the synthetic program generated and the registry loaded (cached)."""
    home = cache / str(participants) / "home"
    if (home / ".prepared").exists():
        return home
    shutil.rmtree(home.parent, ignore_errors=True)
    home.parent.mkdir(parents=True)
    console.print(f"preparing a program of {participants:,} participants in {home}")
    _step("init", str(home), "--name", "bench")
    genomes = str(min(1000, participants))
    _step("synth", "--home", str(home), "--participants", str(participants), "--genomes", genomes,
          "--sites", "10", "--seed", "1")  # fmt: skip
    _step("vocab", "build", "--home", str(home))
    _step("registry", "load", "--home", str(home), str(home / "synthetic" / "registry"))
    (home / ".prepared").touch()
    return home


def _stages(manifest: dict) -> dict:
    """Seconds and input rows per curation stage (and tier) from the rule log."""
    stages: dict[str, dict] = defaultdict(lambda: {"seconds": 0.0, "rows_in": 0})
    for entry in manifest["rule_log"]:
        stage = stages[f"{entry['stage']}/{entry['tier']}"]
        stage["seconds"] += entry["seconds"]
        stage["rows_in"] += sum(entry["rows_in"].values())
    return {
        name: {
            **s,
            "seconds": round(s["seconds"], 2),
            "rows_per_s": round(s["rows_in"] / max(s["seconds"], 1e-3)),
        }  # fmt: skip
        for name, s in stages.items()
    }


#: Stages whose rules are Ibis expressions (the ones an engine runs).
IBIS_STAGES = ("ehr/both", "combined/both", "feeds/both")


def _same_release(a: Path, b: Path) -> dict:
    """Compare every Parquet table of two releases row for row; count tables and rows."""
    files = sorted(p.relative_to(a) for p in a.rglob("*.parquet"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.parquet")), "different tables"
    rows = 0
    for name in files:
        x, y = pd.read_parquet(a / name), pd.read_parquet(b / name)
        pd.testing.assert_frame_equal(x, y, obj=str(name))
        rows += len(x)
    return {"tables": len(files), "rows": rows, "identical": True}


def _run(cache: Path, participants: int, engines: list[str]) -> dict:
    home = _prepared(cache, participants)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=home.parent)) / "home"
    shutil.copytree(home, work, ignore=shutil.ignore_patterns("synthetic"), symlinks=True)
    (work / "synthetic").symlink_to(home / "synthetic")
    console.print(f"{participants:,} participants: ingest, curate, check")
    steps = {"ingest": _step("ingest", "--home", str(work), str(work / "synthetic"))}
    steps["ingest"] = _per_second(steps["ingest"], _ingested_rows(work))
    manifests = {}
    for engine in engines:
        name = "bench" if engine == "duckdb" else f"bench-{engine}"
        key = "curate" if engine == "duckdb" else f"curate_{engine}"
        steps[key] = _step("curate", "run", "--home", str(work), "--release", name,
                           "--engine", engine)  # fmt: skip
        manifests[engine] = json.loads((work / "releases" / name / "manifest.json").read_text())
    steps["check"] = _step("release", "check", "--home", str(work), "bench")
    manifest = manifests["duckdb"]
    released = sum(n for tier in manifest["row_counts"].values() for n in tier.values())
    steps["curate"] = _per_second(steps["curate"], released)
    steps["check"] = _per_second(steps["check"], released)
    engine_figures = {}
    if "spark" in manifests:
        duck, spark = _stages(manifest), _stages(manifests["spark"])
        ibis_s = {k: round(sum(s[g]["seconds"] for g in IBIS_STAGES if g in s), 2)
                  for k, s in (("duckdb", duck), ("spark", spark))}  # fmt: skip
        engine_figures = {
            "ibis_stage_seconds": ibis_s,
            "ibis_stages_spark_duckdb_ratio": round(ibis_s["spark"] / ibis_s["duckdb"], 2),
            "curate_spark_duckdb_ratio": round(
                steps["curate_spark"]["seconds"] / steps["curate"]["seconds"], 2
            ),
            "spark_stages": spark,
            "same_release": _same_release(work / "releases" / "bench",
                                          work / "releases" / "bench-spark"),
        }  # fmt: skip
    release = ("ingest", "curate", "check")
    release_seconds = sum(steps[k]["seconds"] for k in release)
    peak = max(steps[k]["peak_rss_gb"] for k in release)
    limit_s, limit_gb = LIMITS.get(participants, (None, None))
    shutil.rmtree(work.parent)
    return {
        "participants": participants,
        "steps": steps,
        "release_seconds": round(release_seconds, 2),
        "release_peak_rss_gb": peak,
        "limit_seconds": limit_s,
        "limit_gb": limit_gb,
        "passed": None if limit_s is None else release_seconds <= limit_s and peak <= limit_gb,
        "rows": manifest.get("row_counts"),
        "stages": _stages(manifest),
        **engine_figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, action="append")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/opencohort-bench/curate"))
    parser.add_argument("--engine", action="append", choices=["spark"], default=[],
                        help="Also curate on this engine (DuckDB always runs).")  # fmt: skip
    parser.add_argument("--out", default="curate", help="Results file name (without .json).")
    args = parser.parse_args()
    engines = ["duckdb", *args.engine]
    results = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "loadavg_before": os.getloadavg(),
        "engines": engines,
        "note": "cleaning stages (ehr, combined, wearables consent) are Ibis rules on the engine; "
        "de-identification, surveys and domain alignment are still pandas",
        "runs": [_run(args.cache, n, engines) for n in args.participants or [100_000]],
        "loadavg_after": os.getloadavg(),
    }
    ratios = [r.get("curate_spark_duckdb_ratio") for r in results["runs"]]
    results["spark_duckdb_ratio"] = ratios[0] if len(ratios) == 1 else ratios
    table = Table(title="release build")
    for col in ("participants", "step", "seconds", "CPU s", "peak RSS GB", "rows/s"):
        table.add_column(col, justify="right")
    for run in results["runs"]:
        for step, figures in run["steps"].items():
            table.add_row(f"{run['participants']:,}", step, f"{figures['seconds']:.1f}",
                          f"{figures['cpu_seconds']:.1f}", f"{figures['peak_rss_gb']:.2f}",
                          f"{figures.get('rows_per_s', 0):,}")  # fmt: skip
        table.add_row(f"{run['participants']:,}", "release", f"{run['release_seconds']:.1f}", "",
                      f"{run['release_peak_rss_gb']:.2f}", "")  # fmt: skip
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
