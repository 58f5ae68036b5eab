"""Shared pieces of the command line: state, consoles, settings, progress bars, tables."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (BarColumn, MofNCompleteColumn, Progress as _RichProgress, SpinnerColumn,
                           TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.table import Table

from distillscope.progress import ProgressTask
from distillscope.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)


@dataclass
class State:
    """What the root callback hands to every command."""

    config_file: Path | None = None
    verbose: bool = False
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self, **overrides: Any) -> Settings:
        if self._settings is None or overrides:
            s = load_settings(self.config_file, **overrides)
            if overrides:
                return s
            self._settings = s
        return self._settings


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if obj is None:  # invoked without the root callback (e.g. in a unit test)
        obj = State()
        ctx.find_root().obj = obj
    if obj.verbose:
        logging.basicConfig(level=logging.INFO, handlers=[RichHandler(console=err_console)], force=True)
    return obj


class _RichTask:
    def __init__(self, progress: _RichProgress, task_id: Any) -> None:
        self._p, self._id = progress, task_id

    def advance(self, n: float = 1) -> None:
        self._p.advance(self._id, n)

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        kw: dict[str, Any] = {}
        if total is not None:
            kw["total"] = total
        if description is not None:
            kw["description"] = description
        self._p.update(self._id, **kw)


class RichProgress:
    """:class:`distillscope.progress.Progress` rendered as rich progress bars on stderr."""

    def __init__(self, console: Console | None = None, transient: bool = False) -> None:
        self._console = console or err_console
        self._transient = transient

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[ProgressTask]:
        with _RichProgress(SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                           MofNCompleteColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                           TextColumn("eta"), TimeRemainingColumn(), console=self._console,
                           transient=self._transient) as progress:
            task_id = progress.add_task(description, total=total)
            yield _RichTask(progress, task_id)


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                out: Console | None = None) -> None:
    table = Table(title=title, show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*["" if v is None else str(v) for v in r])
    (out or console).print(table)
