"""A leaky bucket of training time, with LEAN's semantics.

LEAN draws the minutes scheduled trainings run from a bucket that holds ``capacity`` units,
starts full and gains ``refill_amount`` units each time a whole ``interval`` has passed
(quantized: after 3.5 intervals 3 refills have happened, the half interval carries over to the
next). It never holds more than ``capacity``; a request that the bucket cannot cover fails
(:meth:`LeakyBucket.try_consume`) or waits (:meth:`LeakyBucket.consume`).

LEAN's defaults are a capacity of 120 minutes, refilled every 1,440 minutes (a day) by
``ceil(120 / 7) = 18``; :meth:`LeakyBucket.from_config` reads LEAN's ``config.json`` keys.

The bucket reads time from ``clock``, a zero-argument callable returning a datetime: the wall
clock by default, a backtest's simulated clock in the Trainer (so long backtests are not
starved, which LEAN's wall-clock refill does), a manual clock in tests.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from numbers import Real
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_KEYS", "LIVE_SERVER_LIMITS", "LOCAL_LIMITS", "LeakyBucket"]

#: LEAN's configuration keys, as read by :meth:`LeakyBucket.from_config`.
CONFIG_KEYS = {
    "capacity": "scheduled-event-leaky-bucket-capacity",
    "interval": "scheduled-event-leaky-bucket-time-interval-minutes",
    "refill_amount": "scheduled-event-leaky-bucket-refill-amount",
}

_DEFAULT_CAPACITY = 120
_DEFAULT_INTERVAL_MINUTES = 1440

#: LEAN's local training quota, (capacity, refill amount, interval) in minutes: the defaults of
#: Common/Packets/LeakyBucketControlParameters.cs (2 * 60; ceil(capacity / 7) = 18; 1440) and the
#: "Local Quotas" table of LEAN's docs (Writing Algorithms > Machine Learning > Training Models).
LOCAL_LIMITS = (_DEFAULT_CAPACITY, math.ceil(_DEFAULT_CAPACITY / 7), _DEFAULT_INTERVAL_MINUTES)
#: QuantConnect Cloud's training quotas for live trading servers by RAM, (capacity, refill per
#: 24 h) in minutes. The cloud sets them per job, so LEAN's source holds only the local
#: defaults; the figures belong to the "Training Quotas" table of QuantConnect's cloud docs
#: (Cloud Platform > Organizations > Resources), whose table file (Resources/quotas/training.html
#: in QuantConnect/Documentation) could not be read when these were entered: re-check them there.
LIVE_SERVER_LIMITS: dict[str, tuple[int, int]] = {
    "512MB": (30, 5),
    "1024MB": (60, 10),
    "2048MB": (90, 15),
}
# How often a blocked consume() rereads a clock it cannot predict (a manual or simulated one).
_POLL_SECONDS = 0.005
# The longest a blocked consume() sleeps on the wall clock between rereads: a guard against
# wall-clock jumps (NTP, suspend) that would make a computed wake-up time wrong.
_MAX_WALL_SLEEP = 1.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _number(value: Any, what: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return value  # type: ignore[return-value]


class LeakyBucket:
    """A thread-safe leaky bucket of ``capacity`` units refilled in whole ``interval`` steps.

    Parameters
    ----------
    capacity:
        The most units the bucket holds; it starts full. LEAN's default: 120 (minutes).
    refill_amount:
        Units added each whole ``interval``; default ``ceil(capacity / 7)``, so an empty
        bucket is full again after a week of daily refills. 0 means never refill.
    interval:
        How often a refill happens (a positive ``timedelta``). Refills are quantized from the
        bucket's creation time: partial intervals carry over, they are not lost.
    clock:
        A zero-argument callable returning the current datetime; the wall clock (UTC) when
        None. Pass a backtest's simulated clock, or a manual one in tests.

    Units are whatever the caller counts; the Trainer counts minutes of training, and
    amounts may be fractional. Requests must be positive and at most ``capacity``, else
    :class:`ValueError` (such a request could never succeed).
    """

    def __init__(
        self,
        capacity: float = _DEFAULT_CAPACITY,
        refill_amount: float | None = None,
        interval: timedelta = timedelta(minutes=_DEFAULT_INTERVAL_MINUTES),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        capacity = _number(capacity, "capacity")
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity!r}")
        if refill_amount is None:
            refill_amount = math.ceil(capacity / 7)
        refill_amount = _number(refill_amount, "refill_amount")
        if refill_amount < 0:
            raise ValueError(f"refill_amount must be zero or positive, got {refill_amount!r}")
        if not isinstance(interval, timedelta):
            raise TypeError(f"interval must be a timedelta, got {interval!r}")
        if interval <= timedelta(0):
            raise ValueError(f"interval must be positive, got {interval}")
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be a zero-argument callable, got {clock!r}")
        self._capacity = capacity
        self._refill_amount = refill_amount
        self._interval = interval
        self._clock: Callable[[], datetime] = clock or _utc_now
        self._wall_clock = clock is None
        self._available: float | int = capacity
        self._changed = threading.Condition(threading.Lock())
        self._next_refill = self._now() + interval

    # -- configuration ---------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        source: str | os.PathLike[str] | Mapping[str, Any],
        clock: Callable[[], datetime] | None = None,
    ) -> LeakyBucket:
        """A bucket configured as LEAN's ``config.json`` configures its training bucket.

        ``source`` is a mapping or the path of a JSON file; LEAN's ``//`` and ``/* */``
        comments and trailing commas are accepted. The keys read are
        ``scheduled-event-leaky-bucket-capacity`` (default 120),
        ``scheduled-event-leaky-bucket-time-interval-minutes`` (default 1440) and
        ``scheduled-event-leaky-bucket-refill-amount`` (default ceil(capacity / 7)); values
        may be numbers or numeric strings. Other keys are ignored.
        """
        if isinstance(source, Mapping):
            config: Mapping[str, Any] = source
        elif isinstance(source, (str, os.PathLike)):
            path = Path(source)
            text = path.read_text(encoding="utf-8-sig")
            try:
                config = json.loads(_strip_json_comments(text))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} is not valid JSON (comments allowed): {exc}") from exc
            if not isinstance(config, Mapping):
                raise ValueError(  # noqa: TRY004 - bad file content, not a bad argument
                    f"{path} must hold a JSON object, not {type(config).__name__}"
                )
        else:
            raise TypeError(f"from_config() takes a path or a mapping, got {source!r}")

        def read(field: str, default: float | None) -> float | None:
            key = CONFIG_KEYS[field]
            raw = config.get(key)
            if raw is None or raw == "":
                return default
            try:
                value = float(raw) if isinstance(raw, str) else _number(raw, key)
            except ValueError as exc:
                raise ValueError(f"config key {key!r} must be a number, got {raw!r}") from exc
            return int(value) if float(value).is_integer() else value

        capacity = read("capacity", _DEFAULT_CAPACITY)
        minutes = read("interval", _DEFAULT_INTERVAL_MINUTES)
        refill = read("refill_amount", None)
        assert capacity is not None and minutes is not None
        if minutes <= 0:
            raise ValueError(f"config key {CONFIG_KEYS['interval']!r} must be positive, "
                             f"got {minutes!r}")
        return cls(capacity, refill, timedelta(minutes=minutes), clock)

    @classmethod
    def for_live_server(
        cls, ram: str | int, clock: Callable[[], datetime] | None = None
    ) -> LeakyBucket:
        """The training quota of a QuantConnect live trading server with ``ram`` of memory.

        ``ram`` is ``"512MB"``, ``"1024MB"`` or ``"2048MB"`` (``"1GB"``, ``"2 GB"`` and a number
        of megabytes work too): capacity 30, 60 or 90 minutes, refilled by 5, 10 or 15 minutes
        every 24 hours (:data:`LIVE_SERVER_LIMITS`). The local default is ``LeakyBucket()``
        (:data:`LOCAL_LIMITS`: 120 minutes, +18 a day).
        """
        key = _ram_key(ram)
        if key not in LIVE_SERVER_LIMITS:
            raise ValueError(f"no live-server training quota for {ram!r}; choose one of "
                             f"{', '.join(LIVE_SERVER_LIMITS)}")
        capacity, refill = LIVE_SERVER_LIMITS[key]
        return cls(capacity, refill, timedelta(minutes=_DEFAULT_INTERVAL_MINUTES), clock)

    # -- state -----------------------------------------------------------------------------

    @property
    def capacity(self) -> float:
        """The most units the bucket can hold."""
        return self._capacity

    @property
    def refill_amount(self) -> float:
        """Units added per whole interval."""
        return self._refill_amount

    @property
    def interval(self) -> timedelta:
        """The refill period."""
        return self._interval

    @property
    def clock(self) -> Callable[[], datetime]:
        """The callable the bucket reads the current time from."""
        return self._clock

    @property
    def available(self) -> float:
        """Units available now (refills that are due are applied first)."""
        with self._changed:
            self._refill()
            return self._available

    @property
    def next_refill(self) -> datetime:
        """When, on the bucket's clock, the next refill is due."""
        with self._changed:
            self._refill()
            return self._next_refill

    def __repr__(self) -> str:
        return (f"LeakyBucket(capacity={self._capacity!r}, refill_amount={self._refill_amount!r},"
                f" interval={self._interval!r}, available={self.available!r})")

    # -- consuming -------------------------------------------------------------------------

    def try_consume(self, amount: float) -> bool:
        """Take ``amount`` units if the bucket holds them now; True if it did, False (and
        nothing taken) if not."""
        self._check_amount(amount)
        with self._changed:
            self._refill()
            if amount > self._available:
                return False
            self._available -= amount
            return True

    def consume(self, amount: float, timeout: float | timedelta | None = None) -> None:
        """Take ``amount`` units, blocking until the bucket holds them.

        ``timeout`` (seconds or a timedelta of real time, not of the bucket's clock) bounds
        the wait; :class:`TimeoutError` is raised when it passes, with nothing taken. A waiter
        rereads the clock every few milliseconds when it is not the wall clock, so a test or
        a simulation that advances its clock from another thread unblocks it; call
        :meth:`notify` after advancing to wake it at once. A bucket that never refills
        (``refill_amount=0``) raises :class:`TimeoutError` at once instead of waiting forever.
        """
        self._check_amount(amount)
        if isinstance(timeout, timedelta):
            timeout = timeout.total_seconds()
        if timeout is not None:
            timeout = _number(timeout, "timeout")
            if timeout < 0:
                raise ValueError(f"timeout must be zero or positive seconds, got {timeout!r}")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                self._refill()
                if amount <= self._available:
                    self._available -= amount
                    return
                if not self._refill_amount:
                    raise TimeoutError(
                        f"cannot consume {amount:g} units: {self._available:g} are available "
                        "and the bucket never refills (refill_amount=0)"
                    )
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(
                        f"waited {timeout:g}s for {amount:g} units of the leaky bucket; "
                        f"{self._available:g} of {self._capacity:g} available, next refill of "
                        f"{self._refill_amount:g} due at {self._next_refill.isoformat()}"
                    )
                self._changed.wait(self._pause(remaining))

    def notify(self) -> None:
        """Wake blocked :meth:`consume` calls so they reread the clock now (after advancing a
        manual or simulated clock)."""
        with self._changed:
            self._changed.notify_all()

    def adopt_clock(self, clock: Callable[[], datetime]) -> bool:
        """Run a bucket made without ``clock=`` on ``clock`` from now on; returns whether it
        did. A :class:`~alphazoo.training.Trainer` gives a backtest's bucket its simulated
        clock this way. False, and nothing changed, when the bucket already has a clock of its
        own. Refills are counted from the adopted clock's now."""
        with self._changed:
            if not self._wall_clock:
                return False
            self._clock = clock
            self._wall_clock = False
            self._next_refill = self._now() + self._interval
            return True

    # -- internals -------------------------------------------------------------------------

    def _now(self) -> datetime:
        now = self._clock()
        if not isinstance(now, datetime):
            raise TypeError(f"the bucket's clock must return a datetime, got {now!r}")
        return now

    def _refill(self) -> None:
        # Caller holds the lock. Quantized like LEAN's fixed-interval refill: every whole
        # interval since the last due time counts, the remainder carries to the next one.
        now = self._now()
        if now < self._next_refill:
            return
        steps = 1 + (now - self._next_refill) // self._interval
        self._next_refill += steps * self._interval
        if self._refill_amount:
            self._available = min(self._capacity, self._available + steps * self._refill_amount)
            self._changed.notify_all()

    def _pause(self, remaining: float | None) -> float:
        if self._wall_clock:
            due = (self._next_refill - self._now()).total_seconds()
            pause = min(max(due, 0.0), _MAX_WALL_SLEEP)
        else:
            pause = _POLL_SECONDS
        return pause if remaining is None else max(min(pause, remaining), 0.0)

    def _check_amount(self, amount: float) -> None:
        amount = _number(amount, "amount")
        if amount <= 0:
            raise ValueError(f"the amount to consume must be positive, got {amount!r}")
        if amount > self._capacity:
            raise ValueError(
                f"cannot consume {amount!r} units from a bucket that holds at most "
                f"{self._capacity!r}; such a request could never succeed"
            )


def _ram_key(ram: str | int) -> str:
    # "1024MB", "1024 mb", "1GB" and 1024 all name the same server.
    if isinstance(ram, bool):
        raise TypeError(f"ram must be a size such as '1024MB', got {ram!r}")
    if isinstance(ram, int):
        return f"{ram}MB"
    if not isinstance(ram, str):
        raise TypeError(f"ram must be a size such as '1024MB', got {ram!r}")
    text = ram.replace(" ", "").upper()
    for unit, factor in (("GB", 1024), ("MB", 1)):
        number = text.removesuffix(unit)
        if number != text and number.isdigit():
            return f"{int(number) * factor}MB"
    return text


def _strip_json_comments(text: str) -> str:
    """``text`` without ``//`` and ``/* */`` comments or trailing commas, strings untouched
    (LEAN's config.json is JSON with comments; its URLs hold ``//`` inside strings)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[i : end + 1])
            i = end + 1
        elif text.startswith("//", i):
            newline = text.find("\n", i)
            i = n if newline < 0 else newline
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0:
                raise ValueError("unterminated /* comment in JSON configuration")
            out.append(" ")
            i = close + 2
        elif char in "}]":
            # drop a trailing comma before the closing bracket
            j = len(out) - 1
            while j >= 0 and out[j].isspace():
                j -= 1
            if j >= 0 and out[j] == ",":
                del out[j]
            out.append(char)
            i += 1
        else:
            out.append(char)
            i += 1
    return "".join(out)
