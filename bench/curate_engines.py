"""Benchmark the curate step on each engine (DuckDB, then Spark local[2]) from one ingested home.

The program home is prepared and ingested once (``bench/curate.py``'s cache and steps, under a
shared hold of ``--lock``); each ``curate run --engine`` is then timed in its own process under
an exclusive hold, so no other CPU-heavy run shares the machine while it is timed. The two
releases are compared table by table. Writes ``bench/results/curate_engines.json``: seconds,
peak RSS, rows/s per stage, the Spark/DuckDB ratio and the load average around each step.

    python bench/curate_engines.py --participants 100000 --cache /tmp/opencohort-bench/curate
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from curate import RESULTS, _prepared, _same_release, _stages, _step, console
from machine import machine


@contextmanager
def _hold(lock: Path, mode: int):
    """Hold `lock` (``fcntl.LOCK_SH`` or ``LOCK_EX``) for the block."""
    with open(lock, "a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/opencohort-bench/curate"))
    parser.add_argument("--lock", type=Path, default=Path("/work/bench.lock"))
    parser.add_argument("--engine", action="append", choices=["duckdb", "spark"])
    args = parser.parse_args()
    engines = args.engine or ["duckdb", "spark"]
    with _hold(args.lock, fcntl.LOCK_SH):
        home = _prepared(args.cache, args.participants)
        work = home.parent / "engines"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(home, work, ignore=shutil.ignore_patterns("synthetic"), symlinks=True)
        (work / "synthetic").symlink_to(home / "synthetic")
        console.print(f"{args.participants:,} participants: ingest")
        ingest = _step("ingest", "--home", str(work), str(work / "synthetic"))
    results = {"machine": machine(), "participants": args.participants, "ingest": ingest}
    steps, stages, loads = {}, {}, {}
    results |= {"steps": steps, "loadavg": loads, "stages": stages}
    for engine in engines:
        console.print(f"curate on {engine} (waiting for an exclusive hold of {args.lock})")
        with _hold(args.lock, fcntl.LOCK_EX):
            loads[engine] = {"before": _load()}
            try:
                steps[engine] = _step("curate", "run", "--home", str(work), "--release", engine,
                                      "--engine", engine, "--no-progress")  # fmt: skip
            except SystemExit as failed:  # a failed or killed run is recorded, not lost
                steps[engine] = {"failed": str(failed)[-2000:]}
            loads[engine]["after"] = _load()
        console.print(f"{engine}: {steps[engine]}")
        if "failed" not in steps[engine]:
            manifest = json.loads((work / "releases" / engine / "manifest.json").read_text())
            stages[engine] = _stages(manifest)
            results["rows"] = manifest["row_counts"]
        _write(results)
    if all("seconds" in steps.get(e, {}) for e in ("duckdb", "spark")):
        results["curate_spark_duckdb_ratio"] = round(
            steps["spark"]["seconds"] / steps["duckdb"]["seconds"], 2
        )
        with _hold(args.lock, fcntl.LOCK_SH):
            results["same_release"] = _same_release(work / "releases" / "duckdb",
                                                    work / "releases" / "spark")  # fmt: skip
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    _write(results)
    shutil.rmtree(work)


def _write(results: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "curate_engines.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
