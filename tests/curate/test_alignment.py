"""Domain alignment on the synthetic program with planted misaligned rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opencohort.curate import RULES, concept_domains
from opencohort.curate._omop import primary_key
from opencohort.curate.alignment import ATHENA_CONCEPT
from opencohort.vocab import build_vocabulary

#: (table, how many rows, concept domain planted) -> where they must end up (None: dropped).
PLANTS = [
    ("condition_occurrence", 7, "Drug", "drug_exposure"),
    ("measurement", 5, "Observation", "observation"),
    ("observation", 4, "Measurement", "measurement"),
    ("drug_exposure", 3, "Condition", "condition_occurrence"),
    ("procedure_occurrence", 2, "Unit", None),
]


def _column(table: str) -> str:
    return f"{table.split('_')[0]}_concept_id"


@pytest.fixture(scope="module")
def concepts() -> dict[str, int]:
    """Per planted domain, a concept id of it that no row of the program uses."""
    return {domain: 4_100_000_000 + i for i, (_, _, domain, _) in enumerate(PLANTS)}


@pytest.fixture(scope="module")
def ctx(sources, concepts):
    """The program's context, its concept domains knowing the planted concepts."""
    planted = pd.Series({float(c): domain for domain, c in concepts.items()})
    return sources.context.with_(
        concept_domains=pd.concat([sources.context.concept_domains, planted])
    )


@pytest.fixture(scope="module")
def planted(sources, concepts):
    """The five tables with their first rows recoded to another domain's concept."""
    rule = RULES["domain_alignment"]
    frames = {t: sources.frames[t].copy() for t in rule.reads}
    for table, n, domain, _ in PLANTS:
        frames[table].loc[: n - 1, _column(table)] = concepts[domain]
    return frames


def test_domain_alignment__synthetic_program_is_aligned(sources):
    rule = RULES["domain_alignment"]()
    result = rule.apply({t: sources.frames[t] for t in rule.reads}, sources.context)
    assert not any(len(r) for r in result.removed.values()) and not result.added


def test_domain_alignment__planted_rows_moved_or_dropped(planted, ctx, concepts):
    rule = RULES["domain_alignment"]()
    result = rule.apply(planted, ctx)
    rule.validate(result.frames, ctx)
    out = result.frames
    for table, n, domain, target in PLANTS:
        assert len(result.removed[table]) == n, table
        source = planted[table].iloc[:n]
        if target is None:
            assert not (out[table][_column(table)] == concepts[domain]).any()
            continue
        moved = out[target][out[target][_column(target)] == concepts[domain]]
        assert len(moved) == n, (table, target)
        assert sorted(moved["person_id"]) == sorted(source["person_id"])
        key = primary_key(target)
        assert moved[key].is_unique and not moved[key].isin(planted[target][key]).any()
        start = [c for c in moved.columns if c.endswith("_date")][0]
        source_start = [c for c in source.columns if c.endswith("_date")][0]
        assert sorted(moved[start]) == sorted(source[source_start])
        assert set(moved["src_id"]) == set(source["src_id"])
    dropped = sum(n for _, n, _, target in PLANTS if target is None)
    assert sum(len(f) for f in planted.values()) == sum(len(f) for f in out.values()) + dropped
    assert {t: len(a) for t, a in result.added.items()} == {
        target: n for _, n, _, target in PLANTS if target
    }


def test_domain_alignment__drug_end_date_filled(planted, ctx, concepts):
    out = RULES["domain_alignment"]().apply(planted, ctx).frames["drug_exposure"]
    moved = out[out["drug_concept_id"] == concepts["Drug"]]
    assert moved["drug_exposure_end_date"].notna().all()


def test_domain_alignment__fractional_quantity_not_a_count(planted, sources):
    procedure = 4_000_000_001  # a concept the context says is a procedure
    domains = pd.concat(
        [sources.context.concept_domains, pd.Series({float(procedure): "Procedure"})]
    )
    ctx = sources.context.with_(concept_domains=domains)
    drugs = planted["drug_exposure"].copy()
    drugs.loc[3:4, ["drug_concept_id", "quantity"]] = [[procedure, 2.5], [procedure, 3.0]]
    out = RULES["domain_alignment"]().apply({**planted, "drug_exposure": drugs}, ctx).frames
    procedures = out["procedure_occurrence"]
    moved = procedures[procedures["procedure_concept_id"] == procedure]
    assert moved["quantity"].isna().tolist() == [True, False] and moved["quantity"].iloc[1] == 3


def test_domain_alignment__idempotent(planted, ctx):
    rule = RULES["domain_alignment"]()
    once = rule.apply(planted, ctx)
    twice = rule.apply(once.frames, ctx)
    assert not any(len(r) for r in twice.removed.values()) and not twice.added
    for table, frame in once.frames.items():
        pd.testing.assert_frame_equal(twice.frames[table], frame)


def test_concept_domains__athena_file_adds_concepts(tmp_path):
    path = tmp_path / ATHENA_CONCEPT
    path.parent.mkdir(parents=True)
    built = build_vocabulary().concept
    clash = int(built["concept_id"].iloc[0])
    pd.DataFrame(
        {"concept_id": [192671, clash], "domain_id": ["Condition", "Drug"], "concept_code": "x"}
    ).to_csv(path, sep="\t", index=False)
    domains = concept_domains(tmp_path)
    assert domains[192671.0] == "Condition"
    assert domains[float(clash)] == built["domain_id"].iloc[0]  # the build wins
    assert np.isnan(concept_domains(None).index).sum() == 0
