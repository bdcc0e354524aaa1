"""Column names of the genomics tables (to move into ``opencohort/columns.py`` when it exists)."""

from __future__ import annotations

VARIANT_ID = "variant_id"
CHROM = "chrom"
POS = "pos"
REF = "ref"
ALT = "alt"
VARIANT_CALL_RATE = "variant_call_rate"
VARIANT_AC = "variant_ac"
VARIANT_AN = "variant_an"
VARIANT_AF = "variant_af"
VARIANT_N_HET = "variant_n_het"
VARIANT_N_HOM_ALT = "variant_n_hom_alt"
VARIANT_COLUMNS = (
    VARIANT_ID,
    CHROM,
    POS,
    REF,
    ALT,
    VARIANT_CALL_RATE,
    VARIANT_AC,
    VARIANT_AN,
    VARIANT_AF,
    VARIANT_N_HET,
    VARIANT_N_HOM_ALT,
)

SAMPLE_ID = "sample_id"
PARTICIPANT_ID = "participant_id"
SEX_AT_BIRTH = "sex_at_birth"
GENOME_CENTER = "genome_center"
BATCH = "batch"
COLLECTION_DATE = "collection_date"
MANIFEST_COLUMNS = (SAMPLE_ID, PARTICIPANT_ID, SEX_AT_BIRTH, GENOME_CENTER, BATCH, COLLECTION_DATE)
DELIVERY = "sample_delivery"
CONTIGS = "sample_contigs"
HAPLOID_CONTIGS = "sample_haploid_contigs"
