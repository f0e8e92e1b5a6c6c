"""Fan-out: many independent trainings on any :class:`concurrent.futures.Executor`.

>>> from concurrent.futures import ProcessPoolExecutor          # doctest: +SKIP
>>> jobs = [TrainJob.zoo_model("random_forest", X[s], y[s], save_as=f"rf/{s}") for s in syms]
>>> with ProcessPoolExecutor(2) as pool:                         # doctest: +SKIP
...     results = map_train(jobs, pool, store=ObjectStore("/shared/models"))

Threads, processes or Dask (``Client(...).get_executor()``) all work: a job and its data are
pickled to the worker, which trains, saves the model straight into the shared store when the
job has ``save_as`` (the workers must reach the store: a folder they share or an ``s3://``
URL, never ``memory://`` outside a thread pool) and sends back a :class:`JobResult`.

Version numbers are assigned before anything runs (one series' jobs get consecutive versions
in job order), so parallel workers never race for a number; each series' ``latest.json`` is
moved once, at the end, to its newest successful version. Fan-out trainings are not drawn from
a trainer's quota: they run on capacity the caller provides.
"""

from __future__ import annotations

import functools
import os
import pickle
import socket
import threading
import time
import traceback
from collections.abc import Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from alphazoo.errors import AlphazooError

from .model_versions import next_version, promote_saved, save_version, write_latest
from .progress import ProgressReporter
from .records import Trained

if TYPE_CHECKING:
    from alphazoo.host import Zoo
    from alphazoo.model_registry import ModelRegistry
    from alphazoo.store import ObjectStore

__all__ = ["TrainJob", "JobResult", "JobError", "map_train", "train_zoo_model", "current_zoo"]


@dataclass
class TrainJob:
    """One training: ``fn(*args, **kwargs)`` returns the model (or a
    :class:`~alphazoo.training.Trained`).

    ``save_as`` saves the model as the next version of that series in the shared store;
    ``format``, ``metadata`` and ``save_options`` go to :meth:`Zoo.save`. ``promote_to``
    (``"production"``) promotes the series' newest saved version to that registry alias
    once all jobs ended (see :func:`map_train`). ``fn`` and its
    arguments must be picklable for process and Dask executors (module-level functions).
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    save_as: str | None = None
    format: str | None = None
    metadata: dict[str, Any] | None = None
    save_options: dict[str, Any] = field(default_factory=dict)
    promote_to: str | None = None

    @classmethod
    def zoo_model(cls, model: str, X: Any, y: Any = None, *, params: dict[str, Any] | None = None,
                  name: str | None = None, save_as: str | None = None, format: str | None = None,
                  metadata: dict[str, Any] | None = None, promote_to: str | None = None,
                  **save_options: Any) -> TrainJob:
        """A job that builds zoo model ``model`` with ``params`` and trains it on ``X``/``y``
        in the worker (through the worker's zoo, so ONNX saves use the real training rows)."""
        fn = functools.partial(train_zoo_model, model, X, y, dict(params or {}))
        return cls(fn, name=name or save_as or model, save_as=save_as, format=format,
                   metadata=metadata, save_options=save_options, promote_to=promote_to)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        fn = self.fn.func if isinstance(self.fn, functools.partial) else self.fn
        return getattr(fn, "__qualname__", None) or repr(fn)


@dataclass
class JobResult:
    """What one job produced. ``error`` is set (and ``model`` None) when it failed: the job's
    exception, or a :class:`JobError` carrying its type and message when it could not be
    sent back from a worker process; ``traceback`` is the worker's traceback text either way.
    ``worker`` is ``"host:pid:thread"`` of where it ran. ``promotion`` /
    ``promotion_error``: set on the result of the version ``promote_to`` promoted (or
    tried to)."""

    index: int
    name: str
    model: Any = None
    key: str | None = None
    version: int | None = None
    seconds: float = 0.0
    worker: str = ""
    error: BaseException | None = None
    traceback: str | None = None
    #: The registry's history entry when ``promote_to`` moved the alias to this version.
    promotion: dict[str, Any] | None = None
    #: Why ``promote_to`` left the alias where it was (a gate's refusal, a racing writer).
    promotion_error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# -- in the worker -------------------------------------------------------------------------------
_local = threading.local()
_zoos: dict[bytes | None, Any] = {}
_zoos_lock = threading.Lock()


def current_zoo() -> Zoo:
    """The zoo of the job running in this thread (its store is the shared store), or a new
    default ``Zoo()`` outside a job."""
    zoo = getattr(_local, "zoo", None)
    if zoo is None:
        from alphazoo.host import Zoo

        zoo = Zoo()
    return zoo


def train_zoo_model(model: str, X: Any, y: Any, params: dict[str, Any]) -> Any:
    """Build zoo model ``model`` with ``params`` and train it on ``X``/``y`` (a job body)."""
    zoo = current_zoo()
    return zoo.train(zoo.build(model, **params), X, y)


def _worker_zoo(spec: tuple[Any, ...] | None) -> Any:
    from alphazoo.host import Zoo
    from alphazoo.store import ObjectStore

    # Storage options hold dicts (S3's client_kwargs), so the spec is not hashable: its
    # pickle names it instead (a spec is plain data, so equal specs pickle alike).
    cache_key = None if spec is None else pickle.dumps(spec)
    with _zoos_lock:  # one zoo per store per process: plugin discovery happens once
        zoo = _zoos.get(cache_key)
        if zoo is None:
            if spec is None:
                zoo = Zoo("memory://alphazoo-fanout-scratch")
            else:
                url, max_size, max_files, options = spec
                store = ObjectStore(url, max_size=max_size, max_files=max_files,
                                    storage_options=dict(options))
                zoo = Zoo(store)
            _zoos[cache_key] = zoo
    return zoo


def _run_job(job: TrainJob, index: int, spec: tuple[Any, ...] | None, version: int | None,
             return_model: bool) -> JobResult:
    result = JobResult(index, job.label,
                       worker=f"{socket.gethostname()}:{os.getpid()}:"
                              f"{threading.current_thread().name}")
    zoo = _worker_zoo(spec)
    _local.zoo = zoo
    started = time.perf_counter()
    try:
        output = job.fn(*job.args, **job.kwargs)
        result.seconds = time.perf_counter() - started
        trained = output if isinstance(output, Trained) else Trained(output)
        if trained.model is not None and job.save_as:
            meta = {**(job.metadata or {}), **(trained.metadata or {}),
                    "training_name": job.label, "training_seconds": round(result.seconds, 6)}
            result.key, _ = save_version(zoo, trained.model, job.save_as, version=version,
                                         format=job.format, window=trained.window,
                                         metadata=meta, update_latest=False,
                                         **job.save_options)
            result.version = version
        if return_model:
            result.model = trained.model
    except Exception as exc:
        result.seconds = time.perf_counter() - started
        result.error, result.traceback = _portable(exc), traceback.format_exc()
    finally:
        _local.zoo = None
    return result


class JobError(AlphazooError, RuntimeError):
    """Stands in for a job's exception that could not travel back from its worker process
    (it does not pickle, or does not unpickle); the message names the original type."""


def _portable(exc: Exception) -> Exception:
    # A process pool unpickles results in its manager thread; one result that fails to
    # unpickle marks the whole pool broken and fails every other job. An exception whose
    # __init__ takes other arguments than its message does exactly that, so only an
    # exception that survives the round trip is sent as is.
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return JobError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}")
    return exc


# -- in the caller -------------------------------------------------------------------------------
def map_train(
    jobs: Iterable[TrainJob],
    executor: Executor | None = None,
    *,
    store: ObjectStore | None = None,
    progress: bool | Callable[[int, int, JobResult], None] | None = None,
    raise_errors: bool = False,
    return_models: bool = True,
    registry: ModelRegistry | None = None,
    gates: Any = None,
) -> list[JobResult]:
    """Run ``jobs`` on ``executor`` and return their :class:`JobResult` s in job order.

    ``executor``: any :class:`concurrent.futures.Executor` (default: a thread pool of
    ``os.cpu_count()`` threads, shut down afterwards; an executor you pass stays yours).
    ``store``: where jobs with ``save_as`` save (required if any has one). ``progress``:
    ``True`` shows a rich progress bar, a callable is called ``(done, total, result)`` after
    each job. A failed job is reported in its result; ``raise_errors`` re-raises the first
    failure after all jobs ended. ``return_models=False`` leaves models in the store only
    (saves shipping big models back from remote workers).

    Jobs with ``promote_to``: after the series' ``latest.json`` moved, its newest saved
    version is promoted to that alias in ``registry`` (default: ``Zoo(store).registry``),
    through ``gates`` (default: the gates set for the alias); the outcome is on that job's
    result (``promotion`` or ``promotion_error``: a refusal is not a failed job).
    """
    job_list = list(jobs)
    for job in job_list:
        if not isinstance(job, TrainJob):
            raise TypeError(f"map_train takes TrainJob objects, got {type(job).__name__}")
    spec = _store_spec(store, executor) if any(job.save_as for job in job_list) else None
    if spec is None and any(job.save_as for job in job_list):
        raise ValueError("jobs with save_as need a store: map_train(..., store=ObjectStore(...))")
    versions = _assign_versions(job_list, store)
    own = executor is None
    pool = executor or ThreadPoolExecutor(os.cpu_count() or 2,
                                          thread_name_prefix="alphazoo-fanout")
    results: list[JobResult | None] = [None] * len(job_list)
    try:
        futures: dict[Future[JobResult], int] = {
            pool.submit(_run_job, job, index, spec, versions[index], return_models): index
            for index, job in enumerate(job_list)
        }
        with ProgressReporter(progress, len(job_list)) as report:
            for future in as_completed(futures):
                index = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # the executor itself failed (a worker died...)
                    result = JobResult(index, job_list[index].label, error=exc,
                                       traceback=traceback.format_exc())
                results[index] = result
                report(result)
    finally:
        if own:
            pool.shutdown(wait=True)
    done = [r for r in results if r is not None]  # every future completed: all are set
    if store is not None:
        newest: dict[str, JobResult] = {}
        aliases: dict[str, str] = {}
        for job, result in zip(job_list, done):
            if job.save_as and job.promote_to:
                aliases.setdefault(job.save_as, job.promote_to)
            if job.save_as and result.ok and result.version:
                best = newest.get(job.save_as)
                if best is None or result.version > (best.version or 0):
                    newest[job.save_as] = result
        for name, result in newest.items():
            write_latest(store, name, result.version or 0)
        for name, alias in aliases.items():
            if name in newest:
                if registry is None:
                    from alphazoo.host import Zoo

                    registry = Zoo(store).registry
                result = newest[name]
                result.promotion, result.promotion_error = promote_saved(
                    registry, name, result.version or 0, alias, gates=gates,
                    note=f"fan-out job {result.name!r}")
    if raise_errors:
        for result in done:
            if result.error is not None:
                raise result.error
    return done


def _store_spec(store: ObjectStore | None, executor: Executor | None) -> tuple[Any, ...] | None:
    if store is None:
        return None
    url = store.url
    if url.startswith("memory://") and not (executor is None
                                            or isinstance(executor, ThreadPoolExecutor)):
        raise ValueError(
            f"workers of {type(executor).__name__} cannot reach the in-process store {url!r}; "
            "use a folder or s3:// store that every worker can open"
        )
    options = store.storage_options
    return (url, store.max_size, store.max_files, tuple(sorted(options.items())))


def _assign_versions(jobs: list[TrainJob], store: ObjectStore | None) -> list[int | None]:
    following: dict[str, int] = {}
    assigned: list[int | None] = []
    for job in jobs:
        if not job.save_as or store is None:
            assigned.append(None)
            continue
        if job.save_as not in following:
            following[job.save_as] = next_version(store, job.save_as)
        else:
            following[job.save_as] += 1
        assigned.append(following[job.save_as])
    return assigned
