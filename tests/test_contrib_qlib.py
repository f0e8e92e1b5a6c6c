"""alphazoo.contrib.evaluation against qlib itself: risk_analysis in both modes,
calc_long_short_return and calc_ic, on the bundled data.

qlib is not a dependency of alphazoo, so its answers are pasted here. They were computed with
qlib 0.9.7's own functions by ``tests/data/qlib_oracle.py`` (run it with an interpreter that has
``pyqlib==0.9.7`` to recompute them; it prints this table as JSON):
``qlib.contrib.evaluate.risk_analysis(r, N=n, freq=None, mode=mode)["risk"]`` for each series
below and ``qlib.contrib.eva.alpha.calc_long_short_return(ret_5d, label_return, quantile=0.4)``.
The series are built here with alphazoo's features from the same bundled bars (float for float
the same numbers the script builds with pandas).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from alphazoo.contrib.evaluation import (
    backtest_weights,
    ic,
    long_short_return,
    risk_metrics,
)
from alphazoo.contrib.features import compute_features, compute_labels, load_panel

QLIB = {  # qlib 0.9.7's risk_analysis(r, N=n, freq=None, mode=mode): see the module docstring
    "aapl/sum/252": {
        "annualized_return": 0.189894359947216,
        "information_ratio": 0.8282144328614461,
        "max_drawdown": -0.3243323203060605,
        "mean": 0.0007535490474095874,
        "std": 0.014443385440028335,
    },
    "aapl/sum/238": {
        "annualized_return": 0.1793446732834818,
        "information_ratio": 0.8048797527719458,
        "max_drawdown": -0.3243323203060605,
        "mean": 0.0007535490474095874,
        "std": 0.014443385440028335,
    },
    "aapl/product/252": {
        "annualized_return": 0.1777325507693308,
        "information_ratio": 0.713770915228334,
        "max_drawdown": -0.30444489963129806,
        "mean": 0.0006493814821340038,
        "std": 0.014442464979292326,
    },
    "aapl/product/238": {
        "annualized_return": 0.16707735050278227,
        "information_ratio": 0.6936606451060197,
        "max_drawdown": -0.30444489963129806,
        "mean": 0.0006493814821340038,
        "std": 0.014442464979292326,
    },
    "equal_weight/sum/252": {
        "annualized_return": 0.20963550475107426,
        "information_ratio": 1.1569721332233562,
        "max_drawdown": -0.23453979846472978,
        "mean": 0.0008318869236153741,
        "std": 0.011414099902376629,
    },
    "equal_weight/sum/238": {
        "annualized_return": 0.19798908782045901,
        "information_ratio": 1.124374808750323,
        "max_drawdown": -0.23453979846472978,
        "mean": 0.0008318869236153741,
        "std": 0.011414099902376629,
    },
    "equal_weight/product/252": {
        "annualized_return": 0.21305031931494334,
        "information_ratio": 1.0650500921626995,
        "max_drawdown": -0.21482569738847068,
        "mean": 0.0007667148568779591,
        "std": 0.011427839043767773,
    },
    "equal_weight/product/238": {
        "annualized_return": 0.20010399714242744,
        "information_ratio": 1.0350426421668757,
        "max_drawdown": -0.21482569738847068,
        "mean": 0.0007667148568779591,
        "std": 0.011427839043767773,
    },
    "aapl_excess/sum/252": {
        "annualized_return": -0.018829525018002603,
        "information_ratio": -0.10077634493001683,
        "max_drawdown": -0.44017824268781447,
        "mean": -7.47203373730262e-05,
        "std": 0.011770109188132843,
    },
    "aapl_excess/sum/238": {
        "annualized_return": -0.017783440294780236,
        "information_ratio": -0.09793700323754419,
        "max_drawdown": -0.44017824268781447,
        "mean": -7.47203373730262e-05,
        "std": 0.011770109188132843,
    },
    "aapl_excess/product/252": {
        "annualized_return": -0.03553804263607052,
        "information_ratio": -0.19429405901588162,
        "max_drawdown": -0.3720223785640313,
        "mean": -0.00014358052574126035,
        "std": 0.011731033861171167,
    },
    "aapl_excess/product/238": {
        "annualized_return": -0.033597261980435666,
        "information_ratio": -0.18881988526263993,
        "max_drawdown": -0.3720223785640313,
        "mean": -0.00014358052574126035,
        "std": 0.011731033861171167,
    },
}

# qlib 0.9.7's calc_long_short_return(ret_5d, label_return, quantile=0.4) (dropna=False):
# the long-short series' non-NaN count, sum, sum of squares, first and last values, and the sum
# of the average-return series; calc_ic(ret_5d, label_return) and calc_ic on 100 + 1e-6 * ret_5d.
QLIB_LONG_SHORT = {
    "ls_count": 753, "ls_sum": -0.13388174242379391, "ls_sum_sq": 0.0632228240786285,
    "avg_sum": 0.6277196172323012, "ls_first": 0.0, "ls_last": 0.005150369758486539,
    "ic_mean": 0.00019339828387804792, "ic_count": 748,
    "shifted_ic_mean": 0.00019339399055155057,
}


@pytest.fixture(scope="module")
def data():
    panel = load_panel()
    return compute_features(panel), compute_labels(panel)


@pytest.fixture(scope="module")
def series(data):
    features, _ = data
    panel = features["ret_1d"].unstack("instrument")
    aapl = panel["AAPL"].dropna()
    equal = panel.mean(axis=1).dropna()
    return {"aapl": (aapl, None), "equal_weight": (equal, None),
            "aapl_excess": (aapl, equal.reindex(aapl.index))}


@pytest.mark.parametrize("key", sorted(QLIB))
def test_risk_metrics_reproduce_qlib_risk_analysis(series, key):
    name, mode, n = key.split("/")
    returns, benchmark = series[name]
    got = risk_metrics(returns, benchmark=benchmark, mode=mode, periods_per_year=int(n))
    want = QLIB[key]
    assert len(returns) == (753 if name == "equal_weight" else 752)  # AAPL lacks 2017-08-07
    for ours, theirs in (("annualised_return", "annualized_return"),
                         ("information_ratio", "information_ratio"),
                         ("max_drawdown", "max_drawdown"), ("mean", "mean"), ("std", "std")):
        assert got[ours] == pytest.approx(want[theirs], rel=0, abs=1e-10), ours
    assert got["annualised_volatility"] == pytest.approx(want["std"] * math.sqrt(int(n)))


def test_the_qlib_preset_is_risk_analysis_with_its_defaults(series):
    returns, _ = series["aapl"]
    got = risk_metrics(returns, mode="qlib")
    assert got["annualised_return"] == pytest.approx(QLIB["aapl/sum/238"]["annualized_return"],
                                                     rel=0, abs=1e-10)
    assert got["information_ratio"] == pytest.approx(QLIB["aapl/sum/238"]["information_ratio"],
                                                     rel=0, abs=1e-10)
    assert risk_metrics(returns, mode="sum", periods=238) == got


def test_how_alphazoos_defaults_relate_to_qlibs_modes(series):
    # What the docstring states: alphazoo's annualised return is "product"'s, its information
    # ratio "sum"'s, and its drawdown differs only by counting the starting capital as a peak.
    returns, _ = series["aapl"]
    ours = risk_metrics(returns)
    assert ours["annualised_return"] == pytest.approx(
        QLIB["aapl/product/252"]["annualized_return"], rel=0, abs=1e-10)
    assert ours["information_ratio"] == pytest.approx(
        QLIB["aapl/sum/252"]["information_ratio"], rel=0, abs=1e-10)
    assert ours["max_drawdown"] == pytest.approx(QLIB["aapl/product/252"]["max_drawdown"],
                                                 rel=0, abs=1e-10)   # AAPL never lost day 1
    first_day_loss = pd.Series([-0.1, 0.05, 0.02])
    assert risk_metrics(first_day_loss)["max_drawdown"] == pytest.approx(-0.1)
    assert risk_metrics(first_day_loss, mode="product")["max_drawdown"] == 0.0
    assert risk_metrics(first_day_loss, mode="sum")["max_drawdown"] == 0.0
    # qlib's "sum" drawdown is a difference of summed returns: it can pass -100%.
    assert risk_metrics(pd.Series([0.5, -0.9, -0.9]), mode="sum")["max_drawdown"] == \
        pytest.approx(-1.8)


def test_backtest_metrics_take_a_mode(data):
    _, labels = data
    returns = labels["label_return"].unstack("instrument")
    live = returns.notna()
    weights = live.div(live.sum(axis=1), axis=0).fillna(0.0)
    outcome = backtest_weights(weights, labels)
    default, qlib = outcome.metrics(), outcome.metrics(mode="qlib")
    assert default == risk_metrics(outcome.net, turnover=outcome.turnover)
    assert qlib["annualised_return"] == pytest.approx(outcome.net.mean() * 238, rel=1e-12)
    assert qlib["turnover"] == default["turnover"]


def test_risk_metrics_arguments_are_checked():
    r = pd.Series([0.01, -0.02, 0.03])
    with pytest.raises(ValueError, match="mode must be"):
        risk_metrics(r, mode="log")
    with pytest.raises(ValueError, match="give one"):
        risk_metrics(r, periods=252, periods_per_year=238)
    assert risk_metrics(r, periods=12) == risk_metrics(r, periods_per_year=12)


@pytest.mark.slow
def test_long_short_return_reproduces_qlib(data):
    features, labels = data
    pred, label = features["ret_5d"], labels["label_return"]
    spread, average = long_short_return(pred, label, quantile=0.4)
    want = QLIB_LONG_SHORT
    assert int(spread.notna().sum()) == want["ls_count"]
    assert spread.sum() == pytest.approx(want["ls_sum"], rel=0, abs=1e-12)
    assert (spread ** 2).sum() == pytest.approx(want["ls_sum_sq"], rel=0, abs=1e-12)
    assert average.sum() == pytest.approx(want["avg_sum"], rel=0, abs=1e-12)
    assert spread.dropna().iloc[0] == want["ls_first"]
    assert spread.dropna().iloc[-1] == pytest.approx(want["ls_last"], rel=0, abs=1e-15)
    # With 5 instruments and quantile 0.4 each leg is 2 names: check one date by hand.
    date = pd.Timestamp("2016-03-01")
    day = pd.DataFrame({"pred": pred.xs(date), "label": label.xs(date)}).sort_values("pred")
    assert len(day) == 5
    hand = (day["label"].iloc[-2:].mean() - day["label"].iloc[:2].mean()) / 2
    assert spread[date] == pytest.approx(hand, rel=1e-15)
    # Four instruments (YHOO ended) at quantile 0.2: int(0.8) = 0 names a leg, NaN as in qlib.
    late, _ = long_short_return(pred, label, quantile=0.2)
    assert late.loc["2017-07-03":].isna().all() and late.loc[:"2017-06-01"].notna().any()
    with pytest.raises(ValueError, match="quantile"):
        long_short_return(pred, label, quantile=0.7)


def test_ic_matches_qlibs_calc_ic_also_at_a_high_level(data):
    features, labels = data
    pred, label = features["ret_5d"], labels["label_return"]
    plain, shifted = ic(pred, label), ic(100 + 1e-6 * pred, label)
    assert len(plain) == len(shifted) == QLIB_LONG_SHORT["ic_count"]
    assert plain.mean() == pytest.approx(QLIB_LONG_SHORT["ic_mean"], rel=0, abs=1e-15)
    # Before the fix alphazoo's shifted mean was 0.0127 on 683 dates; qlib's is exact to
    # float64's rounding of the shifted scores.
    assert shifted.mean() == pytest.approx(QLIB_LONG_SHORT["shifted_ic_mean"], rel=0, abs=1e-12)
    assert np.isfinite(shifted).all()
