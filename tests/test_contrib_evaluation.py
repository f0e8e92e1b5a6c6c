"""alphazoo.contrib.evaluation: IC / rank IC against scipy and closed forms, the weight
backtest's turnover and cost arithmetic, risk metrics of hand-built curves, and invariants on
the bundled data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from alphazoo.contrib.evaluation import (
    WeightsBacktest,
    backtest_weights,
    ic,
    rank_ic,
    risk_metrics,
    signal_metrics,
)
from alphazoo.contrib.features import compute_features, compute_labels, load_panel


def on_index(values, dates, instruments) -> pd.Series:
    index = pd.MultiIndex.from_product([pd.DatetimeIndex(dates), instruments],
                                       names=["datetime", "instrument"])
    return pd.Series(np.asarray(values, dtype=float).ravel(), index=index)


@pytest.fixture(scope="module")
def data():
    panel = load_panel()
    return compute_features(panel), compute_labels(panel)


# ---------------------------------------------------------------------------------- IC family

def test_perfect_and_anti_ranking():
    dates = pd.bdate_range("2021-01-04", periods=6)
    realised = on_index(np.random.default_rng(0).normal(size=(6, 5)), dates, list("ABCDE"))
    grow = np.exp(realised * 10)  # monotone but not linear
    assert (rank_ic(grow, realised) == 1.0).all() and len(rank_ic(grow, realised)) == 6
    assert (rank_ic(-grow, realised) == -1.0).all()
    assert (ic(grow, realised) < 1.0).all()            # Pearson sees the non-linearity
    np.testing.assert_allclose(ic(3 * realised + 1, realised), 1.0)
    np.testing.assert_allclose(ic(-2 * realised, realised), -1.0)


def test_ic_and_rank_ic_agree_with_scipy_per_date():
    rng = np.random.default_rng(1)
    dates = pd.bdate_range("2021-01-04", periods=8)
    pred = on_index(rng.integers(0, 4, size=(8, 7)), dates, list("ABCDEFG"))  # many ties
    realised = on_index(rng.normal(size=(8, 7)), dates, list("ABCDEFG"))
    got_ic, got_rank = ic(pred, realised), rank_ic(pred, realised)
    for date in dates:
        x, y = pred.xs(date, level="datetime"), realised.xs(date, level="datetime")
        assert got_ic[date] == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-12)
        assert got_rank[date] == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert got_ic.index.name == "datetime"


def test_dates_without_a_cross_section_are_dropped():
    dates = pd.bdate_range("2021-01-04", periods=4)
    pred = on_index([[1, 2, 3], [1, np.nan, np.nan], [5, 5, 5], [3, 1, 2]], dates, list("ABC"))
    realised = on_index([[1, 2, 3], [1, 2, 3], [1, 2, 3], [np.nan, 1, 2]], dates, list("ABC"))
    # date 2: one valid pair; date 3: constant prediction (correlation undefined);
    # date 4: two valid pairs (B, C), which agree in order.
    result = rank_ic(pred, realised)
    assert list(result.index) == [dates[0], dates[3]]
    assert list(result) == [1.0, 1.0]


def test_icir_of_known_ic_series():
    dates = pd.bdate_range("2021-01-04", periods=3)
    realised = on_index([[1, 2, 3], [4, 1, 7], [2, 9, 5]], dates, list("ABC"))
    sign = on_index([[1, 1, 1], [1, 1, 1], [-1, -1, -1]], dates, list("ABC"))
    metrics = signal_metrics(realised * sign, realised)   # per-date IC: 1, 1, -1
    assert metrics["ic"] == pytest.approx(1 / 3)
    assert metrics["rank_ic"] == pytest.approx(1 / 3)
    # mean 1/3, sample std sqrt(4/3): ratio 1 / (2 sqrt 3)
    assert metrics["icir"] == pytest.approx(1 / (2 * math.sqrt(3)))
    assert metrics["rank_icir"] == pytest.approx(1 / (2 * math.sqrt(3)))
    assert set(metrics) == {"ic", "icir", "rank_ic", "rank_icir"}


def test_single_instrument_by_month_and_all():
    rng = np.random.default_rng(2)
    dates = pd.bdate_range("2021-01-01", "2021-03-31")
    realised = on_index(rng.normal(size=len(dates)), dates, ["SPY"])
    pred = realised + on_index(rng.normal(size=len(dates)), dates, ["SPY"])
    assert ic(pred, realised).empty                      # no cross-section on any date
    monthly = ic(pred, realised, by="month")
    assert list(monthly.index) == list(pd.date_range("2021-01-01", periods=3, freq="MS"))
    assert monthly.index.name == "month"
    for month, value in monthly.items():
        x, y = (s[s.index.get_level_values("datetime").month == month.month]
                for s in (pred, realised))
        assert value == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    pooled = rank_ic(pred, realised, by="all")
    assert list(pooled.index) == ["all"]
    assert pooled.iloc[0] == pytest.approx(stats.spearmanr(pred, realised)[0], abs=1e-12)
    assert math.isnan(signal_metrics(pred, realised, by="all")["icir"])


def test_signal_inputs_are_checked():
    dates = pd.bdate_range("2021-01-04", periods=3)
    good = on_index(np.arange(6), dates, ["A", "B"])
    with pytest.raises(ValueError, match="by must be"):
        ic(good, good, by="week")
    with pytest.raises(ValueError, match=r"\(datetime, instrument\)"):
        ic(good.droplevel("instrument"), good)
    with pytest.raises(ValueError, match="one-column"):
        ic(pd.DataFrame({"a": good, "b": good}), good)
    assert (ic(good.to_frame("score"), good) == 1.0).all()


def test_instrument_first_index_order_is_aligned_by_level_name(data):
    features, labels = data
    pred, realised = features["ret_1d"], labels["label_return"]
    expected = signal_metrics(pred, realised)
    swapped = pred.swaplevel().sort_index()  # (instrument, datetime), as some tools store it
    for a, b in ((swapped, realised), (pred, realised.swaplevel()),
                 (swapped, realised.swaplevel())):
        assert signal_metrics(a, b) == pytest.approx(expected, rel=1e-12)
    pd.testing.assert_series_equal(rank_ic(swapped, realised), rank_ic(pred, realised))


# ----------------------------------------------------------------------------------- backtest

def test_two_asset_turnover_costs_and_equity():
    dates = pd.bdate_range("2021-01-04", periods=4)
    weights = pd.DataFrame({"A": [1.0, 0.5, 0.0, 0.0], "B": [0.0, 0.5, 1.0, 1.0]}, index=dates)
    returns = pd.DataFrame({"A": [0.10, -0.20, 0.05, 0.00],
                            "B": [0.00, 0.10, -0.10, 0.02]}, index=dates)
    result = backtest_weights(weights, returns, cost=0.01)
    assert isinstance(result, WeightsBacktest)
    np.testing.assert_allclose(result.gross, [0.10, -0.05, -0.10, 0.02])
    np.testing.assert_allclose(result.turnover, [1.0, 1.0, 1.0, 0.0])  # cash->A, half, rest
    np.testing.assert_allclose(result.costs, [0.01, 0.01, 0.01, 0.0])
    np.testing.assert_allclose(result.net, [0.09, -0.06, -0.11, 0.02])
    expected = np.cumprod([1.0, 1.09, 0.94, 0.89, 1.02])
    np.testing.assert_allclose(result.equity, expected)
    # The final holding period ends on the business day after the last date of `returns`.
    assert list(result.equity.index) == [*dates, pd.Timestamp("2021-01-08")]

    split = backtest_weights(weights, returns, cost=(0.001, 0.003))
    # buys: 1.0, 0.5, 0.5, 0; sells: 0, 0.5, 0.5, 0
    np.testing.assert_allclose(split.costs, [0.001, 0.002, 0.002, 0.0])
    assert backtest_weights(weights, returns, cost=0.0).net.equals(result.gross.rename("net"))


def test_backtest_skips_the_final_bar_and_refuses_unknown_outcomes():
    dates = pd.bdate_range("2021-01-04", periods=3)
    returns = pd.DataFrame({"A": [0.01, 0.02, np.nan], "B": [0.03, np.nan, np.nan]},
                           index=dates)
    weights = pd.DataFrame({"A": [0.5, 1.0, 1.0], "B": [0.5, np.nan, 0.0]}, index=dates)
    result = backtest_weights(weights, returns, cost=0.0)
    assert list(result.net.index) == list(dates[:2])              # last bar: no outcome yet
    np.testing.assert_allclose(result.net, [0.02, 0.02])
    assert list(result.equity.index) == list(dates)               # ends at the next bar
    with pytest.raises(ValueError, match="missing return of held instrument 'B'"):
        backtest_weights(weights.fillna(0.5), returns)
    with pytest.raises(ValueError, match="no column for held instrument"):
        backtest_weights(weights.assign(C=0.1), returns)
    with pytest.raises(ValueError, match="no row for weight date"):
        backtest_weights(weights.set_axis(dates + pd.Timedelta(days=30)), returns)
    with pytest.raises(ValueError, match="cost must be >= 0"):
        backtest_weights(weights, returns, cost=-0.1)


def test_equal_weight_backtest_on_bundled_data(data):
    _, labels = data
    returns = labels["label_return"].unstack("instrument")
    live = returns.notna()
    weights = live.div(live.sum(axis=1), axis=0).fillna(0.0)   # equal weight, what has a label
    result = backtest_weights(weights, labels)              # the labels frame, unstacked inside
    np.testing.assert_allclose(result.gross, returns.loc[result.gross.index].mean(axis=1),
                               rtol=1e-12)
    assert result.turnover.iloc[0] == pytest.approx(1.0)    # entering from cash
    # Weights move only where an instrument joins or leaves (YHOO ends, AAPL misses a day).
    members = live.loc[result.turnover.index]
    changed = members.ne(members.shift()).any(axis=1)
    assert (result.turnover[changed] > 0).all() and (result.turnover[~changed] == 0).all()
    assert 2 <= changed.iloc[1:].sum() <= 5
    assert (result.net <= result.gross).all()
    np.testing.assert_allclose(result.costs, 0.0015 * result.turnover)
    assert result.equity.iloc[-1] == pytest.approx(np.prod(1 + result.net.to_numpy()))
    metrics = result.metrics()
    assert metrics["max_drawdown"] <= 0 and metrics["annualised_volatility"] > 0
    assert metrics["turnover"] == pytest.approx(result.turnover.mean())
    same = risk_metrics(result.net, benchmark=result.net)
    assert math.isnan(same["information_ratio"])          # no excess, no ratio


def test_ic_invariants_on_bundled_data(data):
    features, labels = data
    realised = labels["label_return"]
    self_ic = ic(realised, realised)
    dates_with_pairs = realised.dropna().groupby(level="datetime").size()
    assert len(self_ic) == (dates_with_pairs >= 2).sum()
    np.testing.assert_allclose(self_ic, 1.0)
    pred = features["ret_5d"]
    base, base_rank = ic(pred, realised), rank_ic(pred, realised)
    assert len(base) > 600 and base.between(-1, 1).all()
    pd.testing.assert_series_equal(ic(2.5 * pred - 0.3, realised), base, atol=1e-12, rtol=0)
    pd.testing.assert_series_equal(ic(-pred, realised), -base, atol=1e-12, rtol=0)
    pd.testing.assert_series_equal(rank_ic(np.exp(40 * pred), realised), base_rank)


def test_a_constant_group_is_one_of_equal_values_whatever_its_level():
    dates = pd.bdate_range("2021-01-04", periods=3)
    realised = on_index([[1, 2, 3], [1, 2, 3], [1, 2, 3]], dates, list("ABC"))
    # 0.1 three times centres to rounding residue (its float mean is not 0.1): still constant.
    # 100 + 1e-9 * (0, 1, 2) varies by far less than 1e-20 of its second moment: not constant.
    pred = on_index([[0.1, 0.1, 0.1], [100, 100 + 1e-9, 100 + 2e-9], [1e9, 2e9, 3e9]],
                    dates, list("ABC"))
    result = ic(pred, realised)
    assert list(result.index) == [dates[1], dates[2]]
    np.testing.assert_allclose(result, 1.0, rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def ret_5d_ic(data):
    features, labels = data
    pred, realised = features["ret_5d"], labels["label_return"]
    return pred, realised, ic(pred, realised)


def test_a_level_far_above_the_spread_keeps_the_ic(ret_5d_ic):
    # The case that used to drop 65 of 748 dates (mean IC 0.0127 instead of 0.000193) and,
    # at 1e-7, every date (NaN).
    pred, realised, base = ret_5d_ic
    for tiny in (1e-6, 1e-7):
        shifted = ic(100 + tiny * pred, realised)
        assert shifted.index.equals(base.index) and len(base) == 748
        # float64 holds 100 + 1e-6 * r to ~1.4e-14, i.e. r to ~1.4e-8: the per-date ICs
        # agree to that relative precision, their mean far better.
        np.testing.assert_allclose(shifted, base, rtol=0, atol=1e-4 if tiny == 1e-7 else 1e-5)
        assert shifted.mean() == pytest.approx(base.mean(), rel=1e-3)


@settings(max_examples=30, deadline=None)
@given(exponent=st.floats(-9, 9), sign=st.sampled_from([1.0, -1.0]))
def test_ic_is_invariant_to_scaling(ret_5d_ic, exponent, sign):
    pred, realised, base = ret_5d_ic
    scaled = ic(sign * 10.0 ** exponent * pred, realised)
    assert scaled.index.equals(base.index)                 # every date kept
    np.testing.assert_allclose(scaled, sign * base, rtol=0, atol=1e-12)


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(shift=st.floats(-1e6, 1e6, allow_nan=False))
def test_ic_is_invariant_to_adding_a_constant(ret_5d_ic, shift):
    pred, realised, base = ret_5d_ic
    shifted = ic(pred + shift, realised)
    assert shifted.index.equals(base.index)
    # Adding 1e6 rounds the scores to 1.2e-10: float64's limit, not the estimator's.
    np.testing.assert_allclose(shifted, base, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ic(realised + shift, pred), base, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------ risk metrics

def test_constant_returns_annualise_geometrically():
    for n in (126, 252, 504):
        metrics = risk_metrics(pd.Series(np.full(n, 0.001)))
        assert metrics["annualised_return"] == pytest.approx(1.001 ** 252 - 1, rel=1e-10)
        assert metrics["total_return"] == pytest.approx(1.001 ** n - 1, rel=1e-10)
        assert metrics["max_drawdown"] == 0.0
        assert metrics["annualised_volatility"] == pytest.approx(0.0, abs=1e-12)


def test_drawdown_of_a_hand_built_curve():
    # equity 1 -> 1.1 -> 0.55 -> 0.66 -> 0.99: the worst fall is 1.1 -> 0.55
    assert risk_metrics(pd.Series([0.1, -0.5, 0.2, 0.5]))["max_drawdown"] == pytest.approx(-0.5)
    # a loss on the first day is a drawdown from the starting capital
    assert risk_metrics(pd.Series([-0.1, 0.5]))["max_drawdown"] == pytest.approx(-0.1)
    assert risk_metrics(pd.Series([-1.0, 0.5]))["annualised_return"] == -1.0


def test_volatility_and_information_ratio_closed_forms():
    n = 10
    alternating = pd.Series([0.01, -0.01] * (n // 2))
    assert risk_metrics(alternating)["annualised_volatility"] == \
        pytest.approx(0.01 * math.sqrt(n / (n - 1)) * math.sqrt(252))
    dates = pd.bdate_range("2021-01-04", periods=4)
    benchmark = pd.Series([0.002, -0.01, 0.004, 0.0], index=dates)
    strategy = benchmark + pd.Series([0.01, -0.005, 0.01, -0.005], index=dates)
    # excess mean 0.0025, sample std 0.0075 * sqrt(4/3): IR = sqrt(252 / 12) = sqrt(21)
    metrics = risk_metrics(strategy, benchmark=benchmark, turnover=0.3)
    assert metrics["information_ratio"] == pytest.approx(math.sqrt(21))
    assert metrics["turnover"] == 0.3
    with pytest.raises(ValueError, match="benchmark: no return"):
        risk_metrics(strategy, benchmark=benchmark.iloc[1:])
    with pytest.raises(ValueError, match="NaN"):
        risk_metrics(pd.Series([0.01, np.nan]))
    with pytest.raises(ValueError, match="empty"):
        risk_metrics(pd.Series([], dtype=float))
