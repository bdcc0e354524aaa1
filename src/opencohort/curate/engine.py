"""Where Ibis rules run: DuckDB over Parquet (default) or Apache Spark in local mode.

An :class:`Engine` wraps one Ibis backend and a work folder. Frames enter as Parquet files
(:meth:`Engine.register`, each row numbered in a ``_ord`` column so the original row order
survives any engine), rules' outputs are materialised as the engine goes
(:meth:`Engine.persist`) and leave as frames again (:meth:`Engine.fetch`) when a tier is done
or a rule written with pandas needs them. DuckDB works in
an on-disk database inside the work folder with a memory limit and a temporary directory, so
it spills to disk instead of running out of memory; Spark runs ``local[2]`` in one shared
session (it takes about ten seconds to start).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from opencohort.errors import ConfigError

#: Engines curation runs on.
ENGINES = ("duckdb", "spark")
#: Column numbering the rows of every registered table (removed when fetched).
ORDER = "_ord"
_SPARK = None


def _arrow_type(series: pd.Series) -> pa.DataType:
    """Arrow type of a curated frame's column (text for object columns, even all-missing)."""
    if pd.api.types.is_bool_dtype(series):
        return pa.bool_()
    if pd.api.types.is_integer_dtype(series):
        return pa.int64()
    if pd.api.types.is_float_dtype(series):
        return pa.float64()
    return pa.string()


def to_table(frame: pd.DataFrame) -> pa.Table:
    """`frame` as an Arrow table with its row numbers in :data:`ORDER`."""
    arrays = [
        pa.array(frame[c].astype(object).where(frame[c].notna(), None), type=pa.string())
        if _arrow_type(frame[c]) == pa.string()
        else pa.array(frame[c], type=_arrow_type(frame[c]), from_pandas=True)
        for c in frame.columns
    ]
    arrays.append(pa.array(range(len(frame)), type=pa.int64()))
    return pa.Table.from_arrays(arrays, names=[*map(str, frame.columns), ORDER])


def spark_session(memory: str | None = None):
    """The process's Spark session (``local[2]``, loopback only), started on first use.

    `memory` (default ``$OPENCOHORT_SPARK_MEMORY`` or ``4g``) is the driver's heap; it is read
    only when the session starts.
    """
    global _SPARK
    if _SPARK is None:
        memory = memory or os.environ.get("OPENCOHORT_SPARK_MEMORY", "4g")
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        from pyspark.sql import SparkSession

        scratch = tempfile.mkdtemp(prefix="opencohort-spark-")
        _SPARK = (
            SparkSession.builder.master("local[2]")
            .appName("opencohort")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.memory", memory)
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.local.dir", scratch)
            .config("spark.sql.warehouse.dir", os.path.join(scratch, "warehouse"))
            .getOrCreate()
        )
        _SPARK.sparkContext.setLogLevel("ERROR")
    return _SPARK


class Engine:
    """One Ibis backend and its work folder; use as a context manager (closing removes it).

    Parameters
    ----------
    name
        ``duckdb`` or ``spark``.
    workdir
        Folder for the engine's Parquet files (and DuckDB's database and spill files); made if
        missing and removed on :meth:`close`.
    memory_limit
        DuckDB's memory limit (default: half the machine's memory); beyond it DuckDB spills to
        ``workdir/spill``.

    Raises
    ------
    ConfigError
        If `name` is not one of :data:`ENGINES`.
    """

    def __init__(self, name: str, workdir: Path, *, memory_limit: str | None = None):
        if name not in ENGINES:
            raise ConfigError(f"engine {name!r} is not known; use one of {', '.join(ENGINES)}")
        self.name = name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._ids = itertools.count()
        self._dtypes: dict[str, pd.Series] = {}
        self._lookups: dict[tuple[str, int], tuple[object, ibis.Table]] = {}
        self._persisted: set[str] = set()
        if name == "duckdb":
            half = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**31
            self.con = ibis.duckdb.connect(
                self.workdir / "engine.duckdb",
                memory_limit=memory_limit or f"{max(half, 1)}GB",
                temp_directory=str(self.workdir / "spill"),
                preserve_insertion_order=False,
            )
        else:
            self.con = ibis.pyspark.connect(spark_session())

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Drop the engine's tables and remove its work folder."""
        if self.name == "duckdb":
            self.con.disconnect()
        else:
            catalog = spark_session().catalog
            for view in self.con.list_tables(like=f"^oc{id(self)}_"):
                catalog.dropTempView(view)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _name(self, kind: str) -> str:
        return f"oc{id(self)}_{kind}_{next(self._ids)}"

    def _read(self, path: Path) -> ibis.Table:
        return self.con.read_parquet(path, table_name=self._name("in"))

    def register(self, table: str, frame: pd.DataFrame) -> ibis.Table:
        """Write `frame` (curated table `table`) to Parquet and return it as an Ibis table."""
        path = self.workdir / f"{self._name(table)}.parquet"
        pq.write_table(to_table(frame), path)
        self._dtypes[table] = frame.dtypes
        return self._read(path)

    def lookup(self, name: str, frame: pd.DataFrame, *, key: object = None) -> ibis.Table:
        """A read-only frame (registry facts, vocabulary) as an Ibis table.

        It is registered once per `name` and `key` (default: the frame itself), an object
        kept alive with it, so a frame rebuilt from the same `key` is not written again.
        """
        owner = frame if key is None else key
        key = (name, id(owner))
        if key not in self._lookups:
            path = self.workdir / f"{self._name(name)}.parquet"
            pq.write_table(to_table(frame).drop_columns([ORDER]), path)  # typed as registered
            self._lookups[key] = (owner, self._read(path))
        return self._lookups[key][1]

    def persist(self, expr: ibis.Table) -> ibis.Table:
        """Compute `expr` once and return the stored result (DuckDB table; Parquet on Spark)."""
        if self.name == "duckdb":
            name = self._name("t")
            self._persisted.add(name)
            return self.con.create_table(name, expr)
        path = self.workdir / f"{self._name('t')}.parquet"
        expr.to_parquet(path)
        return self._read(path)

    def drop(self, table: ibis.Table) -> None:
        """Forget a table made by :meth:`persist` (its rows are no longer needed)."""
        name = table.get_name()
        if name in self._persisted:
            self._persisted.discard(name)
            self.con.drop_table(name)

    def count(self, table: ibis.Table) -> int:
        """Number of rows of `table`."""
        return int(table.count().execute())

    def counts(self, tables: dict[str, ibis.Table]) -> dict[str, int]:
        """Number of rows of each of `tables`, in one query."""
        if not tables:
            return {}
        parts = [t.aggregate(_n=t.count()).mutate(_i=ibis.literal(i))
                 for i, t in enumerate(tables.values())]  # fmt: skip
        union = parts[0] if len(parts) == 1 else ibis.union(*parts)
        found = {r["_i"]: r["_n"] for r in union.to_pyarrow().to_pylist()}
        return {name: int(found[i]) for i, name in enumerate(tables)}

    def write(self, expr: ibis.Table, path: Path) -> None:
        """Write `expr`'s rows to one Parquet file at `path` (without :data:`ORDER`)."""
        expr = expr.drop(ORDER) if ORDER in expr.columns else expr
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.name == "duckdb":
            expr.to_parquet(path)
        else:
            pq.write_table(expr.to_pyarrow(), path)

    def fetch(self, table: str, expr: ibis.Table, *, positions: bool = False) -> pd.DataFrame:
        """Write `expr` (rows of registered `table`) to Parquet and read it back as a frame.

        Rows come back in their registered order and columns with their registered dtypes
        (`expr` may hold some of them, and others); with `positions` the frame is indexed by
        each row's position in the registered frame (as a pandas selection of its rows is).
        """
        path = self.workdir / f"{self._name(table)}-out.parquet"
        expr.to_parquet(path)
        arrow = pq.read_table(path)
        arrow = arrow.take(pc.sort_indices(arrow[ORDER]))
        order = arrow[ORDER].to_numpy()
        ints = {pa.int64(): pd.Int64Dtype()}.get
        frame = arrow.drop_columns([ORDER]).to_pandas(types_mapper=ints)
        if positions:
            frame.index = order
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        dtypes = self._dtypes[table]
        return frame.astype({c: d for c, d in dtypes.items() if c in frame and frame[c].dtype != d})


def open_engine(name: str = "duckdb", workdir: Path | None = None, **options) -> Engine:
    """Open an engine in `workdir` (default: a new temporary folder)."""
    return Engine(name, workdir or Path(tempfile.mkdtemp(prefix="opencohort-engine-")), **options)
