"""Association analysis: phenotypes from releases, GWAS and PheWAS, with tables and plots."""

from opencohort.analysis._pgen import PFile, iter_dosage_blocks
from opencohort.analysis.gwas import RESULT_COLUMNS, linear_gwas, logistic_gwas
from opencohort.analysis.gwas_report import (
    clump_loci,
    html_summary,
    lambda_gc,
    manhattan_plot,
    plink_table,
    qq_plot,
    write_results,
)
from opencohort.analysis.phenotypes import (
    DEFAULT_TRAITS,
    MeasurementTrait,
    PhenotypeOptions,
    build_phenotypes,
    covariates,
    measurement_traits,
    phecode_counts,
    phecode_traits,
    source_codes,
    write_phenotypes,
)
from opencohort.analysis.phewas import PHEWAS_COLUMNS, phewas, read_exposure, variant_dosage
from opencohort.analysis.phewas_report import write_phewas

__all__ = [
    "DEFAULT_TRAITS",
    "PHEWAS_COLUMNS",
    "MeasurementTrait",
    "PhenotypeOptions",
    "build_phenotypes",
    "covariates",
    "measurement_traits",
    "phecode_counts",
    "phecode_traits",
    "phewas",
    "read_exposure",
    "source_codes",
    "variant_dosage",
    "write_phenotypes",
    "write_phewas",
    "RESULT_COLUMNS",
    "PFile",
    "clump_loci",
    "html_summary",
    "iter_dosage_blocks",
    "lambda_gc",
    "linear_gwas",
    "logistic_gwas",
    "manhattan_plot",
    "plink_table",
    "qq_plot",
    "write_results",
]
