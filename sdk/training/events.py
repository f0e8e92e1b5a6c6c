"""One event queue for every simulated clock: scheduled callbacks in time order.

Both backtest clocks step through it: :meth:`alphazoo.training.Trainer.advance` (scheduled
trainings) and the QC-style algorithm's run (``schedule.on`` events,
:mod:`alphazoo.contrib.algorithm`). Each entry is a stream of fire times (what
:func:`~alphazoo.training.fire_times` yields) and the thing to run at them; :meth:`EventQueue.pop`
hands out the earliest due entry, entries due at the same time in the order they were given
(their registration order), and queues that entry's next fire time.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Generic, TypeVar

__all__ = ["EventQueue"]

T = TypeVar("T")


class EventQueue(Generic[T]):
    """A time-ordered heap of scheduled items, each with its own stream of fire times.

    ``active``: a test each item must pass when its time comes; an item that fails it (a
    cancelled schedule) is dropped with the rest of its fire times.

    >>> queue = EventQueue()
    >>> queue.add([datetime(2024, 1, 2), datetime(2024, 1, 4)], "weekly")
    >>> queue.add([datetime(2024, 1, 2)], "once")
    >>> [queue.pop(), queue.pop(), queue.pop(), queue.pop()]  # doctest: +NORMALIZE_WHITESPACE
    [(datetime.datetime(2024, 1, 2, 0, 0), 'weekly'),
     (datetime.datetime(2024, 1, 2, 0, 0), 'once'),
     (datetime.datetime(2024, 1, 4, 0, 0), 'weekly'), None]
    """

    def __init__(self, active: Callable[[T], bool] | None = None) -> None:
        self._active = active
        # (time, order, arrival, times, item): the arrival count makes every key unique, so
        # the heap never compares the iterators or the items behind it.
        self._heap: list[tuple[datetime, int, int, Iterator[datetime], T]] = []
        self._arrivals = itertools.count()

    def add(self, times: Iterable[datetime], item: T, order: int | None = None) -> None:
        """Queue ``item`` at each of ``times`` (ascending; read lazily, one ahead of the
        clock). Items due at the same time come out by ``order`` (default: the order they were
        added in)."""
        arrival = next(self._arrivals)
        self._push(iter(times), item, arrival if order is None else order, arrival)

    def pop(self) -> tuple[datetime, T] | None:
        """The earliest due ``(time, item)``, or None when nothing is left. The item's next
        fire time is queued before this returns, so an item that raises when run is not run
        again at the same time."""
        while self._heap:
            when, order, arrival, times, item = heapq.heappop(self._heap)
            if self._active is not None and not self._active(item):
                continue
            self._push(times, item, order, arrival)
            return when, item
        return None

    def __len__(self) -> int:
        return len(self._heap)

    def _push(self, times: Iterator[datetime], item: T, order: int, arrival: int) -> None:
        when = next(times, None)
        if when is not None:
            heapq.heappush(self._heap, (when, order, arrival, times, item))
