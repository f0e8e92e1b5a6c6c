"""Progress of a batch of jobs, for :func:`~alphazoo.training.map_train` and
:func:`~alphazoo.training.walk_forward`: a rich progress bar, a callback, or nothing."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["ProgressReporter"]


class ProgressReporter:
    """A context manager yielding ``report(result)``, to be called once per finished job.

    ``progress``: ``True`` shows a rich progress bar labelled ``label``; a callable is called
    ``(done, total, result)`` after each job; anything else reports nothing.
    """

    def __init__(self, progress: Any, total: int, label: str = "training") -> None:
        self.progress, self.total, self.label, self.done = progress, total, label, 0
        self.bar: Any = None

    def __enter__(self) -> Callable[[Any], None]:
        if self.progress is True:
            from rich.progress import Progress

            self.bar = Progress(transient=False)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=self.total)
        return self.report

    def report(self, result: Any) -> None:
        """Count ``result`` as done: advance the bar or call the callback."""
        self.done += 1
        if self.bar is not None:
            self.bar.advance(self.task)
        elif callable(self.progress):
            self.progress(self.done, self.total, result)

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.stop()
