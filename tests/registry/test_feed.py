"""The feed load streams its files in blocks: block size never changes what is stored."""

from __future__ import annotations

import gc
import shutil

import pandas as pd
import pytest
from sqlalchemy import select

from opencohort.registry import (
    FeedError,
    _feed,
    audit_trail,
    load_feed,
    open_registry,
    verify_audit_chain,
)
from opencohort.registry import models as m

from .conftest import _drop_postgres, _fresh_postgres

TINY = 4096  # bytes: a dozen participants rows, or ~40 survey rows, per block
ONE_BLOCK = 1 << 30


def _content(registry) -> dict[str, list[tuple]]:
    """Every row of every fact table (surrogate ids included), sorted."""
    tables = [t for t in m.Base.metadata.sorted_tables if t.name not in m.SERVICE_TABLES]
    with registry.engine.connect() as connection:
        return {
            t.name: sorted(map(tuple, connection.execute(select(t)).all()), key=repr)
            for t in tables
        }


@pytest.fixture
def second_registry(db_url, request, tmp_path):
    """Another empty registry on the same engine as `registry`."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'second.db'}"
    else:
        url = _fresh_postgres(request.getfixturevalue("postgres_url"))
    opened = open_registry(url)
    yield opened
    opened.close()
    if not db_url.startswith("sqlite"):
        _drop_postgres(url)


def test_load_feed__tiny_blocks_store_the_same(registry, second_registry, feed) -> None:
    directory, people = feed
    tiny = load_feed(registry, directory, seed=7, block_bytes=TINY)
    whole = load_feed(second_registry, directory, seed=7, block_bytes=ONE_BLOCK)
    assert tiny == whole
    assert tiny["participant"] == len(people) and tiny["survey_completion"] > 0
    content = _content(registry)
    assert content == _content(second_registry)
    assert len(content["participant"]) == len(people)
    assert verify_audit_chain(registry).ok
    assert load_feed(registry, directory, seed=8, block_bytes=TINY) == dict.fromkeys(tiny, 0)


def test_load_feed__bad_row_in_a_late_block_changes_nothing(registry, feed, tmp_path) -> None:
    directory, _ = feed
    bad = tmp_path / "registry"
    shutil.copytree(directory, bad)
    consents = pd.read_csv(bad / "consents.csv", dtype=str, keep_default_na=False)
    last = len(consents) - 1
    consents.loc[last, "version"] = ""
    consents.to_csv(bad / "consents.csv", index=False)
    assert (bad / "consents.csv").stat().st_size > 10 * TINY  # the bad row is blocks away
    empty = _content(registry)
    with pytest.raises(FeedError) as caught:
        load_feed(registry, bad, block_bytes=TINY)
    where = [(p["file"], p["line"], p["field"]) for p in caught.value.problems]
    assert where == [("consents.csv", last + 2, "version")]
    assert f"consents.csv line {last + 2} field version: value is empty" in str(caught.value)
    assert _content(registry) == empty
    assert audit_trail(registry) == []


def test_check__leaves_no_reference_cycles() -> None:
    """A checked block is freed when dropped, not at the next full garbage collection (a cycle
    through one column kept a whole block's strings: hundreds of MB at 1,000,000 people)."""
    spec = _feed._SPECS["consents.csv"]
    frame = pd.DataFrame({field: ["x"] * 50 for field in spec})
    frame["participant_id"], frame["document_sha256"] = "P12", "a" * 64
    problems: list[dict] = []
    _feed._check("consents.csv", frame, spec, problems)
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            _feed._check("consents.csv", frame, spec, problems)
        assert gc.collect() == 0
    finally:
        gc.enable()
    assert {p["field"] for p in problems} == {"consent_type", "status", "signer", "authored_date"}
