"""Reading one VCF: genotype filters, multi-allelic split, haploid calls, bad records."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opencohort.genomics import GenotypeFilter, read_vcf
from opencohort.genomics._vcf_reader import MISSING

FIX = "chr1\t{pos}\t.\t{ref}\t{alt}\t50\tPASS\t.\tGT:AD:DP:GQ\t"


def _rec(pos: int, cells: list[str], ref: str = "A", alt: str = "G", chrom: str = "chr1") -> str:
    return FIX.format(pos=pos, ref=ref, alt=alt).replace("chr1", chrom, 1) + "\t".join(cells)


def test_read_vcf__filters_set_missing(tmp_path: Path, write_vcf: Callable) -> None:
    cells = [
        "0/1:10,10:20:60",  # good het
        "0/1:10,10:20:15",  # GQ 15 < 20
        "0/1:4,4:8:40",  # DP 8 < 10
        "0/1:18,2:20:40",  # allele balance 0.1
        "1/1:0,20:20:60",  # good hom-alt
        "./.:0,0:0:0",  # no call
    ]
    calls = read_vcf(write_vcf(tmp_path / "a.vcf.gz", list("abcdef"), [_rec(10, cells)]))
    assert calls.genotypes.tolist() == [[1, MISSING, MISSING, MISSING, 2, MISSING]]
    assert calls.n_filtered == 3
    lenient = read_vcf(tmp_path / "a.vcf.gz", genotype_filter=GenotypeFilter(0, 0, 0.0, 1.0))
    assert lenient.genotypes.tolist() == [[1, 1, 1, 1, 2, MISSING]]


def test_read_vcf__splits_multiallelic_like_bcftools(tmp_path: Path, write_vcf: Callable) -> None:
    cells = ["1/2:0,12,12:24:60", "0/2:12,0,12:24:60", "2/2:0,0,24:24:60", "0/0:24,0,0:24:60"]
    path = write_vcf(tmp_path / "m.vcf.gz", list("abcd"), [_rec(5, cells, alt="C,G")])
    calls = read_vcf(path)
    assert calls.alt.tolist() == ["C", "G"]
    assert calls.pos.tolist() == [5, 5]
    assert calls.genotypes.tolist() == [[1, 0, 0, 0], [1, 1, 2, 0]]
    assert calls.n_multiallelic == 1


def test_read_vcf__haploid_calls_are_homozygous(tmp_path: Path, write_vcf: Callable) -> None:
    cells = ["1:0,20:20:60", "0:20,0:20:60", "0/1:10,10:20:60", "1:0,20:20:60"]
    recs = [_rec(p, cells, chrom="chr2") for p in (1, 2, 3)]
    calls = read_vcf(write_vcf(tmp_path / "x.vcf.gz", list("abcd"), recs))
    assert calls.genotypes[0].tolist() == [2, 0, 1, 2]
    assert calls.haploid.tolist() == [True, True, False, True]


def test_read_vcf__bad_records_reported_and_rest_read(tmp_path: Path, write_vcf: Callable) -> None:
    good = ["0/1:10,10:20:60", "0/0:20,0:20:60"]
    records = [
        _rec(100, good),
        _rec(50, good),  # line 11: unsorted
        _rec(120, good, ref="AX"),  # line 12: bad REF
        _rec(130, ["0/3:10,10:20:60", "0/0:20,0:20:60"]),  # line 13: allele index 3
        _rec(2000, good),  # line 14: beyond contig length
        _rec(140, good, alt="<DEL>"),  # line 15: symbolic ALT
        _rec(150, good),
    ]
    path = write_vcf(tmp_path / "bad.vcf.gz", ["a", "b"], records, index=False)
    calls = read_vcf(path, label="bad.vcf.gz")
    assert [(p.line, p.field) for p in calls.problems] == [
        (11, "POS"), (12, "REF"), (13, "GT"), (14, "POS"), (15, "ALT"),
    ]  # fmt: skip
    assert all(p.file == "bad.vcf.gz" for p in calls.problems)
    assert calls.pos.tolist() == [100, 150]
    assert calls.n_records == 7


def test_read_vcf__sample_subset_in_given_order(tmp_path: Path, write_vcf: Callable) -> None:
    cells = ["0/0:20,0:20:60", "0/1:10,10:20:60", "1/1:0,20:20:60"]
    path = write_vcf(tmp_path / "s.vcf.gz", ["a", "b", "c"], [_rec(1, cells)])
    calls = read_vcf(path, samples=["c", "a"])
    assert calls.sample_ids == ["c", "a"]
    assert calls.genotypes.tolist() == [[2, 0]]


@pytest.mark.parametrize("block", [1, 3, 1024])
def test_read_vcf__block_size_does_not_change_result(
    tmp_path: Path, write_vcf: Callable, block: int
) -> None:
    rng = np.random.default_rng(1)
    codes = ["0/0:20,0:20:60", "0/1:10,10:20:60", "1/1:0,20:20:60", "./.:0,0:0:0"]
    recs = [_rec(p, [codes[i] for i in rng.integers(0, 4, 5)]) for p in range(1, 11)]
    path = write_vcf(tmp_path / "b.vcf.gz", list("abcde"), recs)
    whole = read_vcf(path)
    parts = read_vcf(path, block_records=block)
    np.testing.assert_array_equal(whole.genotypes, parts.genotypes)
    np.testing.assert_array_equal(whole.stats.n_het, parts.stats.n_het)


def test_read_vcf__unparsable_lines_reported_and_rest_read(
    tmp_path: Path, write_vcf: Callable
) -> None:
    good = ["0/1:10,10:20:60"]
    records = [
        "chr1\tabc\t.\tA\tG\t50\tPASS\t.\tGT:AD:DP:GQ\t0/1:10,10:20:60",  # line 10
        "chr1\t5\t.\tA",  # line 11
        _rec(6, ["0/1:10:20:60"]),  # line 12: AD too short
        _rec(7, good),
    ]
    calls = read_vcf(write_vcf(tmp_path / "u.vcf.gz", ["a"], records, index=False))
    assert [(p.line, p.field) for p in calls.problems] == [
        (10, "record"),
        (11, "record"),
        (12, "AD"),
    ]
    assert calls.pos.tolist() == [7]


_CELL = st.sampled_from(["0/1:10,10:20:60", "1/1:0,20:20:60", "./.", "0|1:5,5:10:30", "1"])
_LINE = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="\n\r\x00"), max_size=60),
    st.builds(
        lambda pos, ref, alt, cells: "\t".join(
            ["chr1", pos, ".", ref, alt, "50", "PASS", ".", "GT:AD:DP:GQ", *cells]
        ),
        st.sampled_from(["1", "0", "-3", "x", "999", "2000"]),
        st.sampled_from(["A", "AC", "N", "X", ""]),
        st.sampled_from(["G", "C,T", "<DEL>", "*", ""]),
        st.lists(_CELL, min_size=0, max_size=3),
    ),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_LINE, min_size=1, max_size=6))
def test_read_vcf__arbitrary_lines_never_crash(
    tmp_path: Path, write_vcf: Callable, lines: list[str]
) -> None:
    path = write_vcf(tmp_path / "h.vcf.gz", ["a", "b"], lines, index=False)
    calls = read_vcf(path)
    assert all(p.line is not None and p.line >= 10 for p in calls.problems)
    assert len(calls.problems) <= calls.n_records <= len(lines)
    assert calls.genotypes.shape[1] == 2
