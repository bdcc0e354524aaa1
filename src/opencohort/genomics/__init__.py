"""Genomics: genome-centre deliveries to a quality-controlled cohort genotype store."""

from opencohort.genomics._vcf_reader import GenotypeFilter, Problem, VcfCalls, read_vcf
from opencohort.genomics.ancestry import (
    AncestryConfig,
    AncestryModel,
    AncestryResult,
    AncestryRun,
    ReferencePanel,
    classify,
    fit_ancestry,
    infer_ancestry,
    plot_ancestry,
    project_genotypes,
    project_store,
    read_panel,
    run_ancestry,
    select_sites,
)
from opencohort.genomics.annotation import (
    GeneModels,
    annotate_genes,
    annotate_novelty,
    gencode_models,
    read_known_variants,
    release_counts,
)
from opencohort.genomics.delivery import (
    Delivery,
    IngestResult,
    find_deliveries,
    ingest,
    ingest_delivery,
    parse_delivery,
    variant_stats,
)
from opencohort.genomics.executor import (
    DaskExecutor,
    Executor,
    LocalExecutor,
    dask_cluster,
    executor_for,
)
from opencohort.genomics.export import export_store
from opencohort.genomics.frequencies import allele_frequencies
from opencohort.genomics.kinship import king_degree, king_kinship, maximal_unrelated, run_kinship
from opencohort.genomics.release import (
    check_genomic_release,
    released_samples,
    write_genomic_release,
)
from opencohort.genomics.report import write_qc_report
from opencohort.genomics.sample_qc import SampleQcConfig, sample_qc
from opencohort.genomics.service import QcResult, run_qc
from opencohort.genomics.thousand_genomes import (
    ThousandGenomes,
    read_thousand_genomes,
    thousand_genomes_panel,
)
from opencohort.genomics.variant_qc import VariantQcConfig, genotype_counts, variant_qc
from opencohort.genomics.workflow import advance_samples, refused_samples

__all__ = [
    "AncestryConfig",
    "AncestryModel",
    "AncestryResult",
    "AncestryRun",
    "DaskExecutor",
    "Delivery",
    "Executor",
    "GeneModels",
    "GenotypeFilter",
    "IngestResult",
    "LocalExecutor",
    "Problem",
    "QcResult",
    "ReferencePanel",
    "SampleQcConfig",
    "ThousandGenomes",
    "VariantQcConfig",
    "VcfCalls",
    "advance_samples",
    "allele_frequencies",
    "annotate_genes",
    "annotate_novelty",
    "check_genomic_release",
    "classify",
    "dask_cluster",
    "executor_for",
    "export_store",
    "find_deliveries",
    "fit_ancestry",
    "gencode_models",
    "genotype_counts",
    "infer_ancestry",
    "ingest",
    "ingest_delivery",
    "king_degree",
    "king_kinship",
    "maximal_unrelated",
    "parse_delivery",
    "plot_ancestry",
    "project_genotypes",
    "project_store",
    "read_known_variants",
    "read_panel",
    "read_thousand_genomes",
    "read_vcf",
    "refused_samples",
    "release_counts",
    "released_samples",
    "run_ancestry",
    "run_kinship",
    "run_qc",
    "sample_qc",
    "select_sites",
    "thousand_genomes_panel",
    "variant_qc",
    "variant_stats",
    "write_genomic_release",
    "write_qc_report",
]
