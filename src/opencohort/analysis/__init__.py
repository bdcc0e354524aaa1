"""Association analysis: GWAS scans on PLINK 2 filesets, with plink2-style tables and plots."""

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

__all__ = [
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
