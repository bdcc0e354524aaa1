"""Curation: cleaning rules, de-identification, tier policies, as declarative rules."""

from opencohort.curate.alignment import DOMAIN_TABLES, concept_domains
from opencohort.curate.cleaning import CLEANING_STAGES
from opencohort.curate.deid import PRE_TIER_STAGES, TIER_POLICY, aggregate_zip3, zip3_population
from opencohort.curate.engine import ENGINES, Engine, open_engine
from opencohort.curate.facts import read_facts, read_identifiers
from opencohort.curate.rules import (
    REMOVE,
    RULES,
    Context,
    IbisRule,
    Pipeline,
    Plan,
    Result,
    Rule,
    Stage,
    Tier,
    build_pipeline,
    changing,
    dropping,
    marking,
    register,
    run_stage,
)
from opencohort.curate.service import Policy, Sources, curate, gather

__all__ = [
    "CLEANING_STAGES",
    "DOMAIN_TABLES",
    "ENGINES",
    "PRE_TIER_STAGES",
    "REMOVE",
    "RULES",
    "TIER_POLICY",
    "Context",
    "Engine",
    "IbisRule",
    "Pipeline",
    "Plan",
    "Policy",
    "Result",
    "Rule",
    "Sources",
    "Stage",
    "Tier",
    "aggregate_zip3",
    "build_pipeline",
    "changing",
    "concept_domains",
    "curate",
    "dropping",
    "gather",
    "marking",
    "open_engine",
    "read_facts",
    "read_identifiers",
    "register",
    "run_stage",
    "zip3_population",
]
