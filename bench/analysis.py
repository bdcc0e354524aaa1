"""Benchmark the association analyses against their peers: GWAS vs plink2, PheWAS vs PheTK.

The one runner of issue 6's benchmark table. Inputs are made once under ``--data`` and
reused; every peer runs in the same invocation on the same files. Each part's result is
merged into ``bench/results/analysis.json`` (so ``--only gwas`` keeps the last PheWAS figures),
with the machine, load averages before and after every run, inputs and ratios.

    python bench/analysis.py [--only gwas|phewas] [--samples 20000] [--variants 200000]
        [--covariates 12] [--plink2-ten] [--participants 50000] [--phetk-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

import gwas
import phewas
from machine import machine

RESULTS = Path(__file__).parent / "results" / "analysis.json"


def _table(result: dict) -> Table:
    table = Table(title="association analyses: ours vs peers")
    for column in ("benchmark", "ours s", "peer s", "wall x", "CPU x", "our peak MB"):
        table.add_column(column)
    rows = [(f"gwas {name}", row["ours"], row["plink2"], row["speedup_wall"], row["speedup_cpu"])
            for name, row in result.get("gwas", {}).get("runs", {}).items()]  # fmt: skip
    part = result.get("phewas")
    if part and part.get("phetk"):
        rows.append(("phewas", part["ours"], part["phetk"], part["speedup"], part["cpu_speedup"]))
    for name, ours, peer, wall, cpu in rows:
        table.add_row(name, f"{ours['seconds']:.1f}", f"{peer['seconds']:.1f}", f"{wall:.2f}",
                      f"{cpu:.2f}", f"{ours['peak_rss_mb']:.0f}")  # fmt: skip
    return table


def main() -> None:
    """Run the chosen parts and merge them into bench/results/analysis.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("gwas", "phewas"))
    parser.add_argument("--data", type=Path, default=Path("/work/benchdata"))
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--variants", type=int, default=200_000)
    parser.add_argument("--covariates", type=int, default=12)
    parser.add_argument(
        "--plink2-ten",
        action="store_true",
        help="run plink2 on the ten traits one by one (else 10 x one run)",
    )
    parser.add_argument("--participants", type=int, default=50_000)
    parser.add_argument("--phetk-python", default=os.environ.get("PHETK_PYTHON"))
    args = parser.parse_args()
    result = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  transient=True) as progress:  # fmt: skip
        task = progress.add_task("inputs")

        def step(text: str) -> None:
            progress.update(task, description=text)

        if args.only in (None, "gwas"):
            step("gwas inputs")
            root = gwas.inputs(args.data / "gwas", args.samples, args.variants, args.covariates)
            head = {"machine": machine(), "samples": args.samples, "variants": args.variants,
                    "covariates": args.covariates}  # fmt: skip

            def save(part: dict) -> None:
                result["gwas"] = {**head, **part}
                _write(result)

            save(gwas.benchmark(root, plink2_ten=args.plink2_ten, step=step, save=save))
        if args.only in (None, "phewas"):
            step("phewas inputs")
            root, described = phewas.inputs(args.data / "phewas", args.participants)
            result["phewas"] = {
                "machine": machine(),
                **phewas.benchmark(root, described, phetk_python=args.phetk_python, step=step),
            }
    _write(result)
    Console().print(_table(result))


def _write(result: dict) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
