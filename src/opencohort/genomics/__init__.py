"""Genomics: genome-centre deliveries to a quality-controlled cohort genotype store."""

from opencohort.genomics._vcf_reader import GenotypeFilter, Problem, VcfCalls, read_vcf
from opencohort.genomics.delivery import (
    Delivery,
    IngestResult,
    find_deliveries,
    ingest,
    ingest_delivery,
    parse_delivery,
    variant_stats,
)
from opencohort.genomics.report import write_qc_report
from opencohort.genomics.sample_qc import SampleQcConfig, sample_qc
from opencohort.genomics.service import QcResult, run_qc
from opencohort.genomics.variant_qc import VariantQcConfig, genotype_counts, variant_qc

__all__ = [
    "Delivery",
    "GenotypeFilter",
    "IngestResult",
    "Problem",
    "QcResult",
    "SampleQcConfig",
    "VariantQcConfig",
    "VcfCalls",
    "find_deliveries",
    "genotype_counts",
    "ingest",
    "ingest_delivery",
    "parse_delivery",
    "read_vcf",
    "run_qc",
    "sample_qc",
    "variant_qc",
    "variant_stats",
    "write_qc_report",
]
