"""Use cases of the genomics area: QC of the cohort store with its report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from opencohort.config import Home
from opencohort.errors import NotFound
from opencohort.genomics import _store
from opencohort.genomics.executor import Executor
from opencohort.genomics.report import write_qc_report
from opencohort.genomics.sample_qc import SampleQcConfig, sample_qc
from opencohort.genomics.variant_qc import VariantQcConfig, variant_qc
from opencohort.genomics.workflow import advance_samples
from opencohort.registry import GenomicState

QC_REPORT_DIR = "genomics/reports/qc"
SAMPLE_QC_FILE = "sample_qc.parquet"


@dataclass(frozen=True)
class QcResult:
    """Tables and files of one QC run."""

    samples: pd.DataFrame
    variants: pd.DataFrame
    report: Path
    registry_notes: list[str] = field(default_factory=list)
    """Samples whose QC step the registry did not record, and why."""


def run_qc(
    home: Home,
    *,
    groups: pd.Series | None = None,
    sample_config: SampleQcConfig | None = None,
    variant_config: VariantQcConfig | None = None,
    progress: Callable[[str, float], None] | None = None,
    record_registry: bool = True,
    day: date | None = None,
    executor: Executor | None = None,
) -> QcResult:
    """Run sample and variant QC on the home's store and write tables and report.

    Writes ``genomics/store/sample_qc.parquet``, rewrites ``genomics/store/variants.parquet``
    with the QC columns, and writes ``genomics/reports/qc/report.html`` with its plots.
    With `record_registry`, each sample's ``qc_passed`` or ``qc_failed`` step is recorded
    in the registry on `day` (default today, UTC), audited; samples already there are left.
    `executor` runs the block kernels (default in this process; e.g. a Dask cluster from
    :func:`opencohort.genomics.executor.dask_cluster`).

    Raises
    ------
    NotFound
        If the home has no genotype store yet (run ``opencohort genomics ingest``).
    """
    root = _store.store_dir(home)
    if not (root / _store.SAMPLES_FILE).exists():
        raise NotFound(f"no genotype store in {root}; run 'opencohort genomics ingest DIR' first")
    samples = sample_qc(
        root, config=sample_config, groups=groups, progress=progress, executor=executor
    )
    variants = variant_qc(
        root, groups=groups, config=variant_config, progress=progress, executor=executor
    )
    samples.to_parquet(root / SAMPLE_QC_FILE, index=False)
    variants.to_parquet(root / _store.VARIANTS_FILE, index=False)
    report = write_qc_report(samples, variants, home.root / QC_REPORT_DIR)
    notes = []
    if record_registry:
        day = day or datetime.now(UTC).date()
        passed = samples["sample_qc_pass"].to_numpy(dtype=bool)
        ids = samples["sample_id"]
        notes = advance_samples(home, ids[passed], [GenomicState.QC_PASSED], day=day)
        notes += advance_samples(home, ids[~passed], [GenomicState.QC_FAILED], day=day)
    return QcResult(samples, variants, report, notes)
