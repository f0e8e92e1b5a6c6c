"""The model in service: the one predictions use while trainings come and go.

A :class:`ServedModel` holds one immutable :class:`ModelVersion` at a time. A new version is
published with a single reference assignment under a lock, so a reader that took a
:meth:`~ServedModel.snapshot` (every :meth:`~ServedModel.predict` call does) always works with
one complete model and the facts that belong to it, never a model that a training is still
building: trainings build their model elsewhere and hand it over only when it is finished.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alphazoo.errors import AlphazooError

__all__ = ["ServedModel", "ModelVersion", "ModelNotReadyError"]


class ModelNotReadyError(AlphazooError, RuntimeError):
    """A prediction was asked for before any training put a model into service."""


@dataclass(frozen=True)
class ModelVersion:
    """One model in service and where it came from.

    ``version`` counts the models a :class:`ServedModel` has served, from 1. ``trained_at`` is
    the trainer's clock when the training started (simulated in backtests), ``window`` the
    training window if known, ``key`` the object-store key it was saved under (or None).
    """

    version: int
    model: Any
    trained_at: datetime | None = None
    window: dict[str, Any] | None = None
    key: str | None = None
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ServedModel:
    """The model predictions are served from, swapped atomically when a training finishes.

    >>> served = ServedModel()
    >>> served.ready, served.version
    (False, 0)

    Thread safety: :meth:`predict`, :meth:`snapshot` and the properties may be called from any
    number of threads while a trainer publishes new versions; each call sees exactly one
    version. Nothing here copies the model, so a model object must not be mutated after it has
    been published (the trainer never does; train a new object instead of refitting the served
    one in place).
    """

    def __init__(self) -> None:
        self._current: ModelVersion | None = None
        self._changed = threading.Condition(threading.Lock())

    # -- reading -----------------------------------------------------------------------------
    def snapshot(self) -> ModelVersion | None:
        """The version in service now (None before the first), for consistent multi-step use."""
        return self._current

    @property
    def ready(self) -> bool:
        """True once a model is in service."""
        return self._current is not None

    @property
    def version(self) -> int:
        """The version number in service (0 when none yet)."""
        current = self._current
        return 0 if current is None else current.version

    @property
    def model(self) -> Any:
        """The model object in service (None when none yet)."""
        current = self._current
        return None if current is None else current.model

    @property
    def key(self) -> str | None:
        """The store key the model in service was saved under, if it was saved."""
        current = self._current
        return None if current is None else current.key

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a model is in service or ``timeout`` seconds pass; returns :attr:`ready`."""
        return self.wait_for_version(1, timeout)

    def wait_for_version(self, version: int, timeout: float | None = None) -> bool:
        """Block until version ``version`` or a later one is in service; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.version >= version, timeout)

    def _require(self) -> ModelVersion:
        current = self._current
        if current is None:
            raise ModelNotReadyError(
                "no model is in service yet: no training has returned a model; "
                "wait with trainer.model.wait(timeout) or check trainer.model.ready"
            )
        return current

    def predict(self, X: Any) -> Any:
        """``model.predict(X)`` of the version in service; :class:`ModelNotReadyError` if none."""
        return self._require().model.predict(X)

    def predict_proba(self, X: Any) -> Any:
        """``model.predict_proba(X)`` of the version in service (classifiers)."""
        return self._require().model.predict_proba(X)

    # -- writing -----------------------------------------------------------------------------
    def publish(
        self,
        model: Any,
        *,
        trained_at: datetime | None = None,
        window: dict[str, Any] | None = None,
        key: str | None = None,
        name: str | None = None,
        **extra: Any,
    ) -> ModelVersion:
        """Put a finished ``model`` into service as the next version and wake waiters."""
        if model is None:
            raise ValueError("cannot serve None; a training that returns None keeps the old model")
        with self._changed:
            version = ModelVersion(self.version + 1, model, trained_at, window, key, name, extra)
            self._current = version  # one reference assignment: readers see old or new
            self._changed.notify_all()
        return version

    def __repr__(self) -> str:
        current = self._current
        if current is None:
            return "ServedModel(not ready)"
        return f"ServedModel(version={current.version}, model={type(current.model).__name__})"
