"""Six-population human demography and the GRCh38 regions the synthetic genomes cover.

The only module of the genome simulator that touches stdpopsim; msprime and stdpopsim are
the optional ``synth`` extra (GPL), so nothing outside ``opencohort.synth`` imports this.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import lru_cache

import msprime
import stdpopsim

from opencohort.errors import ConfigError

MSPRIME_NAMES: tuple[str, ...] = ("YRI", "CEU", "CHB", "SAS", "MID", "NAT")
"""The msprime population standing in for each entry of ``POPULATIONS``."""

BASE_MODEL = "OutOfAfrica_3G09"
GENERATIONS_SINCE_ADMIXTURE = 12
"""Generations since admixture; sets the rate of local-ancestry switches along a haplotype."""

# chrX pseudo-autosomal regions on GRCh38 (1-based, inclusive); non-PAR lies between them.
CHRX_PAR1_END = 2_781_479
CHRX_PAR2_START = 155_701_383


@dataclass(frozen=True)
class Region:
    """A stretch of one chromosome that is simulated, in 0-based half-open GRCh38 coordinates."""

    chrom: str
    start: int
    end: int
    locus: str
    recombination_rate: float

    @property
    def length(self) -> int:
        """Length in base pairs."""
        return self.end - self.start

    @property
    def is_x(self) -> bool:
        """Whether the region is on non-PAR chrX (males haploid)."""
        return self.chrom == "chrX"


# (chrom, centre on GRCh38, locus) for the default regions: the return-of-results
# pharmacogenes, APOE and CYP2D6, and G6PD on non-PAR chrX so sex checks have data.
LOCI: tuple[tuple[str, int, str], ...] = (
    ("chr1", 97_500_000, "DPYD"),
    ("chr2", 233_765_000, "UGT1A1"),
    ("chr6", 18_140_000, "TPMT"),
    ("chr10", 94_800_000, "CYP2C19"),
    ("chr12", 21_200_000, "SLCO1B1"),
    ("chr13", 48_040_000, "NUDT15"),
    ("chr19", 44_905_000, "APOE"),
    ("chr22", 42_128_000, "CYP2D6"),
    ("chrX", 154_540_000, "G6PD"),
)


@lru_cache(maxsize=1)
def _species() -> stdpopsim.Species:
    return stdpopsim.get_species("HomSap")


def contig_lengths() -> dict[str, int]:
    """GRCh38 lengths of the nuclear chromosomes and chrM, keyed by UCSC-style name."""
    out = {}
    for chromosome in _species().genome.chromosomes:
        name = "chrM" if chromosome.id == "MT" else f"chr{chromosome.id}"
        out[name] = int(chromosome.length)
    return out


def mutation_rate() -> float:
    """Per-base, per-generation mutation rate of the base stdpopsim model."""
    return float(_species().get_demographic_model(BASE_MODEL).mutation_rate)


def default_regions(megabases: float) -> list[Region]:
    """Regions of ``megabases`` Mb centred on the loci of :data:`LOCI`.

    Each region is clipped to its chromosome; the chrX region is kept inside non-PAR chrX.
    The recombination rate is the chromosome's mean rate from stdpopsim (a flat map: the
    genetic maps are downloads and are not available offline).
    """
    length = int(round(megabases * 1e6))
    if length < 1_000:
        raise ConfigError(f"region_megabases={megabases!r} gives regions under 1 kb; use >= 0.001")
    lengths = contig_lengths()
    rates = {f"chr{c.id}": float(c.recombination_rate) for c in _species().genome.chromosomes}
    regions = []
    for chrom, centre, locus in LOCI:
        low, high = (CHRX_PAR1_END, CHRX_PAR2_START - 1) if chrom == "chrX" else (0, lengths[chrom])
        if length > high - low:
            raise ConfigError(f"region_megabases={megabases!r} does not fit on {chrom}")
        start = min(max(centre - length // 2, low), high - length)
        regions.append(Region(chrom, start, start + length, locus, rates[chrom]))
    return regions


def build_demography() -> msprime.Demography:
    """Return the six-population demography: stdpopsim OutOfAfrica_3G09 plus SAS, MID and NAT.

    Returns
    -------
    msprime.Demography
        Populations YRI, CEU, CHB (from the stdpopsim model) and SAS, MID, NAT (added), in
        the order of :data:`MSPRIME_NAMES`; events sorted.

    Notes
    -----
    stdpopsim has no human model with all six continental groups, so the Gutenkunst et al.
    (2009) three-population out-of-Africa model (``OutOfAfrica_3G09``: YRI, CEU, CHB; 25-year
    generations) is extended with three populations that split off forwards in time:

    1. SAS splits from the European (CEU) lineage 640 generations ago (16 kya), founded by
       2,000 individuals and growing exponentially to 50,000 today. South Asian / European
       divergence estimates from cross-coalescence analyses fall around 15-20 kya.
    2. MID splits from the CEU lineage 481 generations ago, the Middle-Eastern split time of
       the Gladstein & Hammer (2019) model shipped in stdpopsim as ``AshkSub_7G19``. It is
       founded by 5,000 and grows to 40,000 (less extreme than that model's 436,516, which
       was fitted to Jewish-population data).
    3. NAT splits from the East Asian (CHB) lineage 800 generations ago (20 kya, just after
       the 3G09 Europe/East Asia split at 848 generations; Raghavan et al. 2015 place the
       Native American / East Asian split no earlier than 23 kya) through a bottleneck of
       1,000 founders, then grows to 20,000, which gives the low diversity and strong drift
       seen in Indigenous American genomes.

    The added populations exchange no migrants; before their split their lineages follow
    the 3G09 model. These numbers are rounded literature values, not a fitted model.
    """
    # Deep copy: stdpopsim hands out the registered model object, which must not change.
    demography = copy.deepcopy(_species().get_demographic_model(BASE_MODEL).model)
    added = (
        ("SAS", "South Asian", 640, 2_000, 50_000, "CEU"),
        ("MID", "Middle Eastern", 481, 5_000, 40_000, "CEU"),
        ("NAT", "Indigenous American", 800, 1_000, 20_000, "CHB"),
    )
    for name, description, split, founders, present, ancestral in added:
        demography.add_population(
            name=name,
            description=description,
            initial_size=present,
            growth_rate=math.log(present / founders) / split,
        )
        demography.add_population_split(time=split, derived=[name], ancestral=ancestral)
    for name in MSPRIME_NAMES[:3]:
        # The 3G09 populations are ancestral to a split; they still hold samples at time 0.
        demography[name].initially_active = True
    demography.sort_events()
    return demography
