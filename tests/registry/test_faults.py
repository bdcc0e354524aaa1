"""Faults: concurrent changes to one participant lose nothing; a killed ``registry load``
leaves the database consistent and the load resumable (issue 3, "Bad input and faults").

Every test runs on SQLite and on PostgreSQL. Writers race from threads, from separate
processes and over real HTTP (uvicorn on loopback); the load is SIGKILLed mid-transaction.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import httpx2
import pytest
import uvicorn
from sqlalchemy import func, select, text

import opencohort
from opencohort.config import HOME_FILE, init_home
from opencohort.registry import (
    Applicant,
    ConsentStatus,
    ConsentType,
    StaleVersion,
    audit_trail,
    enrol,
    list_consents,
    load_feed,
    open_registry,
    record_consent,
    summary,
    update_participant,
    verify_audit_chain,
)
from opencohort.registry import models as m
from opencohort.registry.auth import DEV_SECRET, Role, create_token
from opencohort.web import REGISTRY_PREFIX, Settings, create_app

from .conftest import _drop_postgres, _fresh_postgres, write_program_feed

THREADS = 16
PER_THREAD = 4
SHA = "d" * 64
PID = "P1001"
KINDS = list(ConsentType)
ANSWERS = [ConsentStatus.SUBMITTED, ConsentStatus.NO, ConsentStatus.NOT_SURE]
#: Run the real command line in a child process, with this checkout's sources first.
CLI = [sys.executable, "-c", "from opencohort.cli import main; main()"]
CHILD_ENV = {**os.environ, "PYTHONPATH": str(Path(opencohort.__file__).parents[1])}


def _consent(n: int) -> dict:
    """Arguments of the `n`-th consent or re-consent: distinct from every other `n`."""
    return {
        "consent_type": KINDS[n % len(KINDS)],
        "version": f"v{n}",
        "status": ANSWERS[n % len(ANSWERS)],
        "authored": date(2021, 1, 1 + n % 28),
        "document_sha256": SHA,
    }


def _enrol(registry) -> str:
    return enrol(registry, Applicant(birth_date=date(1970, 5, 1)), participant_id=PID,
                 sign_up_date=date(2021, 1, 1))  # fmt: skip


def _version(registry) -> int:
    with registry.session() as session:
        return session.get(m.Participant, PID).version


def _audited(registry, action: str) -> list[dict]:
    return [row for row in audit_trail(registry, entity_id=PID, limit=10_000)
            if row["action"] == action]  # fmt: skip


def _assert_consents_kept(registry, accepted: list[dict]) -> None:
    """The consent history and the audit log hold each accepted consent exactly once and
    nothing else, and the audit chain holds."""
    history = list_consents(registry, PID)
    assert sorted(c["consent_id"] for c in history) == sorted(c["consent_id"] for c in accepted)
    assert Counter(c["version"] for c in history) == Counter(c["version"] for c in accepted)
    assert set(Counter(c["version"] for c in history).values()) == {1}
    audited = Counter(row["after"]["consent_id"] for row in _audited(registry, "record_consent"))
    assert audited == Counter(c["consent_id"] for c in history)
    report = verify_audit_chain(registry)
    assert report.ok, report.problem


# --- concurrent writes through the service layer ----------------------------------------------


def test_concurrent_consents__threads_lose_none(registry) -> None:
    _enrol(registry)
    start = threading.Barrier(THREADS)

    def write(thread: int) -> list[dict]:
        start.wait()
        return [record_consent(registry, PID, **_consent(thread * PER_THREAD + i))
                for i in range(PER_THREAD)]  # fmt: skip

    with ThreadPoolExecutor(THREADS) as pool:
        accepted = [c for done in pool.map(write, range(THREADS)) for c in done]
    assert len(accepted) == THREADS * PER_THREAD
    _assert_consents_kept(registry, accepted)
    assert _version(registry) == 1 + len(accepted)


def test_stale_version__one_of_many_writers_wins(registry) -> None:
    _enrol(registry)
    for round_ in range(3):
        seen = _version(registry)
        start = threading.Barrier(THREADS)

        def change(thread: int, seen: int = seen, start: threading.Barrier = start) -> str:
            start.wait()
            try:
                update_participant(registry, PID, {"zip": f"{thread:05d}"}, expected_version=seen)
            except StaleVersion as exc:
                assert f"not {seen}; read it again and retry" in str(exc)
                return "stale"
            return f"{thread:05d}"

        with ThreadPoolExecutor(THREADS) as pool:
            outcomes = list(pool.map(change, range(THREADS)))
        winners = [o for o in outcomes if o != "stale"]
        assert len(winners) == 1, outcomes
        with registry.session() as session:
            stored = session.get(m.Participant, PID)
            assert (stored.version, stored.zip) == (seen + 1, winners[0])
        assert len(_audited(registry, "update_participant")) == round_ + 1
    assert verify_audit_chain(registry).ok


#: A child process: `threads` threads each record `each` consents; prints the stored ids.
_WORKER = """
import json, sys, threading
from datetime import date
from opencohort.registry import ConsentStatus, ConsentType, open_registry, record_consent
url, first, threads, each = sys.argv[1], *map(int, sys.argv[2:5])
kinds, answers = list(ConsentType), [ConsentStatus.SUBMITTED, ConsentStatus.NO,
                                     ConsentStatus.NOT_SURE]
registry, done = open_registry(url, migrate=False), []
def write(t):
    for i in range(each):
        n = first + t * each + i
        done.append(record_consent(registry, sys.argv[5], consent_type=kinds[n % len(kinds)],
            version=f"v{n}", status=answers[n % len(answers)],
            authored=date(2021, 1, 1 + n % 28), document_sha256="d" * 64)["consent_id"])
workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
print(json.dumps(done))
"""


def test_concurrent_consents__processes_lose_none(registry, db_url) -> None:
    _enrol(registry)
    processes, threads, each = 4, 4, 3
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                db_url,
                str(p * threads * each),
                str(threads),
                str(each),
                PID,
            ],
            env=CHILD_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for p in range(processes)
    ]
    ids, errors = [], ""
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        ids, errors = ids + json.loads(out), errors + err
    assert len(ids) == processes * threads * each, errors  # a failed write prints its error
    accepted = [c for c in list_consents(registry, PID) if c["consent_id"] in set(ids)]
    _assert_consents_kept(registry, accepted)
    assert sorted(ids) == sorted(c["consent_id"] for c in accepted)
    assert _version(registry) == 1 + len(ids)


# --- concurrent writes over HTTP ---------------------------------------------------------------


@pytest.fixture
def server(db_url):
    """The web app served by uvicorn on a free loopback port; yields (url, tokens, registry)."""
    app = create_app(Settings(registry_url=db_url))
    registry = app.state.registry
    tokens = {role: create_token(registry, name=role.value, role=role, secret=DEV_SECRET)
              for role in (Role.SITE_STAFF, Role.ADMIN)}  # fmt: skip
    served = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not served.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = served.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}{REGISTRY_PREFIX}", tokens, registry
    served.should_exit = True
    thread.join(timeout=30)


def _client(url: str, token: str) -> httpx2.Client:
    return httpx2.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _patch_until_done(client: httpx2.Client, change: dict) -> None:
    """PATCH with the ETag of a fresh GET, re-reading after each 412 (the only refusal)."""
    for _ in range(200):
        etag = client.get(f"/participants/{PID}").headers["etag"]
        done = client.patch(f"/participants/{PID}", json=change, headers={"If-Match": etag})
        if done.status_code == 200:
            return
        assert done.status_code == 412 and done.json()["code"] == "stale_version", done.text
    raise AssertionError(f"PATCH {change} lost to other writers 200 times in a row")


def _post_once(client: httpx2.Client, n: int) -> dict:
    """POST the `n`-th consent under idempotency key ``c-n`` and return the stored consent (a
    second request with the key waits for the first one's transaction, then replays it)."""
    consent = _consent(n)
    body = {**consent, "authored": consent["authored"].isoformat()}
    done = client.post(f"/participants/{PID}/consents", json=body,
                       headers={"Idempotency-Key": f"c-{n}"})  # fmt: skip
    assert done.status_code == 201, done.text
    return done.json()


def test_concurrent_http_writes__none_lost(server) -> None:
    url, tokens, registry = server
    with _client(url, tokens[Role.SITE_STAFF]) as client:
        body = {"participant_id": PID, "sign_up_date": "2021-01-01", "birth_date": "1970-05-01"}
        assert client.post("/participants", json=body).status_code == 201
    writers, patchers = THREADS // 2, THREADS // 2
    start = threading.Barrier(writers + patchers)

    def post_consents(thread: int) -> list[dict]:
        with _client(url, tokens[Role.SITE_STAFF]) as client:
            start.wait()
            return [_post_once(client, (thread % (writers // 2)) * PER_THREAD + i)
                    for i in range(PER_THREAD)]  # fmt: skip

    def patch(thread: int) -> None:
        with _client(url, tokens[Role.SITE_STAFF]) as client:
            start.wait()
            for i in range(2):
                _patch_until_done(client, {"zip": f"{thread:03d}{i:02d}"})

    with ThreadPoolExecutor(writers + patchers) as pool:
        posted = [pool.submit(post_consents, t) for t in range(writers)]
        patched = [pool.submit(patch, t) for t in range(patchers)]
        answers = [c for f in posted for c in f.result()]
        for f in patched:
            f.result()
    # Two writers sent each consent under one key: both got the one stored row. A PATCH that
    # lost a race got 412 (checked in _patch_until_done) and won on a retry.
    by_version = {}
    for answer in answers:
        assert by_version.setdefault(answer["version"], answer) == answer
    accepted = list(by_version.values())
    assert len(accepted) == writers // 2 * PER_THREAD
    _assert_consents_kept(registry, accepted)
    assert len(_audited(registry, "update_participant")) == 2 * patchers
    assert _version(registry) == 1 + len(accepted) + 2 * patchers
    with _client(url, tokens[Role.ADMIN]) as admin:
        assert admin.get("/audit/verify").json()["ok"]


def test_same_etag_race__one_wins_other_412(server) -> None:
    url, tokens, registry = server
    with _client(url, tokens[Role.SITE_STAFF]) as client:
        body = {"participant_id": PID, "sign_up_date": "2021-01-01", "birth_date": "1970-05-01"}
        assert client.post("/participants", json=body).status_code == 201
    clients = [_client(url, tokens[Role.SITE_STAFF]) for _ in range(2)]
    for round_ in range(5):
        etag = clients[0].get(f"/participants/{PID}").headers["etag"]
        start = threading.Barrier(2)

        def change(i: int, etag: str = etag, start: threading.Barrier = start, r: int = round_):
            start.wait()
            return clients[i].patch(f"/participants/{PID}", json={"zip": f"{r}000{i}"},
                                    headers={"If-Match": etag})  # fmt: skip

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(change, range(2)))
        assert sorted(a.status_code for a in answers) == [200, 412]
        won = next(i for i, a in enumerate(answers) if a.status_code == 200)
        lost = answers[1 - won]
        assert lost.json()["code"] == "stale_version" and "read it again" in lost.json()["message"]
        now = clients[1].get(f"/participants/{PID}")
        assert now.headers["etag"] == f'"{int(etag.strip(chr(34))) + 1}"'
        assert now.json()["zip"] == f"{round_}000{won}" == answers[won].json()["zip"]
    for client in clients:
        client.close()
    assert len(_audited(registry, "update_participant")) == 5
    assert verify_audit_chain(registry).ok


# --- a load killed mid-transaction -------------------------------------------------------------

#: Big enough that the load writes for a second or more on either engine.
CRASH_PARTICIPANTS = 6000
#: SQLite: a load is well under way once this much of it has spilled into the WAL file.
WAL_WRITING = 1 << 20


def _state(registry) -> dict:
    """What a load leaves: rows per table, participant ids and the consent rows."""
    with registry.engine.connect() as connection:
        tables = [t for t in m.Base.metadata.sorted_tables if t.name not in m.SERVICE_TABLES]
        counts = {t.name: connection.execute(select(func.count()).select_from(t)).scalar_one()
                  for t in tables}  # fmt: skip
        ids = connection.execute(select(m.Participant.participant_id)).scalars().all()
        c = m.Consent
        consents = connection.execute(
            select(c.participant_id, c.consent_type, c.version, c.status, c.signer,
                   c.authored_date, c.document_sha256)
        ).all()  # fmt: skip
    return {"counts": counts, "ids": sorted(ids), "consents": sorted(map(tuple, consents))}


@pytest.fixture(scope="session")
def crash_feed(tmp_path_factory) -> tuple[Path, dict]:
    """A feed of ``CRASH_PARTICIPANTS`` and the state a clean load of it leaves."""
    out = tmp_path_factory.mktemp("crash_feed")
    write_program_feed(out, participants=CRASH_PARTICIPANTS, seed=5)
    clean = open_registry(f"sqlite:///{out / 'clean.db'}")
    load_feed(clean, out / "registry")
    state = _state(clean)
    clean.close()
    return out / "registry", state


def _mid_load(db_url: str, watcher) -> bool:
    """Whether a load in another session has written part of the feed, uncommitted: SQLite's
    WAL holds its spilled pages; on PostgreSQL it holds a write lock on the consent table,
    taken after the participants were written."""
    if db_url.startswith("sqlite"):
        wal = Path(db_url.removeprefix("sqlite:///") + "-wal")
        return wal.exists() and wal.stat().st_size > WAL_WRITING
    with watcher.engine.connect() as connection:
        return bool(connection.execute(text(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND c.relname = 'consent' AND l.mode = 'RowExclusiveLock' "
            "AND l.pid <> pg_backend_pid()"
        )).scalar_one())  # fmt: skip


def _others_gone(db_url: str, watcher) -> None:
    """Wait until PostgreSQL has ended the killed client's session (and rolled it back)."""
    if db_url.startswith("sqlite"):
        return
    deadline = time.monotonic() + 30
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND pid <> pg_backend_pid()")  # fmt: skip
    while True:
        with watcher.engine.connect() as connection:
            if not connection.execute(query).scalar_one():
                return
        assert time.monotonic() < deadline, "the killed load's session outlived it by 30 s"
        time.sleep(0.05)


def test_killed_load__consistent_and_resumable(registry, db_url, crash_feed, tmp_path) -> None:
    directory, clean = crash_feed
    home = init_home(tmp_path / "home")
    settings = home.root / HOME_FILE
    settings.write_text(settings.read_text().replace('"sqlite:///registry.db"', f'"{db_url}"'))
    load = [*CLI, "registry", "load", str(directory), "--home", str(home.root), "--json"]
    empty = _state(registry)
    child = subprocess.Popen(load, env=CHILD_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not _mid_load(db_url, registry):
        assert child.poll() is None, f"the load ended before it wrote: {child.communicate()}"
        assert time.monotonic() < deadline, "the load did not start writing within 120 s"
        time.sleep(0.01)
    assert child.poll() is None, "the load finished before it could be killed; feed too small"
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL
    _others_gone(db_url, registry)

    reopened = open_registry(db_url)
    after_crash = _state(reopened)
    assert after_crash in (empty, clean), "a killed load left part of the feed behind"
    report = verify_audit_chain(reopened)
    assert report.ok, report.problem
    loads = len([r for r in audit_trail(reopened) if r["action"] == "load_feed"])
    assert loads == (after_crash == clean)

    expected = {name: 0 if after_crash == clean else n for name, n in clean["counts"].items()}
    assert load_feed(reopened, directory) == expected
    assert _state(reopened) == clean
    assert verify_audit_chain(reopened).ok
    assert len([r for r in audit_trail(reopened) if r["action"] == "load_feed"]) == 1
    reopened.close()


def test_postgres_connections_killed__pool_renews_them(postgres_url) -> None:
    """Pooled connections are not pinged: when the server drops them, at most the reads in
    flight fail (their connection is invalidated) and the next reads get new connections."""
    url = _fresh_postgres(postgres_url)
    registry = open_registry(url)
    try:
        with ThreadPoolExecutor(3) as pool:  # three connections in the pool
            assert list(pool.map(lambda _: summary(registry, as_of=date.today()), range(3)))
        with registry.engine.connect() as connection:
            mine = connection.scalar(text("SELECT pg_backend_pid()"))
            others = text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> :me")  # fmt: skip
            killed = connection.execute(others, {"me": mine}).all()
        assert len(killed) >= 1
        failed = 0
        for _ in range(6):
            try:
                summary(registry, as_of=date.today())
            except Exception as exc:  # noqa: BLE001 (a dropped connection, counted)
                assert getattr(exc, "connection_invalidated", False), exc
                failed += 1
        assert failed <= 1, "one broken connection renews the whole pool"
        assert summary(registry, as_of=date.today())["participants"] == 0
    finally:
        registry.close()
        _drop_postgres(url)
