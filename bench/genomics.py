"""Benchmark genomics against plink2 on the same files: import, frequencies, KING, ancestry.

Input: a synthetic program's genomes (``bench/synth_genomes.py --out DIR``; the issue's size is
20,000 samples x ~200,000 variants, one batch). Each of our steps runs in a fresh interpreter,
so its peak RSS is its own; plink2 2.00a3.5 (``--threads 2``) runs on the same files in the
same run. Ratios are plink2 seconds / our seconds (>= 1: as fast as plink2 or faster).

1. Import: ``ingest`` of the delivery (copy to raw/, VCF parse with genotype filters, pgen and
   Parquet) vs ``plink2 --vcf F --vcf-min-gq 20 --vcf-min-dp 10 --make-pgen`` per VCF.
2. Frequencies: ``allele_frequencies`` over the store vs ``plink2 --freq`` per contig pgen.
3. KING: ``king_kinship`` (pairs > 0.1) vs ``plink2 --make-king-table --king-table-filter 0.1``
   on the first ``--king-samples`` samples (a store and a merged pfile of those, made
   untimed): cost grows with samples squared.
4. Ancestry: panel read + PCA + forest fit, then projection and labels of ``--ancestry-samples``
   samples (the store's samples repeated).
5. Memory: peak RSS of sample QC, variant QC and frequencies on the store.

    python bench/genomics.py --data DIR [--work DIR] [--king-samples 2000]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from machine import machine

RESULTS = Path(__file__).parent / "results" / "genomics.json"
PLINK_THREADS = "2"

_CHILD = """
import json, resource, sys, time
from pathlib import Path
import opencohort.genomics  # imported before the clock starts
step, args = sys.argv[1], sys.argv[2:]
start, cpu = time.perf_counter(), time.process_time()
extra = {}
if step == "import":
    from opencohort.config import init_home
    from opencohort.genomics import ingest
    result = ingest(Path(args[0]), init_home(Path(args[1])), check_registry=False)
    extra = {"variants": result[-1].variants, "samples": result[-1].samples,
             "genotypes_per_second": result[-1].genotypes_per_second}
elif step == "freq":
    from opencohort.genomics import allele_frequencies
    extra = {"variants": len(allele_frequencies(Path(args[0])))}
elif step == "king":
    from opencohort.genomics import king_kinship
    pairs = king_kinship(Path(args[0]))
    pairs.to_parquet(args[1])
    extra = {"pairs": len(pairs)}
elif step == "qc":
    from opencohort.genomics import SampleQcConfig, sample_qc, variant_qc
    # concordance (duplicates, swaps) is all pairs, like kinship: left out of the memory run
    config = SampleQcConfig(concordance_max_variants=0)
    extra = {"samples": len(sample_qc(Path(args[0]), config=config)),
             "variants": len(variant_qc(Path(args[0])))}
elif step == "ancestry":
    import numpy as np
    from opencohort.genomics import _store, classify, fit_ancestry, project_genotypes, read_panel
    root, n_target = Path(args[0]), int(args[1])
    wanted = set(_store.read_variants(root)["variant_id"])
    model = fit_ancestry(read_panel(Path(args[2]), wanted=wanted))
    fit = time.perf_counter() - start
    variants = _store.read_variants(root)
    found = variants["variant_id"].isin(set(model.sites["variant_id"]))
    site_row = dict(zip(model.sites["variant_id"], range(len(model.sites))))
    g = np.zeros((len(model.sites), len(_store.read_samples(root))), dtype=np.int8)
    for contig in _store.store_contigs(root):
        sub = variants[variants["chrom"] == contig].reset_index(drop=True)
        rows = np.flatnonzero(sub["variant_id"].isin(site_row).to_numpy())
        block = _store.read_rows(root / f"{contig}.pgen", rows.astype(np.uint32))
        g[[site_row[v] for v in sub["variant_id"].to_numpy()[rows]]] = block
    t_project = time.perf_counter()
    copies = -(-n_target // g.shape[1])
    labels = []
    for _ in range(copies):
        labels.append(classify(project_genotypes(g, model), model)["sample_ancestry"])
    n = sum(len(x) for x in labels)
    extra = {"fit_seconds": fit, "project_classify_seconds": time.perf_counter() - t_project,
             "samples_labelled": n, "sites": len(model.sites)}
seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
if step == "import":  # the raw copy of the delivery: disk only, after the clock
    import shutil
    shutil.rmtree(Path(args[1]) / "raw", ignore_errors=True)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": rss,
                  "peak_rss_children_mb": rss_children, **extra}))
"""


def ours(step: str, *args: str) -> dict:
    """Time one of our steps in a fresh interpreter (CPU seconds include its child processes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, step, *args], capture_output=True, text=True
    )
    if out.returncode:
        sys.exit(f"our {step} failed:\n{out.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cpu_seconds_all"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return result


def plink2(*args: str) -> dict:
    """Wall and CPU seconds of one plink2 run (``--threads 2``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(["plink2", "--threads", PLINK_THREADS, *args], capture_output=True, check=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mb": after.ru_maxrss / 1024}


def plink2_each(commands: list[list[str]], *, clean: Path | None = None) -> dict:
    """Summed seconds of several plink2 runs (``clean`` emptied after each, to save disk)."""
    runs = []
    for command in commands:
        runs.append(plink2(*command))
        if clean is not None:
            for path in clean.iterdir():
                path.unlink()
    return {
        "seconds": sum(r["seconds"] for r in runs),
        "cpu_seconds": sum(r["cpu_seconds"] for r in runs),
        "runs": len(runs),
    }


def subset_store(store: Path, out: Path, merged: Path, n: int) -> None:
    """A store of the first ``n`` samples (pgens via plink2 --keep) and a merged pfile of them."""
    out.mkdir(parents=True, exist_ok=True)
    samples = pd.read_parquet(store / "samples.parquet").head(n)
    samples.to_parquet(out / "samples.parquet", index=False)
    shutil.copy(store / "variants.parquet", out / "variants.parquet")
    keep = out / "keep.txt"
    keep.write_text("\n".join(samples["sample_id"]) + "\n")
    contigs = sorted(p.stem for p in store.glob("*.pgen") if p.stem.removeprefix("chr").isdigit())
    for contig in contigs:
        subprocess.run(
            ["plink2", "--pfile", str(store / contig), "--keep", str(keep), "--make-pgen",
             "--out", str(out / contig)], capture_output=True, check=True,
        )  # fmt: skip
    (out / "merge.txt").write_text("\n".join(str(out / k) for k in contigs) + "\n")
    subprocess.run(
        ["plink2", "--pmerge-list", str(out / "merge.txt"), "pfile", "--make-pgen",
         "--out", str(merged)], capture_output=True, check=True,
    )  # fmt: skip


def dummy_store(out: Path, samples: int, variants: int) -> Path:
    """A store of random genotypes (``plink2 --dummy``, 2% missing) on one contig, untimed."""
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "chr1"
    subprocess.run(
        ["plink2", "--dummy", str(samples), str(variants), "0.02", "acgt", "--threads",
         PLINK_THREADS, "--make-pgen", "--out", str(prefix)], capture_output=True, check=True,
    )  # fmt: skip
    subprocess.run(
        ["plink2", "--pfile", str(prefix), "--geno-counts", "--threads", PLINK_THREADS,
         "--out", str(prefix)], capture_output=True, check=True,
    )  # fmt: skip
    counts = pd.read_csv(prefix.with_suffix(".gcount"), sep="\t")
    ref_hom, het, alt_hom = (counts[k].to_numpy() for k in
                             ("HOM_REF_CT", "HET_REF_ALT_CTS", "TWO_ALT_GENO_CTS"))  # fmt: skip
    called = ref_hom + het + alt_hom
    pvar = pd.read_csv(prefix.with_suffix(".pvar"), sep="\t", comment=None)
    pd.DataFrame(
        {
            "variant_id": "chr1:" + pvar["POS"].astype(str) + ":" + pvar["REF"] + ":" + pvar["ALT"],
            "chrom": "chr1", "pos": pvar["POS"], "ref": pvar["REF"], "alt": pvar["ALT"],
            "variant_call_rate": called / samples, "variant_ac": het + 2 * alt_hom,
            "variant_an": 2 * called, "variant_af": (het + 2 * alt_hom) / (2 * called),
            "variant_n_het": het, "variant_n_hom_alt": alt_hom,
        }
    ).to_parquet(out / "variants.parquet", index=False)  # fmt: skip
    psam = pd.read_csv(prefix.with_suffix(".psam"), sep="\t")
    ids = psam["#IID"] if "#IID" in psam else psam["IID"]
    frame = pd.DataFrame({"sample_id": ids.astype(str), "participant_id": ids.astype(str)})
    frame["sex_at_birth"] = psam["SEX"].map({1: "male", 2: "female"}).fillna("unknown").to_numpy()
    frame["batch"] = "dummy"
    frame["sample_haploid_contigs"] = ""
    for name in ("n_het", "ab_dispersion_sum", "stray_reads", "hom_depth", "called"):
        frame[f"sample_raw_{name}"] = float("nan")
    frame.to_parquet(out / "samples.parquet", index=False)
    return out


def main() -> None:
    """Run the benchmark and write bench/results/genomics.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="synth_genomes.py --out DIR")
    parser.add_argument("--work", type=Path, default=None, help="scratch (default DATA/../work)")
    parser.add_argument("--king-samples", type=int, default=2000)
    parser.add_argument("--ancestry-samples", type=int, default=100_000)
    parser.add_argument("--steps", default="import,freq,king,ancestry,memory")
    parser.add_argument("--memory-size", default="50000x500000",
                        help="SAMPLESxVARIANTS of the random store of step 'scale'")  # fmt: skip
    args = parser.parse_args()
    if shutil.which("plink2") is None:
        sys.exit("plink2 is not installed (scripts/system-packages.sh)")
    steps = args.steps.split(",")
    delivery = args.data / "genomes" / "batch_001"
    panel = args.data / "genomes" / "reference_panel"
    work = args.work or args.data.parent / "work"
    home, store = work / "home", work / "home" / "genomics" / "store"
    vcfs = sorted(delivery.glob("*.vcf.gz"))
    result: dict = {"machine_at_start": machine(), "inputs": {"data": str(args.data)}}
    rows: dict[str, dict] = {}
    if "import" in steps:
        shutil.rmtree(work, ignore_errors=True)
        (work / "plink_import").mkdir(parents=True)
        peer = plink2_each(
            [["--vcf", str(v), "--vcf-min-gq", "20", "--vcf-min-dp", "10", "--make-pgen",
              "--out", str(work / "plink_import" / v.name.removesuffix(".vcf.gz"))]
             for v in vcfs], clean=work / "plink_import",
        )  # fmt: skip
        rows["import"] = {"ours": ours("import", str(args.data / "genomes"), str(home)),
                          "plink2": peer}  # fmt: skip
        shutil.rmtree(work / "plink_import")
    samples = pd.read_parquet(store / "samples.parquet")
    contigs = sorted(p.stem for p in store.glob("*.pgen"))
    result["inputs"].update(
        samples=len(samples),
        variants=len(pd.read_parquet(store / "variants.parquet", columns=["variant_id"])),
        vcf_gz_bytes=sum(v.stat().st_size for v in vcfs),
        contigs=len(contigs),
    )
    if "freq" in steps:
        out = work / "plink_freq"
        out.mkdir(exist_ok=True)
        rows["frequencies"] = {
            "ours": ours("freq", str(store)),
            "plink2": plink2_each(
                [["--pfile", str(store / k), "--freq", "--out", str(out / k)] for k in contigs]
            ),
        }
    if "king" in steps:
        sub, merged = work / "king_subset", work / "king_merged"
        shutil.rmtree(sub, ignore_errors=True)
        subset_store(store, sub, merged, args.king_samples)
        rows["king"] = {
            "samples": args.king_samples,
            "ours": ours("king", str(sub), str(work / "king_ours.parquet")),
            "plink2": plink2(
                "--pfile",
                str(merged),
                "--make-king-table",
                "--king-table-filter",
                "0.1",
                "--out",
                str(work / "king_plink"),
            ),  # fmt: skip
        }
    if "ancestry" in steps:
        rows["ancestry"] = {"ours": ours("ancestry", str(store), str(args.ancestry_samples),
                                         str(panel))}  # fmt: skip
    if "memory" in steps:
        rows["memory"] = {"qc": ours("qc", str(store)), "freq": ours("freq", str(store))}
    if "scale" in steps:
        n, m = (int(v) for v in args.memory_size.split("x"))
        big = dummy_store(work / f"dummy_{n}x{m}", n, m)
        rows["scale"] = {"samples": n, "variants": m,
                         "qc": ours("qc", str(big)), "freq": ours("freq", str(big))}  # fmt: skip
    for row in rows.values():
        if "plink2" in row:
            row["ratio_wall"] = row["plink2"]["seconds"] / row["ours"]["seconds"]
            row["ratio_cpu"] = row["plink2"]["cpu_seconds"] / row["ours"]["cpu_seconds_all"]
    version = subprocess.run(["plink2", "--version"], capture_output=True, text=True).stdout
    result.update(plink2=version.strip(), steps=rows, machine_at_end=machine())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if RESULTS.exists():  # a run of some steps keeps the other steps' figures
        kept = json.loads(RESULTS.read_text()).get("steps", {})
        result["steps"] = {**{k: v for k, v in kept.items() if k not in rows}, **rows}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"genomics: {result['inputs']['samples']:,} samples x "
                        f"{result['inputs']['variants']:,} variants")  # fmt: skip
    for col in ("step", "ours s", "plink2 s", "ratio (wall)", "peak RSS MB"):
        table.add_column(col, justify="right")
    for name, row in rows.items():
        mine = row.get("ours") or row.get("qc")
        peer = row.get("plink2", {})
        table.add_row(
            name, f"{mine['seconds']:.1f}", f"{peer.get('seconds', float('nan')):.1f}",
            f"{row.get('ratio_wall', float('nan')):.2f}", f"{mine['peak_rss_mb']:.0f}",
        )  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
