"""Fast CSV appends for generated EHR and measurement tables (one header per file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

_NO_HEADER = pacsv.WriteOptions(include_header=False, quoting_style="needed")
_MISSING_BELOW = -(10**6)  # day numbers below this are missing dates


def as_dates(days: np.ndarray) -> pa.Array:
    """Return a date32 array from int day numbers since 1970-01-01 (very negative = missing)."""
    days = np.asarray(days, dtype=np.int64)
    return pa.array(days.astype(np.int32), type=pa.date32(), mask=days < _MISSING_BELOW)


def nulls(n: int, kind: str = "int") -> pa.Array:
    """Return an all-missing column of `n` rows ('int', 'str', 'float' or 'date')."""
    types = {"int": pa.int64(), "str": pa.string(), "float": pa.float64(), "date": pa.date32()}
    return pa.nulls(n, types[kind])


def append_table(columns: dict[str, pa.Array | np.ndarray], path: Path, *, fresh: bool) -> int:
    """Write `columns` (name -> array, in order) to `path` and return the number of rows.

    The file is truncated and given a header when `fresh` is set or when it does not exist yet;
    otherwise rows are appended without a header.
    """
    table = pa.table({name: _array(values) for name, values in columns.items()})
    new = fresh or not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb" if new else "ab") as fh:
        if new:
            fh.write((",".join(table.column_names) + "\n").encode())
        if table.num_rows:
            pacsv.write_csv(table, fh, _NO_HEADER)
    return table.num_rows


def _array(values: pa.Array | np.ndarray) -> pa.Array:
    if isinstance(values, pa.Array):
        return values
    arr = np.asarray(values)
    if arr.dtype.kind == "f":
        return pa.array(arr, mask=np.isnan(arr))
    if arr.dtype.kind in "OU":
        return pa.array(arr.astype(object), type=pa.string(), from_pandas=True)
    return pa.array(arr)
