"""Benchmark the registry API under load: summary reads and consent writes (issue 3).

A program home with a synthetic registry (``opencohort synth`` + ``opencohort registry load``,
cached under ``/work/benchdata/api/``) is served by the real server (``opencohort registry
serve`` on a free loopback port, its own process) and driven by 32 concurrent clients,
open-loop at fixed target rates for 60 s each: 80 % reads (a participant's summary, the
registry counts, a participant search) and 20 % consent writes with idempotency keys. Each
step records the achieved rate, latency percentiles and errors (any non-2xx or connection
error). Latency is measured from the request's scheduled start, so time a request waits for a
free client counts (no coordinated omission). Target: 300 requests/s with p99 under 50 ms and
no errors; reported: the highest rate held with p99 under 100 ms. Runs on SQLite and on
PostgreSQL; prints a table and writes ``bench/results/registry_api.json``.

    python bench/registry_api.py [--participants 100000] [--engine sqlite --engine postgresql]
        [--rate 300 --rate 450 ...] [--duration 60] [--workers 1]

Rates go up from 300 while they are held; when 300 is not, they go down (200, 150, ...) to
the first one that is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import httpx2 as httpx
import numpy as np
import uvloop
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import http1
from machine import machine
from opencohort.config import load_home

RESULTS = Path(__file__).parent / "results"
DATA = Path("/work/benchdata/api")
PG_URL = os.environ.get("OPENCOHORT_TEST_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:29093/postgres")  # fmt: skip
PREFIX = "/registry/v1"
RATES = (300, 450, 600, 800, 1000, 1200, 1500)
#: Rates tried, highest first, when the first of ``RATES`` is not held.
RATES_BELOW = (200, 150, 100, 50, 25)
#: Share of each request kind in the mix (reads 80 %, consent writes 20 %).
MIX = {"participant_summary": 0.40, "counts": 0.30, "search": 0.10, "consent_write": 0.20}
TARGET = {"rate": 300, "p99_ms": 50.0}
#: PostgreSQL settings recorded with the figures (the test server runs with fsync off).
PG_SETTINGS = ("server_version", "fsync", "synchronous_commit", "max_connections")
HELD_P99_MS = 100.0
CONSOLE = Console(stderr=True)


def _opencohort() -> list[str]:
    return [str(Path(sys.executable).with_name("opencohort"))]


def _run(args: list[str], **env: str) -> str:
    done = subprocess.run([*_opencohort(), *args], capture_output=True, text=True,
                          env={**os.environ, **env}, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"opencohort {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


# --- the registry under test ----------------------------------------------------------------


def _feed(participants: int) -> Path:
    """Return the synthetic program's registry feed, generating it once."""
    out = DATA / f"synth-{participants}"
    if not (out / "summary.json").exists():
        CONSOLE.print(f"generating {participants:,} synthetic participants in {out}")
        _run(["synth", "--out", str(out), "--participants", str(participants), "--genomes", "0",
              "--sites", "10", "--seed", "7", "--force"])  # fmt: skip
    return out / "registry"


def _load(home: Path, feed: Path) -> float:
    start = time.perf_counter()
    _run(["registry", "load", str(feed), "--home", str(home), "--json"])
    return time.perf_counter() - start


def _sqlite_home(participants: int, run_dir: Path) -> tuple[Path, dict]:
    """Copy a loaded SQLite home (loaded once and cached) to `run_dir`; return it and info."""
    pristine = DATA / f"home-sqlite-{participants}"
    info_file = pristine / "bench-load.json"
    if not info_file.exists():
        shutil.rmtree(pristine, ignore_errors=True)
        _run(["init", str(pristine)])
        seconds = _load(pristine, _feed(participants))
        info_file.write_text(json.dumps({"load_seconds": round(seconds, 1)}))
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(pristine, run_dir)
    return run_dir, json.loads(info_file.read_text())


def _pg_admin(base: str):
    return create_engine(make_url(base).set(database="postgres"), isolation_level="AUTOCOMMIT")


def _pg_home(participants: int, run_dir: Path, base: str) -> tuple[Path, dict]:
    """Clone a loaded bench database (loaded once, kept as a template) for this run."""
    pristine, run_db = f"oc_bench_api_{participants}", f"oc_bench_api_{participants}_run"
    admin = _pg_admin(base)
    info_file = DATA / f"{pristine}.json"
    with admin.connect() as connection:
        exists = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                   {"n": pristine})  # fmt: skip
        if not exists or not info_file.exists():
            connection.execute(text(f'DROP DATABASE IF EXISTS "{pristine}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{pristine}"'))
            loader = _home(DATA / f"home-{pristine}", _url(base, pristine))
            seconds = _load(loader, _feed(participants))
            info_file.write_text(json.dumps({"load_seconds": round(seconds, 1)}))
        connection.execute(text(f'DROP DATABASE IF EXISTS "{run_db}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{run_db}" TEMPLATE "{pristine}"'))
        settings = {name: connection.scalar(text(f"SHOW {name}")) for name in PG_SETTINGS}
    admin.dispose()
    info = json.loads(info_file.read_text()) | {"server": settings}
    return _home(run_dir, _url(base, run_db)), info


def _url(base: str, database: str) -> str:
    return make_url(base).set(database=database).render_as_string(hide_password=False)


def _home(path: Path, url: str) -> Path:
    """Make a program home at `path` whose registry is the database at `url`."""
    shutil.rmtree(path, ignore_errors=True)
    _run(["init", str(path)])
    toml = path / "opencohort.toml"
    toml.write_text(toml.read_text().replace('url = "sqlite:///registry.db"', f'url = "{url}"'))
    return path


def _participants(url: str, n: int) -> tuple[list[str], list[str]]:
    """Return up to `n` random participants never withdrawn, and the site ids."""
    engine = create_engine(url)
    with engine.connect() as connection:
        ids = connection.scalars(text(
            "SELECT participant_id FROM participant WHERE participant_id NOT IN "
            "(SELECT participant_id FROM withdrawal_event)"
        )).all()  # fmt: skip
        sites = connection.scalars(text("SELECT site_id FROM site ORDER BY site_id")).all()
    engine.dispose()
    random.Random(3).shuffle(ids)
    return ids[:n], list(sites)


# --- the server -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A running ``opencohort registry serve`` process."""

    process: subprocess.Popen
    base_url: str

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server process and its worker processes."""
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        total = 0.0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 20 s)."""
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _serve(home: Path, secret: str, workers: int, log: Path, reader: str) -> Server:
    port = _free_port()
    args = ["registry", "serve", "--home", str(home), "--port", str(port), "--no-access-log"]
    if workers > 1:
        args += ["--workers", str(workers)]
    process = subprocess.Popen([*_opencohort(), *args], stdout=log.open("w"),  # noqa: SIM115
                               stderr=subprocess.STDOUT,
                               env={**os.environ, "OPENCOHORT_SECRET_KEY": secret})  # fmt: skip
    server = Server(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}; see {log}")
        try:
            done = httpx.get(server.base_url + PREFIX + "/summary", timeout=300,
                             headers={"Authorization": f"Bearer {reader}"})  # fmt: skip
            if done.status_code == 200 and _warm(server.base_url, reader):
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    server.stop()
    raise SystemExit(f"the server did not answer within 10 minutes; see {log}")


def _warm(base_url: str, reader: str) -> bool:
    """Whether 20 summary reads in a row, each on a new connection (so every worker
    process answers some), take under 100 ms each."""
    for _ in range(20):
        start = time.perf_counter()
        done = httpx.get(base_url + PREFIX + "/summary", timeout=300,
                         headers={"Authorization": f"Bearer {reader}"})  # fmt: skip
        if done.status_code != 200 or time.perf_counter() - start > 0.1:
            return False
    return True


# --- the load -----------------------------------------------------------------------------------


@dataclass
class Workload:
    """What the clients send: tokens, participants to read and write about, sites."""

    staff: str
    reader: str
    ids: list[str]
    sites: list[str]

    def request(self, rng: random.Random, kind: str, n: str) -> tuple[str, str, dict, dict | None]:
        """Return (method, path, headers, json body) of one request of `kind`; a consent
        gets version `n` (unique: the registry refuses the same form twice)."""
        pid = rng.choice(self.ids)
        read = {"Authorization": f"Bearer {self.reader}"}
        if kind == "participant_summary":
            return "GET", f"{PREFIX}/participants/{pid}/summary", read, None
        if kind == "counts":
            return "GET", f"{PREFIX}/summary", read, None
        if kind == "search":
            site = rng.choice(self.sites)
            return "GET", f"{PREFIX}/participants?site_id={site}&limit=20", read, None
        body = {
            "consent_type": rng.choice(["ehr", "gror", "wearables"]),
            "version": n,
            "status": rng.choice(["submitted", "submitted", "submitted", "not_sure"]),
            "authored": date.today().isoformat(),
            "document_sha256": secrets.token_hex(32),
        }
        headers = {"Authorization": f"Bearer {self.staff}", "Idempotency-Key": uuid.uuid4().hex}
        return "POST", f"{PREFIX}/participants/{pid}/consents", headers, body


def _code(body: bytes) -> str:
    """The error code of a refused request's body (every API error has one)."""
    try:
        return str(json.loads(body).get("code"))
    except (ValueError, AttributeError):
        return "not-json"


async def _drive(base_url: str, work: Workload, *, rate: float, seconds: float, clients: int,
                 progress: Progress, task) -> dict:  # fmt: skip
    """Send `rate` requests/s for `seconds` from `clients` concurrent clients (open loop)."""
    total = int(rate * seconds)
    rng = random.Random(int(rate))
    kinds = rng.choices(list(MIX), weights=list(MIX.values()), k=total)
    latency = np.full(total, np.nan)
    service = np.full(total, np.nan)
    errors: dict[str, int] = {}
    slot = iter(range(total))
    url = urlsplit(base_url)
    connections = [http1.Connection(url.hostname, url.port) for _ in range(clients)]
    start = time.perf_counter()

    async def one_client(connection: http1.Connection) -> None:
        for i in slot:
            due = start + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            method, path, headers, body = work.request(rng, kinds[i], f"b{rate:.0f}-{i}")
            sent = time.perf_counter()
            try:
                status, reply = await connection.request(method, path, headers, body)
                if not 200 <= status < 300:
                    name = f"{kinds[i]} {status} {_code(reply)}"
                    errors[name] = errors.get(name, 0) + 1
            except (OSError, http1.ProtocolError) as exc:
                name = f"{kinds[i]} {type(exc).__name__}"
                errors[name] = errors.get(name, 0) + 1
            done = time.perf_counter()
            latency[i], service[i] = done - due, done - sent
            progress.update(task, completed=done - start)

    try:
        await asyncio.gather(*(one_client(c) for c in connections))
    finally:
        for connection in connections:
            connection.close()
    elapsed = time.perf_counter() - start
    ms = latency * 1000
    by_kind = {k: round(float(np.percentile(ms[[x == k for x in kinds]], 99)), 1) for k in MIX}
    return {
        "target_rate": rate,
        "requests": total,
        "seconds": round(elapsed, 2),
        "achieved_rate": round(total / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p95_ms": round(float(np.percentile(ms, 95)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
        "service_p99_ms": round(float(np.percentile(service * 1000, 99)), 1),
        "p99_ms_by_kind": by_kind,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }


def _held(step: dict, p99_ms: float) -> bool:
    """Whether a step kept its rate (within 2 %) with p99 under `p99_ms` and no errors."""
    kept = step["achieved_rate"] >= 0.98 * step["target_rate"]
    return kept and step["errors"] == 0 and step["p99_ms"] < p99_ms


def _bench_engine(engine: str, args, progress: Progress) -> dict:
    run_dir = DATA / f"run-{engine}-{args.participants}"
    if engine == "sqlite":
        home, info = _sqlite_home(args.participants, run_dir)
    else:
        home, info = _pg_home(args.participants, run_dir, args.pg_url)
    secret = secrets.token_urlsafe(32)
    tokens = {}
    for role in ("site_staff", "curation"):
        out = _run(["registry", "token", "create", "--role", role, "--name",
                    f"bench-{role}-{uuid.uuid4().hex[:8]}", "--home", str(home)],
                   OPENCOHORT_SECRET_KEY=secret)  # fmt: skip
        tokens[role] = out.strip().splitlines()[-1]
    ids, sites = _participants(load_home(home).registry_url, 20_000)
    work = Workload(tokens["site_staff"], tokens["curation"], ids, sites)
    log = run_dir / "server.log"
    started = time.perf_counter()
    server = _serve(home, secret, args.workers, log, work.reader)
    ready = time.perf_counter() - started
    steps = []

    def run(rate: int) -> bool:
        task = progress.add_task(f"{engine} {rate} req/s", total=args.duration)
        drive = _drive(server.base_url, work, rate=rate, seconds=args.duration,
                       clients=args.clients, progress=progress, task=task)  # fmt: skip
        client, served = time.process_time(), server.cpu_seconds()
        step = uvloop.run(drive)
        done = step["requests"]
        step["client_cpu_ms_per_request"] = round((time.process_time() - client) * 1e3 / done, 2)
        step["server_cpu_ms_per_request"] = round((server.cpu_seconds() - served) * 1e3 / done, 2)
        progress.update(task, completed=args.duration)
        steps.append(step)
        return _held(step, HELD_P99_MS)

    try:
        rates = args.rate or RATES
        held_any = False
        for rate in rates:
            if not run(rate):
                break
            held_any = True
        if not held_any and not args.rate:
            for rate in RATES_BELOW:
                if run(rate):
                    break
    finally:
        server.stop()
    target = next((s for s in steps if s["target_rate"] == TARGET["rate"]), None)
    held = [s["target_rate"] for s in steps if _held(s, HELD_P99_MS)]
    return {
        **info,
        "server_ready_seconds": round(ready, 1),
        "steps": steps,
        "target_met": bool(target and _held(target, TARGET["p99_ms"])),
        "highest_rate_p99_under_100ms": max(held, default=None),
    }


def _table(results: dict) -> Table:
    table = Table(title=f"registry API, {results['inputs']['participants']:,} participants")
    for name in ("engine", "target/s", "achieved/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
                 "errors", "held"):  # fmt: skip
        table.add_column(name, justify="left" if name == "engine" else "right")
    for engine, out in results["engines"].items():
        for s in out["steps"]:
            table.add_row(engine, str(s["target_rate"]), f"{s['achieved_rate']:.0f}",
                          f"{s['p50_ms']:.1f}", f"{s['p95_ms']:.1f}", f"{s['p99_ms']:.1f}",
                          f"{s['max_ms']:.0f}", str(s["errors"]),
                          "yes" if _held(s, HELD_P99_MS) else "no")  # fmt: skip
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--engine", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--rate", type=int, action="append", help="Target requests/s (repeat).")
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds per rate.")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="Server worker processes.")
    parser.add_argument("--pg-url", default=PG_URL, help="PostgreSQL server for the bench db.")
    parser.add_argument("--out", type=Path, default=RESULTS / "registry_api.json")
    args = parser.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    results = {
        "machine": machine(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "inputs": {
            "participants": args.participants,
            "clients": args.clients,
            "seconds_per_rate": args.duration,
            "server_workers": args.workers,
            "mix": MIX,
            "target": TARGET,
            "held_p99_ms": HELD_P99_MS,
        },  # fmt: skip
        "notes": [
            "The load generator (one process: asyncio on uvloop, 32 persistent HTTP/1.1 "
            "connections of bench/http1.py) runs on the same cores as the server and takes a "
            "share of them (client_cpu_ms_per_request).",
            "Latency runs from each request's scheduled start (open loop), so waiting for a "
            "free client counts; service_p99_ms is from the moment the request was sent.",
            "The server runs without its access log (registry serve --no-access-log).",
            "A rate is held when the achieved rate is within 2 % of it, there are no errors "
            "(non-2xx or connection errors) and p99 is under the bound.",
        ],
        "engines": {},
    }
    columns = [TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=CONSOLE) as progress:
        for engine in args.engine or ["sqlite", "postgresql"]:
            results["engines"][engine] = _bench_engine(engine, args, progress)
    results["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    Console().print(_table(results))
    for engine, out in results["engines"].items():
        Console().print(f"{engine}: 300 req/s with p99 < 50 ms and no errors: "
                        f"{'met' if out['target_met'] else 'not met'}; highest rate held with "
                        f"p99 < 100 ms: {out['highest_rate_p99_under_100ms']}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
