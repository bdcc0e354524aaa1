"""Where block kernels run: in this process, or on a Dask distributed cluster.

QC, frequencies and kinship cut their work into tasks (a block of pgen variants, or a tile
of samples), each naming the file and range it reads, so a worker needs only the store's
path. An executor maps a task function over them and yields the results in task order; the
caller reduces them in that order, so both executors give identical numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from opencohort.errors import ConfigError

if TYPE_CHECKING:  # distributed is imported only when a cluster is asked for
    from distributed import Client


class Executor(Protocol):
    """Maps a function over tasks and yields its results in task order."""

    def map(self, fn: Callable[..., Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """``fn(task)`` for each task, in order."""
        ...


class LocalExecutor:
    """Runs each task in this process, one after the other."""

    def map(self, fn: Callable[..., Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """``fn(task)`` for each task, lazily and in order."""
        return map(fn, tasks)


class DaskExecutor:
    """Runs tasks on a Dask distributed cluster through a client.

    All tasks are submitted at once; results are fetched, and released on the cluster,
    in task order.
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    def map(self, fn: Callable[..., Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """``fn(task)`` for each task on the cluster, yielded in order."""
        futures = self.client.map(fn, list(tasks), pure=False)
        for future in futures:
            yield future.result()
            future.release()


LOCAL = LocalExecutor()


def local_or(executor: Executor | None) -> Executor:
    """The given executor, or the in-process one."""
    return LOCAL if executor is None else executor


@contextmanager
def dask_cluster(n_workers: int = 2, *, memory_limit: str = "auto") -> Iterator[DaskExecutor]:
    """A Dask distributed ``LocalCluster`` of single-threaded worker processes, and its executor.

    Parameters
    ----------
    n_workers
        Worker processes.
    memory_limit
        Per-worker memory limit (Dask's syntax, e.g. ``"2GiB"``).

    Raises
    ------
    ConfigError
        If ``n_workers`` is below 1 or the ``distributed`` package is not installed.
    """
    if n_workers < 1:
        raise ConfigError(f"dask_cluster: n_workers={n_workers}; expected at least 1")
    try:
        from distributed import Client, LocalCluster
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "the Dask executor needs dask[distributed] (pip install 'dask[distributed]')"
        ) from exc
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: several clusters may run at once
            memory_limit=memory_limit,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield DaskExecutor(client)


@contextmanager
def executor_for(dask_workers: int = 0) -> Iterator[Executor]:
    """The in-process executor at 0 workers, else a :func:`dask_cluster` of that many."""
    if dask_workers <= 0:
        yield LOCAL
        return
    with dask_cluster(dask_workers) as executor:
        yield executor
