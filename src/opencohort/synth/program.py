"""Generate a whole synthetic program: feeds, site EHR, wearables, genomes and the planted truth.

Two passes over participant batches keep memory bounded whatever the size: the first writes the
registry feed and wearables and picks who is sequenced; genomes are then simulated; the second
regenerates each batch (batches are pure functions of the seed and index) and writes phenotypes,
physical measurements and site EHR submissions driven by the genotypes.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.errors import ConfigError
from opencohort.progress import Step
from opencohort.synth.ehr import write_site_submissions
from opencohort.synth.feed import MAIL_KIT_TEST, ON_SITE_TESTS, write_feed, write_sites
from opencohort.synth.genomes import GenomeResult, population_dosage, simulate_genomes
from opencohort.synth.measurements import write_physical_measurements
from opencohort.synth.models import SynthConfig
from opencohort.synth.participants import participant_batch, site_table
from opencohort.synth.traits import assign_effects, phenotypes
from opencohort.synth.wearables import write_wearables

ANCESTRY_COLUMNS = ["anc_afr", "anc_eur", "anc_eas", "anc_sas", "anc_mid", "anc_nat"]
SUMMARY_FILE = "summary.json"
_SUMMARY_CATEGORIES = ("race_ethnicity", "sex_at_birth", "site_id", "ubr", "withdrawal_status")
_DOSAGE_STREAM = 7301


def genome_eligible(batch: pd.DataFrame) -> pd.Series:
    """Who may be sequenced: primary and genomic consent, DNA received, not withdrawn."""
    return (
        batch["primary_consent_date"].notna()
        & batch["gror_consent_date"].notna()
        & batch["dna_received_date"].notna()
        & batch["withdrawal_date"].isna()
    )


def generate_program(
    config: SynthConfig, out: Path, *, force: bool = False, step: Step | None = None
) -> dict:
    """Write the synthetic program for `config` into `out` and return its summary.

    Parameters
    ----------
    config
        Sizes, seed and error rates; validated on construction.
    out
        Output directory: ``registry/``, ``ehr/<site>/``, ``wearables/``, ``genomes/``, ``truth/``
        and ``summary.json``.
    force
        Replace `out` if it already holds files.
    step
        Called as ``step(stage, fraction_done)`` to report progress.

    Raises
    ------
    ConfigError
        If `out` is not empty and `force` is not set.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise ConfigError(f"{out} is not empty; choose a new --out or pass --force")
        shutil.rmtree(out)
    (out / "truth").mkdir(parents=True)
    report = step or (lambda stage, done: None)

    counts: Counter[str] = Counter()
    categories: dict[str, Counter] = {name: Counter() for name in _SUMMARY_CATEGORIES}
    sites = site_table(config)
    counts["registry/sites.csv"] += write_sites(config, out)

    chosen: list[pd.DataFrame] = []
    n_chosen = 0
    for index, batch in _batches(config):
        first = index == 0
        counts.update(_prefixed("registry", write_feed(batch, config, out, append=not first)))
        counts.update(_prefixed("wearables", write_wearables(batch, config, out, append=not first)))
        _append(
            batch[["participant_id", "race_ethnicity", *ANCESTRY_COLUMNS]],
            out / "truth/ancestry.csv",
            first,
        )
        withdrawn = batch.loc[
            batch["withdrawal_date"].notna(),
            ["participant_id", "withdrawal_date", "withdrawal_status"],
        ]
        _append(withdrawn, out / "truth/withdrawals.csv", first)
        for name, counter in categories.items():
            counter.update(batch[name].astype(str).tolist())
        if n_chosen < config.genomes:
            take = batch[genome_eligible(batch)].head(config.genomes - n_chosen)
            chosen.append(take)
            n_chosen += len(take)
        report("participants", (index + 1) / config.n_batches)

    genomed = (
        pd.concat(chosen, ignore_index=True) if chosen else participant_batch(config, 0).head(0)
    )
    genomed = _with_dna_samples(genomed, out / "registry" / "biospecimens.csv")
    genomes = simulate_genomes(
        genomed, config, out, progress=lambda s, f: report(f"genomes: {s}", f)
    )
    # timings (ms_*) are left out so that the summary is the same bytes for the same seed
    counts.update({f"genomes/{k}": v for k, v in genomes.counts.items() if not k.startswith("ms_")})
    effects = assign_effects(genomes.candidates, config)
    effects.to_csv(out / "truth/effects.csv", index=False)

    errors_written = 0
    for index, batch in _batches(config):
        first = index == 0
        dosage = _dosage(batch, genomes, config, index)
        pheno = phenotypes(
            batch, dosage, effects, list(genomes.candidates["variant_id"]), config, index=index
        )
        _append(pheno, out / "truth/phenotypes.csv", first)
        counts["registry/physical_measurements.csv"] += write_physical_measurements(
            batch, pheno, config, out, append=not first
        )
        ehr_counts, errors = write_site_submissions(
            batch, pheno, sites, config, out, append=not first
        )
        counts.update(ehr_counts)
        _append(errors, out / "truth/errors.csv", errors_written == 0)
        errors_written += len(errors)
        report("EHR", (index + 1) / config.n_batches)

    summary = {
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "participants": config.participants,
        "genomes": len(genomed),
        "injected_errors": errors_written,
        "categories": {name: dict(sorted(c.items())) for name, c in categories.items()},
        "rows": dict(sorted(counts.items())),
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def _with_dna_samples(people: pd.DataFrame, biospecimens: Path) -> pd.DataFrame:
    """Add each person's first and second received DNA sample ids from the biospecimen feed.

    The first is the one the registry sends for sequencing (earliest received, then lowest
    id); genome deliveries name samples by it, so the registry knows every delivered sample.
    """
    if not len(people) or not biospecimens.is_file():
        return people
    samples = pd.read_csv(biospecimens, dtype=str, keep_default_na=False)
    dna_tests = [code for code, _, dna in ON_SITE_TESTS if dna] + [MAIL_KIT_TEST]
    dna = samples[samples["test_code"].isin(dna_tests) & (samples["sample_status"] == "received")]
    dna = dna.sort_values(["participant_id", "received_date", "sample_id"])
    rank = dna.groupby("participant_id").cumcount()
    first = dna[rank == 0].set_index("participant_id")["sample_id"]
    second = dna[rank == 1].set_index("participant_id")["sample_id"]
    ids = people["participant_id"].astype(str)
    return people.assign(dna_sample_id=ids.map(first), dna_sample_id_2=ids.map(second))


def _prefixed(folder: str, counts: dict[str, int]) -> dict[str, int]:
    return {f"{folder}/{name}": rows for name, rows in counts.items()}


def _batches(config: SynthConfig) -> Iterator[tuple[int, pd.DataFrame]]:
    for index in range(config.n_batches):
        yield index, participant_batch(config, index)


def _dosage(
    batch: pd.DataFrame, genomes: GenomeResult, config: SynthConfig, index: int
) -> np.ndarray:
    """Causal-variant dosages: true genotypes for the sequenced, ancestry-based draws for others."""
    rng = np.random.default_rng([config.seed, _DOSAGE_STREAM, index])
    dosage = population_dosage(genomes.candidates, batch[ANCESTRY_COLUMNS].to_numpy(), rng)
    row_of = {pid: row for row, pid in enumerate(genomes.sample_ids)}
    rows = batch["participant_id"].map(row_of)
    have = rows.notna().to_numpy()
    if have.any():
        dosage[have] = genomes.dosage[rows[have].astype(int).to_numpy()]
    return dosage


def _append(frame: pd.DataFrame, path: Path, first: bool) -> None:
    frame.to_csv(path, mode="w" if first else "a", header=first, index=False)
