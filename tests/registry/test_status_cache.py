"""The per-process status cache: counts and searches equal a fresh derivation after any
writes, on SQLite and PostgreSQL, and a write is seen by the next read of another process."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import httpx2 as httpx
import pandas as pd
from sqlalchemy import text

import opencohort
from opencohort.config import HOME_FILE, init_home
from opencohort.registry import (
    Applicant,
    ConsentStatus,
    ConsentType,
    ParticipantWithdrawn,
    WithdrawalStatus,
    _status_cache,
    _status_frame,
    create_biospecimen_order,
    enrol,
    load_feed,
    open_registry,
    record_consent,
    record_physical_measurement,
    record_survey,
    search_participants,
    summary,
    update_participant,
    withdraw,
)
from opencohort.registry.auth import Role, create_token
from opencohort.registry.status import EnrolmentStatus, TransitionError
from opencohort.web import REGISTRY_PREFIX

from .conftest import PM_VALUES

SHA = "e" * 64
SECRET = "status-cache-test-secret"
DAYS = (date(2024, 6, 1), date(2030, 1, 1))
ANSWERS = [s for s in ConsentStatus if s != ConsentStatus.UNSET]  # what the API accepts
MODULES = ("The Basics", "Lifestyle", "Overall Health")


def _fresh(db_url: str, day: date) -> tuple[dict, pd.DataFrame]:
    """Counts and status frame derived from every row by a registry with no cache."""
    other = open_registry(db_url, migrate=False)
    try:
        with other.engine.connect() as connection:
            frame = _status_frame.status_frame(connection, as_of=day)
        return summary(other, as_of=day), frame
    finally:
        other.close()


def _write(registry, rng: random.Random, ids: list[str], n: int) -> str:
    """Make one random change through the service layer; return the participant changed."""
    pid = rng.choice(ids)
    kind = rng.randrange(8)
    day = date(2023, rng.randint(1, 12), rng.randint(1, 28))
    try:
        if kind == 0:
            pid = f"P{900_000_000 + n}"
            applicant = Applicant(birth_date=date(1950 + rng.randint(0, 50), 3, 3))
            site = rng.choice(["site_001", "site_002", None])
            enrol(registry, applicant, participant_id=pid, sign_up_date=day, site_id=site)
        elif kind == 1:
            change = {"site_id": rng.choice(["site_001", "site_003"]),
                      "income": rng.choice(["lt_10k", "over_200k"])}  # fmt: skip
            update_participant(registry, pid, change)
        elif kind == 2:
            withdraw(registry, pid, status=rng.choice(list(WithdrawalStatus)[1:]), authored=day,
                     reason="test")  # fmt: skip
        elif kind == 3:
            record_survey(registry, pid, module=rng.choice(MODULES), authored=day)
        elif kind == 4:
            record_physical_measurement(registry, pid, measured=day, values=PM_VALUES)
        elif kind == 5:
            order = {"order_id": f"O{n}", "collection_method": "on_site", "created_date": day}
            sample = {"sample_id": f"S{n}", "test_code": "1ED10", "received_date": day}
            create_biospecimen_order(registry, pid, order=order, samples=[sample])
        else:
            record_consent(registry, pid, consent_type=rng.choice(list(ConsentType)),
                           version="v2", status=rng.choice(ANSWERS),
                           authored=day, document_sha256=SHA)  # fmt: skip
    except (ParticipantWithdrawn, TransitionError):
        pass  # refused: withdrawn participants take no writes, no_use is final
    return pid


def test_status_cache__equals_fresh_derivation_after_random_writes(
    registry, db_url, feed, monkeypatch
) -> None:
    directory, _people = feed
    load_feed(registry, directory, seed=1)
    for day in DAYS:
        assert summary(registry, as_of=day) == _fresh(db_url, day)[0]
    caught_up = []
    real = _status_cache.StatusCache._catch_up

    def spy(cache, *args):
        done = real(cache, *args)
        if cache is registry.statuses:
            caught_up.append(done)
        return done

    monkeypatch.setattr(_status_cache.StatusCache, "_catch_up", spy)
    with registry.engine.connect() as connection:
        ids = list(connection.scalars(text("SELECT participant_id FROM participant")))
    rng = random.Random(5)
    changed = set()
    for n in range(60):
        changed.add(_write(registry, rng, ids, n))
        if n % 7 == 6:
            day = DAYS[n % 2]
            counts, frame = _fresh(db_url, day)
            assert summary(registry, as_of=day) == counts
            for status in (EnrolmentStatus.PARTICIPANT, EnrolmentStatus.CORE):
                found, total = search_participants(registry, as_of=day, site_id="site_001",
                                                   enrolment_status=status, limit=1000)  # fmt: skip
                expected = frame[(frame["site_id"] == "site_001")
                                 & (frame["enrolment"] == status.label)].index  # fmt: skip
                assert [row["participant_id"] for row in found] == list(expected)
                assert total == len(expected)
    assert caught_up and all(caught_up), "every change was caught up participant by participant"
    assert len(changed) > 30


def test_status_cache__feed_load_rebuilds(registry, feed) -> None:
    directory, people = feed
    assert summary(registry, as_of=DAYS[1])["participants"] == 0
    load_feed(registry, directory, seed=1)
    assert summary(registry, as_of=DAYS[1])["participants"] == len(people)


def test_tally__equals_summarise(registry, feed) -> None:
    directory, _people = feed
    load_feed(registry, directory, seed=1)
    with registry.engine.connect() as connection:
        frame = _status_frame.status_frame(connection, as_of=DAYS[1])
    counts = _status_frame.summarise(frame)
    flat = _status_cache.tally(frame.to_dict("records"))
    assert _status_cache.nest(flat, counts) == counts
    half = len(frame) // 2
    parts = [_status_cache.tally(frame.iloc[s].to_dict("records"))
             for s in (slice(None, half), slice(half, None))]  # fmt: skip
    assert parts[0] + parts[1] == flat
    assert _status_cache.flatten(counts) == +flat  # zero counts aside


# --- two server processes on one database -------------------------------------------------------

CLI = [sys.executable, "-c", "from opencohort.cli import main; main()"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(home: Path, workers: int, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(Path(opencohort.__file__).parents[1]),
           "OPENCOHORT_SECRET_KEY": SECRET}  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen([*CLI, "registry", "serve", "--home", str(home), "--port",
                                    str(port), "--workers", str(workers)],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    return process, f"http://127.0.0.1:{port}{REGISTRY_PREFIX}"


def _wait(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            httpx.get(url + "/summary", timeout=5)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"server did not start:\n{log.read_text()}")


def test_status_cache__write_seen_by_next_read_of_other_process(
    registry, db_url, feed, tmp_path
) -> None:
    directory, _people = feed
    load_feed(registry, directory, seed=1)
    home = init_home(tmp_path / "home")
    toml = home.root / HOME_FILE
    toml.write_text(toml.read_text().replace('"sqlite:///registry.db"', f'"{db_url}"'))
    tokens = {role: create_token(registry, name=role.value, role=role, secret=SECRET)
              for role in (Role.SITE_STAFF, Role.CURATION)}  # fmt: skip
    today = date.today()
    frame = _fresh(db_url, today)[1]
    pids = frame.index[(frame["consent_wearables"] != "no")
                       & (frame["withdrawal"] == "not_withdrawn")][:6]  # fmt: skip
    servers = [_serve(home.root, workers, tmp_path / f"s{workers}.log") for workers in (1, 2)]
    try:
        for (process, url), workers in zip(servers, (1, 2), strict=True):
            _wait(process, url, tmp_path / f"s{workers}.log")
        (_, writer), (_, reader) = servers
        staff = {"Authorization": f"Bearer {tokens[Role.SITE_STAFF]}"}
        read = {"Authorization": f"Bearer {tokens[Role.CURATION]}"}
        refused = httpx.get(reader + "/summary", headers=read).json()["consent"]["wearables"]["no"]
        for pid in pids:
            body = {"consent_type": "wearables", "version": "v9", "status": "no",
                    "authored": today.isoformat(), "document_sha256": SHA}  # fmt: skip
            done = httpx.post(f"{writer}/participants/{pid}/consents", json=body, headers=staff)
            assert done.status_code == 201, done.text
            refused += 1
            # the reader's two worker processes answer these in turn: each must see the write
            for _ in range(4):
                counts = httpx.get(reader + "/summary", headers=read).json()
                assert counts["consent"]["wearables"]["no"] == refused
        assert len(pids) == 6
        assert counts == _fresh(db_url, today)[0]
    finally:
        for process, _ in servers:
            process.terminate()
            process.wait(30)


def test_status_cache__prepared_day_is_caught_up_not_rebuilt(
    registry, db_url, feed, monkeypatch
) -> None:
    directory, _people = feed
    load_feed(registry, directory, seed=1)
    day = DAYS[1]
    future = registry.statuses.prepare(registry.engine, day)
    assert registry.statuses.prepare(registry.engine, day) is future, "one build per day"
    future.result(timeout=120)
    with registry.engine.connect() as connection:
        ids = list(connection.scalars(text("SELECT participant_id FROM participant")))
    rng = random.Random(8)
    for n in range(15):
        _write(registry, rng, ids, n)
    expected = _fresh(db_url, day)[0]
    rebuilt = []
    real = _status_frame.status_frame
    monkeypatch.setattr(
        _status_frame, "status_frame", lambda *a, **k: rebuilt.append(1) or real(*a, **k)
    )
    assert summary(registry, as_of=day) == expected
    assert rebuilt == [], "the cache caught the prepared day up instead of rebuilding it"
    assert registry.statuses.prepare(registry.engine, day).result() is None, "kept already"


def test_status_cache__older_head_uses_newer_entry(registry, db_url, feed, monkeypatch) -> None:
    """A reader that read the audit head before another reader caught the cache up past it
    gets the newer entry: neither a rebuild nor a step back."""
    directory, _people = feed
    load_feed(registry, directory, seed=1)
    day = DAYS[1]
    with registry.engine.connect() as connection:
        ids = list(connection.scalars(text("SELECT participant_id FROM participant")))
        before = connection.scalar(_status_cache.HEAD)
    _write(registry, random.Random(9), ids, 0)
    expected = _fresh(db_url, day)[0]
    del expected["as_of"]  # summary's own key, not the cache's
    with registry.engine.connect() as connection:
        head = connection.scalar(_status_cache.HEAD)
    assert head > before
    assert registry.statuses.counts(registry.engine, head=head, as_of=day) == expected
    rebuilt = []
    real = _status_frame.status_frame
    monkeypatch.setattr(
        _status_frame, "status_frame", lambda *a, **k: rebuilt.append(1) or real(*a, **k)
    )
    assert registry.statuses.counts(registry.engine, head=before, as_of=day) == expected
    assert rebuilt == [], "a stale head rebuilt the whole entry"
