"""The GWAS part of ``bench/analysis.py``: our scans against ``plink2 --glm`` on one fileset.

Makes a random fileset (samples x variants, 2% missing calls), 10 quantitative traits, one
binary trait and covariates (once; later runs reuse it), then times ``linear_gwas`` (1 and 10
traits in one pass), ``logistic_gwas`` (1 trait), and plink2 --glm hide-covar with
``--threads 2`` on the same inputs. Each of our runs is a subprocess so peak RSS is its own.
Wall and CPU seconds are both recorded.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pgenlib

_CHILD = """
import json, resource, sys, time
import pandas as pd
from opencohort.analysis import linear_gwas, logistic_gwas
root, kind, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
pheno = pd.read_csv(f"{root}/pheno.tsv", sep="\\t", index_col=0)[names]
covar = pd.read_csv(f"{root}/covar.tsv", sep="\\t", index_col=0)
start, cpu = time.perf_counter(), time.process_time()
if kind == "linear":
    res = linear_gwas(f"{root}/data", pheno, covariates=covar)
else:
    res = logistic_gwas(f"{root}/data", pheno - 1, covariates=covar)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
res.to_parquet(f"{root}/ours.{kind}.{len(names)}.parquet")
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": rss}))
"""


def make_inputs(root: Path, samples: int, variants: int, covariates: int) -> None:
    """Write data.pgen/pvar/psam, pheno.tsv (q0..q9, case) and covar.tsv under root."""
    rng = np.random.default_rng([6, 99])
    writer = pgenlib.PgenWriter(bytes(root / "data.pgen"), samples, variants, False)
    for first in range(0, variants, 5000):
        n = min(5000, variants - first)
        freq = rng.uniform(0.01, 0.5, size=(n, 1))
        g = rng.binomial(2, freq, size=(n, samples)).astype(np.int8)
        g[rng.random(g.shape) < 0.02] = -9
        writer.append_biallelic_batch(g)
    writer.close()
    iid = [f"s{i}" for i in range(samples)]
    pd.DataFrame({"#IID": iid, "SEX": 1 + np.arange(samples) % 2}).to_csv(
        root / "data.psam", sep="\t", index=False
    )
    pd.DataFrame(
        {
            "#CHROM": 1 + np.arange(variants) * 22 // variants,
            "POS": 1 + 1000 * (np.arange(variants) % (variants // 22 + 1)),
            "ID": [f"v{i}" for i in range(variants)],
            "REF": "A",
            "ALT": "G",
        }
    ).to_csv(root / "data.pvar", sep="\t", index=False)
    covar = pd.DataFrame(
        rng.normal(size=(samples, covariates)), columns=[f"c{i}" for i in range(covariates)]
    )
    covar.insert(0, "#IID", iid)
    covar.to_csv(root / "covar.tsv", sep="\t", index=False)
    pheno = pd.DataFrame(rng.normal(size=(samples, 10)), columns=[f"q{i}" for i in range(10)])
    pheno["case"] = 1 + (rng.random(samples) < 0.3)
    pheno.insert(0, "#IID", iid)
    pheno.to_csv(root / "pheno.tsv", sep="\t", index=False)


def run_ours(root: Path, kind: str, names: list[str]) -> dict:
    """Time one of our scans in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), kind, ",".join(names)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_plink2(root: Path, names: list[str], tag: str) -> dict:
    """Wall and CPU seconds of plink2 --glm hide-covar --threads 2 on the named traits."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [
            "plink2", "--pfile", str(root / "data"), "--pheno", str(root / "pheno.tsv"),
            "--pheno-name", ",".join(names), "--covar", str(root / "covar.tsv"),
            "--glm", "hide-covar", "--threads", "2", "--out", str(root / f"plink.{tag}"),
        ],
        capture_output=True, check=True,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": seconds, "cpu_seconds": cpu}


def agreement(root: Path) -> dict:
    """Largest relative BETA/SE differences from plink2, and rows whose A1 differs (ties)."""
    out = {}
    for kind, name, ours_file, ref_file, beta, se in (
        ("linear", "q0", "ours.linear.1.parquet", "plink.one.q0.glm.linear", "BETA", "SE"),
        ("logistic", "case", "ours.logistic.1.parquet", "plink.case.case.glm.logistic.hybrid",
         "OR", "LOG(OR)_SE"),
    ):  # fmt: skip
        ours = pd.read_parquet(root / ours_file)
        ours = ours[ours["phenotype"] == name].reset_index(drop=True)
        ref = pd.read_csv(root / ref_file, sep="\t", na_values="NA")
        ours_beta = np.exp(ours["BETA"]) if kind == "logistic" else ours["BETA"]
        same = (ours["A1"] == ref["A1"]) & ref[beta].notna()
        out[kind] = {
            "max_rel_beta": float(np.max(np.abs(ours_beta[same] / ref.loc[same, beta] - 1))),
            "max_rel_se": float(np.max(np.abs(ours.loc[same, "SE"] / ref.loc[same, se] - 1))),
            "a1_differs_at_freq_one_half": int((ours["A1"] != ref["A1"]).sum()),
            "rows_compared": int(same.sum()),
        }
    return out


def inputs(data: Path, samples: int, variants: int, covariates: int) -> Path:
    """The benchmark fileset under ``data``, made once (under a temporary name, then renamed)."""
    root = data / f"s{samples}_v{variants}_c{covariates}"
    if not root.exists():
        partial = data / f"{root.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        make_inputs(partial, samples, variants, covariates)
        partial.rename(root)
    return root


def benchmark(
    root: Path,
    *,
    plink2_ten: bool,
    step: Callable[[str], None],
    save: Callable[[dict], None],
) -> dict:
    """Time our scans and plink2's on the fileset at ``root``; ratios, agreement and load.

    plink2 runs the ten traits one by one only with ``plink2_ten``; otherwise that peer time
    is the single-trait linear run times ten (each trait is the same workload) and is marked
    as an estimate. ``save`` gets the runs so far after each one, so a cut-off run keeps them.
    """
    if shutil.which("plink2") is None:
        sys.exit("plink2 is not installed")
    ten = [f"q{i}" for i in range(10)]
    plan = [
        ("linear_1", "ours", lambda: run_ours(root, "linear", ["q0"])),
        ("linear_1", "plink2", lambda: run_plink2(root, ["q0"], "one")),
        ("linear_10", "ours", lambda: run_ours(root, "linear", ten)),
        ("logistic_1", "ours", lambda: run_ours(root, "logistic", ["case"])),
        ("logistic_1", "plink2", lambda: run_plink2(root, ["case"], "case")),
    ]
    if plink2_ten:
        plan += [("linear_10", "plink2", lambda: _one_by_one(root, ten))]
    rows: dict[str, dict] = {}
    for name, tool, run in plan:
        step(f"{name} {tool}")
        load = os.getloadavg()
        rows.setdefault(name, {})[tool] = {**run(), "loadavg_before": load,
                                           "loadavg_after": os.getloadavg()}  # fmt: skip
        save({"runs": rows, "complete": False})
    if not plink2_ten:
        one = rows["linear_1"]["plink2"]
        rows["linear_10"]["plink2"] = {
            "seconds": 10 * one["seconds"], "cpu_seconds": 10 * one["cpu_seconds"],
            "estimate": "10 x the measured single-trait linear plink2 run",
        }  # fmt: skip
    for row in rows.values():
        row["speedup_wall"] = row["plink2"]["seconds"] / row["ours"]["seconds"]
        row["speedup_cpu"] = row["plink2"]["cpu_seconds"] / row["ours"]["cpu_seconds"]
    return {
        "inputs": {"root": str(root), "missing_rate": 0.02, "traits": "q0..q9 N(0,1); case 30%"},
        "plink2": subprocess.run(["plink2", "--version"], capture_output=True, text=True).stdout,
        "agreement_with_plink2": agreement(root),
        "runs": rows,
        "complete": True,
        "targets": {"linear_1": 5, "logistic_1": 2, "linear_10": 5, "peak_rss_mb": 2048},
    }


def _one_by_one(root: Path, names: list[str]) -> dict:
    runs = [run_plink2(root, [name], f"each.{name}") for name in names]
    return {key: sum(r[key] for r in runs) for key in ("seconds", "cpu_seconds")}
