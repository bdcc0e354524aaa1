"""The genomic part of a release: the Controlled tier's ``genomics/`` folder, and its checks.

The release builder calls :func:`write_genomic_release` with its temporary release folder
and the registry facts; ``release check`` calls :func:`check_genomic_release`. Only research
ids leave the program: sample and participant ids never appear in a released file.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np
import pandas as pd
import pgenlib

from opencohort.config import Home
from opencohort.errors import ReleaseError
from opencohort.genomics import _columns as c
from opencohort.genomics import _store
from opencohort.genomics._qc_kernels import chrx_nonpar
from opencohort.genomics.ancestry import ANCESTRY_FILE, SAMPLE_ANCESTRY
from opencohort.genomics.annotation import VARIANT_REGION_CLASS, home_annotator, release_counts
from opencohort.genomics.frequencies import ALL, allele_frequencies, frequency_column
from opencohort.genomics.kinship import KINSHIP_FILE, SAMPLE_ID_1, SAMPLE_ID_2
from opencohort.genomics.report import write_qc_report
from opencohort.genomics.service import SAMPLE_QC_FILE

GENOMICS = "genomics"
"""Folder of the genomic files in the Controlled tier."""
GENOTYPES = "genotypes"
"""Prefix of the released PLINK 2 files: ``genotypes.<contig>.pgen/.pvar/.psam``."""
VARIANTS, ANCESTRY, KINSHIP = "variants.parquet", "ancestry.parquet", "kinship.parquet"
QC_DIR = "qc"
RESEARCH_ID = "research_id"
RESEARCH_ID_1, RESEARCH_ID_2 = "research_id_1", "research_id_2"
#: Store columns counted over the whole cohort, replaced by counts on the released samples.
_COHORT_COUNTS = (c.VARIANT_CALL_RATE, c.VARIANT_AC, c.VARIANT_AN, c.VARIANT_AF,
                  c.VARIANT_N_HET, c.VARIANT_N_HOM_ALT)  # fmt: skip
#: Why a stored sample is left out of a release, in the order the reasons are tested.
EXCLUSIONS = ("not_in_registry", "withdrawn", "retracted", "no_genomic_consent",
              "qc_not_passed", "second_sample")  # fmt: skip
_TOKEN = re.compile(r"[A-Za-z0-9_]+")
Progress = Callable[[str, float], None]


def released_samples(
    samples: pd.DataFrame, qc: pd.DataFrame, people: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Store samples that go into a release, with their research id, and counts left out.

    Parameters
    ----------
    samples
        The store's sample table (sample_id, participant_id, ...), in store order.
    qc
        The sample QC table (sample_id, sample_call_rate, sample_qc_pass).
    people
        Registry facts: participant_id, research_id, no_use, gror_consent and optionally
        retracted (bool).

    Returns
    -------
    kept : pandas.DataFrame
        The kept rows of `samples` (store order, original index) with research_id added.
    left_out : dict
        Samples left out per reason of :data:`EXCLUSIONS` (a sample counts once, under the
        first reason that applies).

    Notes
    -----
    A participant with two passing samples (an undetected duplicate) is released once,
    with the sample of the higher call rate, so a research id is one column of the pgen.
    """
    facts = people.set_index("participant_id")
    pid = samples[c.PARTICIPANT_ID]
    known = pid.isin(facts.index)
    row = facts.reindex(pid)
    retracted = row["retracted"] if "retracted" in row else pd.Series(False, index=row.index)
    passed = samples[c.SAMPLE_ID].map(qc.set_index(c.SAMPLE_ID)["sample_qc_pass"]).eq(True)
    call_rate = samples[c.SAMPLE_ID].map(qc.set_index(c.SAMPLE_ID)["sample_call_rate"])
    tests = {
        "not_in_registry": ~known.to_numpy(),
        "withdrawn": row["no_use"].eq(True).to_numpy(),
        "retracted": retracted.eq(True).to_numpy(),
        "no_genomic_consent": ~row["gror_consent"].eq(True).to_numpy(),
        "qc_not_passed": ~passed.to_numpy(),
    }
    out = np.zeros(len(samples), dtype=bool)
    left_out = {}
    for reason, test in tests.items():
        left_out[reason] = int((test & ~out).sum())
        out |= test
    ranked = pd.DataFrame(
        {"pid": pid.to_numpy(), "rate": call_rate.to_numpy(), "row": range(len(samples))}
    )
    ranked = ranked[~out].sort_values(["pid", "rate", "row"], ascending=[True, False, True])
    second = ranked["row"].to_numpy()[ranked["pid"].duplicated().to_numpy()]
    left_out["second_sample"] = len(second)
    out[second] = True
    kept = samples[~out].copy()
    kept[RESEARCH_ID] = row["research_id"].to_numpy()[~out].astype(np.int64)
    return kept, left_out


def _psam(kept: pd.DataFrame) -> pd.DataFrame:
    """IID = research id; SEX = 1 where chrX was called haploid, 2 where diploid, else NA.

    SEX follows the calls' ploidy, which decides how plink2 counts chrX alleles, so the
    released frequencies are what ``plink2 --freq`` gives (sex at birth is in the person
    table).
    """
    haploid = kept[c.HAPLOID_CONTIGS].map(lambda v: bool({"chrX", "X"} & set(str(v).split(","))))
    diploid = kept[c.CONTIGS].map(lambda v: bool({"chrX", "X"} & set(str(v).split(","))))
    sex = np.where(haploid, "1", np.where(diploid, "2", "NA"))
    return pd.DataFrame({"#IID": kept[RESEARCH_ID].astype(str).to_numpy(), "SEX": sex})


def _copy_pgen(source: Path, target: Path, n_samples: int, keep: np.ndarray,
               columns: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Write the variants `keep` (bool per source variant) of `columns` of a pgen, by blocks.

    Returns the number of called samples of each written variant.
    """
    called = []
    subset = None if columns is None else np.ascontiguousarray(columns, dtype=np.uint32)
    writer = pgenlib.PgenWriter(str(target).encode(), n_samples, variant_ct=int(keep.sum()),
                                nonref_flags=False)  # fmt: skip
    with pgenlib.PgenReader(str(source).encode(), sample_subset=subset) as reader:
        n_var = reader.get_variant_ct()
        for start in range(0, n_var, _store.READ_BLOCK):
            stop = min(n_var, start + _store.READ_BLOCK)
            block = np.empty((stop - start, n_samples), dtype=np.int8)
            reader.read_range(start, stop, block)
            chosen = block[keep[start:stop]]
            if len(chosen):
                writer.append_biallelic_batch(np.ascontiguousarray(chosen))
                called.append((chosen >= 0).sum(axis=1))
    writer.close()
    return np.concatenate(called) if called else np.zeros(0, dtype=np.int64)


def _scratch_store(root: Path, scratch: Path, kept: pd.DataFrame, n_store: int) -> None:
    """A store of the kept samples only, sample ids replaced by research ids."""
    columns = kept.index.to_numpy()
    samples = kept.assign(**{c.SAMPLE_ID: kept[RESEARCH_ID].astype(str)})
    samples = samples[[c.SAMPLE_ID, c.SEX_AT_BIRTH, c.HAPLOID_CONTIGS]].reset_index(drop=True)
    for contig in _store.store_contigs(root):
        n_var = len(_store.read_pvar(root / f"{contig}.pvar"))
        every = np.ones(n_var, dtype=bool)
        subset = None if len(columns) == n_store else columns
        _copy_pgen(root / f"{contig}.pgen", scratch / f"{contig}.pgen", len(kept), every, subset)
        (scratch / f"{contig}.pvar").write_bytes((root / f"{contig}.pvar").read_bytes())
    samples.to_parquet(scratch / _store.SAMPLES_FILE, index=False)
    _store.read_variants(root).to_parquet(scratch / _store.VARIANTS_FILE, index=False)


def _read_optional(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.is_file() else None


def write_genomic_release(
    home: Home,
    tier_dir: Path,
    people: pd.DataFrame,
    *,
    annotate: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    progress: Progress | None = None,
) -> dict | None:
    """Write ``<tier_dir>/genomics/`` from the home's genotype store; return its manifest record.

    Parameters
    ----------
    home
        The program home (its ``genomics/store`` and the ancestry, kinship and QC tables).
    tier_dir
        The Controlled tier folder of the release being built.
    people
        Registry facts at build time (see :func:`released_samples`).
    annotate
        Adds annotation columns to the released variant table (default:
        :func:`~opencohort.genomics.annotation.home_annotator`: GENCODE genes and region
        classes, novelty against the home's ``[genomics] known_variants`` list).
    progress
        Called with a label and the fraction of contigs done.

    Returns
    -------
    dict or None
        None when the home has no genotype store (nothing is written); else samples,
        variants, contigs, left_out (counts per reason), ancestry groups (sample counts
        per group) and the annotation counts
        (:func:`~opencohort.genomics.annotation.release_counts`).

    Raises
    ------
    ReleaseError
        If the store exists but sample QC has not been run.

    Notes
    -----
    1. Samples: :func:`released_samples`.
    2. A scratch store of those samples (pgen columns subset block by block, IID = research
       id) outside the release folder; per-ancestry counts on it with
       :func:`~opencohort.genomics.frequencies.allele_frequencies`.
    3. Variants with no alternate allele among the released samples are dropped (a variant
       seen only in a withdrawn participant would otherwise still show in the release).
    4. ``genotypes.<contig>.pgen/.pvar/.psam``, ``variants.parquet`` (QC flags of the store,
       counts of the released samples, annotation), ``ancestry.parquet``,
       ``kinship.parquet`` (pairs of released samples) and ``qc/report.html``.
    """
    root = _store.store_dir(home)
    samples = _store.read_samples(root)
    if samples.empty:
        return None
    qc = _read_optional(root / SAMPLE_QC_FILE)
    if qc is None:
        raise ReleaseError(f"the genotype store {root} has no sample QC; run 'opencohort "
                           "genomics qc' before building a release")  # fmt: skip
    annotate = annotate or home_annotator(home.settings, home.root)
    samples = samples.reset_index(drop=True)
    kept, left_out = released_samples(samples, qc, people)
    out = tier_dir / GENOMICS
    out.mkdir(parents=True, exist_ok=True)
    ancestry = _read_optional(home.root / ANCESTRY_FILE)
    ancestry = _released_rows(ancestry, kept, c.SAMPLE_ID) if ancestry is not None else None
    groups = None if ancestry is None else ancestry.set_index(RESEARCH_ID)[SAMPLE_ANCESTRY]
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".release-") as tmp:
        scratch = Path(tmp)
        _scratch_store(root, scratch, kept, len(samples))
        by_id = None if groups is None else groups.set_axis(groups.index.astype(str))
        freq = allele_frequencies(scratch, groups=by_id, progress=progress)
        keep = freq[frequency_column("ac", ALL)].to_numpy() > 0
        contigs = _store.store_contigs(scratch)
        called = []
        for contig in contigs:
            mask = keep[(freq[c.CHROM] == contig).to_numpy()]
            prefix = out / f"{GENOTYPES}.{contig}"
            called.append(_copy_pgen(scratch / f"{contig}.pgen", Path(f"{prefix}.pgen"),
                                     len(kept), mask))  # fmt: skip
            pvar = _store.read_pvar(scratch / f"{contig}.pvar")[mask]
            pvar = pvar.rename(columns={c.CHROM: "#CHROM", c.POS: "POS", c.VARIANT_ID: "ID",
                                        c.REF: "REF", c.ALT: "ALT"})  # fmt: skip
            pvar.to_csv(f"{prefix}.pvar", sep="\t", index=False)
            _psam(kept).to_csv(f"{prefix}.psam", sep="\t", index=False)
    store_variants = _store.read_variants(root).drop(columns=list(_COHORT_COUNTS))
    variants = freq[keep].reset_index(drop=True)
    n_called = np.concatenate(called) if called else np.zeros(0)
    variants.insert(5, c.VARIANT_CALL_RATE, n_called / len(kept) if len(kept) else np.nan)
    variants = variants.merge(store_variants, on=[c.VARIANT_ID, c.CHROM, c.POS, c.REF, c.ALT],
                                how="left")  # fmt: skip
    variants = annotate(variants)
    counts = release_counts(variants) if VARIANT_REGION_CLASS in variants else {}
    variants.to_parquet(out / VARIANTS, index=False)
    if ancestry is not None:
        ancestry.to_parquet(out / ANCESTRY, index=False)
    pairs = _released_pairs(_read_optional(home.root / KINSHIP_FILE), kept)
    if pairs is not None:
        pairs.to_parquet(out / KINSHIP, index=False)
    _write_report(qc, kept, variants, out / QC_DIR, {**left_out, **counts})
    return {
        "samples": len(kept),
        "variants": len(variants),
        "contigs": contigs,
        "left_out": left_out,
        "ancestry": {} if groups is None else {str(k): int(v) for k, v in
                                               groups.value_counts().sort_index().items()},
        "annotation": counts,
    }  # fmt: skip


def _released_rows(frame: pd.DataFrame, kept: pd.DataFrame, on: str) -> pd.DataFrame:
    """Rows of a per-sample table for the kept samples, ids replaced by the research id."""
    ids = kept.set_index(c.SAMPLE_ID)[RESEARCH_ID]
    rows = frame[frame[on].isin(ids.index)]
    body = rows.drop(columns=[col for col in (c.SAMPLE_ID, c.PARTICIPANT_ID) if col in rows])
    body.insert(0, RESEARCH_ID, rows[on].map(ids).to_numpy())
    return body.reset_index(drop=True)


def _released_pairs(pairs: pd.DataFrame | None, kept: pd.DataFrame) -> pd.DataFrame | None:
    """Kinship pairs of two kept samples, as research ids."""
    if pairs is None:
        return None
    ids = kept.set_index(c.SAMPLE_ID)[RESEARCH_ID]
    both = pairs[pairs[SAMPLE_ID_1].isin(ids.index) & pairs[SAMPLE_ID_2].isin(ids.index)]
    ids_columns = [col for col in both.columns if col.startswith(("sample_id_", "participant_id_"))]
    body = both.drop(columns=ids_columns)
    body.insert(0, RESEARCH_ID_2, both[SAMPLE_ID_2].map(ids).to_numpy())
    body.insert(0, RESEARCH_ID_1, both[SAMPLE_ID_1].map(ids).to_numpy())
    return body.reset_index(drop=True)


def _write_report(qc: pd.DataFrame, kept: pd.DataFrame, variants: pd.DataFrame, folder: Path,
                  counts: dict) -> Path:  # fmt: skip
    """The QC report of the released samples and variants (research ids only)."""
    rows = _released_rows(qc, kept, c.SAMPLE_ID)
    rows = rows.drop(columns=[col for col in rows.columns if col.endswith(("_of", "_with"))])
    return write_qc_report(rows, variants, folder, counts=counts)


def recount(folder: Path) -> pd.DataFrame:
    """Alternate-allele counts and called alleles of every released variant, from its pgen.

    Counts as ``plink2 --freq`` does: psam SEX 1 (male) samples are haploid on chrX outside
    the pseudo-autosomal regions, where a stored 2 is one allele.

    Returns
    -------
    pandas.DataFrame
        variant_id, variant_ac_all, variant_an_all.
    """
    parts = []
    for pvar_path in sorted(folder.glob(f"{GENOTYPES}.*.pvar")):
        prefix = pvar_path.with_suffix("")
        pvar = _store.read_pvar(pvar_path)
        psam = pd.read_csv(f"{prefix}.psam", sep="\t", dtype=str, keep_default_na=False)
        male = (psam["SEX"] == "1").to_numpy()
        ac = np.zeros(len(pvar), dtype=np.int64)
        an = np.zeros(len(pvar), dtype=np.int64)
        is_x = re.sub(r"^chr", "", prefix.suffix.lstrip(".")) == "X"
        hemi = chrx_nonpar(pvar[c.POS].to_numpy()) if is_x else np.zeros(len(pvar), dtype=bool)
        for start, g in _store.iter_blocks(Path(f"{prefix}.pgen")):
            rows = slice(start, start + len(g))
            called = g >= 0
            one = hemi[rows][:, None] & male[None, :]
            alleles = np.where(called, np.where(one, g // 2, g), 0)
            ac[rows] = alleles.sum(axis=1)
            an[rows] = np.where(called, np.where(one, 1, 2), 0).sum(axis=1)
        parts.append(pd.DataFrame({c.VARIANT_ID: pvar[c.VARIANT_ID].to_numpy(),
                                   frequency_column("ac", ALL): ac,
                                   frequency_column("an", ALL): an}))  # fmt: skip
    columns = [c.VARIANT_ID, frequency_column("ac", ALL), frequency_column("an", ALL)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


def _tokens(path: Path) -> set[str]:
    """Every word of a text file, or every string value and column name of a Parquet file."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        words = {str(col) for col in frame.columns}
        for col in frame.columns:
            if frame[col].dtype == object:
                words |= {w for v in frame[col].dropna().unique() for w in _TOKEN.findall(str(v))}
        return words
    return set(_TOKEN.findall(path.read_text(errors="replace")))


def genomic_identifiers(home: Home) -> set[str]:
    """Every sample id of the home's genotype store and of its raw deliveries' manifests."""
    from opencohort.genomics.delivery import MANIFEST, RAW_SUBDIR

    samples = _store.read_samples(_store.store_dir(home))
    ids = set(samples[c.SAMPLE_ID]) if len(samples) else set()
    for manifest in sorted((home.raw / RAW_SUBDIR).glob(f"*/{MANIFEST}")):
        ids |= set(pd.read_csv(manifest, dtype=str, usecols=[c.SAMPLE_ID])[c.SAMPLE_ID])
    return ids


def check_genomic_release(
    folder: Path,
    *,
    persons: Collection[int],
    withdrawn: Collection[int],
    identifiers: Collection[str],
) -> list[str]:
    """Problems with a release's ``controlled/genomics`` folder (empty when it passes).

    Parameters
    ----------
    folder
        The folder.
    persons
        Research ids of the Controlled tier's person table.
    withdrawn
        Research ids of participants withdrawn (no use) now.
    identifiers
        Sample and participant ids that must appear nowhere.
    """
    problems = []
    identifiers = set(identifiers)
    for path in sorted(folder.rglob("*")):
        text = path.suffix in (".parquet", ".pvar", ".psam", ".html", ".csv")
        if path.is_file() and text and (n := len(_tokens(path) & identifiers)):
            problems.append(f"{path.relative_to(folder)}: {n} sample or participant ids")
    persons = {str(p) for p in persons}
    withdrawn = {str(p) for p in withdrawn}
    released: set[str] = set()
    for psam in sorted(folder.glob(f"{GENOTYPES}.*.psam")):
        iid = set(pd.read_csv(psam, sep="\t", dtype=str)["#IID"])
        released |= iid
        if stray := iid - persons:
            problems.append(f"{psam.name}: {len(stray)} IIDs are not Controlled persons")
        if gone := iid & withdrawn:
            problems.append(f"{psam.name}: {len(gone)} withdrawn participants")
    for name, columns in ((ANCESTRY, (RESEARCH_ID,)), (KINSHIP, (RESEARCH_ID_1, RESEARCH_ID_2))):
        if (folder / name).is_file():
            table = pd.read_parquet(folder / name, columns=list(columns))
            ids = {str(v) for col in columns for v in table[col]}
            if stray := ids - released:
                problems.append(f"{name}: {len(stray)} research ids not in the genotypes")
    problems += _frequency_problems(folder)
    return problems


def _frequency_problems(folder: Path) -> list[str]:
    """Problems where the variant table's AC, AN or AF disagree with the released genotypes."""
    if not (folder / VARIANTS).is_file():
        return [f"{VARIANTS}: missing"]
    ac, an, af = (frequency_column(s, ALL) for s in ("ac", "an", "af"))
    table = pd.read_parquet(folder / VARIANTS, columns=[c.VARIANT_ID, ac, an, af])
    found = recount(folder)
    both = table.merge(found, on=c.VARIANT_ID, how="outer", suffixes=("", "_pgen"),
                       indicator=True)  # fmt: skip
    problems = []
    if n := int((both["_merge"] != "both").sum()):
        problems.append(f"{VARIANTS}: {n} variants not matched one to one with the pvar files")
    both = both[both["_merge"] == "both"]
    wrong = (both[ac] != both[f"{ac}_pgen"]) | (both[an] != both[f"{an}_pgen"])
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = both[f"{ac}_pgen"] / both[f"{an}_pgen"].where(both[f"{an}_pgen"] > 0)
    wrong |= ~np.isclose(both[af].to_numpy(float), expected.to_numpy(float), equal_nan=True)
    if n := int(wrong.sum()):
        problems.append(f"{VARIANTS}: {n} variants whose AC, AN or AF differ from the "
                        "released genotypes")  # fmt: skip
    return problems
