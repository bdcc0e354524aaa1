"""The QC report: an HTML page with summary counts and PNG plots, written into the home."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.genomics.sample_qc import QC_FLAGS


def _plots(samples: pd.DataFrame, variants: pd.DataFrame, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].hist(samples["sample_call_rate"].dropna(), bins=40, color="#3b6ea8")
    axes[0].set(xlabel="sample call rate", ylabel="samples", title="Samples")
    axes[1].hist(variants["variant_call_rate"].dropna(), bins=40, color="#6a994e")
    axes[1].set(xlabel="variant call rate", ylabel="variants", title="Variants")
    axes[1].set_yscale("log")
    fig.tight_layout()
    fig.savefig(folder / "call_rate.png", dpi=100)
    plt.close(fig)
    names.append("call_rate.png")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    status = np.where(samples["sample_qc_pass"], "pass", "")
    for flag in QC_FLAGS:
        short = flag.removeprefix("sample_").removesuffix("_flag")
        status = np.where((status == "") & samples[flag], short, status)
    for label in sorted(set(status)):
        m = status == label
        ax.scatter(
            samples.loc[m, "sample_call_rate"],
            samples.loc[m, "sample_het_rate"],
            s=8 if label == "pass" else 22,
            color="#9a9a9a" if label == "pass" else None,
            alpha=0.5 if label == "pass" else 0.9,
            label=f"{label} ({int(m.sum())})",
        )
    ax.set(xlabel="call rate", ylabel="heterozygosity rate", title="Samples by QC flag")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(folder / "het_vs_call_rate.png", dpi=100)
    plt.close(fig)
    names.append("het_vs_call_rate.png")
    return names


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, border=0, classes="qc", na_rep="")


def write_qc_report(
    samples: pd.DataFrame, variants: pd.DataFrame, folder: Path, *, counts: dict | None = None
) -> Path:
    """Write ``report.html`` and its plots into ``folder`` and return the HTML path.

    Parameters
    ----------
    samples
        The table of :func:`~opencohort.genomics.sample_qc.sample_qc`.
    variants
        The table of :func:`~opencohort.genomics.variant_qc.variant_qc`.
    folder
        Output folder (created).
    counts
        Release-level counts (samples left out per reason, annotation counts), shown first.
    """
    folder.mkdir(parents=True, exist_ok=True)
    images = _plots(samples, variants, folder)
    sample_counts = pd.DataFrame(
        {
            "flag": [*QC_FLAGS, "sample_qc_pass"],
            "samples": [int(samples[f].sum()) for f in (*QC_FLAGS, "sample_qc_pass")],
        }
    )
    vflags = [col for col in variants.columns if col.endswith("_flag")] + ["variant_qc_pass"]
    variant_counts = pd.DataFrame(
        {"flag": vflags, "variants": [int(variants[f].sum()) for f in vflags]}
    )
    ids = [col for col in ("sample_id", "participant_id", "research_id") if col in samples]
    flagged = samples.loc[
        ~samples["sample_qc_pass"], [*ids, "sex_at_birth", "sample_genetic_sex", *QC_FLAGS]
    ]
    counts = counts or {}
    summary = _table(pd.DataFrame({"count": list(counts), "value": list(counts.values())}))
    body = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Genomic QC report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}
table.qc{{border-collapse:collapse}} table.qc td,table.qc th{{padding:2px 8px;
border-bottom:1px solid #ddd;text-align:left}}</style></head><body>
<h1>Genomic QC report</h1>
<p>{len(samples)} samples, {len(variants)} variants.</p>
{summary if counts else ""}
<h2>Samples</h2>{_table(sample_counts)}
<h2>Variants</h2>{_table(variant_counts)}
{"".join(f'<p><img src="{html.escape(n)}" alt="{html.escape(n)}"></p>' for n in images)}
<h2>Flagged samples</h2>{_table(flagged)}
</body></html>
"""
    path = folder / "report.html"
    path.write_text(body)
    return path
