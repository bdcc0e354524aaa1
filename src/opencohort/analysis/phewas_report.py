"""PheWAS outputs: TSV and Parquet tables, the PheWAS Manhattan plot and an HTML summary."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd


def bonferroni(results: pd.DataFrame, alpha: float = 0.05) -> float:
    """The Bonferroni p-value threshold over the tested phecodes (alpha when none)."""
    return alpha / max(len(results), 1)


def manhattan_plot(results: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Write a PheWAS Manhattan PNG: phecodes by category, -log10 p, triangles by effect sign.

    The dashed line is the Bonferroni threshold; the ten smallest p-values under it are
    labelled with their phecode titles.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = results.dropna(subset=["p_value"]).sort_values(["phecode_category", "phecode"])
    data = data.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(12, 5))
    colours = plt.get_cmap("tab20")
    ticks, labels = [], []
    for k, (category, part) in enumerate(data.groupby("phecode_category", sort=False)):
        y = part["neg_log_p_value"].to_numpy()
        up = part["beta"].to_numpy() > 0
        for mask, marker in ((up, "^"), (~up, "v")):
            ax.scatter(part.index[mask], y[mask], s=14, marker=marker, color=colours(k % 20))
        ticks.append(part.index.to_numpy().mean())
        labels.append(str(category))
    line = -np.log10(bonferroni(results))
    ax.axhline(line, color="grey", linestyle="--", linewidth=0.8)
    for i, row in data[data["neg_log_p_value"] > line].nsmallest(10, "p_value").iterrows():
        ax.annotate(str(row["phecode_string"])[:40], (i, row["neg_log_p_value"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")  # fmt: skip
    ax.set_xticks(ticks, labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("-log10 p")
    ax.set_title(title or "PheWAS")
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def write_phewas(results: pd.DataFrame, out: str | Path, *, title: str = "") -> dict[str, Path]:
    """Write ``phewas.tsv``, ``phewas.parquet``, ``phewas.manhattan.png`` and ``summary.html``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "tsv": out / "phewas.tsv",
        "parquet": out / "phewas.parquet",
        "manhattan": out / "phewas.manhattan.png",
        "html": out / "summary.html",
    }
    results.to_csv(paths["tsv"], sep="\t", index=False, na_rep="NA")
    results.to_parquet(paths["parquet"], index=False)
    manhattan_plot(results, paths["manhattan"], title=title)
    threshold = bonferroni(results)
    hits = results[results["p_value"] < threshold]
    top = results.head(20)[
        ["phecode", "phecode_string", "cases", "controls", "beta", "standard_error",
         "p_value", "odds_ratio", "odds_ratio_low", "odds_ratio_high", "converged", "firth"]
    ]  # fmt: skip
    page = [
        "<!doctype html><html><head><meta charset='utf-8'><title>PheWAS summary</title></head>",
        f"<body><h1>{html.escape(title or 'PheWAS')}</h1>",
        f"<p>{len(results)} phecodes tested; Bonferroni threshold {threshold:.3g}; "
        f"{len(hits)} below it; {int((~results['converged']).sum())} not converged; "
        f"{int(results['firth'].sum())} Firth fits.</p>",
        "<h2>Top 20</h2>",
        top.to_html(index=False, float_format=lambda v: f"{v:.4g}"),
        f"<img src='{paths['manhattan'].name}' alt='PheWAS Manhattan plot'>",
        "</body></html>",
    ]
    paths["html"].write_text("\n".join(page))
    return paths
