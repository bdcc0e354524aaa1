"""Read CSV bytes into all-text columns, or say exactly which line and field is wrong.

The fast path is pyarrow's multi-threaded reader. When it refuses a file, a second pass with
Python's strict ``csv`` reader finds every bad line (wrong field count, unclosed quote) so the
message can name it; if that pass finds nothing wrong its rows are used, so any input gives
either rows or an error naming a line.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from opencohort.errors import InputError

_BOM = b"\xef\xbb\xbf"
_MAX_PROBLEMS = 100


class MalformedFile(InputError):
    """A submitted file cannot be read; fix every listed line and field and submit again."""

    def __init__(self, problems: list[InputError]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(
            f"{first.args[0].split(': ', 1)[-1]}{more}",
            file=first.file,
            line=first.line,
            field=first.field,
            value=first.value,
        )
        self.problems = problems


@dataclass(frozen=True)
class TextTable:
    """A CSV file as text: normalised header names, string columns, each row's first line."""

    columns: list[str]
    data: pa.Table
    lines: np.ndarray


def _fields(line: str) -> list[str]:
    """Split one line into fields, leniently (for locating a problem only)."""
    try:
        return next(csv.reader(io.StringIO(line, newline="")), [])
    except csv.Error:
        return line.split(",")


def _field_index(prefix: str) -> int:
    """Index of the field a position falls in, given the text of its line before it."""
    return max(len(_fields(prefix)) - 1, 0)


def _check_utf8(data: bytes, file: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        line = before.count(b"\n") + 1
        start = before.rfind(b"\n") + 1
        header = before.split(b"\n", 1)[0].decode("utf-8", "replace")
        names = _fields(header)
        index = _field_index(before[start:].decode("utf-8", "replace"))
        field = names[index].strip().lower() if line > 1 and index < len(names) else None
        raise MalformedFile(
            [
                InputError(
                    f"byte 0x{data[exc.start]:02x} is not valid UTF-8; save the file as UTF-8",
                    file=file,
                    line=line,
                    field=field,
                    value=data[exc.start : exc.end],
                )
            ]
        ) from exc


def _header(data: bytes, file: str) -> list[str]:
    """The header's names, decoding only the bytes the first record needs."""
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", newline="")
    try:
        record = next(csv.reader(stream), [])
    except UnicodeDecodeError:
        _check_utf8(data, file)
        raise
    names = [name.strip().lower() for name in record]
    problems = []
    if not names or names == [""]:
        problems.append(
            InputError("no header; expected the table's column names", file=file, line=1)
        )
    for i, name in enumerate(names):
        if not name:
            problems.append(InputError(f"column {i + 1} has no name", file=file, line=1))
        elif name in names[:i]:
            problems.append(InputError("column named twice", file=file, line=1, field=name))
    if problems:
        _check_utf8(data, file)
        raise MalformedFile(problems)
    return names


def _fast(data: bytes, names: list[str]) -> pa.Table:
    return pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )


def _slow(text: str, names: list[str], file: str) -> tuple[pa.Table, np.ndarray]:
    """Read with Python's strict csv reader; return the rows or raise naming every bad line."""
    n = len(names)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows, lines, problems = [], [], []
    previous = 0
    try:
        next(reader)
        previous = reader.line_num
        for record in reader:
            start, previous = previous + 1, reader.line_num
            if not record:
                continue
            if len(record) != n:
                where = names[len(record)] if len(record) < n else f"(column {n + 1})"
                problems.append(
                    InputError(
                        f"{len(record)} fields where the header has {n}; the line is "
                        + ("short or truncated" if len(record) < n else "too long"),
                        file=file,
                        line=start,
                        field=where,
                    )
                )
                if len(problems) >= _MAX_PROBLEMS:
                    break
                continue
            rows.append(record)
            lines.append(start)
    except csv.Error as exc:
        start = previous + 1
        split = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        line_text = split[start - 1] if start <= len(split) else ""
        index = _field_index(line_text)
        problems.append(
            InputError(
                f"cannot split the line into fields ({exc}); check for an unclosed quote",
                file=file,
                line=start,
                field=names[index] if index < n else None,
            )
        )
    if problems:
        raise MalformedFile(problems)
    columns = list(zip(*rows, strict=True)) if rows else [()] * n
    table = pa.table(
        {
            name: pa.array([v if v != "" else None for v in values], type=pa.string())
            for name, values in zip(names, columns, strict=True)
        }
    )
    return table, np.asarray(lines, dtype=np.int64)


def read_text_csv(data: bytes, *, file: str) -> TextTable:
    """Read CSV bytes into string columns (empty fields are missing).

    Parameters
    ----------
    data
        The file's bytes; a UTF-8 byte-order mark is allowed.
    file
        Name used in messages.

    Returns
    -------
    TextTable
        Header names stripped and lower-cased, one string column each, and the line each
        row starts on.

    Raises
    ------
    MalformedFile
        If the bytes are not UTF-8, the header is empty or repeats a name, a line has the wrong
        number of fields, or a quote is never closed; every problem names file, line and field.
    """
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    names = _header(data, file)
    try:  # pyarrow checks UTF-8 too: a file it reads is valid text
        table = _fast(data, names)
    except (pa.ArrowInvalid, pa.ArrowException):
        table, lines = _slow(_check_utf8(data, file), names, file)
        return TextTable(names, table, lines)
    n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if n_lines == table.num_rows + 1:
        lines = np.arange(2, table.num_rows + 2, dtype=np.int64)
    else:
        slow_table, lines = _slow(_check_utf8(data, file), names, file)
        if slow_table.num_rows != table.num_rows:
            table = slow_table
    return TextTable(names, table, lines)
