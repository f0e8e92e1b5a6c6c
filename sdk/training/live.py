"""The live mode of a :class:`~alphazoo.training.Trainer`: schedules fire on the wall clock.

Two daemon threads: a scheduler that sleeps until the next fire time of any schedule and
queues a job, and a worker that runs the queued trainings one at a time (a training never
overlaps the previous one; a schedule that fires while its last training still runs skips
that firing). Trainings themselves are run by the trainer; this module only times and queues
them.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .records import Schedule, TrainingRecord
from .rules import fire_times

__all__ = ["LiveRunner", "LiveJob"]

log = logging.getLogger("alphazoo.training")
_LIVE_HORIZON = timedelta(days=7)
_LIVE_RECHECK_S = 60.0


@dataclass
class LiveJob:
    """One queued training: what to run, its name, fire time and options, the future its
    :class:`TrainingRecord` (or error) is delivered through, and the schedule that fired it."""

    fn: Callable[[], Any]
    name: str
    at: datetime
    options: dict[str, Any]
    future: Future[TrainingRecord]
    schedule: Schedule | None = None


class LiveRunner:
    """The scheduler and worker threads behind a live trainer, started on first use.

    ``lock``: the trainer's lock (schedules are registered under it; the scheduler sleeps on a
    condition of it). ``schedules()``: the schedules not cancelled. ``run(fn, name, at,
    options)``: run one training, returning its record (raising when the trainer raises
    errors). ``now()``: the wall clock, naive in ``tz``. ``dropped(record)``: a schedule whose
    rule raised was cancelled; ``record`` says why.
    """

    def __init__(self, *, lock: threading.RLock, tz: ZoneInfo,
                 schedules: Callable[[], list[Schedule]],
                 run: Callable[[Callable[[], Any], str, datetime, dict[str, Any]],
                               TrainingRecord],
                 now: Callable[[], datetime],
                 dropped: Callable[[TrainingRecord], None]) -> None:
        self.lock, self.tz = lock, tz
        self._schedules, self._run, self._now, self._dropped = schedules, run, now, dropped
        self.cond = threading.Condition(lock)
        self.queue: queue.Queue[LiveJob | None] = queue.Queue()
        self.threads: list[threading.Thread] = []
        self.stopped = False

    def ensure_started(self) -> None:
        """Start the threads unless running; a stopped runner refuses (RuntimeError)."""
        with self.lock:
            if self.stopped:
                raise RuntimeError("this trainer was stopped; create a new one")
            if self.threads:
                return
            for target, label in ((self._work, "worker"), (self._schedule_loop, "scheduler")):
                thread = threading.Thread(target=target, name=f"alphazoo-trainer-{label}",
                                          daemon=True)
                thread.start()
                self.threads.append(thread)

    def submit(self, fn: Callable[[], Any], name: str, options: dict[str, Any]
               ) -> Future[TrainingRecord]:
        """Queue a training now; its future carries the record, or the training's error."""
        future: Future[TrainingRecord] = Future()
        with self.lock:  # as one step against stop(): no job may land after its drain
            self.ensure_started()
            self.queue.put(LiveJob(fn, name, self._now(), options, future))
        return future

    def wake(self) -> None:
        """Make the scheduler look at the schedules again (one was added or cancelled)."""
        with self.cond:
            self.cond.notify_all()

    def _work(self) -> None:
        while True:
            job = self.queue.get()
            if job is None:
                return
            if not job.future.set_running_or_notify_cancel():
                continue
            try:
                record = self._run(job.fn, job.name, job.at, job.options)
            except BaseException as exc:  # raise_errors=True live: the future carries it
                job.future.set_exception(exc)
            else:
                if record.error is not None:
                    job.future.set_exception(record.error)
                else:
                    job.future.set_result(record)
            finally:
                if job.schedule is not None:
                    job.schedule.busy = False

    def _schedule_loop(self) -> None:
        upcoming: dict[int, datetime | None] = {}
        with self.cond:
            while not self.stopped:
                now = self._now()
                wait = _LIVE_RECHECK_S
                for schedule in self._schedules():
                    when = upcoming.get(id(schedule))
                    if when is None or when <= schedule.cursor:
                        try:
                            when = next(iter(fire_times(schedule.date_rule, schedule.time_rule,
                                                        schedule.cursor, now + _LIVE_HORIZON,
                                                        self.tz)), None)
                        except Exception as exc:  # one broken rule must not stop the others
                            self._drop(schedule, now, exc)
                            continue
                        upcoming[id(schedule)] = when
                    if when is None:
                        continue
                    if when <= now:
                        # Fire once even if several times were missed (a slow training, a
                        # suspended machine): catching up would only queue stale trainings.
                        schedule.cursor = max(when, now)
                        self._fire(schedule, when)
                        wait = 0.0
                    else:
                        wait = min(wait, (when - now).total_seconds())
                if wait > 0:
                    self.cond.wait(wait)

    def _drop(self, schedule: Schedule, now: datetime, error: Exception) -> None:
        schedule.cancelled = True
        record = TrainingRecord(schedule.name, now, status="failed", error=error,
                                traceback=traceback.format_exc())
        log.error("schedule %r was cancelled: computing its next fire time raised %s: %s",
                  schedule.name, type(error).__name__, error, exc_info=error)
        self._dropped(record)

    def _fire(self, schedule: Schedule, when: datetime) -> None:
        if schedule.busy:
            schedule.skipped += 1
            log.warning("schedule %r fired at %s while its previous training was still "
                        "running; skipped", schedule.name, when)
            return
        schedule.busy = True
        self.queue.put(LiveJob(schedule.fn, schedule.name, when, schedule.options, Future(),
                               schedule))

    def stop(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop firing schedules, cancel queued trainings and end the threads; with ``wait``
        a running training may finish first (up to ``timeout``)."""
        with self.cond:
            self.stopped = True
            self.cond.notify_all()
        while True:  # queued, not started trainings are cancelled
            try:
                job = self.queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.future.cancel()
        self.queue.put(None)
        if wait:
            for thread in self.threads:
                if thread is not threading.current_thread():
                    thread.join(timeout)
