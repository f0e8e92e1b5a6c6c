"""Running one training against a quota: in this process, or in a child process it can stop.

The bucket counts *units* of wall-clock time (a minute by default, as LEAN). A training pays
one unit when it starts and one more each time it starts another unit, so it is charged
``ceil(seconds / unit)`` units (at least one), drawn as it runs:

- **in a child process** (``isolate=True`` or a start-method name): the parent draws each unit
  when it begins; when the bucket cannot give the next one the child is terminated at that
  moment and :class:`TrainingQuotaExceeded` is raised. The training function and what it
  returns must be picklable (a module-level function; a ``functools.partial`` of one).
- **in this process** (the default): Python cannot stop a running function, so the training
  runs to its end and is measured after the fact. If the bucket cannot cover the time it took,
  the bucket is emptied, the result is discarded and :class:`TrainingQuotaExceeded` is raised:
  the same outcome as a stopped training, only later.

Either way a training that cannot get its first unit is refused before it starts.
"""

from __future__ import annotations

import math
import multiprocessing
import pickle
import time
import traceback
from datetime import timedelta
from typing import Any, Callable

from alphazoo.errors import AlphazooError

__all__ = ["TrainingQuotaExceeded", "TrainingProcessError", "run_metered"]


class TrainingQuotaExceeded(AlphazooError):
    """A training was refused or stopped because the training-time bucket ran dry.

    Attributes: ``name`` (the training), ``seconds`` (wall time it ran), ``charged`` (units
    drawn), ``available`` (units in the bucket when it started), ``unit`` (a timedelta),
    ``stopped`` (True when a child process was terminated, False when refused up front or
    measured after the fact).
    """

    def __init__(self, name: str, seconds: float, charged: float, available: float,
                 unit: timedelta, *, how: str) -> None:
        self.name, self.seconds, self.charged = name, seconds, charged
        self.available, self.unit, self.how = available, unit, how
        self.stopped = how == "stopped"
        units = _unit_name(unit)
        if how == "refused":
            text = (f"training {name!r} was refused: it needs at least 1 {units} of training "
                    f"time and the bucket has {available:g} {units} available")
        elif how == "stopped":
            text = (f"training {name!r} was stopped after running {seconds:.2f} s: it used "
                    f"all {charged:g} {units} the bucket had available ({available:g} at start)")
        else:
            need = max(1, math.ceil(seconds / unit.total_seconds()))
            text = (f"training {name!r} ran {seconds:.2f} s ({need} {units}) but the bucket "
                    f"had {available:g} {units} available; its result was discarded")
        super().__init__(f"{text}. The model in service was kept. The bucket refills over "
                         "time; spread trainings out, shorten them, or give the trainer a "
                         "larger LeakyBucket.")

    def __reduce__(self) -> Any:  # picklable across processes with its keyword argument
        return (_rebuild_quota_error, (self.name, self.seconds, self.charged, self.available,
                                       self.unit, self.how))


def _rebuild_quota_error(*args: Any) -> TrainingQuotaExceeded:
    *positional, how = args
    return TrainingQuotaExceeded(*positional, how=how)


class TrainingProcessError(AlphazooError, RuntimeError):
    """A training run in a child process raised, or the process died; the child's traceback
    is in the message."""


def _unit_name(unit: timedelta) -> str:
    seconds = unit.total_seconds()
    for size, word in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        if seconds == size:
            return word + "(s)"
    return f"unit(s) of {seconds:g} s"


def run_metered(
    fn: Callable[[], Any],
    bucket: Any,
    unit: timedelta,
    *,
    name: str,
    isolate: bool | str = False,
) -> tuple[Any, float, float]:
    """Run ``fn()`` against ``bucket``; returns ``(result, seconds, units_charged)``.

    ``bucket`` is a :class:`~alphazoo.training.LeakyBucket` (or None: no quota). See the
    module documentation for what ``isolate`` changes.
    """
    unit_s = unit.total_seconds()
    if unit_s <= 0:
        raise ValueError(f"quota_unit must be a positive timedelta, got {unit!r}")
    method = None
    payload: Any = fn
    if isolate:
        method = "spawn" if isolate is True else str(isolate)
        if method != "fork":  # checked before charging: an unpicklable training never ran
            payload = _pickled(fn, name, method)
    available = bucket.available if bucket is not None else math.inf
    if bucket is not None and not bucket.try_consume(1):
        raise TrainingQuotaExceeded(name, 0.0, 0, available, unit, how="refused")
    if method is not None:
        return _run_child(payload, bucket, unit, unit_s, name, method, available)
    started = time.monotonic()
    result = fn()
    seconds = time.monotonic() - started
    need = max(1, math.ceil(seconds / unit_s))
    if bucket is None or need == 1:
        return result, seconds, need
    if need - 1 <= getattr(bucket, "capacity", math.inf) and bucket.try_consume(need - 1):
        return result, seconds, need
    # Python cannot have stopped it: drain what is left, as the stopped training would have.
    left = bucket.available
    charged = 1
    if left > 0 and bucket.try_consume(left):
        charged += left
    raise TrainingQuotaExceeded(name, seconds, charged, available, unit, how="measured")


def _pickled(fn: Callable[[], Any], name: str, method: str) -> bytes:
    # Pickled once here, so the child's start only copies bytes; a failure is reported as
    # the user's mistake it is, before a process or a pipe exists.
    from multiprocessing.reduction import ForkingPickler

    try:
        return bytes(ForkingPickler.dumps(fn))  # multiprocessing's own reducers, as spawn's
    except Exception as exc:
        raise TrainingProcessError(
            f"training {name!r} cannot run in a {method!r} child process (isolate=...): "
            f"the training function must be picklable, a module-level function or a "
            f"functools.partial of one, not a lambda or a nested function "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _run_child(fn: Callable[[], Any] | bytes, bucket: Any, unit: timedelta, unit_s: float,
               name: str, method: str, available: float) -> tuple[Any, float, int]:
    context: Any = multiprocessing.get_context(method)  # typeshed's BaseContext lacks Process
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(fn, sender), daemon=True,
                              name=f"alphazoo-training-{name}")
    started = time.monotonic()
    try:
        process.start()
    except BaseException:
        receiver.close()
        sender.close()
        raise
    sender.close()  # the child holds the only writer: its exit makes poll() return (EOF)
    charged = 1
    try:
        while True:
            deadline = started + charged * unit_s
            if receiver.poll(max(0.0, deadline - time.monotonic())):
                break
            if bucket is None or bucket.try_consume(1):
                charged += 1
                continue
            seconds = time.monotonic() - started
            _stop(process, grace=0.0)
            raise TrainingQuotaExceeded(name, seconds, charged, available, unit, how="stopped")
        try:
            message = receiver.recv()
        except EOFError:
            process.join(5)
            raise TrainingProcessError(
                f"training {name!r} ended without returning (its process exited with code "
                f"{process.exitcode}); a crash in native code or os._exit() does this"
            ) from None
        seconds = time.monotonic() - started
    finally:
        receiver.close()
        _stop(process)
    if message[0] == "error":
        _, error, text = message
        raise TrainingProcessError(f"training {name!r} raised in its process:\n{text}") from error
    return message[1], seconds, charged


def _stop(process: Any, grace: float = 5.0) -> None:
    # A child that has sent its result exits at once; one that overran is ended without wait.
    process.join(grace)
    if process.is_alive():
        process.terminate()
        process.join(5)
    if process.is_alive():
        process.kill()
        process.join()


def _child_main(fn: Callable[[], Any] | bytes, sender: Any) -> None:
    try:
        call = pickle.loads(fn) if isinstance(fn, bytes) else fn
        result = call()
        sender.send(("ok", result))
    except BaseException as exc:  # report everything, KeyboardInterrupt too, to the parent
        text = traceback.format_exc()
        try:
            sender.send(("error", exc, text))
        except Exception:  # the exception itself does not pickle: send its text only
            sender.send(("error", None, text))
    finally:
        sender.close()
