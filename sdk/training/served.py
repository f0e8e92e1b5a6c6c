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
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from alphazoo.errors import AlphazooError

if TYPE_CHECKING:
    from alphazoo.host import Zoo

    from .follow import AliasFollower, FollowEvent

__all__ = ["ServedModel", "ModelVersion", "ModelNotReadyError"]


class ModelNotReadyError(AlphazooError, RuntimeError):
    """A prediction was asked for before any training put a model into service."""


@dataclass(frozen=True)
class ModelVersion:
    """One model in service and where it came from.

    ``version`` counts the models a :class:`ServedModel` has served, from 1. ``trained_at`` is
    the trainer's clock when the training started (simulated in backtests), ``window`` the
    training window if known, ``key`` the object-store key it was saved under (or None).
    A version put into service through a registry alias (:meth:`ServedModel.follow`, or
    ``promote_to=``) has ``extra["alias"]`` and ``extra["registry_version"]``, the series'
    version number (``version`` counts this model's swaps instead).
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
        self._followers: list[AliasFollower] = []

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

    # -- following a registry alias -------------------------------------------------------
    def follow(
        self,
        reference: str,
        *,
        zoo: Zoo | None = None,
        poll: float | timedelta = 5.0,
        verify: Callable[[Any], Any] | None = None,
        keep: int = 2,
        on_error: Callable[[FollowEvent], None] | None = None,
        **load_options: Any,
    ) -> AliasFollower:
        """Serve whatever version ``reference`` (``"spy/gbdt@production"``; no ``@`` means
        ``@latest``) points to, and keep following it: every ``poll`` seconds (or a
        timedelta) a background thread reads the alias, and a version it moved to is loaded
        from ``zoo``'s store (default: ``Zoo()``) with ``load_options`` (``trusted=``,
        ``sign_key=``...), checked by ``verify(model)`` (raise or return False to refuse it)
        and swapped in atomically. A version that fails is logged and kept in the returned
        follower's ``errors``, and never served. ``keep``: how many loaded versions to hold
        (2: a rollback to the previous one needs no load).

        Returns the running :class:`~alphazoo.training.follow.AliasFollower`; stop it with
        its ``stop()`` or this model's :meth:`close`. :attr:`ready` and :meth:`wait` tell
        when the first version is in service. See :mod:`alphazoo.training.follow`.
        """
        from .follow import AliasFollower

        if zoo is None:
            from alphazoo.host import Zoo

            zoo = Zoo()
        follower = AliasFollower(self, zoo, reference, poll=poll, verify=verify, keep=keep,
                                 on_error=on_error, load_options=load_options)
        with self._changed:
            self._followers = [f for f in self._followers if f.running]
            self._followers.append(follower)
        return follower.start()

    @property
    def followers(self) -> list[AliasFollower]:
        """The alias followers feeding this model that still run."""
        return [f for f in self._followers if f.running]

    def close(self, timeout: float | None = None) -> None:
        """Stop every alias follower feeding this model (the version in service stays)."""
        with self._changed:
            followers, self._followers = self._followers, []
        for follower in followers:
            follower.stop(timeout)

    def __enter__(self) -> ServedModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        current = self._current
        if current is None:
            return "ServedModel(not ready)"
        return f"ServedModel(version={current.version}, model={type(current.model).__name__})"
