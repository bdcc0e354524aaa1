"""The PheWAS part of ``bench/analysis.py``: ours against PheTK's on the same files.

Makes a cohort (participants x one exposure dosage and 10 covariates: age, sex, EHR length,
pc1..pc7) and per-person phecode counts for every phecode 1.2 code, with prevalences spread
log-uniformly from 0.05% to 15% and a few planted exposure effects (once; later runs reuse
them). Then times, each in its own subprocess, ``phecode_traits`` + ``phewas`` (from the two
files to the result table) and PheTK's ``PheWAS(...).run()`` (logit, ``use_exclusion=True``,
``min_cases=50``, ``min_phecode_count=2``, multithreading over the usable CPUs) on the same
files, and compares the betas of phecodes both fit without Firth. PheTK needs ``numpy<2``, so
it runs from its own virtual environment (``--phetk-python``; install ``phetk`` there, never
in the project's).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.vocab import phecode_definitions

COVARIATES = ["age", "sex", "ehr_length", *[f"pc{i}" for i in range(1, 8)]]

_OURS = """
import json, resource, sys, time
import pandas as pd
from opencohort.analysis import phecode_traits, phewas
root, covariates = sys.argv[1], sys.argv[2].split(",")
start, cpu = time.perf_counter(), time.process_time()
cohort = pd.read_csv(f"{root}/cohort.tsv", sep="\\t", index_col="person_id")
counts = pd.read_csv(f"{root}/counts.tsv", sep="\\t", dtype={"phecode": str})
counts = counts.rename(columns={"count": "n_dates"})
persons = cohort.assign(sex_at_birth=cohort["sex"].map({1: "male", 0: "female"}))
traits = phecode_traits(counts, persons, min_dates=2)
table = pd.concat([cohort, traits], axis=1)
results = phewas(table, exposure="g", covariates=covariates, sex_covariate="sex", min_cases=50)
results.to_csv(f"{root}/ours.tsv", sep="\\t", index=False)
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": rss}))
"""

_PHETK = """
import contextlib, io, json, os, resource, sys, time
from phetk.phewas import PheWAS
root, covariates = sys.argv[1], sys.argv[2].split(",")
start, cpu = time.perf_counter(), time.process_time()
with contextlib.redirect_stdout(io.StringIO()):
    run = PheWAS(
        phecode_version="1.2", phecode_count_file_path=f"{root}/counts.tsv",
        cohort_file_path=f"{root}/cohort.tsv", covariate_cols=covariates,
        independent_variable_of_interest="g", sex_at_birth_col="sex", male_as_one=True,
        min_cases=50, min_phecode_count=2, use_exclusion=True,
        output_file_path=f"{root}/phetk.tsv",
    )
    run.run(parallelization="multithreading", n_workers=len(os.sched_getaffinity(0)))
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": rss}))
"""


def make_inputs(root: Path, participants: int, *, seed: int = 6) -> dict:
    """Write cohort.tsv and counts.tsv (person_id, phecode, count) under root."""
    rng = np.random.default_rng([seed, 60])
    n = participants
    sex = rng.integers(0, 2, n)
    cohort = pd.DataFrame(
        {"person_id": np.arange(1, n + 1), "g": rng.binomial(2, 0.3, n).astype(float),
         "age": rng.uniform(20, 85, n).round(2), "sex": sex,
         "ehr_length": rng.gamma(2.0, 4.0, n).round(2)}
    )  # fmt: skip
    for i in range(1, 8):
        cohort[f"pc{i}"] = rng.normal(0, 0.02, n).round(5)
    cohort.to_csv(root / "cohort.tsv", sep="\t", index=False)
    defs = phecode_definitions("1.2")
    prevalence = np.exp(rng.uniform(np.log(5e-4), np.log(0.15), len(defs)))
    effect = np.zeros(len(defs))
    planted = rng.choice(len(defs), 10, replace=False)
    effect[planted] = 0.3
    parts = []
    g, age = cohort["g"].to_numpy(), cohort["age"].to_numpy()
    for j, row in enumerate(defs.itertuples()):
        eta = np.log(prevalence[j] / (1 - prevalence[j])) + effect[j] * g + 0.02 * (age - 50)
        draw = rng.random(n)
        case = draw < 1 / (1 + np.exp(-eta))
        once = ~case & (draw < 1.3 / (1 + np.exp(-eta)))  # coded on one date only
        if row.sex != "Both":
            allowed = sex == (1 if row.sex == "Male" else 0)
            case, once = case & allowed, once & allowed
        who = np.flatnonzero(case | once)
        count = np.where(case[who], 2 + rng.poisson(2.0, who.size), 1)
        parts.append(pd.DataFrame({"person_id": who + 1, "phecode": row.phecode, "count": count}))
    counts = pd.concat(parts, ignore_index=True)
    counts.to_csv(root / "counts.tsv", sep="\t", index=False)
    planted_codes = defs["phecode"].iloc[planted].tolist()
    return {"participants": n, "phecodes": len(defs), "count_rows": len(counts),
            "covariates": COVARIATES, "planted": planted_codes}  # fmt: skip


def _run(python: str, code: str, root: Path) -> dict:
    done = subprocess.run(
        [python, "-c", code, str(root), ",".join(COVARIATES)], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"{python} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(root: Path) -> dict:
    """Tested phecodes, cases and the largest relative beta difference over plain fits."""
    ours = pd.read_csv(root / "ours.tsv", sep="\t", dtype={"phecode": str})
    peer = pd.read_csv(root / "phetk.tsv", sep="\t", dtype={"phecode": str})
    both = ours.merge(peer, on="phecode", suffixes=("", "_phetk"))
    plain = both[both["converged"] & ~both["firth"]]
    rel = np.abs(plain["beta"] - plain["beta_phetk"]) / np.abs(plain["beta_phetk"])
    return {
        "tested_ours": len(ours),
        "tested_phetk": len(peer),
        "tested_both": len(both),
        "same_cases_controls": bool(
            (both["cases"] == both["cases_phetk"]).all()
            and (both["controls"] == both["controls_phetk"]).all()
        ),
        "compared_betas": len(plain),
        "max_relative_beta_difference": float(rel.max()),
        "max_relative_se_difference": float(
            (
                np.abs(plain["standard_error"] - plain["standard_error_phetk"])
                / plain["standard_error_phetk"]
            ).max()
        ),  # fmt: skip
    }


def inputs(data: Path, participants: int) -> tuple[Path, dict]:
    """The benchmark files under ``data``, made once; returns their folder and description."""
    root = data / f"p{participants}"
    if not root.exists():
        partial = data / f"{root.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        described = make_inputs(partial, participants)
        (partial / "inputs.json").write_text(json.dumps(described))
        partial.rename(root)
    return root, json.loads((root / "inputs.json").read_text())


def benchmark(root: Path, described: dict, *, phetk_python: str | None, step) -> dict:
    """Time ours (and PheTK when its interpreter is given) on the files at ``root``."""
    step("phewas ours")
    load = os.getloadavg()
    ours = {**_run(sys.executable, _OURS, root), "loadavg_before": load,
            "loadavg_after": os.getloadavg()}  # fmt: skip
    peer = check = None
    if phetk_python:
        step("phewas PheTK")
        load = os.getloadavg()
        peer = {**_run(phetk_python, _PHETK, root), "loadavg_before": load,
                "loadavg_after": os.getloadavg()}  # fmt: skip
        check = compare(root)
    return {
        "inputs": described,
        "ours": ours,
        "phetk": peer,
        "speedup": peer["seconds"] / ours["seconds"] if peer else None,
        "cpu_speedup": peer["cpu_seconds"] / ours["cpu_seconds"] if peer else None,
        "check": check,
        "targets": {"speedup": 20, "max_relative_beta_difference": 1e-6},
    }
