"""Live models that follow a registry alias: ``served.follow("spy/gbdt@production", poll=5)``.

LEAN loads a live algorithm's stored state once, at deployment; a model promoted afterwards
needs a redeploy. An :class:`AliasFollower` instead watches one alias of a model series and
puts each version the alias moves to into service, the way qlib's online manager switches its
online model:

- every ``poll`` seconds a background thread asks where the alias points: one small read
  (:meth:`alphazoo.ModelRegistry.target`), however many versions the series holds;
- when the target changed, the new version is loaded (its whole bundle verified, as every
  :meth:`Zoo.load <alphazoo.Zoo.load>` does) and passed to the optional ``verify`` check, in
  that thread, while predictions keep using the version in service;
- only a version that loaded and verified is published, through the atomic swap of
  :class:`~alphazoo.training.ServedModel`; one that fails is logged (logger
  ``"alphazoo.training"``), kept in :attr:`AliasFollower.errors`, and never served: the
  previous version stays;
- a version that is itself bad (its bundle fails verification, it is untrusted, deleted, or
  ``verify`` refused it) is tried again only after the alias has pointed elsewhere, so a
  corrupted bundle costs one load, not one per poll. Any other failure (the store did not
  answer: an S3 hiccup) is retried on later polls, after a wait that doubles from one poll
  interval up to :data:`MAX_RETRY_WAIT` seconds, and logged once per outage;
- the first poll, and every :data:`PROBE_EVERY` polls after it, reads the alias's head with
  :meth:`ModelRegistry.head <alphazoo.ModelRegistry.head>` instead of
  :meth:`~alphazoo.ModelRegistry.target`: two reads instead of one, and a move that a mover
  crashed in the middle of (its history entry written, the head not) is completed, so the
  follower reaches that version within ``PROBE_EVERY`` polls.

A swap is visible to predictions within one poll interval plus the new version's load time.
The models of the last ``keep`` versions served stay loaded, so a rollback to the previous
version is a swap without a load.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Protocol

from alphazoo.errors import (
    BundleIntegrityError,
    ModelRejectedError,
    ObjectNotFoundError,
    UntrustedModelError,
)
from alphazoo.keys import normalize_key
from alphazoo.model_registry import parse_reference

from .model_versions import version_key

if TYPE_CHECKING:
    from alphazoo.host import Zoo

__all__ = ["AliasFollower", "FollowEvent", "ModelRejectedError", "alias_target",
           "PROBE_EVERY", "MAX_RETRY_WAIT"]

#: Every how many polls a follower reads the alias's head walked forward (see above).
PROBE_EVERY = 20
#: The longest wait, in seconds, between two loads of a version that failed for a reason
#: other than the version itself (the wait doubles from one poll interval up to this).
MAX_RETRY_WAIT = 300.0
#: Failures that say the version itself is bad: it is not loaded again (see above).
_BAD_VERSION = (BundleIntegrityError, UntrustedModelError, ObjectNotFoundError,
                ModelRejectedError)

log = logging.getLogger("alphazoo.training")


class _Served(Protocol):
    """What a follower feeds: a :class:`~alphazoo.training.ServedModel` (named by its
    methods, as the served model module imports this one)."""

    @property
    def key(self) -> str | None: ...

    def publish(self, model: Any, *, key: str | None = None, name: str | None = None,
                **extra: Any) -> Any: ...


@dataclass(frozen=True)
class FollowEvent:
    """One version an :class:`AliasFollower` tried to put into service.

    ``status``: ``"served"`` or ``"failed"`` (``error`` and ``traceback`` then say why).
    ``seen_at``: when the poll saw the alias point at it (UTC); ``seconds``: how long loading
    and verifying took (0 for a version still loaded from before: a rollback).
    """

    version: int
    key: str
    status: str
    seen_at: datetime
    seconds: float
    error: BaseException | None = None
    traceback: str | None = None


def _reference(reference: str) -> tuple[str, str]:
    """``"spy/gbdt@production"`` -> ``("spy/gbdt", "production")``; without ``@`` the alias
    is ``"latest"``; :class:`~alphazoo.InvalidKeyError` for a malformed one."""
    parsed = parse_reference(reference)
    return parsed if parsed is not None else (normalize_key(reference), "latest")


def _fixed_version(alias: str) -> int | None:
    if len(alias) > 1 and alias[0] in "vV" and alias[1:].isdigit():
        return int(alias[1:])
    return None


def alias_target(zoo: Zoo, name: str, alias: str) -> int | None:
    """The version ``alias`` of series ``name`` points at now, or None if it points nowhere.

    One small read (:meth:`alphazoo.ModelRegistry.target`: the alias's head, or for
    ``latest`` the series' ``latest.json``); ``"v3"`` is version 3 without any read.
    """
    fixed = _fixed_version(alias)
    if fixed is not None:
        return fixed
    return zoo.registry.target(name, alias)


class AliasFollower:
    """Keeps a :class:`~alphazoo.training.ServedModel` on the version an alias points to.

    Made by :meth:`ServedModel.follow <alphazoo.training.ServedModel.follow>` or
    :meth:`Trainer.follow <alphazoo.training.Trainer.follow>`; runs one daemon thread until
    :meth:`stop` (also a context manager). ``served.wait(timeout)`` blocks until the first
    version is in service (the LEAN-style readiness flag ``served.ready`` turns True then).

    Attributes: :attr:`events` (every version tried, in order), :attr:`errors` (the failed
    ones), :attr:`target` (where the alias pointed at the last poll), :attr:`polls` (the
    reads that answered) and :attr:`poll_errors` (those that raised: the store was
    unreachable, or an alias record unreadable; the version in service stays).
    """

    def __init__(self, served: _Served, zoo: Zoo, reference: str, *,
                 poll: float | timedelta = 5.0,
                 verify: Callable[[Any], Any] | None = None,
                 keep: int = 2,
                 on_error: Callable[[FollowEvent], None] | None = None,
                 load_options: dict[str, Any] | None = None) -> None:
        seconds = poll.total_seconds() if isinstance(poll, timedelta) else float(poll)
        if not seconds > 0:
            raise ValueError(f"poll must be a positive number of seconds, got {poll!r}")
        if keep < 1:
            raise ValueError(f"keep must be at least 1 (the version in service), got {keep}")
        self.served, self.zoo = served, zoo
        self.reference = reference
        self.name, self.alias = _reference(reference)
        self.poll = seconds
        self.verify, self.keep, self.on_error = verify, keep, on_error
        self.load_options = dict(load_options or {})
        self.events: list[FollowEvent] = []
        self.errors: list[FollowEvent] = []
        self.target: int | None = None
        self.polls = 0
        self.poll_errors = 0
        self._failing = False
        self._loaded: OrderedDict[int, Any] = OrderedDict()
        self._tried: int | None = None  # the last target served, or refused as bad
        self._retry_at = 0.0  # monotonic time before which a failed target is not reloaded
        self._retries = 0  # consecutive load failures of _retrying not for the version
        self._retrying: int | None = None
        self._stop = threading.Event()
        self._checking = threading.Lock()  # check() from a caller and the thread, one at a time
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name=f"alphazoo-follow-{self.name}@{self.alias}")

    def start(self) -> AliasFollower:
        """Start polling (the first poll happens at once); returns self."""
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        """True while the polling thread runs."""
        return self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling and end the thread. A load under way finishes first (within
        ``timeout``) and is not served."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    close = stop

    def __enter__(self) -> AliasFollower:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def check(self) -> FollowEvent | None:
        """Poll once now, in the caller's thread: serve the alias's target if it changed.
        Returns the event of a version tried, None when nothing changed."""
        with self._checking:
            return self._check()

    def _check(self) -> FollowEvent | None:
        try:
            if self.polls % PROBE_EVERY == 0 and self.alias != "latest" \
                    and _fixed_version(self.alias) is None:
                head = self.zoo.registry.head(self.name, self.alias)
                target = None if head is None else int(head["to"])
            else:
                target = alias_target(self.zoo, self.name, self.alias)
        except Exception as exc:  # a store hiccup must not end the following
            self.poll_errors += 1
            # once per outage, not once per poll: a store down for an hour at a 1 s poll
            log.log(logging.DEBUG if self._failing else logging.WARNING,
                    "following %s: reading the alias failed (%s: %s); %s stays in service, "
                    "retrying every %.3g s", self.reference, type(exc).__name__, exc,
                    self.served.key or "no model", self.poll)
            self._failing = True
            return None
        if self._failing:
            self._failing = False
            log.warning("following %s: the alias reads again after %d failed polls",
                        self.reference, self.poll_errors)
        self.polls += 1
        self.target = target
        if target is None or target == self._tried:
            return None
        if target == self._retrying and time.monotonic() < self._retry_at:
            return None  # a failed load of this target waits out its backoff
        return self._switch(target)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._stop.wait(self.poll)

    def _switch(self, version: int) -> FollowEvent | None:
        key = version_key(self.name, version)
        seen_at = datetime.now(timezone.utc)
        started = time.perf_counter()
        model = self._loaded.get(version)
        bad = True  # whether a failure below is the version's own
        try:
            if model is None:
                try:
                    model = self.zoo.load(key, **self.load_options)
                except _BAD_VERSION:
                    raise
                except Exception:
                    bad = False
                    raise
                if self.verify is not None and self.verify(model) is False:
                    raise ModelRejectedError(f"{key}: the follower's verify check returned "
                                             "False; the version in service stays")
        except Exception as exc:
            return self._failed(version, key, seen_at, started, exc, bad)
        if self._retries:
            log.warning("following %s: %s loaded after %d failed attempts", self.reference,
                        key, self._retries)
        self._retries, self._retrying = 0, None
        self._tried = version
        if self._stop.is_set():  # stopped while loading: serve nothing more
            return None
        self._loaded[version] = model
        self._loaded.move_to_end(version)
        while len(self._loaded) > self.keep:
            self._loaded.popitem(last=False)
        self.served.publish(model, key=key, name=self.name, alias=self.alias,
                            registry_version=version)
        event = FollowEvent(version, key, "served", seen_at, time.perf_counter() - started)
        self.events.append(event)
        log.info("following %s: %s in service (%.3f s to load)", self.reference, key,
                 event.seconds)
        return event

    def _failed(self, version: int, key: str, seen_at: datetime, started: float,
                exc: Exception, bad: bool) -> FollowEvent:
        """Record a version that was not served: a bad one is not tried again until the alias
        moves; any other failure is retried after a growing wait, and logged once."""
        event = FollowEvent(version, key, "failed", seen_at, time.perf_counter() - started,
                            exc, traceback.format_exc())
        self.events.append(event)
        self.errors.append(event)
        if version != self._retrying:
            self._retries = 0
        first = self._retries == 0
        if bad:
            self._tried, self._retries, self._retrying = version, 0, None
            log.error("following %s: version %s failed to load or verify (%s: %s); %s stays "
                      "in service", self.reference, key, type(exc).__name__, exc,
                      self.served.key or "no model", exc_info=exc)
        else:
            wait = min(self.poll * 2 ** self._retries, max(MAX_RETRY_WAIT, self.poll))
            self._retries += 1
            self._retrying = version
            self._retry_at = time.monotonic() + wait
            log.log(logging.WARNING if first else logging.DEBUG,
                    "following %s: loading %s failed (%s: %s); %s stays in service, retrying "
                    "with a growing wait (now %.3g s)", self.reference, key,
                    type(exc).__name__, exc, self.served.key or "no model", wait,
                    exc_info=exc if first else None)
        if self.on_error is not None and (bad or first):
            try:
                self.on_error(event)
            except Exception:
                log.exception("the follower's on_error callback raised")
        return event

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"AliasFollower({self.reference!r}, poll={self.poll:g}s, target={self.target},"
                f" {state}, errors={len(self.errors)})")
