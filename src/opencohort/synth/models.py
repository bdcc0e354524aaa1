"""Options of the synthetic program, validated before anything is written."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date

from opencohort.errors import ConfigError


@dataclass(frozen=True)
class Messiness:
    """Rates of injected data errors in site EHR submissions (per row unless stated)."""

    duplicate_id: float = 0.002
    event_before_birth: float = 0.002
    event_after_death: float = 0.05  # share of deceased people with rows > 30 days after death
    date_9999: float = 0.001
    implausible_value: float = 0.003
    imperial_site_share: float = 0.4  # share of sites that report lb, in and degF
    unmapped_code: float = 0.01
    identifier_in_note: float = 0.05  # share of notes that quote a name, phone or MRN
    without_ehr_consent: float = 0.02  # people sent by sites without EHR consent, per consenter
    identity_mismatch: float = 0.01  # people whose site PII does not match the registry


@dataclass(frozen=True)
class SynthConfig:
    """Everything that decides a synthetic program; one seed makes it reproducible."""

    participants: int = 5000
    genomes: int = 2000
    sites: int = 5
    seed: int = 42
    batch_size: int = 20_000
    start: date = date(2018, 5, 6)
    cutoff: date = date(2025, 12, 31)
    genome_batches: int = 2
    region_megabases: float = 1.0
    reference_per_group: int = 100
    messiness: Messiness = field(default_factory=Messiness)

    def __post_init__(self) -> None:
        checks = {
            "participants": self.participants >= 1,
            "genomes": 0 <= self.genomes <= self.participants,
            "sites": 1 <= self.sites <= 999,
            "batch_size": self.batch_size >= 1,
            "genome_batches": self.genome_batches >= 1,
            "region_megabases": 0 < self.region_megabases <= 50,
            "reference_per_group": self.reference_per_group >= 2,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(
                    f"SynthConfig: {name}={getattr(self, name)!r} is out of range"
                    + (" (genomes must not exceed participants)" if name == "genomes" else "")
                )
        if self.start >= self.cutoff:
            raise ConfigError(
                f"SynthConfig: start {self.start} must be before cutoff {self.cutoff}"
            )
        for name, rate in asdict(self.messiness).items():
            if not 0 <= rate <= 1:
                raise ConfigError(f"Messiness: {name}={rate!r} must be between 0 and 1")

    @property
    def n_batches(self) -> int:
        """Number of participant batches."""
        return -(-self.participants // self.batch_size)

    def batch_range(self, index: int) -> tuple[int, int]:
        """Global person indexes [start, stop) of batch `index`."""
        start = index * self.batch_size
        return start, min(start + self.batch_size, self.participants)
