"""Per-site ingest reports: one JSON document for machines and one self-contained HTML page.

Both are written to ``<home>/reports/ingest/<site_id>/<submission_id>.{json,html}``. The
report says, per file, whether it was read (and every problem with its line and field), per
check whether it passed with failing counts, shares and up to 5 example rows, and how the
site's persons matched the registry. Examples show only the key, the person and the checked
value; identity results show which fields matched, never the values compared.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from opencohort.config import Home
from opencohort.ingest.checks import CheckResult
from opencohort.ingest.identity import FIELDS
from opencohort.ingest.omop_files import ParsedTable
from opencohort.ingest.raw_store import Submission

MAX_EXAMPLES = 5


@dataclass
class FileResult:
    """What happened to one submitted file.

    ``kind`` is ``cdm`` (an OMOP table), ``pii`` or ``unknown`` (kept in raw, not read);
    ``status`` is ``ok``, ``failed`` (not readable: see ``problems``) or ``ignored``.
    """

    name: str
    table: str | None
    kind: str
    status: str
    rows: int = 0
    problems: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def report_dir(home: Home, site_id: str, *, feed: str = "ehr") -> Path:
    """Folder of a site's ingest reports (of a feed's source, below the feed's name)."""
    root = home.root / "reports" / "ingest"
    return root / site_id if feed == "ehr" else root / feed / site_id


def _examples(result: CheckResult, table: ParsedTable) -> list[dict]:
    rows = result.rows[:MAX_EXAMPLES]
    names = [n for n in (table.spec.primary_key, "person_id", result.check.field) if n]
    columns = {
        n: table.text.column(n) for n in dict.fromkeys(names) if n in table.text.column_names
    }
    out = []
    for r in rows:
        example = {"line": int(table.lines[r]) if r < len(table.lines) else None}
        example.update({n: col[int(r)].as_py() for n, col in columns.items()})
        out.append(example)
    return out


def _check_record(result: CheckResult, tables: Mapping[str, ParsedTable]) -> dict:
    table = tables.get(result.check.table)
    return {
        **result.check.as_dict(),
        "status": result.status,
        "n_rows": result.n_rows,
        "n_failed": result.n_failed,
        "percent_failed": round(result.percent_failed, 4),
        "examples": _examples(result, table) if table is not None and result.n_failed else [],
    }


def _identity_record(identity: pd.DataFrame) -> dict:
    by_field = {
        name: {k: int(v) for k, v in identity[name].value_counts().sort_index().items()}
        for name in FIELDS
    }
    dropped = identity.index[identity["drop"].to_numpy(dtype=bool)]
    return {
        "persons": len(identity),
        "dropped": len(dropped),
        "by_field": by_field,
        "dropped_person_ids": [int(p) for p in dropped],
    }


def build_report(
    submission: Submission,
    files: Sequence[FileResult],
    results: Sequence[CheckResult],
    tables: Mapping[str, ParsedTable],
    identity: pd.DataFrame | None,
) -> dict:
    """Assemble the JSON-ready report of one site's submission."""
    checks = [_check_record(r, tables) for r in results]
    statuses = [c["status"] for c in checks]
    return {
        "site_id": submission.site_id,
        "submission_id": submission.submission_id,
        "received": submission.received.isoformat(),
        "summary": {
            "files": len(files),
            "files_failed": sum(f.status == "failed" for f in files),
            "rows": int(sum(f.rows for f in files)),
            "checks_passed": statuses.count("pass"),
            "checks_failed": statuses.count("fail"),
            "checks_not_applicable": statuses.count("not_applicable"),
            "persons_dropped": 0 if identity is None else int(identity["drop"].sum()),
        },
        "files": [
            {
                "name": f.name,
                "table": f.table,
                "kind": f.kind,
                "status": f.status,
                "rows": f.rows,
                "sha256": next((s.sha256 for s in submission.files if s.name == f.name), None),
                "problems": f.problems,
                "warnings": f.warnings,
            }
            for f in files
        ],
        "checks": checks,
        "identity": None if identity is None else _identity_record(identity),
    }


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em}
th{background:#f3f3f3;text-align:left}.pass{color:#176317}.fail{color:#b00020;font-weight:bold}
.not_applicable,.ignored{color:#777}.failed{color:#b00020;font-weight:bold}.ok{color:#176317}
code{font-size:90%}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _row(cells: Sequence[object], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def _examples_html(examples: list[dict]) -> str:
    return "<br>".join("; ".join(f"{_e(k)}={_e(v)}" for k, v in ex.items()) for ex in examples)


def render_html(report: dict) -> str:
    """Render a report (from :func:`build_report`) as one self-contained HTML page."""
    s = report["summary"]
    feed = report.get("feed", "ehr")
    source = f"site {report['site_id']}" if feed == "ehr" else f"{feed} feed {report['site_id']}"
    title = f"Ingest report: {source}, submission {report['submission_id']}"
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>",
        f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>",
        f"<p>Received {_e(report['received'])}. {s['files']} files "
        f"({s['files_failed']} failed), {s['rows']} rows; checks: {s['checks_passed']} passed, "
        f"{s['checks_failed']} failed, {s['checks_not_applicable']} not applicable; "
        f"{s['persons_dropped']} persons dropped by identity matching.</p>",
        "<h2>Files</h2><table>",
        _row(["file", "table", "status", "rows", "sha256", "problems"], "th"),
    ]
    for f in report["files"]:
        problems = "<br>".join(
            _e(f"line {p['line']}, field {p['field']}: {p['message']}") for p in f["problems"]
        ) + "".join(f"<br><i>{_e(w)}</i>" for w in f["warnings"])
        parts.append(
            _row(
                [
                    f"<code>{_e(f['name'])}</code>",
                    _e(f["table"]),
                    f"<span class='{_e(f['status'])}'>{_e(f['status'])}</span>",
                    f["rows"],
                    f"<code>{_e((f['sha256'] or '')[:12])}</code>",
                    problems,
                ]
            )
        )
    parts += [
        "</table><h2>Checks</h2><table>",
        _row(
            [
                "status",
                "check",
                "category",
                "description",
                "failed",
                "% failed",
                "threshold %",
                "examples",
            ],
            "th",
        ),
    ]
    order = {"fail": 0, "pass": 1, "not_applicable": 2}
    for c in sorted(report["checks"], key=lambda c: (order[c["status"]], c["id"])):
        parts.append(
            _row(
                [
                    f"<span class='{_e(c['status'])}'>{_e(c['status'])}</span>",
                    f"<code>{_e(c['id'])}</code>",
                    _e(c["category"]),
                    _e(c["description"]),
                    f"{c['n_failed']} / {c['n_rows']}",
                    f"{c['percent_failed']:.3f}",
                    _e(c["threshold"]),
                    _examples_html(c["examples"]),
                ]
            )
        )
    parts.append("</table>")
    identity = report["identity"]
    if identity is not None:
        outcomes = ("match", "no_match", "missing_ehr", "missing_rdr")
        parts += [
            f"<h2>Identity matching</h2><p>{identity['persons']} persons, "
            f"{identity['dropped']} dropped (2+ of first name, last name, birth date or 4+ "
            "fields not matching the registry).</p><table>",
            _row(["field", *outcomes], "th"),
        ]
        for name, counts in identity["by_field"].items():
            parts.append(_row([_e(name), *(counts.get(o, 0) for o in outcomes)]))
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(home: Home, report: dict) -> tuple[Path, Path]:
    """Write a report as ``<submission_id>.json`` and ``.html``; return both paths."""
    folder = report_dir(home, report["site_id"], feed=report.get("feed", "ehr"))
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{report['submission_id']}.json"
    html_path = folder / f"{report['submission_id']}.html"
    _write(json_path, json.dumps(report, indent=2, default=_plain) + "\n")
    _write(html_path, render_html(report))
    return json_path, html_path


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a report")


@dataclass(frozen=True)
class Reported:
    """A stored submission and its validation report (``new`` False: stored and checked before)."""

    submission: Submission
    report: dict
    json_path: Path
    html_path: Path
    new: bool

    @property
    def files_failed(self) -> list[str]:
        """Names of the files that failed validation."""
        return [f["name"] for f in self.report["files"] if f["status"] == "failed"]


def earlier_report(submission: Submission, json_path: Path) -> dict | None:
    """The report of `submission` written when the same files were ingested before, or None."""
    if submission.new or not (json_path.is_file() and json_path.with_suffix(".html").is_file()):
        return None
    return json.loads(json_path.read_text(encoding="utf-8"))
