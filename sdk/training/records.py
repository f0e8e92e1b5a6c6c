"""What trainings leave behind: :class:`Trained` (a model with its description),
:class:`TrainingRecord` (one training's outcome) and :class:`Schedule` (a registered scheduled
training).

Plain data, shared by the :class:`~alphazoo.training.Trainer`, its live threads
(:mod:`alphazoo.training.live`) and fan-out workers (:mod:`alphazoo.training.fanout`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

__all__ = ["Trained", "TrainingRecord", "Schedule"]


@dataclass(frozen=True)
class Trained:
    """What a training function may return instead of a bare model, to describe it.

    ``window``: the training data's span, ``{"start": ..., "end": ...}`` (written into the
    saved manifest and the :class:`~alphazoo.training.ModelVersion`); ``metadata``: JSON
    values for the manifest (metrics, parameters).
    """

    model: Any
    window: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


@dataclass
class TrainingRecord:
    """One training's outcome, kept in :attr:`Trainer.history`.

    ``status``: ``"served"`` (its model went into service), ``"kept"`` (it returned None, the
    model in service stayed), ``"failed"`` (it raised), ``"quota_exceeded"`` (refused or
    stopped by the bucket), ``"unpromoted"`` (``promote_to=``: saved, but the alias did not
    move to it, so it was not served either; ``promotion_error`` says why). ``at`` is the
    trainer's clock when it ran; ``charged`` the quota units drawn; ``save_error`` an
    exception from persisting an otherwise served model; ``promotion`` the registry's history
    entry when ``promote_to=`` moved the alias.
    """

    name: str
    at: datetime
    status: str = "running"
    seconds: float = 0.0
    #: Units drawn; fractional when a refused training drained a partly refilled bucket.
    charged: float = 0
    version: int | None = None
    key: str | None = None
    error: BaseException | None = None
    traceback: str | None = None
    save_error: BaseException | None = None
    promotion: dict[str, Any] | None = None
    promotion_error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """Whether the training succeeded (its model served, the one in service kept, or a
        model saved that a promotion gate kept out of service)."""
        return self.status in ("served", "kept", "unpromoted")


@dataclass(eq=False)
class Schedule:
    """A registered ``train(date_rule, time_rule, fn)``; :meth:`cancel` stops it firing.

    ``on_cancel`` is called after :meth:`cancel` (the trainer wakes its live scheduler with
    it, so a cancelled schedule stops at once instead of at its next fire time).
    """

    name: str
    date_rule: Any
    time_rule: Any
    fn: Callable[[], Any]
    options: dict[str, Any]
    order: int
    cursor: datetime  # fire times after this one are still to come
    cancelled: bool = False
    skipped: int = 0  # live: firings dropped because the previous one was still training
    busy: bool = field(default=False, repr=False)
    on_cancel: Callable[[], None] | None = field(default=None, repr=False)

    def cancel(self) -> None:
        """Stop this schedule; a training it already started finishes."""
        self.cancelled = True
        if self.on_cancel is not None:
            self.on_cancel()
