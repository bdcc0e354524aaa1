"""Deliveries against the registry: which samples may be stored, and their workflow steps.

A delivered sample is stored only if the registry knows it as a sample of the participant
the delivery names, that participant's latest genomic (GROR) consent is a submission and
they have not withdrawn. Stored samples then move along the registry's genomic workflow
(``received``, ``sequenced`` at ingest; ``qc_passed`` or ``qc_failed`` after QC) through the
registry service, so every step is audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pandas as pd
from sqlalchemy import select

from opencohort.config import Home
from opencohort.genomics import _columns as c
from opencohort.genomics._vcf_reader import Problem
from opencohort.registry import (
    Base,
    GenomicState,
    ParticipantWithdrawn,
    TransitionError,
    advance_genomic,
    curation_export,
    genomic_sample_state,
    open_registry,
)

#: Workflow steps a delivery records, in order, for a sample sent for sequencing.
DELIVERED = (GenomicState.RECEIVED, GenomicState.SEQUENCED)
ACTOR = "genomics"


def _latest(frame: pd.DataFrame, day: date) -> pd.Series:
    """Status of each participant's latest event (by authored date, then order) up to `day`."""
    rows = frame[frame["authored_date"] <= day]
    return rows.sort_values("authored_date", kind="stable").groupby("participant_id").tail(1)\
        .set_index("participant_id")["status"]  # fmt: skip


def refused_samples(manifest: pd.DataFrame, home: Home, *, file: str, day: date) -> list[Problem]:
    """Problems of the manifest samples the registry does not allow to be stored.

    Parameters
    ----------
    manifest
        A delivery manifest (sample_id, participant_id), rows in file order.
    home
        The program home whose registry is asked.
    file
        The manifest's path, named in each problem.
    day
        Consents and withdrawals up to this day count.

    Returns
    -------
    list of Problem
        One per refused sample (line of its manifest row, field, reason): unknown to the
        registry or registered to another participant, no genomic consent, withdrawn.
    """
    registry = open_registry(home.registry_url)
    try:
        table = Base.metadata.tables["sample"]
        with registry.engine.connect() as con:
            owners = dict(con.execute(select(table.c.sample_id, table.c.participant_id)).all())
        export = curation_export(registry)
    finally:
        registry.close()
    consents = export["consents"]
    gror = _latest(consents[consents["consent_type"] == "gror"], day)
    withdrawals = _latest(export["withdrawals"], day)
    problems = []
    for line, (sample, pid) in enumerate(
        zip(manifest[c.SAMPLE_ID], manifest[c.PARTICIPANT_ID], strict=True), start=2
    ):
        owner = owners.get(sample)
        if owner is None:
            reason, field = f"sample {sample!r} is not in the registry; left out", c.SAMPLE_ID
        elif owner != pid:
            reason = f"sample {sample!r} belongs to another participant, not {pid!r}; left out"
            field = c.PARTICIPANT_ID
        elif withdrawals.get(pid, "not_withdrawn") != "not_withdrawn":
            reason, field = f"sample {sample!r}: participant has withdrawn; left out", c.SAMPLE_ID
        elif gror.get(pid) != "submitted":
            reason = f"sample {sample!r}: participant has no genomic (gror) consent; left out"
            field = c.SAMPLE_ID
        else:
            continue
        problems.append(Problem(file, line, field, reason))
    return problems


def advance_samples(
    home: Home, sample_ids: Iterable[str], steps: Iterable[GenomicState], *, day: date
) -> list[str]:
    """Record workflow `steps` for each sample; return why a sample's steps were not recorded.

    A sample whose current state cannot take the first step (for example one never sent for
    sequencing) is left as it is and named with the allowed next states; a sample already
    past a step skips it, so re-running is harmless.
    """
    steps = list(steps)
    notes = []
    registry = open_registry(home.registry_url)
    try:
        for sample in sample_ids:
            current = genomic_sample_state(registry, sample, as_of=date.max)["state"]
            todo = steps[steps.index(GenomicState(current)) + 1 :] if current in steps else steps
            try:
                for step in todo:
                    advance_genomic(registry, sample, state=step, day=day, actor=ACTOR)
            except (TransitionError, ParticipantWithdrawn) as exc:
                notes.append(f"sample {sample}: {exc}")
    finally:
        registry.close()
    return notes
