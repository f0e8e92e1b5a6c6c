"""alphazoo.contrib.strategy: top-k with dropout, checked on hand-built score sequences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphazoo.contrib.strategy import TopkDropout


def _signal(days: list[dict[str, float]]) -> pd.Series:
    """A (datetime, instrument) score Series, one business day per dict."""
    dates = pd.bdate_range("2024-01-01", periods=len(days))
    rows = [(date, name, score) for date, day in zip(dates, days) for name, score in day.items()]
    index = pd.MultiIndex.from_tuples(
        [(d, n) for d, n, _ in rows], names=["datetime", "instrument"]
    )
    return pd.Series([s for _, _, s in rows], index=index, name="score")


def _held(weights: pd.DataFrame) -> list[set[str]]:
    return [set(row.index[row > 0]) for _, row in weights.iterrows()]


def _random_signal(n_dates: int, n_names: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        rng.normal(size=(n_dates, n_names)),
        index=pd.bdate_range("2024-01-01", periods=n_dates, name="datetime"),
        columns=[f"S{i:02d}" for i in range(n_names)],
    )


# -- the rule on a hand-built sequence ---------------------------------------------------------


def test_k3_drop1_sequence_sells_and_buys_exact_names():
    days = [
        # Day 1: nothing held, buy the top three.
        {"A": 5, "B": 4, "C": 3, "D": 2, "E": 1},
        # Day 2: A falls to the bottom, D is the best name not held: sell A, buy D.
        {"A": 1, "B": 4, "C": 3, "D": 5, "E": 2},
        # Day 3: the best name not held (A) ranks below every holding: no trade.
        {"A": 1, "B": 3, "C": 2, "D": 4, "E": 0},
        # Day 4: E jumps to the top, D is now the worst holding: sell D, buy E.
        {"A": 0, "B": 3, "C": 2, "D": 1, "E": 9},
    ]
    held = _held(TopkDropout(topk=3, n_drop=1).generate_weights(_signal(days)))
    assert held == [{"A", "B", "C"}, {"B", "C", "D"}, {"B", "C", "D"}, {"B", "C", "E"}]


def test_drop2_never_sells_a_holding_for_a_worse_name():
    strategy = TopkDropout(topk=3, n_drop=2)
    # Held A, B, C. Candidates X (best overall) and Y (below every holding): only the worst
    # holding C makes way, for X; B stays although it is among the two worst holdings.
    scores = pd.Series({"A": 5.0, "B": 4.0, "C": 3.0, "X": 6.0, "Y": 1.0})
    assert strategy.step(scores, ["A", "B", "C"]) == ["X", "A", "B"]
    # Two candidates beat two holdings: both are replaced.
    scores = pd.Series({"A": 5.0, "B": 2.0, "C": 1.0, "X": 6.0, "Y": 4.0})
    assert strategy.step(scores, ["A", "B", "C"]) == ["X", "A", "Y"]


def test_first_rebalance_buys_the_top_k():
    strategy = TopkDropout(topk=2, n_drop=1)
    scores = pd.Series({"A": 0.1, "B": 0.9, "C": 0.5, "D": -1.0})
    assert strategy.step(scores, []) == ["B", "C"]


def test_weights_are_equal_among_held_names_and_sum_to_one():
    weights = TopkDropout(topk=4, n_drop=1).generate_weights(_random_signal(30, 10, seed=1))
    assert weights.index.name == "datetime"
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    for _, row in weights.iterrows():
        np.testing.assert_allclose(row[row > 0], 0.25)


@pytest.mark.parametrize(
    ("method_sell", "method_buy"),
    [("bottom", "top"), ("random", "top"), ("bottom", "random"), ("random", "random")],
)
def test_holding_count_and_turnover_bounds(method_sell, method_buy):
    topk, n_drop = 5, 2
    strategy = TopkDropout(topk, n_drop, method_sell=method_sell, method_buy=method_buy, seed=3)
    held = _held(strategy.generate_weights(_random_signal(60, 20, seed=2)))
    assert len(held[0]) == topk
    changes = []
    for before, after in zip(held, held[1:]):
        assert len(after) == topk
        changes.append(len(after - before))
        assert len(after - before) == len(before - after) <= n_drop
    assert max(changes) == n_drop or method_buy == "random"
    assert sum(changes) > 0


def test_n_drop_equal_to_topk_holds_todays_top_k():
    # With n_drop = topk the rule can replace everything, so it holds exactly today's top k.
    signal = _random_signal(20, 12, seed=4)
    held = _held(TopkDropout(topk=3, n_drop=3).generate_weights(signal))
    for (_, scores), names in zip(signal.iterrows(), held):
        assert names == set(scores.nlargest(3).index)


def test_n_drop_zero_keeps_the_first_portfolio():
    held = _held(TopkDropout(topk=3, n_drop=0).generate_weights(_random_signal(10, 8, seed=5)))
    assert all(names == held[0] for names in held)
    assert len(held[0]) == 3


# -- rebalance schedule -----------------------------------------------------------------------


def test_rebalance_every_n_dates_carries_weights_over():
    signal = _random_signal(12, 10, seed=6)
    every = TopkDropout(topk=3, n_drop=1).generate_weights(signal)
    every_third = TopkDropout(topk=3, n_drop=1).generate_weights(signal, rebalance=3)
    for i in range(12):
        # Carried rows equal the row of the last rebalance date.
        pd.testing.assert_series_equal(
            every_third.iloc[i], every_third.iloc[i - i % 3], check_names=False
        )
    # Rebalancing only on a subset of dates is a different path than every date.
    daily = TopkDropout(topk=3, n_drop=1).generate_weights(signal.iloc[::3])
    pd.testing.assert_frame_equal(every_third.iloc[::3], daily)
    assert not every.equals(every_third)


def test_rebalance_on_given_dates_or_predicate():
    signal = _random_signal(10, 6, seed=7)
    dates = signal.index
    chosen = {dates[2].strftime("%Y-%m-%d"), dates[6].strftime("%Y-%m-%d")}
    weights = TopkDropout(topk=2, n_drop=1).generate_weights(signal, rebalance=chosen)
    assert (weights.iloc[:2].to_numpy() == 0).all()  # cash before the first rebalance
    assert set(weights.iloc[2][weights.iloc[2] > 0].index) == set(signal.iloc[2].nlargest(2).index)
    pd.testing.assert_series_equal(weights.iloc[5], weights.iloc[2], check_names=False)
    by_predicate = TopkDropout(topk=2, n_drop=1).generate_weights(
        signal, rebalance=lambda date: date in {dates[2], dates[6]}
    )
    pd.testing.assert_frame_equal(weights, by_predicate)
    with pytest.raises(ValueError, match="none of the rebalance dates"):
        TopkDropout(topk=2, n_drop=1).generate_weights(signal, rebalance={"1990-01-01"})


def test_wide_and_long_signals_give_the_same_weights():
    wide = _random_signal(8, 5, seed=8)
    long = wide.stack()
    long.index.names = ["datetime", "instrument"]
    strategy = TopkDropout(topk=2, n_drop=1)
    pd.testing.assert_frame_equal(
        strategy.generate_weights(wide), strategy.generate_weights(long), check_names=False
    )
    one_column = long.to_frame("prediction")
    pd.testing.assert_frame_equal(
        strategy.generate_weights(long), strategy.generate_weights(one_column)
    )


def test_ties_never_swap_a_holding_for_an_equally_scored_name():
    # Discrete scores (a direction classifier's 0/1) tie all the time; swapping a held name
    # for one with the same score changes nothing but costs two trades.
    strategy = TopkDropout(topk=2, n_drop=1)
    ones = pd.Series({"A": 1.0, "B": 1.0, "C": 1.0, "D": 1.0, "E": 0.0})
    assert strategy.step(ones, ["C", "D"]) == ["C", "D"]
    # A strictly worse holding still makes way for the tied newcomer.
    assert strategy.step(pd.Series({"A": 1.0, "B": 0.0, "X": 1.0}), ["A", "B"]) == ["A", "X"]
    # Held C and D stay while their score ties the names ahead of them in the index.
    days = [{"A": 0, "B": 0, "C": 1, "D": 1}] + [{"A": 1, "B": 1, "C": 1, "D": 1}] * 3
    weights = TopkDropout(topk=2, n_drop=2).generate_weights(_signal(days))
    assert _held(weights) == [{"C", "D"}] * 4


# -- missing scores, small universes ----------------------------------------------------------


def test_nan_score_cannot_be_bought_and_held_nan_is_sold_first():
    nan = float("nan")
    days = [
        # D has the best score but it is missing on the day the portfolio is formed.
        {"A": 5, "B": 4, "C": 3, "D": nan, "E": 1},
        # A loses its score: although its last score was the best, it is sold first.
        {"A": nan, "B": 4, "C": 3, "D": 2, "E": 1},
    ]
    held = _held(TopkDropout(topk=3, n_drop=1).generate_weights(_signal(days)))
    assert held == [{"A", "B", "C"}, {"B", "C", "D"}]


def test_absent_instrument_counts_as_missing():
    strategy = TopkDropout(topk=2, n_drop=1)
    # A is held but absent from today's scores; C replaces it.
    assert strategy.step(pd.Series({"B": 1.0, "C": 0.5}), ["A", "B"]) == ["B", "C"]


def test_fewer_scored_instruments_than_topk_holds_all_of_them():
    nan = float("nan")
    days = [
        {"A": 1.0, "B": 2.0, "C": nan},
        # Order changes, nothing to replace with: both stay.
        {"A": 2.0, "B": 1.0, "C": nan},
        # C gets a score and the best one: bought into the free slot, nobody sold.
        {"A": 2.0, "B": 1.0, "C": 3.0},
    ]
    weights = TopkDropout(topk=5, n_drop=1).generate_weights(_signal(days))
    assert _held(weights) == [{"A", "B"}, {"A", "B"}, {"A", "B", "C"}]
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)


def test_no_scores_at_all_stays_in_cash():
    nan = float("nan")
    weights = TopkDropout(topk=2, n_drop=1).generate_weights(
        _signal([{"A": nan, "B": nan}, {"A": 1.0, "B": nan}])
    )
    assert (weights.iloc[0] == 0).all()
    assert weights.iloc[1].to_dict() == {"A": 1.0, "B": 0.0}


# -- hold threshold -----------------------------------------------------------------------------


def test_hold_thresh_delays_the_sale_and_the_matching_buy():
    first = {"A": 3.0, "B": 2.0, "C": 1.0}
    then = {"A": 0.0, "B": 2.0, "C": 3.0}  # C is better than A from day 2 on
    days = [first] + [then] * 4
    held = _held(TopkDropout(topk=2, n_drop=1, hold_thresh=3).generate_weights(_signal(days)))
    # A is bought on day 1 and held 1 and 2 bars on days 2 and 3: not yet sellable.
    assert held == [{"A", "B"}, {"A", "B"}, {"A", "B"}, {"B", "C"}, {"B", "C"}]
    quick = _held(TopkDropout(topk=2, n_drop=1).generate_weights(_signal(days)))
    assert quick[1] == {"B", "C"}


def test_hold_thresh_in_step_uses_held_days():
    strategy = TopkDropout(topk=2, n_drop=1, hold_thresh=2)
    scores = pd.Series({"A": 0.0, "B": 2.0, "C": 3.0})
    assert strategy.step(scores, ["A", "B"], held_days={"A": 1, "B": 5}) == ["B", "A"]
    assert strategy.step(scores, ["A", "B"], held_days={"A": 2, "B": 5}) == ["C", "B"]
    with pytest.raises(ValueError, match="needs held_days"):
        strategy.step(scores, ["A", "B"])
    with pytest.raises(ValueError, match="no entry"):
        strategy.step(scores, ["A", "B"], held_days={"B": 5})


# -- random methods -------------------------------------------------------------------------------


def test_random_methods_are_reproducible_with_a_seed():
    signal = _random_signal(40, 15, seed=9)

    def run(seed: int) -> pd.DataFrame:
        strategy = TopkDropout(4, 2, method_sell="random", method_buy="random", seed=seed)
        return strategy.generate_weights(signal)

    pd.testing.assert_frame_equal(run(11), run(11))
    # Repeated calls on one instance restart from the seed too.
    strategy = TopkDropout(4, 2, method_sell="random", method_buy="random", seed=11)
    pd.testing.assert_frame_equal(strategy.generate_weights(signal), run(11))
    # step() draws from the instance's generator: same seed, same sequence of decisions.
    a = TopkDropout(3, 1, method_sell="random", seed=5)
    b = TopkDropout(3, 1, method_sell="random", seed=5)
    for (_, scores) in signal.iloc[:10].iterrows():
        assert a.step(scores, ["S00", "S01", "S02"]) == b.step(scores, ["S00", "S01", "S02"])


def test_random_sell_is_not_always_the_worst_holding():
    strategy = TopkDropout(3, 1, method_sell="random", seed=0)
    scores = pd.Series({"A": 3.0, "B": 2.0, "C": 1.0, "X": 10.0})
    sold = {({"A", "B", "C"} - set(strategy.step(scores, ["A", "B", "C"]))).pop()
            for _ in range(30)}
    assert sold == {"A", "B", "C"}


def test_random_buy_draws_from_todays_top_k():
    strategy = TopkDropout(3, 3, method_buy="random", seed=0)
    scores = pd.Series({name: float(i) for i, name in enumerate("ABCDEFGH")})
    for _ in range(20):
        assert set(strategy.step(scores, [])) <= {"F", "G", "H"}


# -- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"topk": 2, "n_drop": 3}, ValueError, "must not exceed"),
        ({"topk": 0, "n_drop": 0}, ValueError, "topk"),
        ({"topk": 2, "n_drop": -1}, ValueError, "n_drop"),
        ({"topk": 2.5, "n_drop": 1}, TypeError, "topk"),
        ({"topk": 2, "n_drop": 1, "method_sell": "worst"}, ValueError, "method_sell"),
        ({"topk": 2, "n_drop": 1, "method_buy": "best"}, ValueError, "method_buy"),
    ],
)
def test_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        TopkDropout(**kwargs)


def test_bad_step_and_signal_input():
    strategy = TopkDropout(topk=2, n_drop=1)
    scores = pd.Series({"A": 1.0, "B": 2.0, "C": 3.0})
    with pytest.raises(ValueError, match="more than topk"):
        strategy.step(scores, ["A", "B", "C"])
    with pytest.raises(ValueError, match="duplicate names"):
        strategy.step(scores, ["A", "A"])
    with pytest.raises(ValueError, match="duplicate instruments"):
        strategy.step(pd.Series([1.0, 2.0], index=["A", "A"]), [])
    with pytest.raises(TypeError, match="Series"):
        strategy.step([1.0, 2.0], [])
    duplicated = pd.concat([_signal([{"A": 1.0}]), _signal([{"A": 2.0}])])
    with pytest.raises(ValueError, match="duplicate"):
        strategy.generate_weights(duplicated)
    with pytest.raises(ValueError, match="MultiIndex"):
        strategy.generate_weights(pd.Series([1.0, 2.0]))
    with pytest.raises(ValueError, match="n >= 1"):
        strategy.generate_weights(_signal([{"A": 1.0}]), rebalance=0)
