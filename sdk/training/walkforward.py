"""Walk-forward training: retrain on a schedule over a time-indexed dataset and stitch the
out-of-sample predictions together.

>>> result = walk_forward(X, y, fit, every="MS", window="rolling", length="365D",
...                       label_horizon=1)                        # doctest: +SKIP
>>> result.predictions        # one prediction per row from the first retrain on  # doctest: +SKIP

At each retrain time ``t`` (from ``every``) a model is fitted on rows dated strictly before
``t`` and predicts the rows from ``t`` up to the next retrain time. Nothing dated ``t`` or
later is ever in a training set.

**Labels that look forward.** A row dated ``d`` whose label is the next bar's return is only
known one bar after ``d``: training at ``t`` on the row of the bar just before ``t`` would use
the price at ``t``. Say how far labels look ahead and those rows are left out:

- ``label_horizon=h``: the label of a row uses the next ``h`` bars (distinct index
  timestamps, so a panel with several symbols per date counts dates, not rows); the rows of
  the last ``h`` timestamps before ``t`` are dropped from that training set.
- ``label_known=``: for each row, the timestamp its label becomes known (e.g. the next bar's
  date); a row trains at ``t`` only if its label was known strictly before ``t``.

With the default ``label_horizon=0`` the caller asserts labels are known at their row's time.
"""

from __future__ import annotations

import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Literal

from .model_versions import next_version, promote_saved, save_version, write_latest
from .progress import ProgressReporter

if TYPE_CHECKING:
    from alphazoo.host import Zoo

__all__ = ["walk_forward", "WalkForwardResult", "Fold"]


@dataclass
class Fold:
    """One retraining: its training rows, the rows it predicted and where it was saved.

    ``cutoff`` is the retrain time: training rows are dated before it (``train_end`` is the
    last one actually used, after the label horizon), test rows from it up to the next
    cutoff.
    """

    number: int
    cutoff: Any
    train_start: Any
    train_end: Any
    train_rows: int
    test_start: Any
    test_end: Any
    test_rows: int
    seconds: float = 0.0
    key: str | None = None
    version: int | None = None
    train_index: Any = field(default=None, repr=False)


@dataclass
class WalkForwardResult:
    """Stitched out-of-sample ``predictions`` (pandas, indexed like the predicted rows), the
    ``folds``, the fitted ``models`` in fold order (when kept), and with ``promote_to=`` the
    outcome of promoting the last fold's version."""

    predictions: Any
    folds: list[Fold]
    models: list[Any]
    #: ``promote_to=``: the registry's history entry when the alias moved to the last fold.
    promotion: dict[str, Any] | None = None
    #: ``promote_to=``: why the alias did not move (a gate's refusal, a racing writer).
    promotion_error: BaseException | None = None

    @property
    def keys(self) -> list[str]:
        """The store keys of the saved fold models, in fold order."""
        return [fold.key for fold in self.folds if fold.key]


def walk_forward(
    X: Any,
    y: Any,
    fit: Callable[[Any, Any], Any],
    *,
    every: Any = "MS",
    window: Literal["expanding", "rolling"] = "expanding",
    length: int | str | timedelta | Any = None,
    label_horizon: int = 0,
    label_known: Any = None,
    start: Any = None,
    end: Any = None,
    min_train: int = 1,
    predict: Callable[[Any, Any], Any] | None = None,
    zoo: Zoo | None = None,
    save_as: str | None = None,
    format: str | None = None,
    save_options: dict[str, Any] | None = None,
    executor: Executor | None = None,
    keep_models: bool = True,
    progress: bool | Callable[[int, int, Any], None] | None = None,
    promote_to: str | None = None,
    gates: Any = None,
) -> WalkForwardResult:
    """Retrain ``fit(X_train, y_train) -> model`` on each schedule date, predict ahead.

    Parameters
    ----------
    X, y:
        A pandas DataFrame/Series with a sorted DatetimeIndex, and labels aligned to it (a
        Series with the same index, an array of the same length, or None).
    every:
        The retrain schedule: a pandas frequency (``"MS"`` month starts, ``"W-MON"``,
        ``"QS"``, ``"7D"``), a timedelta, a :class:`~alphazoo.training.DateRule`
        (``DateRules.month_start(market="NYSE")``) or an explicit list of timestamps.
    window, length:
        ``"expanding"``: all rows before the cutoff (``length`` ignored). ``"rolling"``: the
        last ``length`` of them: a time span (``"365D"``, a timedelta, a DateOffset) or an
        int number of bars (distinct timestamps).
    label_horizon, label_known:
        How far labels look ahead; see the module documentation.
    start, end:
        The first cutoff may not be earlier than ``start`` (default: the first date with a
        full window); schedule dates after ``end`` (default: the last row) are not used.
    min_train:
        Folds with fewer training rows are skipped (their rows get no prediction).
    predict:
        ``predict(model, X_test)``; default ``model.predict(X_test)``. Return 1-D for a
        Series, 2-D (e.g. ``predict_proba``) for a DataFrame.
    zoo, save_as, format, save_options:
        With ``save_as`` each fold's model is saved as the next version of that series in
        ``zoo``'s store (``zoo`` default: ``Zoo()``), with its training window and cutoff in
        the manifest; ``latest.json`` ends at the last fold.
    promote_to, gates:
        With ``save_as``, promote the last fold's version (the model for the dates ahead) to
        this registry alias (``"production"``), through ``gates`` (default: the gates set for
        the alias): qlib's rolling retrain-and-switch. A refusal is not an error: the alias
        stays, and :attr:`WalkForwardResult.promotion_error` says why.
    executor:
        Fit the folds in parallel on this :class:`~concurrent.futures.Executor` (``fit``
        must then be picklable for process or Dask executors); predictions and saves happen
        here, in fold order.
    """
    import numpy as np
    import pandas as pd

    if promote_to is not None and save_as is None:
        raise ValueError("promote_to= promotes a saved version: give save_as= too")
    index = _check_index(X)
    labels = _check_labels(y, index)
    known = None
    if label_known is not None:
        known = pd.DatetimeIndex(pd.to_datetime(np.asarray(label_known)))
        if len(known) != len(index):
            raise ValueError(f"label_known has {len(known)} entries for {len(index)} rows")
    if label_horizon < 0 or int(label_horizon) != label_horizon:
        raise ValueError(f"label_horizon must be a whole number of bars >= 0, got {label_horizon}")
    if window not in ("expanding", "rolling"):
        raise ValueError(f"window must be 'expanding' or 'rolling', not {window!r}")
    if window == "rolling" and length is None:
        raise ValueError("a rolling window needs length= (a time span like '365D' or a number "
                         "of bars)")
    stamps = index.unique()  # sorted, distinct timestamps: the bars
    span = None
    if window == "rolling" and not isinstance(length, int):
        span = pd.tseries.frequencies.to_offset(length) if isinstance(length, str) else length
    last = pd.Timestamp(end) if end is not None else index[-1]
    if start is None:
        bars = (length if isinstance(length, int) and window == "rolling" else 0) + label_horizon
        first = stamps[min(bars, len(stamps) - 1)]
        if span is not None:
            first = max(first, index[0] + span)
        start = first
    cutoffs = _cutoffs(every, pd.Timestamp(start), last, index)

    folds: list[Fold] = []
    slices = []
    for number, cutoff in enumerate(cutoffs):
        following = cutoffs[number + 1] if number + 1 < len(cutoffs) else None
        test = (index >= cutoff) & (index <= last)
        if following is not None:
            test &= index < following
        if not test.any():
            continue
        train = np.asarray(index < cutoff)
        if label_horizon:
            position = stamps.searchsorted(cutoff, side="left") - label_horizon
            train &= np.asarray(index < stamps[position]) if position >= 0 else False
        if known is not None:
            train &= np.asarray(known < cutoff)
        if window == "rolling":
            if isinstance(length, int):
                used = index[train].unique()
                if len(used) > length:
                    train &= np.asarray(index >= used[-length])
            else:
                train &= np.asarray(index >= cutoff - span)
        if train.sum() < max(1, min_train):
            continue
        train_index = index[train]
        test_index = index[test]
        folds.append(Fold(len(folds) + 1, cutoff, train_index[0], train_index[-1],
                          int(train.sum()), test_index[0], test_index[-1], int(test.sum()),
                          train_index=train_index))
        slices.append((train, test))
    if not folds:
        raise ValueError(f"no fold has both training and test rows between {start} and {last}; "
                         "check every=, start=, length= and min_train=")

    def take(data: Any, mask: Any) -> Any:
        if data is None:
            return None
        return data[mask] if not hasattr(data, "iloc") else data.iloc[np.flatnonzero(mask)]

    jobs = [(fit, take(X, tr), take(labels, tr)) for tr, _ in slices]
    fitted: list[tuple[Any, float]] = [None] * len(jobs)  # type: ignore[list-item]
    with ProgressReporter(progress, len(jobs), "walk-forward") as report:
        if executor is None:
            for i, job in enumerate(jobs):
                fitted[i] = _fit_fold(*job)
                report(folds[i])
        else:
            futures = [executor.submit(_fit_fold, *job) for job in jobs]
            for i, future in enumerate(futures):
                fitted[i] = future.result()
                report(folds[i])

    if save_as is not None and zoo is None:
        from alphazoo.host import Zoo

        zoo = Zoo()
    base = (next_version(zoo.store, save_as) - 1
            if save_as is not None and zoo is not None else 0)
    pieces, models = [], []
    for fold, (train, test), (model, seconds) in zip(folds, slices, fitted):
        fold.seconds = seconds
        X_test = take(X, test)
        out = predict(model, X_test) if predict is not None else model.predict(X_test)
        out = np.asarray(out)
        frame = pd.Series(out, index=X_test.index) if out.ndim == 1 else pd.DataFrame(
            out, index=X_test.index)
        pieces.append(frame)
        if save_as is not None and zoo is not None:
            fold.version = base + fold.number
            fold.key, _ = save_version(
                zoo, model, save_as, version=fold.version, format=format,
                window={"start": str(fold.train_start), "end": str(fold.train_end),
                        "cutoff": str(fold.cutoff)},
                metadata={"walk_forward": {"fold": fold.number, "window": window,
                                           "label_horizon": label_horizon,
                                           "train_rows": fold.train_rows,
                                           "test_start": str(fold.test_start),
                                           "test_end": str(fold.test_end)}},
                update_latest=False, sample=_sample(take(X, train)),
                **(save_options or {}))
        models.append(model if keep_models else None)
    if save_as is not None and zoo is not None:
        write_latest(zoo.store, save_as, folds[-1].version or 0,
                     window={"start": str(folds[-1].train_start),
                             "end": str(folds[-1].train_end)})
    result = WalkForwardResult(pd.concat(pieces), folds, models)
    if promote_to is not None and zoo is not None and save_as is not None:
        result.promotion, result.promotion_error = promote_saved(
            zoo.registry, save_as, folds[-1].version or 0, promote_to, gates=gates,
            note=f"walk-forward fold {folds[-1].number}, cutoff {folds[-1].cutoff}")
    return result


def _fit_fold(fit: Callable[[Any, Any], Any], X: Any, y: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    model = fit(X, y)
    if model is None:
        raise ValueError(f"the walk-forward fit function {fit!r} returned None, not a model")
    return model, time.perf_counter() - started


def _check_index(X: Any) -> Any:
    import pandas as pd

    index = getattr(X, "index", None)
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError("walk_forward needs X as a pandas DataFrame or Series with a "
                        f"DatetimeIndex, got {type(X).__name__} indexed by "
                        f"{type(index).__name__}")
    if not index.is_monotonic_increasing:
        raise ValueError("X's DatetimeIndex must be sorted oldest first (X.sort_index())")
    if index.tz is not None:
        raise ValueError("X's DatetimeIndex must be naive (index.tz_localize(None))")
    return index


def _check_labels(y: Any, index: Any) -> Any:
    if y is None:
        return None
    if hasattr(y, "index") and not callable(y.index):
        if not y.index.equals(index):
            raise ValueError("y's index differs from X's; align them (y.reindex(X.index))")
        return y
    if len(y) != len(index):
        raise ValueError(f"y has {len(y)} rows, X has {len(index)}")
    return y


def _cutoffs(every: Any, start: Any, end: Any, index: Any) -> list[Any]:
    import pandas as pd

    if hasattr(every, "dates") and hasattr(every, "bind"):  # a DateRule
        rule = every.bind(start.to_pydatetime())
        stamps = [pd.Timestamp(day) for day in rule.dates(start.date(), end.date())]
    elif isinstance(every, (list, tuple)) or hasattr(every, "__array__"):
        stamps = sorted(pd.Timestamp(t) for t in every)
    else:
        stamps = list(pd.date_range(start.normalize(), end, freq=every))
    return [t for t in stamps if start <= t <= end]


def _sample(X: Any) -> Any:
    import numpy as np

    try:
        rows = np.asarray(X.iloc[:256] if hasattr(X, "iloc") else X[:256])
    except Exception:
        return None
    return rows if rows.dtype.kind in "fiub" else None
