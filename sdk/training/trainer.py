"""The Trainer: LEAN's ``train(method)`` and ``train(date_rule, time_rule, method)`` for any
Python program, with a training-time quota, a backtest clock, live scheduling and hot swap.

>>> trainer = Trainer(mode="backtest", start=datetime(2013, 10, 7))   # doctest: +SKIP
>>> trainer.train(fit)                                    # now               # doctest: +SKIP
>>> trainer.train(DateRules.every(DayOfWeek.SUNDAY), TimeRules.at(8, 0), fit)  # doctest: +SKIP
>>> trainer.advance(datetime(2013, 10, 14))              # fires Sun 13th 08:00  # doctest: +SKIP
>>> trainer.model.predict(X_new)                         # the model in service  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
import threading
import traceback
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Literal
from zoneinfo import ZoneInfo

from .bucket import LeakyBucket
from .events import EventQueue
from .live import LiveRunner
from .model_versions import (
    latest_version,
    load_latest,
    promote_saved,
    save_version,
    version_key,
)
from .quota import TrainingQuotaExceeded, run_metered
from .records import Schedule, Trained, TrainingRecord
from .rules import fire_times
from .served import ServedModel

if TYPE_CHECKING:
    from alphazoo.host import Zoo

    from .fanout import JobResult, TrainJob
    from .follow import AliasFollower, FollowEvent

__all__ = ["Trainer"]

log = logging.getLogger("alphazoo.training")
_EPSILON = timedelta(microseconds=1)


class Trainer:
    """Trains models now or on a schedule, within a time quota, and serves the latest one.

    Parameters
    ----------
    mode:
        ``"backtest"``: a simulated clock that only :meth:`advance` moves; trainings run
        synchronously in the caller (LEAN: training blocks the algorithm). ``"live"``:
        schedules fire on the wall clock from a scheduler thread and trainings run one at a
        time in a worker thread; :attr:`model` keeps serving the previous version until the
        new one is ready.
    start:
        The backtest's first instant (default: the wall clock now). Live: ignored.
    zoo:
        The :class:`~alphazoo.Zoo` whose store ``save_as`` writes into (default: a ``Zoo()``
        created when first needed).
    tz:
        The trainer's time zone. :attr:`now` and every fire time are naive datetimes in it;
        aware datetimes passed in are converted.
    bucket:
        The training-time quota. Default: LEAN's :class:`~alphazoo.training.LeakyBucket`
        (capacity 120, refill ceil(120/7) every 1,440 minutes) on the trainer's clock, so in
        backtests it refills on *simulated* time. A mapping builds one on the trainer's clock
        too: ``{"capacity": 30, "refill_amount": 5, "interval": timedelta(hours=12)}`` or
        LEAN's config keys (``"scheduled-event-leaky-bucket-capacity"``...). A
        :class:`~alphazoo.training.LeakyBucket` made without ``clock=`` is put on the
        trainer's clock in backtests too (``bucket=LeakyBucket(capacity=120)`` refills on
        simulated time); a bucket with its own clock, or any other bucket object, is used as
        given. ``False`` disables the quota.
    quota_unit:
        The time one bucket unit stands for (LEAN: a minute). Tests use seconds.
    isolate:
        Default for :meth:`train`: ``False`` runs trainings in this process (they cannot be
        stopped; an overrun is detected after the fact and its result discarded); ``True``
        (or a multiprocessing start method, ``"spawn"``, ``"forkserver"``, ``"fork"``) runs
        each in a child process that is terminated when the bucket runs dry. See
        :mod:`alphazoo.training.quota`.
    raise_errors:
        Whether a failed training raises out of :meth:`train`/:meth:`advance`. Default: True
        in backtests (like an exception in a LEAN backtest), False live. Failures are always
        logged (logger ``"alphazoo.training"``) and kept in :attr:`errors`.
    on_error:
        Called with the :class:`TrainingRecord` of each failed training.
    """

    def __init__(
        self,
        mode: Literal["backtest", "live"] = "backtest",
        start: datetime | None = None,
        *,
        zoo: Zoo | None = None,
        tz: str = "America/New_York",
        bucket: Any = None,
        quota_unit: timedelta = timedelta(minutes=1),
        isolate: bool | str = False,
        raise_errors: bool | None = None,
        on_error: Callable[[TrainingRecord], None] | None = None,
    ) -> None:
        if mode not in ("backtest", "live"):
            raise ValueError(f"mode must be 'backtest' or 'live', not {mode!r}")
        if not isinstance(quota_unit, timedelta) or quota_unit <= timedelta(0):
            raise ValueError(f"quota_unit must be a positive timedelta, got {quota_unit!r}")
        self.mode = mode
        self.tz = ZoneInfo(tz)
        self._zoo = zoo
        self.quota_unit = quota_unit
        self.isolate = isolate
        self.raise_errors = (mode == "backtest") if raise_errors is None else raise_errors
        self.on_error = on_error
        self.model = ServedModel()
        self.history: list[TrainingRecord] = []
        self.errors: list[TrainingRecord] = []
        self._now = self._naive(start) if start is not None else self._wall_now()
        if bucket is None or isinstance(bucket, Mapping):
            settings = dict(bucket or {})
            if any(str(k).startswith("scheduled-event-") for k in settings):
                bucket = LeakyBucket.from_config(settings, clock=self._clock)
            else:
                bucket = LeakyBucket(**settings, clock=self._clock)
        elif isinstance(bucket, LeakyBucket) and mode == "backtest":
            # A wall-clock bucket in a backtest is LEAN's starvation: years of simulated
            # trainings drawing on the minutes the backtest takes to run.
            bucket.adopt_clock(self._clock)
        self.bucket = bucket if bucket is not False else None
        self._schedules: list[Schedule] = []
        self._order = itertools.count()
        self._lock = threading.RLock()
        self._advancing = False
        self._added: list[Schedule] = []
        # live: the scheduler and worker threads, started on first use
        self._live = LiveRunner(lock=self._lock, tz=self.tz, schedules=lambda: self.schedules,
                                run=self._run, now=self._wall_now, dropped=self._dropped)

    # -- time --------------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        """The trainer's clock: simulated in backtests, the wall clock live (naive, in tz)."""
        return self._now if self.mode == "backtest" else self._wall_now()

    def _clock(self) -> datetime:
        return self.now

    def _wall_now(self) -> datetime:
        return datetime.now(self.tz).replace(tzinfo=None)

    def _naive(self, moment: datetime) -> datetime:
        if not isinstance(moment, datetime):
            raise TypeError(f"expected a datetime, got {type(moment).__name__}: {moment!r}")
        if moment.tzinfo is not None:
            return moment.astimezone(self.tz).replace(tzinfo=None)
        return moment

    @property
    def zoo(self) -> Zoo:
        """The zoo (and so the object store) trained models are saved into."""
        if self._zoo is None:
            from alphazoo.host import Zoo

            self._zoo = Zoo()
        return self._zoo

    # -- registering trainings ---------------------------------------------------------------
    def train(
        self,
        *args: Any,
        name: str | None = None,
        save_as: str | None = None,
        format: str | None = None,
        save_options: dict[str, Any] | None = None,
        isolate: bool | str | None = None,
        promote_to: str | None = None,
        gates: Any = None,
    ) -> Any:
        """``train(fn)`` trains now; ``train(date_rule, time_rule, fn)`` on a schedule.

        ``fn()`` returns the trained model (or a :class:`Trained`), which goes into service as
        the next version of :attr:`model`; returning None keeps the model in service (a
        training that decided nothing needed to change). ``save_as="spy/gbdt"`` saves each
        new model as ``spy/gbdt/v000001``, ``v000002``... with ``latest.json`` pointing at the
        newest (see :mod:`alphazoo.training.model_versions`), in ``format`` with ``save_options``
        passed to :meth:`Zoo.save`. ``isolate`` overrides the trainer's default; an isolated
        ``fn`` runs in a child process on a copy of the program's state, so what it changes
        there (a list it appends to, ``trainer`` attributes) does not come back: only its
        returned model does. ``promote_to="production"`` (with ``save_as``) promotes each
        saved version to that registry alias, through ``gates`` (default: the gates set for
        the alias, ``zoo.registry.set_gates``): qlib's online rolling loop. Then a model goes
        into service only if its promotion passed; a refused one stays saved, its record
        ``"unpromoted"`` with the gate's :class:`~alphazoo.PromotionRefusedError` in
        ``promotion_error``, and the model in service stays. Each training draws its wall
        time from :attr:`bucket` in units
        of ``quota_unit``, ``ceil(seconds / unit)`` and at least one
        (:mod:`alphazoo.training.quota`).

        Returns: backtest ``train(fn)`` -> the :class:`TrainingRecord` (after the training);
        live ``train(fn)`` -> a :class:`~concurrent.futures.Future` of it (its exception is
        the training's error); scheduled -> the :class:`Schedule`.
        """
        if promote_to is not None and not save_as:
            raise ValueError("promote_to= promotes the saved version: give save_as= too")
        options = {"save_as": save_as, "format": format, "save_options": save_options or {},
                   "isolate": self.isolate if isolate is None else isolate,
                   "promote_to": promote_to, "gates": gates}
        if len(args) == 1 and callable(args[0]):
            fn = args[0]
            job_name = name or _name_of(fn)
            if self.mode == "backtest":
                return self._run(fn, job_name, self._now, options)
            return self._live.submit(fn, job_name, options)
        if len(args) == 3:
            date_rule, time_rule, fn = args
            for rule, kind, needs, maker in ((date_rule, "date_rule", "dates", "DateRules"),
                                             (time_rule, "time_rule", "times", "TimeRules")):
                if not (hasattr(rule, needs) and hasattr(rule, "bind")):
                    raise TypeError(f"{kind} must come from {maker}.*, got {rule!r}")
            if not callable(fn):
                raise TypeError(f"the training must be callable, got {fn!r}")
            return self._add_schedule(date_rule, time_rule, fn, name or _name_of(fn), options)
        raise TypeError("use train(fn) to train now or train(date_rule, time_rule, fn) on a "
                        f"schedule; got {len(args)} positional argument(s)")

    def _add_schedule(self, date_rule: Any, time_rule: Any, fn: Callable[[], Any], name: str,
                      options: dict[str, Any]) -> Schedule:
        now = self.now
        # A fire time equal to now still fires (LEAN keeps events at the current time), hence
        # the cursor a hair before now: fire_times() is after < t <= until.
        schedule = Schedule(name, date_rule.bind(now), time_rule.bind(now), fn, options,
                            next(self._order), now - _EPSILON, on_cancel=self._live.wake)
        with self._lock:
            if self.mode == "live":
                self._live.ensure_started()  # a stopped trainer refuses before registering
            self._schedules.append(schedule)
            if self._advancing:
                self._added.append(schedule)
        if self.mode == "live":
            self._live.wake()
        return schedule

    @property
    def schedules(self) -> list[Schedule]:
        """The schedules not cancelled, in registration order."""
        return [s for s in self._schedules if not s.cancelled]

    # -- backtest ----------------------------------------------------------------------------
    def advance(self, until: datetime) -> list[TrainingRecord]:
        """Backtest: run every scheduled training due in ``(now, until]`` and move :attr:`now`
        to ``until``; returns their records.

        Trainings run in time order, those due at the same time in registration order, each
        with :attr:`now` set to its fire time. If a training fails and ``raise_errors`` is on,
        the error propagates with :attr:`now` at that training's time; calling ``advance``
        again continues after it.
        """
        if self.mode != "backtest":
            raise RuntimeError("advance() drives a backtest's clock; live schedules fire on "
                               "the wall clock")
        until = self._naive(until)
        if until < self._now:
            raise ValueError(f"cannot advance backwards: now is {self._now}, until is {until}")
        if self._advancing:
            raise RuntimeError("advance() was called from inside a training it is running")
        queue: EventQueue[Schedule] = EventQueue(active=lambda s: not s.cancelled)

        def start(schedule: Schedule) -> None:
            queue.add(fire_times(schedule.date_rule, schedule.time_rule, schedule.cursor,
                                 until, self.tz), schedule, schedule.order)

        records = []
        self._advancing = True
        try:
            with self._lock:
                for schedule in self.schedules:
                    start(schedule)
            # pop() queues a schedule's next time before it runs: a raise must not re-fire
            # this one.
            while (due := queue.pop()) is not None:
                when, schedule = due
                self._now = when
                schedule.cursor = when
                records.append(self._run(schedule.fn, schedule.name, when, schedule.options))
                with self._lock:
                    added, self._added = self._added, []
                for schedule in added:
                    start(schedule)
            self._now = until
        finally:
            self._advancing = False
            self._added = []
        return records

    # -- running one training ----------------------------------------------------------------
    def _run(self, fn: Callable[[], Any], name: str, at: datetime,
             options: dict[str, Any]) -> TrainingRecord:
        record = TrainingRecord(name, at)
        try:
            result, record.seconds, record.charged = run_metered(
                fn, self.bucket, self.quota_unit, name=name, isolate=options["isolate"])
        except TrainingQuotaExceeded as exc:
            record.status, record.error, record.seconds = "quota_exceeded", exc, exc.seconds
            record.charged = exc.charged
        except Exception as exc:
            record.status, record.error = "failed", exc
            record.traceback = traceback.format_exc()
        else:
            self._serve(record, result, options)
        self.history.append(record)
        if record.error is not None:
            self._report(record)
            if self.raise_errors:
                raise record.error
        return record

    def _serve(self, record: TrainingRecord, result: Any, options: dict[str, Any]) -> None:
        trained = result if isinstance(result, Trained) else Trained(result)
        if trained.model is None:
            record.status = "kept"
            log.info("training %r returned no model; %s stays in service",
                     record.name, _in_service(self.model))
            return
        window = trained.window or {"start": None, "end": record.at.isoformat()}
        promote_to = options.get("promote_to")
        if options["save_as"]:
            try:
                record.key, manifest = save_version(
                    self.zoo, trained.model, options["save_as"], format=options["format"],
                    window={k: _iso(v) for k, v in window.items()},
                    metadata={**(trained.metadata or {}), "trained_at": record.at.isoformat(),
                              "training_name": record.name,
                              "training_seconds": round(record.seconds, 6)},
                    **options["save_options"])
            except Exception as exc:  # the model is good: serve it (unless it was to be
                record.save_error = exc  # promoted), report the lost save
                log.error("training %r: saving to %r failed%s", record.name,
                          options["save_as"], "" if promote_to else "; the model is served "
                          "unsaved", exc_info=exc)
                self.errors.append(record)
            else:
                if promote_to:
                    self._promote(record, options["save_as"], manifest, promote_to,
                                  options.get("gates"))
        if promote_to and record.promotion is None:
            record.status = "unpromoted"
            record.promotion_error = record.promotion_error or record.save_error
            log.warning("training %r: its model was not promoted to %r; %s stays in service",
                        record.name, promote_to, _in_service(self.model))
            return
        promoted = ({"alias": promote_to, "registry_version": record.promotion["to"]}
                    if record.promotion else {})  # as a follower of the alias publishes it
        served = self.model.publish(trained.model, trained_at=record.at, window=window,
                                    key=record.key, name=record.name, **promoted)
        record.status, record.version = "served", served.version
        log.info("training %r took %.3f s; %s in service", record.name,
                 record.seconds, _in_service(self.model))

    def _promote(self, record: TrainingRecord, name: str, manifest: dict[str, Any],
                 alias: str, gates: Any) -> None:
        version = int(manifest["metadata"]["training"]["version"])
        try:
            record.promotion, record.promotion_error = promote_saved(
                self.zoo.registry, name, version, alias, gates=gates,
                note=f"training {record.name!r} at {record.at.isoformat()}")
        except Exception as exc:  # the registry itself failed (the store): not served
            record.promotion_error = exc
            log.error("training %r: promoting %s to %r failed", record.name, record.key,
                      alias, exc_info=exc)
            self.errors.append(record)

    def _report(self, record: TrainingRecord) -> None:
        self.errors.append(record)
        if record.status == "failed":
            log.error("training %r at %s failed: %s; %s stays in service",
                      record.name, record.at, record.error, _in_service(self.model),
                      exc_info=record.error)
        else:  # the quota message already says the model in service was kept
            log.error("training %r at %s: %s", record.name, record.at, record.error)
        if self.on_error is not None:
            try:
                self.on_error(record)
            except Exception:
                log.exception("the trainer's on_error callback raised")

    # -- persistence -------------------------------------------------------------------------
    def load_latest(self, save_as: str, **load_options: Any) -> Any:
        """The newest saved version of series ``save_as``, loaded from the zoo's store."""
        return load_latest(self.zoo, save_as, **load_options)

    def serve_latest(self, save_as: str, **load_options: Any) -> int:
        """Put the newest saved version of ``save_as`` into service (a live restart's warm
        start); returns the served version number."""
        number = latest_version(self.zoo.store, save_as)
        model = self.load_latest(save_as, **load_options)
        return self.model.publish(model, key=version_key(save_as, number), name=save_as).version

    def follow(self, reference: str, *, poll: float | timedelta = 5.0,
               verify: Callable[[Any], Any] | None = None, keep: int = 2,
               **load_options: Any) -> AliasFollower:
        """Serve the version registry alias ``reference`` points to (``"spy/gbdt@production"``)
        from :attr:`model`, and hot-swap each version it moves to, read every ``poll``
        seconds from this trainer's zoo. Loading and ``verify`` happen in a background
        thread; a version that fails is logged, kept in :attr:`errors` (as a failed
        :class:`TrainingRecord` named after the reference) and never served.
        :meth:`stop` ends the following. See :meth:`ServedModel.follow`."""
        if self._live.stopped:
            raise RuntimeError("this trainer was stopped; create a new one")
        def failed(event: FollowEvent) -> None:
            record = TrainingRecord(f"follow {reference}", self.now, status="failed",
                                    key=event.key, error=event.error,
                                    traceback=event.traceback)
            self._dropped(record)

        return self.model.follow(reference, zoo=self.zoo, poll=poll, verify=verify, keep=keep,
                                 on_error=failed, **load_options)

    # -- fan-out -----------------------------------------------------------------------------
    def map_train(self, jobs: Iterable[TrainJob], executor: Executor | None = None, *,
                  progress: Any = None, raise_errors: bool = False,
                  gates: Any = None) -> list[JobResult]:
        """Run independent :class:`~alphazoo.training.TrainJob` s on ``executor``, saving into
        this trainer's store (and promoting, for jobs with ``promote_to``, in its zoo's
        registry); see :func:`alphazoo.training.map_train`."""
        from .fanout import map_train

        job_list = list(jobs)
        saving = any(job.save_as for job in job_list)
        return map_train(job_list, executor, store=self.zoo.store if saving else None,
                         progress=progress, raise_errors=raise_errors,
                         registry=self.zoo.registry if saving else None, gates=gates)

    # -- live --------------------------------------------------------------------------------
    def _dropped(self, record: TrainingRecord) -> None:
        # a live schedule whose rule raised (the runner cancelled it and logged why), or a
        # followed version that failed to load (the follower logged it)
        self.errors.append(record)
        if self.on_error is not None:
            try:
                self.on_error(record)
            except Exception:
                log.exception("the trainer's on_error callback raised")

    def stop(self, wait: bool = True, timeout: float | None = None) -> None:
        """Live: stop firing schedules, drop queued trainings and end the threads. With
        ``wait`` a training that is running is allowed to finish first (up to ``timeout``).
        Alias followers (:meth:`follow`) stop too, in either mode."""
        self.model.close(timeout if wait else 0)
        self._live.stop(wait, timeout)

    close = stop

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.mode == "live":
            self.stop()
        else:
            self.model.close()

    def __repr__(self) -> str:
        return (f"Trainer(mode={self.mode!r}, now={self.now!s}, schedules={len(self.schedules)},"
                f" model={self.model!r})")


def _name_of(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _in_service(model: Any) -> str:
    """The model in service as a log names it: its store key when saved, since the served
    counter also counts unsaved trainings and would disagree with the series' numbering."""
    current = model.snapshot()
    if current is None:
        return "no model"
    if current.key:
        return current.key
    return f"version {current.version}"
