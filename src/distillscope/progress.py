"""Progress reporting without printing: library code reports, the CLI renders (with rich).

Long-running library functions take ``progress: Progress | None``; each unit of work calls
``task.advance()``. The CLI passes :class:`distillscope.cli.common.RichProgress`.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Protocol


class ProgressTask(Protocol):
    def advance(self, n: float = 1) -> None: ...
    def update(self, *, total: float | None = None, description: str | None = None) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: float | None = None) -> "ProgressTaskContext": ...


class ProgressTaskContext(Protocol):
    def __enter__(self) -> ProgressTask: ...
    def __exit__(self, *exc: object) -> None: ...


class _NullTask:
    def advance(self, n: float = 1) -> None:
        pass

    def update(self, *, total: float | None = None, description: str | None = None) -> None:
        pass


class NullProgress:
    """The default: reports nothing."""

    @contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[ProgressTask]:
        yield _NullTask()


NULL_PROGRESS = NullProgress()


def ensure_progress(progress: Progress | None) -> Progress:
    return progress if progress is not None else NULL_PROGRESS
