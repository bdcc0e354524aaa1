"""Benchmark the synthetic program: participants with full EHR, and genomes.

Each size runs in its own subprocess so peak RSS is that run's alone. Prints a table and writes
``bench/results/synth.json``. Targets (issue 2, 2 cores): 100,000 participants with full EHR in
at most 3 minutes and 4 GB; 1,000,000 in at most 30 minutes; 10,000 genomes x 100,000 variants in
at most 2 minutes.

    python bench/synth.py --participants 100000 [--participants 1000000] [--skip-genomes]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from machine import machine

RESULTS = Path(__file__).parent / "results"
EHR_TABLES = (
    "person", "visit_occurrence", "condition_occurrence", "drug_exposure", "measurement",
    "procedure_occurrence", "observation", "death", "note", "observation_period",
)  # fmt: skip

_CHILD = """
import json, sys, time
from pathlib import Path
from opencohort.synth.models import SynthConfig
from opencohort.synth.program import generate_program
n, genomes, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
start = time.perf_counter()
summary = generate_program(SynthConfig(participants=n, genomes=genomes, sites=10, seed=1), out)
summary["seconds"] = time.perf_counter() - start
print(json.dumps(summary))
"""


def _run_program(participants: int, genomes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(participants), str(genomes), f"{tmp}/out"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = json.loads(done.stdout)
    rows = summary["rows"]
    ehr_rows = sum(
        v for k, v in rows.items() if k.startswith("ehr/") and Path(k).stem in EHR_TABLES
    )
    seconds = summary["seconds"]
    return {
        "participants": participants,
        "genomes": genomes,
        "seconds": round(seconds, 2),
        "participants_per_s": round(participants / seconds),
        "ehr_rows": ehr_rows,
        "ehr_rows_per_s": round(ehr_rows / seconds),
        "peak_rss_gb": round(max(peak_kb, before) / 2**20, 2),
    }


def _run_genomes(genomes: int, region_mb: float) -> dict:
    """Run bench/synth_genomes.py in its own process and return its results."""
    script = Path(__file__).parent / "synth_genomes.py"
    args = ["--genomes", str(genomes), "--region-mb", str(region_mb)]
    subprocess.run([sys.executable, str(script), *args], check=True)
    return json.loads((RESULTS / "synth_genomes.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, action="append")
    parser.add_argument("--genomes-in-program", type=int, default=1000)
    parser.add_argument("--genomes", type=int, default=10_000)
    parser.add_argument("--region-mb", type=float, default=0.35, help="about 100,000 variants")
    parser.add_argument("--skip-genomes", action="store_true")
    args = parser.parse_args()
    sizes = args.participants or [100_000]

    results = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": []}
    for n in sizes:
        results["runs"].append(_run_program(n, min(args.genomes_in_program, n)))
    if not args.skip_genomes:
        results["genomes"] = _run_genomes(args.genomes, args.region_mb)

    table = Table(title="synthetic program")
    for col in (
        "participants",
        "seconds",
        "participants/s",
        "EHR rows",
        "EHR rows/s",
        "peak RSS GB",
    ):
        table.add_column(col, justify="right")
    for run in results["runs"]:
        table.add_row(
            f"{run['participants']:,}", f"{run['seconds']:.1f}", f"{run['participants_per_s']:,}",
            f"{run['ehr_rows']:,}", f"{run['ehr_rows_per_s']:,}", f"{run['peak_rss_gb']:.2f}",
        )  # fmt: skip
    Console().print(table)
    if "genomes" in results:
        Console().print_json(json.dumps(results["genomes"]))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "synth.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
