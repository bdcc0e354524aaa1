"""CSV writing of synthetic feed files (dates as YYYY-MM-DD, header only when creating)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv


def write_csv(frame: pd.DataFrame, path: Path, *, append: bool) -> None:
    """Write a frame as CSV (dates as YYYY-MM-DD), appending without a header if asked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {}
    for name in frame.columns:
        values = frame[name].to_numpy()
        if values.dtype.kind == "M":
            columns[name] = pa.array(values.astype("datetime64[D]"), type=pa.date32())
        elif values.dtype == object:
            columns[name] = pa.array(values, type=pa.string(), from_pandas=True)
        else:
            columns[name] = pa.array(values, from_pandas=True)
    table = pa.table(columns) if columns else pa.table({})
    options = pacsv.WriteOptions(include_header=not append, quoting_style="needed")
    with path.open("ab" if append else "wb") as sink:
        pacsv.write_csv(table, sink, write_options=options)
