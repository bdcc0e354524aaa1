"""FHIR R4 QuestionnaireResponse (JSON, NDJSON or a Bundle) read into survey answer rows as text.

Only the standard library's ``json`` is used. Each answer becomes one row of the survey CSV's
columns: ``subject`` (``Patient/<participant id>``) gives participant_id, ``authored`` the
authored_date, the last segment of ``questionnaire`` the module_concept_id, ``item.linkId`` the
question_concept_id and ``answer.valueCoding.code`` the answer_concept_id. A ``valueString``,
``valueInteger`` or ``valueDecimal`` answer fills value_text or value_number of the item's
preceding coded answer (the "other, please specify" pattern), or makes a row of its own.
Nested items (``item.item`` and ``answer.item``) are flattened.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from opencohort.errors import InputError
from opencohort.ingest._csv import MalformedFile, TextTable

#: The survey CSV's columns, in order.
COLUMNS = (
    "participant_id",
    "module_concept_id",
    "question_concept_id",
    "answer_concept_id",
    "value_text",
    "value_number",
    "authored_date",
)
_MAX_PROBLEMS = 100


def _last_segment(reference: object) -> str | None:
    if not isinstance(reference, str) or not reference.strip():
        return None
    return reference.split("|", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _resources(text: str, file: str) -> list[tuple[int | None, str, dict]]:
    """(line, path, resource) of every resource: one JSON document or one per NDJSON line."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as whole:
        lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
        if len(lines) < 2:
            raise MalformedFile(
                [InputError(f"not JSON ({whole.msg})", file=file, line=whole.lineno)]
            ) from whole
        out, problems = [], []
        for number, line in lines:
            try:
                out.append((number, "", json.loads(line)))
            except json.JSONDecodeError as exc:
                problems.append(
                    InputError(
                        f"not JSON ({exc.msg}); expected one resource per line",
                        file=file,
                        line=number,
                    )
                )
        if problems:
            raise MalformedFile(problems[:_MAX_PROBLEMS]) from whole
        return out
    if isinstance(document, dict) and document.get("resourceType") == "Bundle":
        entries = document.get("entry") or []
        if not isinstance(entries, list):
            raise MalformedFile([InputError("Bundle entry is not a list", file=file, line=1,
                                            field="entry")])  # fmt: skip
        return [
            (None, f"entry[{i}].resource.", e.get("resource") if isinstance(e, dict) else e)
            for i, e in enumerate(entries)
        ]
    if isinstance(document, list):
        return [(None, f"[{i}].", r) for i, r in enumerate(document)]
    return [(None, "", document)]


def _items(items: object, path: str):
    """Yield (path, item) of every item, nested ones included."""
    if not isinstance(items, list):
        return
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        here = f"{path}item[{i}]"
        yield here, item
        yield from _items(item.get("item"), f"{here}.")
        answers = item.get("answer")
        for j, answer in enumerate(answers if isinstance(answers, list) else []):
            if isinstance(answer, dict):
                yield from _items(answer.get("item"), f"{here}.answer[{j}].")


def _answers(item: dict, path: str, problems: list[InputError], line: int | None, file: str):
    """Rows (answer id, text, number) of one item."""
    rows: list[list[str | None]] = []
    answers = item.get("answer") or []
    if not isinstance(answers, list):
        problems.append(InputError("answer is not a list", file=file, line=line, field=path))
        return rows
    for j, answer in enumerate(answers):
        where = f"{path}.answer[{j}]"
        if not isinstance(answer, dict):
            problems.append(
                InputError("answer is not an object", file=file, line=line, field=where)
            )
            continue
        if "valueCoding" in answer:
            coding = answer["valueCoding"]
            code = coding.get("code") if isinstance(coding, dict) else None
            if not isinstance(code, str) or not code.strip():
                problems.append(
                    InputError(
                        "valueCoding has no code",
                        file=file,
                        line=line,
                        field=f"{where}.valueCoding.code",
                    )
                )
                continue
            rows.append([code, None, None])
            continue
        if "valueString" in answer:
            slot, value = 1, answer["valueString"]
        elif "valueInteger" in answer or "valueDecimal" in answer:
            slot = 2
            value = answer.get("valueInteger", answer.get("valueDecimal"))
            value = None if isinstance(value, bool) else value
            value = str(value) if isinstance(value, int | float) else value
        else:
            problems.append(
                InputError(
                    "no valueCoding, valueString, valueInteger or valueDecimal",
                    file=file,
                    line=line,
                    field=where,
                )
            )
            continue
        if not isinstance(value, str):
            problems.append(
                InputError("value is not a string or number", file=file, line=line, field=where)
            )
            continue
        if rows and rows[-1][slot] is None:
            rows[-1][slot] = value
        else:
            rows.append([None, value, None] if slot == 1 else [None, None, value])
    return rows


def read_questionnaire_responses(data: bytes, *, file: str) -> TextTable:
    """Read QuestionnaireResponse resources into the survey CSV's columns, as text.

    Parameters
    ----------
    data
        A JSON resource, a JSON array or Bundle of them, or NDJSON (one per line).
    file
        Name used in messages.

    Returns
    -------
    TextTable
        Columns :data:`COLUMNS`; each row's line is its resource's NDJSON line (1 for a
        single JSON document).

    Raises
    ------
    MalformedFile
        If the bytes are not UTF-8 JSON, or a resource is not a QuestionnaireResponse or lacks
        its subject, authored date, questionnaire, an item's linkId or an answer's value; each
        problem names the file, the line and the FHIR path.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MalformedFile(
            [InputError("not valid UTF-8; save the file as UTF-8", file=file, line=line)]
        ) from exc
    rows: list[list[str | None]] = []
    lines: list[int] = []
    problems: list[InputError] = []
    for line, path, resource in _resources(text, file):
        at = 1 if line is None else line
        if (
            not isinstance(resource, dict)
            or resource.get("resourceType") != "QuestionnaireResponse"
        ):
            kind = resource.get("resourceType") if isinstance(resource, dict) else None
            problems.append(
                InputError(
                    f"resourceType {kind!r}; expected QuestionnaireResponse",
                    file=file,
                    line=at,
                    field=f"{path}resourceType",
                )
            )
            continue
        subject = resource.get("subject")
        reference = subject.get("reference") if isinstance(subject, dict) else None
        head = {
            "participant_id": _last_segment(reference),
            "module_concept_id": _last_segment(resource.get("questionnaire")),
            "authored_date": resource.get("authored"),
        }
        names = {
            "participant_id": "subject.reference",
            "module_concept_id": "questionnaire",
            "authored_date": "authored",
        }
        missing = [k for k, v in head.items() if not isinstance(v, str) or not v.strip()]
        for key in missing:
            problems.append(
                InputError(
                    "missing; this element is required",
                    file=file,
                    line=at,
                    field=f"{path}{names[key]}",
                )
            )
        if missing:
            continue
        for item_path, item in _items(resource.get("item"), path):
            link = item.get("linkId")
            answers = _answers(item, f"{item_path}", problems, at, file)
            if not answers:
                continue
            if not isinstance(link, str) or not link.strip():
                problems.append(
                    InputError(
                        "item with answers has no linkId",
                        file=file,
                        line=at,
                        field=f"{item_path}.linkId",
                    )
                )
                continue
            for answer, value_text, value_number in answers:
                rows.append(
                    [
                        head["participant_id"],
                        head["module_concept_id"],
                        link,
                        answer,
                        value_text,
                        value_number,
                        head["authored_date"],
                    ]
                )
                lines.append(at)
        if len(problems) >= _MAX_PROBLEMS:
            break
    if problems:
        raise MalformedFile(problems[:_MAX_PROBLEMS])
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(COLUMNS)
    table = pa.table(
        {
            name: pa.array(list(values), type=pa.string())
            for name, values in zip(COLUMNS, columns, strict=True)
        }
    )
    return TextTable(list(COLUMNS), table, np.asarray(lines, dtype=np.int64))
