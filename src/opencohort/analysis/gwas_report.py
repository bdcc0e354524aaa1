"""GWAS outputs: plink2-compatible tables, Parquet, lambda GC, clumped loci and plots."""

from __future__ import annotations

import html
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
from scipy.special import chdtri

GENOME_WIDE = 5e-8
"""Conventional genome-wide significance threshold."""
CHI2_MEDIAN_1DF = 0.454936423119572
"""Median of the chi-squared distribution with one degree of freedom."""

_PLINK_COLUMNS = {
    "linear": ["BETA", "SE", "T_STAT"],
    "logistic": ["OR", "LOG(OR)_SE", "Z_STAT"],
}
_SUFFIX = {"linear": "glm.linear", "logistic": "glm.logistic.hybrid"}


def _fmt(values: pd.Series) -> pd.Series:
    """Format floats with 6 significant digits as plink2 does, NA for missing."""
    array = values.to_numpy(dtype=np.float64)
    text = np.char.mod("%.6g", np.nan_to_num(array))
    return pd.Series(np.where(np.isnan(array), "NA", text), index=values.index)


def plink_table(results: pd.DataFrame, *, model: str) -> pd.DataFrame:
    """One phenotype's results laid out as plink2 ``--glm hide-covar`` writes them, as text.

    Parameters
    ----------
    results
        Rows of one phenotype from :func:`~opencohort.analysis.linear_gwas` or
        :func:`~opencohort.analysis.logistic_gwas`.
    model
        ``"linear"`` or ``"logistic"`` (adds the ``FIRTH?`` column and reports OR).
    """
    beta, se, stat = _PLINK_COLUMNS[model]
    out = pd.DataFrame({"#CHROM": results["CHROM"], "POS": results["POS"]})
    for column in ("ID", "REF", "ALT", "A1"):
        out[column] = results[column]
    if model == "logistic":
        out["FIRTH?"] = np.where(results["firth"], "Y", "N")
    out["TEST"] = results["TEST"]
    out["OBS_CT"] = results["OBS_CT"]
    out[beta] = _fmt(np.exp(results["BETA"]) if model == "logistic" else results["BETA"])
    out[se] = _fmt(results["SE"])
    out[stat] = _fmt(results["STAT"])
    out["P"] = _fmt(results["P"])
    out["ERRCODE"] = results["ERRCODE"]
    return out


def write_results(results: pd.DataFrame, prefix: str | Path, *, model: str) -> list[Path]:
    """Write plink2-style ``<prefix>.<pheno>.glm.*`` tables and ``<prefix>.gwas.<model>.parquet``.

    Returns
    -------
    list of pathlib.Path
        The files written, Parquet last.
    """
    written = []
    for name, rows in results.groupby("phenotype", sort=False):
        path = Path(f"{prefix}.{name}.{_SUFFIX[model]}")
        plink_table(rows, model=model).to_csv(path, sep="\t", index=False)
        written.append(path)
    parquet = Path(f"{prefix}.gwas.{model}.parquet")
    results.to_parquet(parquet, index=False)
    written.append(parquet)
    return written


def lambda_gc(p_values: np.ndarray | pd.Series) -> float:
    """Genomic inflation: median 1-df chi-squared statistic implied by the p-values over 0.4549."""
    p = np.asarray(p_values, dtype=np.float64)
    p = p[np.isfinite(p) & (p > 0)]
    if p.size == 0:
        return float("nan")
    return float(np.median(chdtri(1, p)) / CHI2_MEDIAN_1DF)


def clump_loci(
    results: pd.DataFrame, *, p_threshold: float = GENOME_WIDE, window: int = 250_000
) -> pd.DataFrame:
    """Group significant variants into loci around index variants, by distance only.

    The most significant remaining variant becomes an index variant and claims every
    significant variant on its chromosome within ``window`` bp; repeat until none is left.

    Returns
    -------
    pandas.DataFrame
        One row per locus: phenotype, CHROM, index ID, POS, P, BETA, start, end, n_variants.
    """
    hits = results[results["P"] < p_threshold].sort_values("P", kind="stable")
    loci = []
    for (name, chrom), rows in hits.groupby(["phenotype", "CHROM"], sort=False):
        pos = rows["POS"].to_numpy()
        free = np.ones(len(rows), dtype=bool)
        for i in range(len(rows)):  # rows are in p order; one pass per locus, loci are few
            if not free[i]:
                continue
            member = free & (np.abs(pos - pos[i]) <= window)
            free &= ~member
            lead = rows.iloc[i]
            loci.append(
                {
                    "phenotype": name,
                    "CHROM": chrom,
                    "ID": lead["ID"],
                    "POS": lead["POS"],
                    "P": lead["P"],
                    "BETA": lead["BETA"],
                    "start": int(pos[member].min()),
                    "end": int(pos[member].max()),
                    "n_variants": int(member.sum()),
                }  # fmt: skip
            )
    columns = ["phenotype", "CHROM", "ID", "POS", "P", "BETA", "start", "end", "n_variants"]
    return pd.DataFrame(loci, columns=columns).sort_values("P", ignore_index=True)


def _pyplot() -> ModuleType:
    """matplotlib.pyplot on the non-interactive Agg backend (imported only when plotting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def manhattan_plot(results: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Save a Manhattan plot (-log10 p by chromosome and position) of one phenotype as PNG."""
    plt = _pyplot()
    rows = results[np.isfinite(results["P"]) & (results["P"] > 0)]
    chroms = list(dict.fromkeys(rows["CHROM"]))
    fig, ax = plt.subplots(figsize=(10, 4))
    offset, ticks = 0.0, []
    for k, chrom in enumerate(chroms):
        part = rows[rows["CHROM"] == chrom]
        x = part["POS"].to_numpy(dtype=float) + offset
        ax.scatter(x, -np.log10(part["P"]), s=4, color=("#1f4e79", "#6fa8dc")[k % 2])
        ticks.append((x.min() + x.max()) / 2 if len(x) else offset)
        offset = (x.max() if len(x) else offset) + 1e6
    ax.axhline(-np.log10(GENOME_WIDE), color="#c00000", linewidth=0.8, linestyle="--")
    ax.set_xticks(ticks, chroms)
    ax.set_xlabel("chromosome")
    ax.set_ylabel("-log10(p)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def qq_plot(results: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Save a QQ plot of observed against expected -log10 p, with lambda GC, as PNG."""
    plt = _pyplot()
    p = np.sort(results["P"].to_numpy(dtype=float))
    p = p[np.isfinite(p) & (p > 0)]
    expected = -np.log10((np.arange(1, p.size + 1) - 0.5) / max(p.size, 1))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(expected, -np.log10(p), s=4, color="#1f4e79")
    top = max(expected.max(initial=1.0), 1.0)
    ax.plot([0, top], [0, top], color="#c00000", linewidth=0.8)
    ax.set_xlabel("expected -log10(p)")
    ax.set_ylabel("observed -log10(p)")
    ax.set_title(f"{title} lambda GC = {lambda_gc(p):.3f}".strip())
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _short(value: float) -> str:
    return f"{value:.4g}"


def html_summary(
    summary: pd.DataFrame, loci: pd.DataFrame, images: dict[str, list[str]], path: str | Path
) -> Path:
    """Write a small self-contained HTML page: per-phenotype summary, loci table and plots."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>GWAS summary</title></head>",
        "<body><h1>GWAS summary</h1>",
        summary.to_html(index=False, float_format=lambda v: f"{v:.4g}"),
        "<h2>Loci (p &lt; 5e-8, 250 kb windows)</h2>",
        loci.to_html(index=False, float_format=lambda v: f"{v:.4g}")
        if len(loci)
        else "<p>none</p>",
    ]
    for name, files in images.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.extend(f"<img src='{html.escape(f)}' alt='{html.escape(f)}'>" for f in files)
    parts.append("</body></html>")
    Path(path).write_text("\n".join(parts))
    return Path(path)
