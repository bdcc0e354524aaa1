"""Benchmark the synthetic genome simulator (default: 10,000 genomes x ~100,000 variants).

Run: ``.venv/bin/python bench/synth_genomes.py [--genomes N] [--region-mb MB]``. Prints a table
and writes ``bench/results/synth_genomes.json``. Stage seconds are summed over the worker
processes (regions run in parallel), so they can exceed the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from opencohort.synth.genomes import simulate_genomes
from opencohort.synth.models import SynthConfig
from opencohort.synth.participants import participant_batch
from opencohort.synth.program import genome_eligible

RESULTS = Path(__file__).parent / "results" / "synth_genomes.json"


def _memory_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9


def _people(genomes: int, seed: int):
    """The first ``genomes`` genome-eligible participants of a synthetic program."""
    participants = int(genomes * 2.6) + 100
    config = SynthConfig(
        participants=participants, genomes=genomes, seed=seed, batch_size=participants
    )
    frame = participant_batch(config, 0)
    people = frame[genome_eligible(frame)].head(genomes).reset_index(drop=True)
    if len(people) < genomes:
        raise SystemExit(f"only {len(people)} eligible participants; raise the participant count")
    return people


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=int, default=10_000)
    parser.add_argument("--region-mb", type=float, default=0.35, help="Mb per region (9 regions)")
    parser.add_argument("--batches", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None, help="keep the output here")
    args = parser.parse_args()

    people = _people(args.genomes, args.seed)
    config = SynthConfig(
        participants=args.genomes,
        genomes=args.genomes,
        seed=args.seed,
        region_megabases=args.region_mb,
        genome_batches=args.batches,
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_genomes_"))
    start = time.perf_counter()
    result = simulate_genomes(people, config, out)
    wall = time.perf_counter() - start
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    counts = result.counts
    size = sum(p.stat().st_size for p in (out / "genomes").rglob("*.vcf.gz"))
    report = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)),
            "memory_gb": round(_memory_gb(), 1),
            "load_average_at_end": os.getloadavg(),
        },
        "inputs": {
            "genomes": args.genomes,
            "region_megabases": args.region_mb,
            "regions": counts["regions"],
            "batches": args.batches,
            "reference_per_group": config.reference_per_group,
            "seed": args.seed,
        },
        "outputs": {
            "variants": counts["variants"],
            "records": counts["records"],
            "cohort_genotypes": counts["genotypes"],
            "panel_genotypes": counts["panel_genotypes"],
            "multiallelic_records": counts["multiallelic_records"],
            "vcf_gz_bytes": size,
            "workers": counts["workers"],
        },
        "seconds": {
            "wall_total": round(wall, 2),
            **{
                f"{s}_worker_sum": counts[f"ms_{s}"] / 1000
                for s in ("simulate", "mosaic", "write", "index")
            },
            "cpu_user_sys_all_processes": round(
                own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime, 1
            ),
        },
        "genotypes_per_second": round((counts["genotypes"] + counts["panel_genotypes"]) / wall),
        "peak_rss_mb": {
            "main": round(own.ru_maxrss / 1024),
            "largest_child": round(children.ru_maxrss / 1024),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    if args.out is None:
        shutil.rmtree(out)

    table = Table(
        title=f"synth genomes: {args.genomes:,} genomes x {counts['variants']:,} variants"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    for section in ("inputs", "outputs", "seconds", "peak_rss_mb"):
        for key, value in report[section].items():
            table.add_row(
                f"{section}.{key}", f"{value:,}" if isinstance(value, int) else str(value)
            )
    table.add_row("genotypes_per_second", f"{report['genotypes_per_second']:,}")
    Console().print(table)


if __name__ == "__main__":
    main()
