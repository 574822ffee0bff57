"""Progress on long steps. The library reports through a Progress object; the CLI passes one
that draws on stderr (rich), tests and library users get the silent default."""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")


class Progress:
    """Silent progress: the interface every long step reports through."""

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        yield

    def track(
        self, items: Iterable[T], total: int, label: str, weight: Callable[[T], int] | None = None
    ) -> Iterable[T]:
        """items, unchanged; a console shows count, rate and time left (weight: how many of
        `total` one item is, e.g. a batch's samples)."""
        return items

    def log(self, message: str) -> None:
        pass


class ConsoleProgress(Progress):
    """Spinner and bars on a terminal; plain lines in CI logs. Always on stderr. bars=False: the
    steps' lines only (under --json)."""

    def __init__(self, bars: bool = True) -> None:
        import os
        import sys

        from rich.console import Console

        # A private copy of stderr: converters run with fds 1/2 captured (their chatter is
        # noise), and progress must still reach the terminal while they run.
        stream: TextIO
        try:
            sys.stderr.flush()
            stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
        except (AttributeError, OSError, ValueError):  # no real fd (e.g. under a test harness)
            stream = sys.stderr
        self.console = Console(file=stream)
        self.bars = bars

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        t0 = time.perf_counter()
        if self.console.is_terminal:
            with self.console.status(label + " ..."):
                yield
        else:
            self.console.print(f"{label} ...", highlight=False)
            yield
        self.console.print(f"[green]✓[/green] {label} ({time.perf_counter() - t0:.1f} s)", highlight=False)

    def track(
        self, items: Iterable[T], total: int, label: str, weight: Callable[[T], int] | None = None
    ) -> Iterable[T]:
        if not (self.bars and self.console.is_terminal):
            return items
        return self._bar(items, total, label, weight or (lambda _: 1))

    def _bar(self, items: Iterable[T], total: int, label: str, weight: Callable[[T], int]) -> Iterator[T]:
        from rich import progress as rp

        columns = (
            rp.TextColumn("{task.description}"),
            rp.BarColumn(),
            rp.MofNCompleteColumn(),
            rp.TextColumn("{task.fields[rate]}"),
            rp.TimeRemainingColumn(),
        )
        with rp.Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task(label, total=total, rate="")
            for item in items:
                yield item
                bar.advance(task, weight(item))
                speed = bar.tasks[0].speed
                bar.update(task, rate=f"{speed:.1f}/s" if speed else "")

    def log(self, message: str) -> None:
        self.console.print(message, highlight=False)
