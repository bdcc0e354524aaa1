"""The synthetic program: participants, EHR, surveys, wearables and genomes with a planted truth."""

from opencohort.synth.models import Messiness, SynthConfig
from opencohort.synth.program import generate_program, genome_eligible

__all__ = ["Messiness", "SynthConfig", "generate_program", "genome_eligible"]
