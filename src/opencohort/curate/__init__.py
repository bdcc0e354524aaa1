"""Curation: cleaning rules, de-identification, tier policies, as declarative rules."""

from opencohort.curate.cleaning import CLEANING_STAGES
from opencohort.curate.deid import PRE_TIER_STAGES, TIER_POLICY, aggregate_zip3, zip3_population
from opencohort.curate.facts import read_facts, read_identifiers
from opencohort.curate.rules import (
    RULES,
    Context,
    Pipeline,
    Result,
    Rule,
    Stage,
    Tier,
    build_pipeline,
    changing,
    dropping,
    register,
    run_stage,
)
from opencohort.curate.service import Policy, Sources, curate, gather

__all__ = [
    "CLEANING_STAGES",
    "PRE_TIER_STAGES",
    "RULES",
    "TIER_POLICY",
    "Context",
    "Pipeline",
    "Policy",
    "Result",
    "Rule",
    "Sources",
    "Stage",
    "Tier",
    "aggregate_zip3",
    "build_pipeline",
    "changing",
    "curate",
    "dropping",
    "gather",
    "read_facts",
    "read_identifiers",
    "register",
    "run_stage",
    "zip3_population",
]
