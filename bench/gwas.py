"""Benchmark the GWAS scan against ``plink2 --glm`` on the same PLINK 2 fileset.

Makes a random fileset (samples x variants, 2% missing calls), 10 quantitative traits, one
binary trait and covariates, then times ``linear_gwas`` (1 and 10 traits in one pass),
``logistic_gwas`` (1 trait), and plink2 --glm hide-covar with ``--threads 2`` on the same
inputs. Each of our runs is a subprocess so peak RSS is its own. Wall and CPU seconds are
both recorded: on a shared machine CPU seconds are the steadier comparison. Writes
``bench/results/gwas.json``.

    python bench/gwas.py [--samples 2000] [--variants 50000] [--covariates 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pgenlib

RESULTS = Path(__file__).parent / "results"

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
        ("linear", "q3", "ours.linear.10.parquet", "plink.ten.q3.glm.linear", "BETA", "SE"),
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
        }
    return out


def main() -> None:
    """Run the benchmark and write bench/results/gwas.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--variants", type=int, default=50_000)
    parser.add_argument("--covariates", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("plink2") is None:
        sys.exit("plink2 is not installed")
    ten = [f"q{i}" for i in range(10)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_inputs(root, args.samples, args.variants, args.covariates)
        rows = {
            "linear_1": {"ours": run_ours(root, "linear", ["q0"]),
                         "plink2": run_plink2(root, ["q0"], "one")},
            "linear_10": {"ours": run_ours(root, "linear", ten),
                          "plink2": run_plink2(root, ten, "ten")},
            "logistic_1": {"ours": run_ours(root, "logistic", ["case"]),
                           "plink2": run_plink2(root, ["case"], "case")},
        }  # fmt: skip
        agree = agreement(root)
    for row in rows.values():
        row["speedup_wall"] = row["plink2"]["seconds"] / row["ours"]["seconds"]
        row["speedup_cpu"] = row["plink2"]["cpu_seconds"] / row["ours"]["cpu_seconds"]
    result = {
        "samples": args.samples, "variants": args.variants, "covariates": args.covariates,
        "missing_rate": 0.02,
        "load_average_at_end": os.getloadavg(), "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "plink2": subprocess.run(["plink2", "--version"], capture_output=True, text=True).stdout,
        "agreement_with_plink2": agree, "runs": rows,
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gwas.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
