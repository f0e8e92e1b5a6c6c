"""Signal strategies: turn model scores into holdings and target weights.

:class:`TopkDropout` follows qlib's ``TopkDropoutStrategy``: hold the ``topk`` best-scored
instruments and, at each rebalance, replace at most ``n_drop`` of them with better-scored
newcomers, so turnover stays bounded while the portfolio tracks the signal.

>>> import pandas as pd
>>> strategy = TopkDropout(topk=2, n_drop=1)
>>> strategy.step(pd.Series({"A": 3.0, "B": 2.0, "C": 1.0}), holdings=[])
['A', 'B']
>>> strategy.step(pd.Series({"A": 3.0, "B": 1.0, "C": 2.0}), holdings=["A", "B"])
['A', 'C']
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TopkDropout"]

_SELL_METHODS = ("bottom", "random")
_BUY_METHODS = ("top", "random")

#: ``rebalance=`` of :meth:`TopkDropout.generate_weights`: every n-th date, a collection of
#: dates, or a predicate on a date.
Rebalance = int | Collection[Any] | Callable[[Any], bool]


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class TopkDropout:
    """Top-k with dropout: hold ``topk`` names, swap at most ``n_drop`` per rebalance.

    Each rebalance follows qlib's ``TopkDropoutStrategy.generate_trade_decision``:

    1. ``last``: the current holdings ranked by today's score (best first).
    2. ``today``: the candidates to buy, at most ``n_drop + topk - len(last)`` names not held.
       ``method_buy="top"`` takes the best-scored ones; ``"random"`` draws them at random from
       the names among today's top ``topk`` that are not held.
    3. ``comb``: ``last`` and ``today`` together, ranked by score (holdings first at a tie).
    4. ``sell``: ``method_sell="bottom"`` sells the held names that fall among the worst
       ``n_drop`` of ``comb`` -- so a held name is never sold to buy a worse or an equally
       scored one; ``"random"`` sells ``n_drop`` held names drawn at random.
    5. ``buy``: the first ``len(sell) + topk - len(last)`` names of ``today``.

    A held name is only sold once it has been held for ``hold_thresh`` bars (qlib's
    ``get_stock_count(code) >= hold_thresh``); with the default 1 every name held since a
    previous bar may be sold.

    Where this class differs from qlib, on purpose:

    * Never more than ``topk`` names: when ``hold_thresh`` blocks a sale, the worst-ranked
      buys that would have replaced it are dropped too (qlib still buys them).
    * A scored holding is never sold for nothing: if there are too few candidates to replace
      the names picked for sale, the best-scored of those are kept, so with fewer scored
      instruments than ``topk`` all of them are held (qlib would shrink the portfolio).
    * ``n_drop=0`` means no trading once ``topk`` names are held (qlib's
      ``list(comb)[-0:]`` would select every held name for sale).
    * Missing scores: an instrument with no score (NaN or absent) that day cannot be bought; a
      held instrument without a score ranks below every scored one, so it is the first to be
      sold (within the ``n_drop`` budget) and is not kept back for lack of a replacement.
      Ties in score keep the order of the scores' index, except that a holding is never sold
      for a name with the same score (qlib's order among ties is arbitrary).
    * Tradability checks (qlib's ``only_tradable``) are left out: every scored name trades.

    Parameters
    ----------
    topk:
        Number of names to hold (>= 1).
    n_drop:
        Maximum number of names replaced per rebalance (0 <= n_drop <= topk).
    method_sell:
        ``"bottom"`` (default) or ``"random"``.
    method_buy:
        ``"top"`` (default) or ``"random"``.
    hold_thresh:
        Minimum number of bars a name is held before it may be sold.
    seed:
        Seed of the random generator used by the ``"random"`` methods; the same seed gives
        the same decisions.
    """

    def __init__(
        self,
        topk: int,
        n_drop: int,
        method_sell: str = "bottom",
        method_buy: str = "top",
        hold_thresh: int = 1,
        seed: int | None = None,
    ) -> None:
        self.topk = _check_int("topk", topk, 1)
        self.n_drop = _check_int("n_drop", n_drop, 0)
        if self.n_drop > self.topk:
            raise ValueError(f"n_drop ({n_drop}) must not exceed topk ({topk})")
        if method_sell not in _SELL_METHODS:
            raise ValueError(f"method_sell must be one of {_SELL_METHODS}, got {method_sell!r}")
        if method_buy not in _BUY_METHODS:
            raise ValueError(f"method_buy must be one of {_BUY_METHODS}, got {method_buy!r}")
        self.method_sell = method_sell
        self.method_buy = method_buy
        self.hold_thresh = _check_int("hold_thresh", hold_thresh, 0)
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return (
            f"TopkDropout(topk={self.topk}, n_drop={self.n_drop}, "
            f"method_sell={self.method_sell!r}, method_buy={self.method_buy!r}, "
            f"hold_thresh={self.hold_thresh}, seed={self.seed!r})"
        )

    # -- one rebalance -------------------------------------------------------------------------

    def step(
        self,
        scores: pd.Series,
        holdings: Sequence[Hashable],
        held_days: Mapping[Hashable, int] | None = None,
    ) -> list[Hashable]:
        """The holdings after one rebalance.

        Parameters
        ----------
        scores:
            Today's scores indexed by instrument; higher is better, NaN means no score.
        holdings:
            The names held before this rebalance (at most ``topk``, no duplicates).
        held_days:
            Bars each holding has been held. Needed when ``hold_thresh > 1``; when omitted,
            every holding may be sold.

        Returns
        -------
        list
            The new holdings, best score first (names without a score last).

        The ``"random"`` methods draw from this instance's generator, which advances with
        each call.
        """
        scores = _check_scores(scores)
        holdings = list(holdings)
        if len(set(holdings)) != len(holdings):
            raise ValueError(f"holdings has duplicate names: {holdings}")
        if len(holdings) > self.topk:
            raise ValueError(f"{len(holdings)} holdings given, more than topk={self.topk}")
        if held_days is None:
            if self.hold_thresh > 1:
                raise ValueError(f"hold_thresh={self.hold_thresh} needs held_days")
        else:
            missing = [name for name in holdings if name not in held_days]
            if missing:
                raise ValueError(f"held_days has no entry for holdings {missing}")
        return self._decide(
            scores.index.tolist(), scores.to_numpy(), holdings, held_days, self._rng
        )

    def _decide(
        self,
        names: list[Hashable],
        values: np.ndarray,
        holdings: list[Hashable],
        held_days: Mapping[Hashable, int] | None,
        rng: np.random.Generator,
    ) -> list[Hashable]:
        # numpy and plain lists: this runs once per date, and iterating a pandas index
        # costs more than the whole decision.
        scored = np.flatnonzero(~np.isnan(values))
        order = scored[np.argsort(-values[scored], kind="stable")]
        best = [names[i] for i in order]
        rank = {name: i for i, name in enumerate(best)}

        def ranked(names: list[Hashable]) -> list[Hashable]:
            # Python's sort is stable: unscored names keep their relative order, last.
            return sorted(names, key=lambda name: rank.get(name, math.inf))

        last = ranked(holdings)
        held = set(last)
        room = self.topk - len(last)
        wanted = self.n_drop + room

        if self.method_buy == "top":
            today = list(itertools.islice((name for name in best if name not in held), wanted))
        else:
            candidates = [name for name in best[: self.topk] if name not in held]
            if len(candidates) > wanted:
                picks = rng.choice(len(candidates), size=wanted, replace=False)
                today = [candidates[i] for i in picks]
            else:
                today = candidates

        if self.method_sell == "bottom":
            # At equal scores a holding ranks ahead of a newcomer: swapping one for the other
            # gains nothing and costs two trades (discrete scores tie all the time).
            score = {names[i]: -values[i] for i in scored}
            comb = sorted(last + today, key=lambda name: (
                score.get(name, math.inf), name not in held, rank.get(name, math.inf)))
            worst = set(comb[len(comb) - self.n_drop :]) if self.n_drop else set()
            sell = [name for name in last if name in worst]
        elif len(last) > self.n_drop:
            sell = [last[i] for i in rng.choice(len(last), size=self.n_drop, replace=False)]
        else:
            sell = list(last)
        buy = today[: len(sell) + room]

        if held_days is not None:
            sell = [name for name in sell if held_days[name] >= self.hold_thresh]
        keep = [name for name in last if name not in sell]
        buy = buy[: self.topk - len(keep)]

        shortfall = self.topk - len(keep) - len(buy)
        if shortfall > 0:
            keep += [name for name in ranked(sell) if name in rank][:shortfall]
        return ranked(keep + buy)

    # -- a whole signal --------------------------------------------------------------------------

    def generate_weights(
        self, signal: pd.Series | pd.DataFrame, rebalance: Rebalance = 1
    ) -> pd.DataFrame:
        """Target weights over time for a signal.

        Parameters
        ----------
        signal:
            Scores as a Series (or one-column DataFrame; a column named ``"score"`` is used if
            present) on a ``(datetime, instrument)`` MultiIndex, or a wide DataFrame with one
            row per date and one column per instrument.
        rebalance:
            When holdings may change: an int ``n`` (every n-th date, starting with the first;
            default every date), a collection of dates, or a callable ``date -> bool``. On
            other dates the previous weights carry over.

        Returns
        -------
        pandas.DataFrame
            Weights indexed by date (ascending), one column per instrument of the signal:
            ``1 / len(holdings)`` for each held name, so each row sums to 1 once anything is
            held (all zeros, i.e. cash, before the first rebalance that finds a score).

        Holding periods count dates of the signal: a name bought on a date has been held one
        bar on the next date. The ``"random"`` methods start from ``seed`` on every call, so
        equal calls give equal weights.
        """
        wide = _to_wide(signal)
        dates = wide.index
        mask = _rebalance_mask(dates, rebalance)
        names = wide.columns.tolist()
        column = {name: i for i, name in enumerate(names)}
        values = wide.to_numpy(dtype=float)
        rng = np.random.default_rng(self.seed)

        weights = np.zeros(wide.shape)
        holdings: list[Hashable] = []
        held_days: dict[Hashable, int] = {}
        for row in range(len(dates)):
            held_days = {name: days + 1 for name, days in held_days.items()}
            if mask[row]:
                holdings = self._decide(names, values[row], holdings, held_days, rng)
                held_days = {name: held_days.get(name, 0) for name in holdings}
            if holdings:
                weights[row, [column[name] for name in holdings]] = 1.0 / len(holdings)
        return pd.DataFrame(weights, index=dates.copy(), columns=wide.columns.copy())


def _check_scores(scores: Any) -> pd.Series:
    if isinstance(scores, pd.DataFrame) and scores.shape[1] == 1:
        scores = scores.iloc[:, 0]
    if not isinstance(scores, pd.Series):
        raise TypeError(f"scores must be a pandas Series indexed by instrument, got {scores!r}")
    if not scores.index.is_unique:
        duplicated = scores.index[scores.index.duplicated()].unique().tolist()
        raise ValueError(f"scores has duplicate instruments: {duplicated}")
    try:
        return scores.astype(float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"scores must be numeric: {exc}") from exc


def _to_wide(signal: Any) -> pd.DataFrame:
    """A date x instrument float frame from either signal layout."""
    if isinstance(signal, pd.DataFrame) and isinstance(signal.index, pd.MultiIndex):
        if "score" in signal.columns:
            signal = signal["score"]
        elif signal.shape[1] == 1:
            signal = signal.iloc[:, 0]
        else:
            raise ValueError(
                "a signal DataFrame on a (datetime, instrument) index needs one column "
                f"or a 'score' column, got {list(signal.columns)}"
            )
    if isinstance(signal, pd.Series):
        index = signal.index
        if not isinstance(index, pd.MultiIndex) or index.nlevels != 2:
            raise ValueError("a signal Series needs a 2-level (datetime, instrument) MultiIndex")
        if not index.is_unique:
            duplicated = index[index.duplicated()].unique().tolist()[:5]
            raise ValueError(f"signal has duplicate (datetime, instrument) rows, e.g. {duplicated}")
        names = list(index.names)
        level = "instrument" if "instrument" in names and "datetime" in names else 1
        wide = signal.unstack(level=level)
    elif isinstance(signal, pd.DataFrame):
        if not signal.index.is_unique:
            raise ValueError("a wide signal DataFrame needs unique dates")
        if not signal.columns.is_unique:
            raise ValueError("a wide signal DataFrame needs unique instrument columns")
        wide = signal
    else:
        raise TypeError(
            "signal must be a pandas Series on a (datetime, instrument) MultiIndex or a "
            f"date x instrument DataFrame, got {type(signal).__name__}"
        )
    try:
        wide = wide.astype(float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"signal scores must be numeric: {exc}") from exc
    wide = wide.sort_index()
    wide.index.name = wide.index.name or "datetime"
    wide.columns.name = wide.columns.name or "instrument"
    return wide


def _rebalance_mask(dates: pd.Index, rebalance: Rebalance) -> np.ndarray:
    if isinstance(rebalance, bool):
        raise TypeError("rebalance must be an int, a collection of dates or a callable")
    if isinstance(rebalance, (int, np.integer)):
        if rebalance < 1:
            raise ValueError(f"rebalance every n dates needs n >= 1, got {rebalance}")
        return np.arange(len(dates)) % int(rebalance) == 0
    if callable(rebalance):
        return np.array([bool(rebalance(date)) for date in dates], dtype=bool)
    if isinstance(rebalance, (str, bytes)) or not isinstance(rebalance, Collection):
        raise TypeError(
            "rebalance must be an int, a collection of dates or a callable, "
            f"got {type(rebalance).__name__}"
        )
    wanted = list(rebalance)
    if isinstance(dates, pd.DatetimeIndex):
        wanted = pd.DatetimeIndex(pd.to_datetime(wanted))
    mask = np.asarray(dates.isin(wanted), dtype=bool)
    if len(wanted) and not mask.any():
        raise ValueError("none of the rebalance dates is a date of the signal")
    return mask
