"""Compare zoo models in one walk-forward backtest over a panel of daily bars.

:func:`compare_models` is the engine behind ``alphazoo demo`` and
``benchmarks/bench_walkforward.py``. For each model:

1. features (the LEAN set) and next-day returns of every symbol in the panel;
2. on every ``every`` date (weekly by default) the model is retrained on the last ``window``
   dates of rows whose label was known before that date
   (:func:`alphazoo.training.walk_forward` with ``label_horizon=1``);
3. each version is saved to the store (ONNX by default: ``<prefix>/<model>/v000001`` ...),
   loaded back, and the loaded model scores the rows up to the next retrain;
4. the scores drive a top-k-with-dropout portfolio with trading costs
   (:class:`~alphazoo.contrib.strategy.TopkDropout`,
   :func:`~alphazoo.contrib.evaluation.backtest_weights`), next to an equal-weight benchmark
   of the symbols listed that day, both from the first date the models scored;
5. IC and rank IC of the scores, annualised return, information ratio and max drawdown of the
   portfolio, training time, save+load time and single-row latency of the served model.

Every model sees the same rows (those with a full ALSTM window), so the figures compare.

Portfolios earn close-to-next-close returns on the panel's calendar. A symbol's day missing
inside its listed span (AAPL has one in 2017) carries its last close, so the return after it
spans the gap and no day counts twice. The strategy decides on every scored row, knowing
nothing of the future: a position still held on a symbol's last bar (a delisting: YHOO ends
in June 2017) exits at that close and earns nothing after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from alphazoo.host import Zoo

__all__ = ["ModelResult", "Comparison", "compare_models", "default_models", "model_factories",
           "STEP_LEN"]

#: ``progress(done, total, message)``.
Progress = Callable[[int, int, str], None]
#: A model factory: ``factory(n_features) -> Model``.
Factory = Callable[[int], Any]

STEP_LEN = 10  # ALSTM's window here (qlib uses 20; 10 halves a weekly retrain)


@dataclass
class ModelResult:
    """One model's walk-forward: signal quality, portfolio outcome and cost."""

    model: str
    ic: float
    rank_ic: float
    annualised_return: float
    max_drawdown: float
    #: Against the equal-weight benchmark's daily net returns (NaN for the benchmark itself).
    information_ratio: float
    #: Mean over std of daily net returns, annualised (risk-free rate 0).
    sharpe_ratio: float
    turnover: float
    retrains: int
    train_seconds: float
    save_load_seconds: float
    predict_latency_us: float
    #: Largest |served score - trained model's score| over every predicted row.
    served_vs_trained: float
    versions: list[str] = field(default_factory=list)
    equity: pd.Series = field(default=None, repr=False)


@dataclass
class Comparison:
    """:func:`compare_models`' answer: one row per model, and the benchmark."""

    symbols: list[str]
    start: str
    end: str
    rows: int
    models: list[ModelResult]
    benchmark: ModelResult
    seconds: float


def _alstm(d_feat: int) -> Any:
    from .alstm import ALSTM

    # Small and quick: a weekly retrain on two cores must take about a second.
    return ALSTM(d_feat=d_feat, hidden_size=32, num_layers=2, step_len=STEP_LEN, n_epochs=15,
                 early_stop=4, batch_size=256, lr=2e-3, seed=0)


def default_models() -> dict[str, Factory]:
    """Zoo model name -> ``factory(n_features)``: configurations sized for weekly retrains."""
    from .gbdt import LightGBMGBDT
    from .sklearn_models import SklearnModel

    return {
        "random_forest": lambda d: SklearnModel("random_forest", n_estimators=40, max_depth=4,
                                                min_samples_leaf=20, n_jobs=1),
        # A walk-forward fold has no valid segment: its latest fifth stops the boosting.
        "gbdt": lambda d: LightGBMGBDT(loss="binary", num_boost_round=120,
                                       early_stopping_rounds=15, valid_fraction=0.2,
                                       learning_rate=0.05, max_depth=3, num_leaves=7,
                                       num_threads=1),
        "alstm": _alstm,
    }


def compare_models(
    panel: pd.DataFrame,
    zoo: Zoo,
    *,
    models: Sequence[str] | Mapping[str, Factory] = ("random_forest", "gbdt", "alstm"),
    start: Any,
    end: Any = None,
    every: Any = "W-MON",
    window: int = 252,
    topk: int = 2,
    n_drop: int = 1,
    cost: float = 0.0015,
    format: str = "onnx",
    prefix: str = "walk-forward",
    progress: Progress = lambda done, total, message: None,
) -> Comparison:
    """Walk-forward every model over ``panel`` from ``start``; see the module documentation.

    ``models``: names from :func:`default_models`, or ``{name: factory(n_features)}``;
    a factory's model is sequential (reads windows) when its class says so. ``every``: the
    retrain schedule, anything :func:`alphazoo.training.walk_forward` takes (a pandas
    frequency, a ``DateRule``, a list of dates). ``window``: training dates per retrain.
    ``format``: how versions are stored and served.
    """
    from .dataset import Dataset
    from .evaluation import backtest_weights, risk_metrics, signal_metrics
    from .features import compute_features, compute_labels, to_panel
    from .strategy import TopkDropout

    started = time.perf_counter()
    factories = model_factories(models)
    panel = to_panel(panel)
    labels = compute_labels(panel)["label_return"]
    features = compute_features(panel)
    forward, listed = _forward_returns(panel)
    if end is not None:  # rows after `end` are never scored, so never built
        keep = features.index.get_level_values(0) <= pd.Timestamp(end)
        features, labels = features[keep], labels[keep]
    windows, _, index = Dataset(features, labels).prepare(None, sequence=STEP_LEN, labels=False)
    rows = np.ascontiguousarray(windows[:, -1, :])  # a window's last row is the row itself
    realised = labels.reindex(index)
    # The dates a portfolio can be measured on: a row to decide on, and a next close to earn
    # over (the data's last date has none).
    decided = pd.DatetimeIndex(index.get_level_values(0).unique())
    returns = forward.reindex(decided).dropna(how="all")
    # walk_forward schedules on dates; the "row" column says which row each one is.
    positions = pd.DataFrame({"row": np.arange(len(index))},
                             index=pd.DatetimeIndex(index.get_level_values(0)))
    test_dates = positions.index[positions.index >= pd.Timestamp(start)].unique()
    if len(test_dates) == 0:
        raise ValueError(f"no rows on or after start={start!r}; the panel ends "
                         f"{positions.index[-1].date()}")
    per_model = _schedule_length(every, test_dates) + 1
    total = per_model * len(factories)

    results, nets = [], []
    first_scored = test_dates[-1]
    for number, (name, factory) in enumerate(factories.items()):
        sequential = bool(getattr(factory(rows.shape[1]), "sequential", False))
        base = number * per_model

        def model_progress(done: int, message: str, base: int = base) -> None:
            progress(min(base + done, total), total, message)

        run = _walk_forward_one(
            zoo, f"{prefix}/{name}", factory, windows if sequential else rows, positions,
            realised, every=every, window=window, start=start, format=format,
            progress=model_progress)
        progress(base + per_model, total, f"{name}: {len(run['keys'])} versions saved")
        scores = pd.Series(run["scores"], index=index)
        scores = scores[np.isfinite(scores.to_numpy())]
        # IC over the scored rows whose next-day return is known (signal_metrics pairs them).
        signal = signal_metrics(scores, realised)
        # The strategy sees every scored row: leaving out those without a next return would
        # tell it which symbol is about to be delisted.
        weights = TopkDropout(topk=topk, n_drop=n_drop).generate_weights(scores)
        weights = weights.loc[weights.index.isin(returns.index)]
        # NaN: a held symbol past its last bar, out at its last close (cash).
        outcome = backtest_weights(weights, returns.reindex(weights.index).fillna(0.0),
                                   cost=cost)
        first_scored = min(first_scored, outcome.weights.index[0])
        risk = risk_metrics(outcome.net)
        inputs = windows if sequential else rows
        results.append(ModelResult(
            model=name, ic=signal["ic"], rank_ic=signal["rank_ic"],
            annualised_return=risk["annualised_return"], max_drawdown=risk["max_drawdown"],
            information_ratio=float("nan"), sharpe_ratio=risk["information_ratio"],
            turnover=float(outcome.turnover.mean()), retrains=len(run["keys"]),
            train_seconds=run["train"], save_load_seconds=run["save_load"],
            predict_latency_us=_latency_us(run["served"], inputs[-1:]),
            served_vs_trained=run["parity"], versions=run["keys"], equity=outcome.equity,
        ))
        nets.append(outcome.net)

    # Equal weight across the symbols listed that day, over the dates the models traded (a
    # start between two retrains leaves days no model scored).
    held = returns.loc[returns.index >= first_scored]
    trading = listed.reindex(index=held.index, columns=held.columns, fill_value=False)
    trading = trading.astype(float)
    outcome = backtest_weights(trading.div(trading.sum(axis=1), axis=0), held.fillna(0.0),
                               cost=cost)
    risk = risk_metrics(outcome.net)
    benchmark = ModelResult(
        model="equal weight", ic=float("nan"), rank_ic=float("nan"),
        annualised_return=risk["annualised_return"], max_drawdown=risk["max_drawdown"],
        information_ratio=float("nan"), sharpe_ratio=risk["information_ratio"],
        turnover=float(outcome.turnover.mean()), retrains=0, train_seconds=0.0,
        save_load_seconds=0.0, predict_latency_us=float("nan"),
        served_vs_trained=0.0, equity=outcome.equity,
    )
    for result, net in zip(results, nets):
        versus = risk_metrics(net, benchmark=outcome.net.reindex(net.index).fillna(0.0))
        result.information_ratio = versus["information_ratio"]
    return Comparison(
        symbols=[str(s) for s in returns.columns], start=str(first_scored.date()),
        end=str(test_dates[-1].date()), rows=int((positions.index >= first_scored).sum()),
        models=results, benchmark=benchmark, seconds=time.perf_counter() - started,
    )


def _schedule_length(every: Any, dates: pd.DatetimeIndex) -> int:
    """About how many retrains ``every`` makes over ``dates`` (the progress bar's total)."""
    if isinstance(every, (list, tuple)) or hasattr(every, "__array__"):
        return len(every)
    try:
        return len(pd.date_range(dates[0], dates[-1], freq=every))
    except (TypeError, ValueError):  # a DateRule: at most one retrain a day
        return len(dates)


def _forward_returns(panel: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Close-to-next-close returns (date x symbol) on the panel's calendar, and which symbols
    were listed each date (from their first bar to their last).

    A date missing inside a symbol's listed span carries its last close: the return of the
    bar before the gap is 0 and the one after spans the gap, as a holder would see it. A
    symbol's last bar has no next close: NaN.
    """
    close = panel["close"].unstack("instrument")
    carried = close.ffill()
    listed = carried.notna() & close.bfill().notna()
    prices = carried.where(listed)
    return prices.shift(-1) / prices - 1.0, listed


def model_factories(models: Sequence[str] | Mapping[str, Factory]) -> dict[str, Factory]:
    """``{name: factory}`` for ``models``: names from :func:`default_models`, or a mapping
    returned as is. Raises ValueError naming the choices for an unknown name or none."""
    if isinstance(models, Mapping):
        return dict(models)
    known = default_models()
    unknown = [name for name in models if name not in known]
    if unknown or not models:
        raise ValueError(f"models: choose from {', '.join(known)} (or pass {{name: factory}}); "
                         f"got {', '.join(unknown) or 'none'}")
    return {name: known[name] for name in models}


def _walk_forward_one(zoo: Zoo, series: str, factory: Factory, inputs: np.ndarray,
                      positions: pd.DataFrame, realised: pd.Series, *, every: Any, window: int,
                      start: Any, format: str,
                      progress: Callable[[int, str], None]) -> dict[str, Any]:
    """Retrain -> save the version -> load it -> score the rows up to the next retrain."""
    from alphazoo.training import save_version, walk_forward

    run: dict[str, Any] = {"train": 0.0, "save_load": 0.0, "keys": [], "parity": 0.0,
                           "scores": np.full(len(inputs), np.nan), "trained": {}}

    def fit(rows: pd.DataFrame, y: pd.Series) -> Any:
        labelled = np.isfinite(y.to_numpy())  # a delisted symbol's last bar has no label
        model = factory(inputs.shape[-1])
        began = time.perf_counter()
        model.fit(inputs[rows["row"].to_numpy()[labelled]], y.to_numpy()[labelled])
        trained = time.perf_counter()
        dates = rows.index[labelled]
        key, _ = save_version(zoo, model, series, format=format,
                              window={"start": str(dates[0].date()), "end": str(dates[-1].date())})
        served = zoo.load(key)
        run["train"] += trained - began
        run["save_load"] += time.perf_counter() - trained
        run["keys"].append(key)
        # walk_forward fits every fold before it predicts any: pair each served model with
        # the one it was trained as, for the parity check in predict().
        run["trained"][id(served)] = model
        run["served"] = served
        progress(len(run["keys"]), f"{series}: version {len(run['keys'])} saved")
        return served

    def predict(served: Any, rows: pd.DataFrame) -> np.ndarray:
        at = rows["row"].to_numpy()
        scores = served.predict(inputs[at])
        run["scores"][at] = scores
        # What the store serves must score what was trained (float32 rounding aside).
        trained = run["trained"].pop(id(served)).predict(inputs[at])
        run["parity"] = max(run["parity"], float(np.max(np.abs(trained - scores), initial=0)))
        return scores

    walk_forward(positions, realised.set_axis(positions.index), fit, every=every,
                 window="rolling", length=window, label_horizon=1, start=start,
                 predict=predict, keep_models=False)
    return run


def _latency_us(served: Any, row: np.ndarray, repeat: int = 300) -> float:
    """Median wall time of one single-row prediction through the served model."""
    served.predict(row)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        served.predict(row)
        times.append(time.perf_counter() - began)
    return float(np.median(times) * 1e6)
