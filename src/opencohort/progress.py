"""One progress display for long commands: rich bars on stderr, off when not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

Step = Callable[[str, float], None]
"""``step(stage, fraction_done)``: report a stage's progress; a new stage name adds a bar."""


@contextmanager
def progress_steps(hidden: bool = False) -> Iterator[Step]:
    """Yield a :data:`Step` that draws one bar per stage on stderr.

    Bars are hidden when `hidden` is set (``--no-progress``) or stderr is not a terminal.
    """
    with Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=hidden or not sys.stderr.isatty(),
    ) as bar:
        tasks: dict[str, int] = {}

        def step(stage: str, done: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=done)

        yield step
