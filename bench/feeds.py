"""Benchmark ingesting feeds: surveys as CSV and FHIR NDJSON, measurements, wearables.

Generates a synthetic program, loads its registry, then times (each on a fresh home) storing and
validating each feed, and reading the survey feed back as curation does. Prints a table and
writes ``bench/results/feeds.json`` with the load average.

    python bench/feeds.py --participants 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from opencohort.config import init_home
from opencohort.ingest import find_feeds, ingest_feed, latest_feed
from opencohort.registry import load_feed, open_registry
from opencohort.synth import SynthConfig, generate_program

RESULTS = Path(__file__).parent / "results"


def _fhir(csv: Path, out: Path) -> None:
    """Write the survey CSV's answers as QuestionnaireResponse NDJSON (one per module)."""
    answers = pd.read_csv(csv, dtype={"value_text": object})
    with out.open("w") as fh:
        keys = ["participant_id", "module_concept_id", "authored_date"]
        for (pid, module, authored), rows in answers.groupby(keys, sort=False):
            items = []
            for question, group in rows.groupby("question_concept_id", sort=False):
                entries = [{"valueCoding": {"code": str(int(a))}}
                           for a in group["answer_concept_id"].dropna()]  # fmt: skip
                entries += [{"valueString": t} for t in group["value_text"].dropna()]
                items.append({"linkId": str(question), "answer": entries})
            resource = {"resourceType": "QuestionnaireResponse",
                        "questionnaire": f"Questionnaire/{module}",
                        "subject": {"reference": f"Patient/{pid}"}, "authored": authored,
                        "item": items}  # fmt: skip
            fh.write(json.dumps(resource) + "\n")


def _time(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=20_000)
    args = parser.parse_args()
    runs, load_before = [], os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        program = Path(tmp) / "program"
        generate_program(SynthConfig(participants=args.participants, genomes=0, sites=2, seed=1),
                         program)  # fmt: skip
        (program / "surveys").mkdir()
        _fhir(program / "registry" / "surveys.csv", program / "surveys" / "responses.ndjson")
        known = set(pd.read_csv(program / "registry" / "participants.csv")["participant_id"])
        sources = find_feeds(program)
        for source in sources:
            home = init_home(Path(tmp) / f"home-{source.feed}-{source.folder.name}")
            registry = open_registry(home.registry_url)
            try:
                load_feed(registry, program / "registry", seed=1)
            finally:
                registry.close()
            seconds, result = _time(lambda s=source, h=home: ingest_feed(h, s, participants=known))
            assert not result.files_failed, result.problems[:3]
            read, _ = _time(lambda s=source, h=home: latest_feed(h, s.feed, known))
            again, _ = _time(lambda s=source, h=home: ingest_feed(h, s, participants=known))
            rows = result.report["summary"]["rows"]
            size = sum((source.folder / n).stat().st_size for n in source.names)
            runs.append({
                "feed": source.feed, "files": list(source.names), "rows": rows,
                "megabytes": round(size / 2**20, 1), "ingest_seconds": round(seconds, 2),
                "rows_per_s": round(rows / seconds), "read_seconds": round(read, 2),
                "reingest_seconds": round(again, 3),
            })  # fmt: skip
    results = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count()},
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "participants": args.participants,
        "runs": runs,
    }  # fmt: skip
    table = Table(title=f"feed ingest, {args.participants:,} participants")
    for col in ("feed", "files", "rows", "MB", "ingest s", "rows/s", "read s", "re-ingest s"):
        table.add_column(col, justify="right")
    for r in runs:
        table.add_row(r["feed"], ", ".join(r["files"]), f"{r['rows']:,}", f"{r['megabytes']}",
                      f"{r['ingest_seconds']:.2f}", f"{r['rows_per_s']:,}",
                      f"{r['read_seconds']:.2f}", f"{r['reingest_seconds']:.3f}")  # fmt: skip
    Console().print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "feeds.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
