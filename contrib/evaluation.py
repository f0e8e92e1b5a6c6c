"""Evaluate signals and strategies the way qlib reports them: IC, rank IC, and risk metrics of
a weighted portfolio after trading costs.

Signal metrics compare predictions with the returns that followed, both pandas Series on the
``(datetime, instrument)`` MultiIndex (a one-column DataFrame is accepted too, and so is
the ``(instrument, datetime)`` level order):

* :func:`ic` -- per-date cross-sectional Pearson correlation across instruments;
* :func:`rank_ic` -- the same on ranks (Spearman; ties get their average rank);
* :func:`signal_metrics` -- ``ic``/``rank_ic`` (the mean of those series) and ``icir``/
  ``rank_icir`` (mean / sample standard deviation of those series).

For one instrument there is no cross-section: use ``by="month"`` (one time-series correlation
per calendar month) or ``by="all"`` (one pooled correlation).

Strategy metrics: :func:`backtest_weights` turns target weights into daily gross and net
returns, turnover, costs and an equity curve; :func:`risk_metrics` annualises them (alphazoo's
definitions by default, qlib's ``risk_analysis`` with ``mode="sum"``/``"product"``/``"qlib"``);
:func:`long_short_return` is qlib's ``calc_long_short_return``.

>>> from alphazoo.contrib.features import load_panel, compute_labels
>>> realised = compute_labels(load_panel())["label_return"]
>>> signal_metrics(realised, realised)["rank_ic"]
1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from alphazoo.errors import warn_renamed

__all__ = [
    "WeightsBacktest",
    "backtest_weights",
    "ic",
    "long_short_return",
    "rank_ic",
    "risk_metrics",
    "signal_metrics",
]

By = Literal["date", "month", "all"]
RiskMode = Literal["alphazoo", "sum", "product", "qlib"]

DEFAULT_COST = 0.0015
"""Default trading cost: 0.15% of the value traded, on buys and sells alike (qlib's default
``close_cost``; a conservative figure for liquid US equities including spread and slippage)."""


# ------------------------------------------------------------------------------ signal metrics

def ic(pred: pd.Series | pd.DataFrame, realised: pd.Series | pd.DataFrame, by: By = "date",
       min_count: int = 2) -> pd.Series:
    """Information coefficient: Pearson correlation of ``pred`` and ``realised`` per group.

    ``by="date"`` (default) correlates across the instruments of each date (qlib's IC) and
    returns a Series indexed by ``datetime``; ``by="month"`` pools every (date, instrument)
    row of a calendar month -- with one instrument, a correlation over time -- indexed by the
    month's first day (``month``); ``by="all"`` is one correlation over all rows, indexed
    ``["all"]``.

    Only rows where both values exist count. Groups with fewer than ``min_count`` such rows,
    or where either side is constant (all its values exactly equal: correlation undefined),
    are dropped. Adding a constant to ``pred`` or scaling it by a positive factor leaves the
    result unchanged up to float64 rounding (the spread, not the level, sets the precision).
    """
    return _grouped_correlation(pred, realised, by, min_count, rank=False)


def rank_ic(pred: pd.Series | pd.DataFrame, realised: pd.Series | pd.DataFrame, by: By = "date",
            min_count: int = 2) -> pd.Series:
    """Rank IC: Spearman correlation per group (Pearson on ranks computed within each group,
    ties averaged); groups as in :func:`ic`."""
    return _grouped_correlation(pred, realised, by, min_count, rank=True)


def signal_metrics(pred: pd.Series | pd.DataFrame, realised: pd.Series | pd.DataFrame,
                   by: By = "date") -> dict[str, float]:
    """``{"ic", "icir", "rank_ic", "rank_icir"}`` of ``pred`` against ``realised``.

    ``ic = mean(IC_g)`` and ``icir = mean(IC_g) / std(IC_g)`` over the groups ``g`` of
    :func:`ic` (sample std, ddof=1; not annualised, as qlib reports it); the same for rank IC.
    A ratio is NaN when it is undefined: fewer than two groups, or no dispersion at all.
    """
    out: dict[str, float] = {}
    for name, series in (("ic", ic(pred, realised, by)), ("rank_ic", rank_ic(pred, realised, by))):
        out[name] = float(series.mean()) if len(series) else math.nan
        out[f"{name}ir"] = _ratio(series)
    return out


def _ratio(series: pd.Series) -> float:
    std = float(series.std(ddof=1)) if len(series) > 1 else math.nan
    if not std > 1e-12:  # also catches NaN
        return math.nan
    return float(series.mean()) / std


def _as_signal(values: Any, name: str) -> pd.Series:
    if isinstance(values, pd.DataFrame):
        if values.shape[1] != 1:
            raise ValueError(f"{name}: expected a Series or a one-column DataFrame, "
                             f"got columns {list(values.columns)}")
        values = values.iloc[:, 0]
    if not isinstance(values, pd.Series):
        raise TypeError(f"{name}: expected a pandas Series, got {type(values).__name__}")
    index = values.index
    if not (isinstance(index, pd.MultiIndex) and index.nlevels == 2
            and set(index.names) == {"datetime", "instrument"}):
        raise ValueError(f"{name}: needs the (datetime, instrument) MultiIndex, got index "
                         f"names {list(index.names)}")
    if list(index.names) != ["datetime", "instrument"]:
        # Aligning with the other side goes by level position, so the order must agree.
        values = values.reorder_levels(["datetime", "instrument"]).sort_index()
    return values.astype(float).rename(name)


def _grouped_correlation(pred: Any, realised: Any, by: By, min_count: int,
                         rank: bool) -> pd.Series:
    pair = pd.concat([_as_signal(pred, "pred"), _as_signal(realised, "realised")],
                     axis=1, join="inner").dropna()
    dates = pd.DatetimeIndex(pair.index.get_level_values("datetime"))
    if by == "date":
        key, name = dates, "datetime"
    elif by == "month":
        key, name = dates.to_period("M").to_timestamp(), "month"
    elif by == "all":
        key, name = pd.Index(["all"] * len(pair)), None
    else:
        raise ValueError(f"by must be 'date', 'month' or 'all', got {by!r}")
    key = pd.Index(key, name="group")
    x, y = pair["pred"].set_axis(key), pair["realised"].set_axis(key)
    if rank:
        x, y = x.groupby(level=0).rank(), y.groupby(level=0).rank()
    # A correlation is undefined where either side is constant. Testing that on the centred
    # sums (a variance below some fraction of the raw second moment) made the answer depend on
    # the scores' level: 100 + 1e-6 * r looked constant on 65 of 748 dates. Equal values are
    # equal whatever their level or scale, so a group is constant only when max == min.
    varies = (x.groupby(level=0).max() > x.groupby(level=0).min()) & \
             (y.groupby(level=0).max() > y.groupby(level=0).min())
    # Shifting each group by its first value first is exact for values of one magnitude
    # (Sterbenz), so the centred values keep their digits when the level dwarfs the spread.
    x, y = x - x.groupby(level=0).transform("first"), y - y.groupby(level=0).transform("first")
    dx = x - x.groupby(level=0).transform("mean")
    dy = y - y.groupby(level=0).transform("mean")
    sxx = (dx * dx).groupby(level=0).sum()
    syy = (dy * dy).groupby(level=0).sum()
    sxy = (dx * dy).groupby(level=0).sum()
    count = x.groupby(level=0).size()
    corr = (sxy / np.sqrt(sxx * syy)).clip(-1.0, 1.0)
    corr = corr[(count >= min_count) & varies & (sxx > 0) & (syy > 0)]  # (underflow)
    corr.index.name = name
    return corr.rename("rank_ic" if rank else "ic")


# ----------------------------------------------------------------------------------- backtest

@dataclass(frozen=True)
class WeightsBacktest:
    """Outcome of :func:`backtest_weights`: a weighted portfolio's returns (formerly
    ``BacktestResult``; a QC-style algorithm's run is
    :class:`~alphazoo.contrib.algorithm.AlgorithmBacktest`). All Series except ``equity`` are
    indexed by the decision date ``t`` (return earned over ``t -> t+1``).

    ``weights``: the weights actually evaluated (NaN -> 0); ``gross``: ``sum_i w[t,i] *
    r[t,i]``; ``turnover``: ``sum_i |w[t,i] - w[t-1,i]|`` (``w`` before the first date is all
    cash, so entering counts); ``costs``: the cost charged at ``t``; ``net``: ``gross - costs``;
    ``equity``: capital at the close of each date, 1.0 at the first decision date and
    ``prod(1 + net)`` at the date each holding period ends.
    """

    weights: pd.DataFrame
    gross: pd.Series
    net: pd.Series
    turnover: pd.Series
    costs: pd.Series
    equity: pd.Series

    def metrics(self, benchmark: pd.Series | None = None, periods: int | None = None,
                mode: RiskMode = "alphazoo") -> dict[str, float]:
        """:func:`risk_metrics` of the net returns (``mode`` as there), with the mean daily
        turnover."""
        return risk_metrics(self.net, benchmark=benchmark, periods=periods,
                            turnover=self.turnover, mode=mode)


def backtest_weights(weights: pd.DataFrame | pd.Series, returns: pd.DataFrame | pd.Series,
                     cost: float | tuple[float, float] = DEFAULT_COST) -> WeightsBacktest:
    """Daily returns of a portfolio holding ``weights`` over ``returns``, net of trading costs.

    ``weights`` is a date x instrument frame decided at each date's close and held to the next
    date (NaN = 0; the rest of the capital is cash earning 0; negative weights are shorts).
    A rebalancing less often than daily must be forward-filled to every date first; drift of
    weights between rebalances is not modelled. ``returns`` is the date x instrument frame of
    ``label_return`` (``close[t+1] / close[t] - 1``); a Series or the
    :func:`~alphazoo.contrib.features.compute_labels` frame on the ``(datetime, instrument)``
    index is unstacked (``label_return`` column).

    Cost: ``cost`` per unit of value traded, so a date's cost is ``cost * turnover`` -- or a
    pair ``(open_cost, close_cost)`` charging weight increases and decreases separately, as in
    qlib (e.g. ``(0.0005, 0.0015)``). Costs are subtracted from that date's return. Positions
    still open at the end are not liquidated.

    Dates evaluated: the weights' dates that have at least one realised return (a final bar
    without a next-day return is skipped). A date missing from ``returns``, an instrument
    missing from it, or a missing return for a non-zero weight raises ValueError.
    """
    buy_rate, sell_rate = (cost if isinstance(cost, (tuple, list)) else (cost, cost))
    if min(buy_rate, sell_rate) < 0:
        raise ValueError(f"cost must be >= 0, got {cost!r}")
    weights = _wide(weights, "weights").fillna(0.0)
    returns = _wide(returns, "returns")
    if not np.isfinite(weights.to_numpy()).all():
        raise ValueError("weights: contain infinite values")
    held = weights.columns[(weights != 0).any()]
    unknown = held.difference(returns.columns)
    if len(unknown):
        raise ValueError(f"returns: no column for held instrument(s) {list(unknown)}")
    missing_dates = weights.index.difference(returns.index)
    if len(missing_dates):
        raise ValueError(f"returns: no row for weight date(s) {list(missing_dates[:3])}"
                         f"{' ...' if len(missing_dates) > 3 else ''}")
    rets = returns.reindex(index=weights.index, columns=weights.columns)
    evaluated = rets.notna().any(axis=1)
    weights, rets = weights.loc[evaluated], rets.loc[evaluated]
    if weights.empty:
        raise ValueError("no weight date has a realised return to evaluate")
    gap = (weights != 0) & rets.isna()
    if gap.to_numpy().any():
        date, name = gap.stack().loc[lambda s: s].index[0]
        raise ValueError(f"returns: missing return of held instrument {name!r} on {date!r}")

    gross = (weights * rets.fillna(0.0)).sum(axis=1)
    change = weights.diff()
    change.iloc[0] = weights.iloc[0]  # the first date enters from cash
    turnover = change.abs().sum(axis=1)
    costs = buy_rate * change.clip(lower=0.0).sum(axis=1) + \
        sell_rate * (-change).clip(lower=0.0).sum(axis=1)
    net = gross - costs
    return WeightsBacktest(weights=weights, gross=gross.rename("gross"), net=net.rename("net"),
                          turnover=turnover.rename("turnover"), costs=costs.rename("costs"),
                          equity=_equity(net, returns.index))


def _equity(net: pd.Series, calendar: pd.Index) -> pd.Series:
    # The period starting at t ends on the next date of the returns' calendar; a caller who cut
    # the calendar at the last decision date gets the following business day instead.
    calendar = pd.DatetimeIndex(calendar)
    after = calendar.searchsorted(net.index, side="right")
    ends = [calendar[i] if i < len(calendar) else net.index[-1] + pd.offsets.BDay(1)
            for i in after]
    values = np.concatenate([[1.0], np.cumprod(1.0 + net.to_numpy())])
    index = pd.DatetimeIndex([net.index[0], *ends], name="datetime")
    return pd.Series(values, index=index, name="equity")


def _wide(values: Any, name: str) -> pd.DataFrame:
    if isinstance(values, pd.DataFrame) and isinstance(values.index, pd.MultiIndex):
        if "label_return" not in values.columns:
            if values.shape[1] != 1:
                raise ValueError(f"{name}: a (datetime, instrument) frame needs a "
                                 f"'label_return' column or exactly one column")
            values = values.iloc[:, 0]
        else:
            values = values["label_return"]
    if isinstance(values, pd.Series):
        if not isinstance(values.index, pd.MultiIndex):
            raise ValueError(f"{name}: a Series needs the (datetime, instrument) MultiIndex")
        values = values.unstack(level="instrument")
    if not isinstance(values, pd.DataFrame):
        raise TypeError(f"{name}: expected a DataFrame, got {type(values).__name__}")
    if not isinstance(values.index, pd.DatetimeIndex):
        raise ValueError(f"{name}: rows must be indexed by date (DatetimeIndex), got "
                         f"{type(values.index).__name__}")
    if values.index.has_duplicates or not values.index.is_monotonic_increasing:
        raise ValueError(f"{name}: dates must be unique and ascending")
    try:
        return values.astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: values must be numeric") from None


# ------------------------------------------------------------------------------- risk metrics

_QLIB_DAILY_PERIODS = 238  # qlib's risk_analysis scaler for freq="day" (China's A-share year)


def risk_metrics(returns: pd.Series, benchmark: pd.Series | None = None,
                 periods: int | None = None, turnover: pd.Series | float | None = None, *,
                 mode: RiskMode = "alphazoo",
                 periods_per_year: int | None = None) -> dict[str, float]:
    """Annualised risk and return of a series of periodic (daily) simple returns ``r``.

    ``periods`` (or its alias ``periods_per_year``) is the number of periods in a year: 252
    by default, 238 under ``mode="qlib"``. With ``n = len(r)``, ``E_t = prod_{s<=t} (1 + r_s)``
    and ``N = periods``, the default ``mode="alphazoo"`` reports:

    * ``total_return = E_n - 1``
    * ``annualised_return = E_n ** (N / n) - 1`` (geometric; -1 if wiped out)
    * ``annualised_volatility = std(r, ddof=1) * sqrt(N)``
    * ``information_ratio = mean(r - b) / std(r - b, ddof=1) * sqrt(N)``, ``b`` the
      ``benchmark`` returns on the same dates (0 without one: then it is the Sharpe ratio at a
      zero risk-free rate); NaN if the excess has no dispersion
    * ``max_drawdown = min_t (E_t / max_{s<=t} E_s - 1)`` with ``E_0 = 1``, a number <= 0
      (the starting capital counts as a peak, so a first-day loss is a drawdown)
    * ``turnover``: the mean of ``turnover`` (a Series) or the value given, if any.

    ``mode="sum"`` and ``mode="product"`` reproduce qlib's
    ``qlib.contrib.evaluate.risk_analysis(r, N, mode=...)`` exactly (checked against qlib
    0.9.7 to 1e-10 in the tests). Every figure is then one of ``r - b`` when a benchmark is
    given (qlib is handed the excess return), and ``mean`` and ``std`` are added:

    * ``"sum"`` (qlib's default): ``mean = mean(r)``, ``std = std(r, ddof=1)``,
      ``annualised_return = mean * N`` (arithmetic), ``information_ratio = mean / std *
      sqrt(N)``, ``max_drawdown = min_t (C_t - max_{s<=t} C_s)`` on the cumulative *sum*
      ``C_t = sum_{s<=t} r_s`` (a difference of summed returns, not a fraction of capital);
      ``total_return = C_n``.
    * ``"product"``: ``mean = E_n ** (1 / n) - 1`` (geometric), ``std = std(log(1 + r),
      ddof=1)``, ``annualised_return`` as alphazoo's, ``information_ratio = mean / std *
      sqrt(N)`` (a geometric mean over a log-return deviation), ``max_drawdown`` as alphazoo's
      but from the first period's close: the starting capital is *not* a peak, so a loss on
      the first day is no drawdown.
    * ``"qlib"``: ``"sum"`` with qlib's default ``N = 238``, i.e. ``risk_analysis(r)``.

    What differs from the default, so a ported qlib report is not misread: qlib's default
    annualises arithmetically with 238 days where alphazoo compounds with 252; alphazoo's
    ``information_ratio`` is qlib's ``"sum"`` one (with 252), never the ``"product"`` one;
    alphazoo's drawdown starts from the initial capital; and ``annualised_volatility`` is
    always ``std * sqrt(N)`` of the mode's ``std``.

    NaN returns raise ValueError: a missing day would silently shorten the compounding.
    """
    if mode not in ("alphazoo", "sum", "product", "qlib"):
        raise ValueError(f"mode must be 'alphazoo', 'sum', 'product' or 'qlib', got {mode!r}")
    if periods is not None and periods_per_year is not None and periods != periods_per_year:
        raise ValueError(f"periods ({periods}) and periods_per_year ({periods_per_year}) "
                         "name the same number; give one")
    n_year = periods_per_year if periods_per_year is not None else periods
    if n_year is None:
        n_year = _QLIB_DAILY_PERIODS if mode == "qlib" else 252
    if mode == "qlib":
        mode = "sum"
    r = pd.Series(returns, dtype=float)
    if r.empty:
        raise ValueError("returns: empty series")
    if r.isna().any():
        raise ValueError(f"returns: NaN at {r.index[r.isna()][0]!r}")
    if n_year <= 0:
        raise ValueError(f"periods must be > 0, got {n_year}")
    excess = r
    if benchmark is not None:
        bench = pd.Series(benchmark, dtype=float).reindex(r.index)
        if bench.isna().any():
            raise ValueError(f"benchmark: no return for {bench.index[bench.isna()][0]!r}")
        excess = r - bench
    if mode == "alphazoo":
        out = _alphazoo_risk(r, excess, n_year)
    else:
        out = _qlib_risk(excess, n_year, mode)
    if turnover is not None:
        out["turnover"] = float(np.mean(turnover))
    return out


def _alphazoo_risk(r: pd.Series, excess: pd.Series, n_year: int) -> dict[str, float]:
    equity = np.cumprod(np.concatenate([[1.0], 1.0 + r.to_numpy()]))
    final = float(equity[-1])
    drawdown = equity / np.maximum.accumulate(equity) - 1.0
    return {
        "total_return": final - 1.0,
        "annualised_return": final ** (n_year / len(r)) - 1.0 if final > 0 else -1.0,
        "annualised_volatility": float(r.std(ddof=1)) * math.sqrt(n_year)
        if len(r) > 1 else math.nan,
        "information_ratio": _ratio(excess) * math.sqrt(n_year),
        "max_drawdown": float(drawdown.min()),
    }


def _qlib_risk(r: pd.Series, n_year: int, mode: str) -> dict[str, float]:
    # The same pandas operations, in the same order, as qlib's risk_analysis: the results are
    # qlib's to the last bits, not just to a tolerance.
    if mode == "sum":
        mean, std = float(r.mean()), float(r.std(ddof=1))
        annualised = mean * n_year
        curve = r.cumsum()
        drawdown = float((curve - curve.cummax()).min())
        total = float(curve.iloc[-1])
    else:
        curve = (1 + r).cumprod()
        final = float(curve.iloc[-1])
        mean = final ** (1 / len(r)) - 1
        std = float(np.log(1 + r).std(ddof=1))
        total = final - 1
        annualised = (1 + total) ** (n_year / len(r)) - 1
        drawdown = float((curve / curve.cummax() - 1).min())
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.float64(mean) / np.float64(std) * np.sqrt(n_year))
    return {
        "total_return": total,
        "annualised_return": float(annualised),
        "annualised_volatility": std * math.sqrt(n_year),
        "information_ratio": ratio,
        "max_drawdown": drawdown,
        "mean": float(mean),
        "std": std,
    }


def long_short_return(pred: pd.Series | pd.DataFrame, realised: pd.Series | pd.DataFrame,
                      quantile: float = 0.2, dropna: bool = False
                      ) -> tuple[pd.Series, pd.Series]:
    """qlib's ``calc_long_short_return``: ``(long_short, average)`` per date.

    On each date, the ``int(rows * quantile)`` rows with the highest ``pred`` form the long
    leg and as many with the lowest the short leg (ties broken by row order, as pandas'
    ``nlargest``/``nsmallest`` do); ``long_short = (mean(long labels) - mean(short labels))
    / 2`` -- half the spread, the return of a portfolio half long, half short -- and
    ``average`` is the mean ``realised`` of all the date's rows. ``rows`` counts rows with a
    missing prediction or label unless ``dropna=True`` drops them first, as in qlib; a date
    whose legs come out empty (fewer than ``1 / quantile`` rows) is NaN.

    Inputs as for :func:`ic` (the ``(datetime, instrument)`` index, either order).
    """
    if not 0 < quantile <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5], got {quantile}")
    frame = pd.concat([_as_signal(pred, "pred"), _as_signal(realised, "label")], axis=1)
    if dropna:
        frame = frame.dropna()
    long_leg, short_leg = {}, {}
    for date, rows in frame.groupby(level="datetime"):
        count = int(len(rows) * quantile)
        long_leg[date] = rows.nlargest(count, columns="pred")["label"].mean()
        short_leg[date] = rows.nsmallest(count, columns="pred")["label"].mean()
    index = pd.DatetimeIndex(list(long_leg), name="datetime")
    spread = (pd.Series(list(long_leg.values()), index=index, dtype=float)
              - pd.Series(list(short_leg.values()), index=index, dtype=float)) / 2
    average = frame["label"].groupby(level="datetime").mean()
    return spread.rename("long_short"), average.rename("average")


def __getattr__(name: str) -> Any:
    # One release of grace for the old name, which the QC-style algorithm's result also had.
    if name == "BacktestResult":
        warn_renamed("alphazoo.contrib.evaluation.BacktestResult", "WeightsBacktest")
        return WeightsBacktest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
