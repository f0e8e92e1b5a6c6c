"""The QC-style algorithm base: fills against the real price path, no look-ahead, scheduled
trainings on the simulated clock, the object store, and clear errors."""

from __future__ import annotations

import gc
import math
import os
import tempfile
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from alphazoo import ObjectStore, Zoo
from alphazoo.contrib.algorithm import Algorithm, AlgorithmBacktest, run_backtest
from alphazoo.contrib.evaluation import risk_metrics
from alphazoo.datasets import load_prices
from alphazoo.training import DayOfWeek

START, END = datetime(2016, 1, 1), datetime(2017, 12, 31)
CASH = 100_000.0


@pytest.fixture(scope="module")
def aapl():
    return load_prices("AAPL")


@pytest.fixture(scope="module")
def closes(aapl) -> pd.Series:
    """AAPL's closes in the test window, straight from the bundled arrays."""
    series = pd.Series(aapl.close, index=pd.DatetimeIndex(aapl.dates.astype("datetime64[ns]")))
    return series[(series.index >= START) & (series.index <= END)]


def _frame(bars) -> pd.DataFrame:
    return pd.DataFrame({c: getattr(bars, c) for c in ("open", "high", "low", "close", "volume")},
                        index=pd.DatetimeIndex(bars.dates.astype("datetime64[ns]"),
                                               name="datetime"))


class _Once(Algorithm):
    """Trades once on the first bar (``action``), optionally undoes it on bar ``undo_at``."""

    action: tuple = ("set_holdings", 1.0)
    undo_at: int | None = None

    def initialize(self) -> None:
        self.set_start_date(START)
        self.set_end_date(END)
        self.aapl = self.add_equity("AAPL")
        self.bars = 0

    def on_data(self, data) -> None:
        if self.bars == 0:
            getattr(self, self.action[0])(self.aapl, self.action[1])
        elif self.bars == self.undo_at:
            self.liquidate()
        self.bars += 1


def _run(cls, aapl, **kwargs) -> AlgorithmBacktest:
    return run_backtest(cls, aapl, CASH, **kwargs)


# -- fills -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fee_rate", [0.0005, 0.0])
def test_buy_and_hold_equity_is_the_price_path_minus_the_fee(aapl, closes, fee_rate):
    result = _run(_Once, aapl, fee_rate=fee_rate)
    p0 = closes.iloc[0]
    shares = math.floor(CASH / (p0 * (1 + fee_rate)))  # all the cash allows, fee included
    (fill,) = result.fills
    assert (fill.time, fill.symbol, fill.quantity, fill.price) == (
        closes.index[0].to_pydatetime(), "AAPL", shares, p0)
    assert fill.fee == pytest.approx(fee_rate * shares * p0, rel=1e-12)
    expected = CASH - fill.fee + shares * (closes - p0)
    pd.testing.assert_index_equal(result.equity.index, closes.index, check_names=False)
    np.testing.assert_allclose(result.equity.to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert result.algorithm.portfolio.cash == pytest.approx(CASH - shares * p0 - fill.fee)
    assert result.algorithm.portfolio.cash >= 0

    stats = result.statistics()
    assert stats["trades"] == 1 and stats["total_fees"] == pytest.approx(fill.fee)
    assert stats["total_return"] == pytest.approx(expected.iloc[-1] / CASH - 1)
    path = pd.concat([pd.Series([CASH]), expected])
    assert stats["max_drawdown"] == pytest.approx((path / path.cummax() - 1).min())
    assert stats["annualised_return"] == pytest.approx(
        (expected.iloc[-1] / CASH) ** (252 / len(expected)) - 1)


def test_statistics_use_the_evaluation_metrics_and_their_names(aapl, closes):
    class Half(_Once):
        action, undo_at = ("set_holdings", 0.5), 120

    result = _run(Half, aapl, fee_rate=0.001)
    stats = result.statistics()
    returns = pd.concat([pd.Series([CASH]), result.equity]).pct_change().iloc[1:]
    metrics = risk_metrics(returns, periods=252)
    assert set(metrics) <= set(stats)  # one vocabulary: "annualised_return", not "annualized"
    for name, value in metrics.items():
        assert stats[name] == pytest.approx(value, rel=1e-12), name
    daily = returns.to_numpy()
    assert stats["sharpe_ratio"] == stats["information_ratio"] == pytest.approx(
        daily.mean() / daily.std(ddof=1) * math.sqrt(252))
    assert stats["annualised_volatility"] == pytest.approx(daily.std(ddof=1) * math.sqrt(252))
    assert stats["trades"] == 2 and stats["final_value"] == result.final_value


def test_fractional_shares_without_fees_track_the_price_exactly(aapl, closes):
    result = _run(_Once, aapl, fee_rate=0.0, fractional=True)
    np.testing.assert_allclose(result.equity.to_numpy(), CASH * closes / closes.iloc[0],
                               rtol=1e-12)


def test_set_holdings_half_then_liquidate_gives_the_expected_cash(aapl, closes):
    class Half(_Once):
        action, undo_at = ("set_holdings", 0.5), 20

    fee = 0.001
    result = _run(Half, aapl, fee_rate=fee)
    buy, sell = result.fills
    p_in, p_out = closes.iloc[0], closes.iloc[20]
    shares = math.trunc(0.5 * CASH / p_in)
    assert (buy.quantity, buy.price, sell.quantity, sell.price) == (shares, p_in, -shares, p_out)
    expected_cash = CASH - shares * p_in * (1 + fee) + shares * p_out * (1 - fee)
    algo = result.algorithm
    assert algo.portfolio.cash == pytest.approx(expected_cash, rel=1e-12)
    assert not algo.portfolio.invested and algo.portfolio["AAPL"].quantity == 0
    assert (result.equity.iloc[20:] == algo.portfolio.cash).all()  # flat after the sale
    assert result.final_value == pytest.approx(expected_cash)


def test_short_positions_are_credited_and_valued_at_the_price(aapl, closes):
    class Short(_Once):
        action = ("set_holdings", -0.5)

    result = _run(Short, aapl)
    (fill,) = result.fills
    p0 = closes.iloc[0]
    assert fill.quantity == -math.trunc(0.5 * CASH / p0)
    assert result.algorithm.portfolio.cash == pytest.approx(CASH - fill.quantity * p0 - fill.fee)
    assert result.algorithm.portfolio["AAPL"].is_short
    np.testing.assert_allclose(result.equity.to_numpy(),
                               (CASH - fill.fee + fill.quantity * (closes - p0)).to_numpy(),
                               rtol=1e-12)


def test_orders_beyond_buying_power_are_rejected_or_scaled(aapl, closes):
    class Greedy(_Once):
        action = ("market_order", 10_000)  # ~ 1 million dollars of AAPL with 100k

    result = _run(Greedy, aapl)
    (order,) = result.orders
    assert order.status == "invalid" and "buying power" in order.message
    assert not result.fills and result.final_value == CASH
    assert any("buying power" in entry.message for entry in result.logs)

    class Both(Algorithm):  # two symbols: the second set_holdings gets what is left
        def initialize(self):
            self.set_start_date(START)
            self.a, self.g = self.add_equity("AAPL"), self.add_equity("GOOGL")

        def on_data(self, data):
            if not self.portfolio.invested:
                self.set_holdings(self.a, 0.8)
                self.set_holdings(self.g, 0.8)
            assert self.portfolio.cash >= 0

    both = run_backtest(Both, [aapl, load_prices("GOOGL")], CASH)
    first, second = both.fills
    assert first.quantity == math.trunc(0.8 * CASH / first.price)
    left = CASH - first.quantity * first.price - first.fee
    assert second.quantity == math.floor(left / (second.price * 1.0005))


# -- time ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_history_never_includes_a_future_bar(aapl):
    class Peek(Algorithm):
        def initialize(self):
            self.set_start_date(START)
            self.sym = self.add_equity("AAPL")
            self.init_last = self.history(self.sym, 3).index[-1]
            self.checked, self.event_checks = 0, []
            self.schedule.on(self.date_rules.every_day(), self.time_rules.at(12, 0), self.noon)

        def noon(self):
            last = self.history(self.sym, 5).index[-1]
            self.event_checks.append((self.time, last))

        def on_data(self, data):
            frame = self.history(self.sym, 10)
            assert frame.index[-1] == self.time
            assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
            assert frame["close"].iloc[-1] == data["AAPL"].close == self.securities["AAPL"].price
            panel = self.history(["AAPL", "GOOGL"], 2)
            assert panel.index.names == ["datetime", "instrument"]
            assert panel.index.get_level_values("datetime").max() == self.time
            self.checked += 1

    result = run_backtest(Peek, [aapl, load_prices("GOOGL")], CASH)
    algo = result.algorithm
    assert algo.checked == len(result.equity) > 400
    assert algo.init_last < START  # initialize sees only the bars before the start
    # noon events on a trading day see the previous day's bar, never that day's
    assert algo.event_checks and all(last < when.replace(hour=0) for when, last in
                                     algo.event_checks)
    assert all(when.hour == 12 for when, _ in algo.event_checks)


def test_an_event_at_the_close_sees_that_bar_and_fills_at_its_close(aapl, closes):
    class AtClose(Algorithm):
        def initialize(self):
            self.set_start_date(START)
            self.sym = self.add_equity("AAPL")
            self.schedule.on(self.date_rules.on("2016-03-01"), self.time_rules.at(16, 0),
                             self.buy)
            self.schedule.on(self.date_rules.on("2016-03-02"), self.time_rules.at(9, 30),
                             self.sell)

        def buy(self):
            assert self.history(self.sym, 1).index[-1] == datetime(2016, 3, 1)
            self.market_order(self.sym, 10)

        def sell(self):
            assert self.history(self.sym, 1).index[-1] == datetime(2016, 3, 1)
            self.market_order(self.sym, -4)

    buy, sell = run_backtest(AtClose, aapl, CASH).fills
    assert (buy.time, buy.price) == (datetime(2016, 3, 1, 16), closes[datetime(2016, 3, 1)])
    assert (sell.time, sell.price) == (datetime(2016, 3, 2, 9, 30), buy.price)


@pytest.mark.slow
def test_scheduled_training_fires_at_month_starts_and_serves_on_data_afterwards(
        aapl, closes, tmp_path):
    class Monthly(Algorithm):
        def initialize(self):
            self.set_start_date(START)
            self.set_end_date(END)
            self.sym = self.add_equity("AAPL")
            self.seen, self.versions, self.now_at = [], [], None
            self.train(self.fit_now)
            self.train(self.date_rules.month_start(), self.time_rules.at(8, 0), self.fit)
            self.schedule.on(self.date_rules.every(DayOfWeek.MONDAY), self.time_rules.at(8, 0),
                             lambda: self.seen.append(("monday", self.time, self.version())))

        def version(self):
            return self.trainer.model.version

        def fit_now(self):
            self.now_at = (self.time, self.history(self.sym, 1).index[-1])
            return self.fit()

        def fit(self):
            closes = self.history(self.sym, 60)["close"].to_numpy()
            X = np.diff(np.log(closes))[:-1].reshape(-1, 1)
            y = (np.diff(closes)[1:] > 0).astype(int)
            self.seen.append(("fit", self.time, self.history(self.sym, 1).index[-1]))
            return self.zoo.train(self.zoo.build("random_forest", n_estimators=5), X, y)

        def on_data(self, data):
            self.versions.append((self.time, self.version()))
            x = np.log(data["AAPL"].close / self.history(self.sym, 2)["close"].iloc[0])
            assert self.trainer.model.predict([[x]])[0] in (0, 1)

    result = run_backtest(Monthly, aapl, CASH, object_store=ObjectStore(tmp_path / "store"))
    last_close = closes.index[-1] + pd.Timedelta(hours=16)
    expected = [t for t in pd.date_range(START, END, freq="MS") + pd.Timedelta(hours=8)
                if START < t <= last_close]
    scheduled = [r for r in result.training if r.name == "fit"]
    assert [r.at for r in scheduled] == [t.to_pydatetime() for t in expected]
    assert len(expected) == 24 and all(r.status == "served" and r.charged >= 1
                                       for r in result.training)
    algo = result.algorithm
    assert algo.now_at[0] == START and algo.now_at[1] < START
    for _kind, when, last in [s for s in algo.seen if s[0] == "fit"][1:]:  # after fit_now
        assert when.hour == 8 and last < when.replace(hour=0)  # only bars closed by then
    # on_data of each bar serves every model trained before that bar's close
    times = [r.at for r in result.training]
    for when, version in algo.versions:
        assert version == sum(t <= when + timedelta(hours=16) for t in times)
    # at 08:00 on a Monday month start the training ran before the Monday event
    mondays = {when: version for kind, when, version in algo.seen if kind == "monday"}
    assert mondays[datetime(2016, 2, 1, 8)] == 3  # fit_now, Jan 1st, Feb 1st


def test_object_store_survives_across_the_run_and_across_runs(aapl, tmp_path):
    class Counter(Algorithm):
        def initialize(self):
            self.set_start_date(START)
            self.sym = self.add_equity("AAPL")
            store = self.object_store
            self.found = store.read_json("state/count.json") if store.contains_key(
                "state/count.json") else None
            store.save_json("state/count.json", {"months": 0})
            self.schedule.on(self.date_rules.month_start(), self.time_rules.midnight, self.bump)

        def bump(self):
            state = self.object_store.read_json("state/count.json")
            self.object_store.save_json("state/count.json", {"months": state["months"] + 1})

        def on_end_of_algorithm(self):
            X = np.arange(20.0).reshape(-1, 1)
            model = self.zoo.train(self.zoo.build("random_forest", n_estimators=3), X, X[:, 0] > 9)
            self.zoo.save(model, "counter/model")

    store = ObjectStore(tmp_path / "store")
    first = run_backtest(Counter, aapl, CASH, object_store=store)
    assert first.algorithm.found is None
    assert store.read_json("state/count.json") == {"months": 24}  # Feb 2016 .. Dec 2017 + Jan
    again = run_backtest(Counter, aapl, CASH, object_store=ObjectStore(tmp_path / "store"))
    assert again.algorithm.found == {"months": 24}
    model = Zoo(ObjectStore(tmp_path / "store")).load("counter/model")
    assert list(model.predict([[3.0], [15.0]])) == [False, True]


def test_without_a_store_a_temporary_one_lives_as_long_as_the_result(aapl):
    class Saver(_Once):
        def initialize(self):
            super().initialize()
            self.object_store.save("note.txt", "kept")

    result = _run(Saver, aapl)
    folder = result.algorithm.object_store.store.url
    assert result.algorithm.object_store.read("note.txt") == "kept" and os.path.isdir(folder)
    del result
    gc.collect()
    assert not os.path.exists(folder)


def test_warm_up_feeds_earlier_bars_without_trading(aapl, closes):
    class Warm(_Once):
        def initialize(self):
            super().initialize()
            self.set_warm_up(10)
            self.warming = []

        def on_data(self, data):
            self.warming.append(self.is_warming_up)
            if self.is_warming_up:
                assert self.market_order(self.aapl, 1).status == "invalid"
                return
            super().on_data(data)

    result = _run(Warm, aapl)
    assert result.algorithm.warming[:10] == [True] * 10 and not any(
        result.algorithm.warming[10:])
    assert len(result.equity) == len(closes) and len(result.fills) == 1
    assert sum(o.status == "invalid" for o in result.orders) == 10


def test_panel_and_mapping_inputs_give_the_same_run(aapl):
    googl = load_prices("GOOGL")
    frames = {"AAPL": _frame(aapl), "GOOGL": _frame(googl)}
    panel = pd.concat(frames, names=["instrument", "datetime"]).swaplevel().sort_index()

    class Pair(Algorithm):
        def initialize(self):
            self.set_start_date(START)
            self.add_equity("AAPL")
            self.add_equity("GOOGL")

        def on_data(self, data):
            if self.time.month % 2 == 0:
                self.set_holdings("AAPL", 0.5)
                self.set_holdings("GOOGL", -0.3)
            else:
                self.liquidate()

    runs = [run_backtest(Pair, d, CASH) for d in (panel, frames, [aapl, googl])]
    for other in runs[1:]:
        pd.testing.assert_series_equal(runs[0].equity, other.equity)
        assert runs[0].orders == other.orders
    assert len(runs[0].fills) > 10


def test_parameters_reach_get_parameter(aapl):
    class Param(_Once):
        def initialize(self):
            super().initialize()
            self.got = (self.get_parameter("fraction", 1.0), self.get_parameter("absent", 7),
                        self.get_parameter("name"), self.get_parameter("flag", True))
            self.action = ("set_holdings", self.got[0])

    result = run_backtest(Param, aapl, parameters={"fraction": "0.25", "name": "x",
                                                   "flag": "false"})
    assert result.algorithm.got == (0.25, 7, "x", False)
    fill = result.fills[0]
    assert fill.quantity == math.trunc(0.25 * 100_000 / fill.price)  # the default cash


@pytest.mark.parametrize("fraction", [np.float32(0.5), np.float64(0.5), np.int64(1)])
def test_numpy_numbers_are_accepted_as_targets_and_cash(aapl, closes, fraction):
    # A model's prediction is a numpy scalar (float32 from torch or keras): it must size a
    # position the way the same Python number does.
    class FromModel(_Once):
        action = ("set_holdings", fraction)

        def initialize(self):
            super().initialize()
            self.set_cash(np.float32(50_000))

    class Plain(FromModel):
        action = ("set_holdings", float(fraction))

    result = run_backtest(FromModel, aapl)
    (got,), (want,) = result.fills, run_backtest(Plain, aapl).fills
    assert result.starting_cash == 50_000 and got.price == closes.iloc[0]
    assert got.quantity == want.quantity == min(
        math.trunc(50_000 * float(fraction) / got.price),
        math.floor(50_000 / (got.price * 1.0005)))


# -- bad input -------------------------------------------------------------------------------
def _failing(body):
    class Bad(Algorithm):
        def initialize(self):
            self.set_start_date(START)
            self.sym = self.add_equity("AAPL")

        def on_data(self, data):
            body(self)

    return Bad


@pytest.mark.parametrize("body, error, match", [
    (lambda s: s.add_equity("MSFT"), ValueError, "no data for 'MSFT'.*AAPL"),
    (lambda s: s.set_holdings("GOOGL", 0.5), ValueError, "'GOOGL' was not added"),
    (lambda s: s.set_holdings(s.sym, 1.5), ValueError, "between -1 and 1"),
    (lambda s: s.set_holdings(s.sym, -2), ValueError, "between -1 and 1"),
    (lambda s: s.market_order(s.sym, 1.5), ValueError, "whole number"),
    (lambda s: s.market_order(s.sym, float("nan")), ValueError, "finite"),
    (lambda s: s.liquidate("TSLA"), ValueError, "'TSLA' was not added"),
    (lambda s: s.history(s.sym, 0), ValueError, "positive number of bars"),
    (lambda s: s.history("MSFT", 3), ValueError, "no data for 'MSFT'"),
    (lambda s: s.train("monthly", s.time_rules.noon, print), TypeError, "date_rule"),
    (lambda s: s.schedule.on(s.date_rules.every_day(), "noon", print), TypeError, "time_rule"),
    (lambda s: s.portfolio["GOOGL"], KeyError, "add_equity"),
])
def test_bad_calls_raise_clear_errors(aapl, body, error, match):
    with pytest.raises(error, match=match):
        run_backtest(_failing(body), [aapl, load_prices("TSLA")], CASH)


def test_bad_runs_raise_clear_errors(aapl, tmp_path, monkeypatch):
    with pytest.raises(TypeError, match="Algorithm subclass"):
        run_backtest(object, aapl)
    with pytest.raises(ValueError, match="panel"):
        run_backtest(_Once, _frame(aapl))
    with pytest.raises(ValueError, match="no bars between"):
        run_backtest(_Once, aapl, start="2019-01-01")
    with pytest.raises(ValueError, match="no 'close' column"):
        run_backtest(_Once, {"AAPL": _frame(aapl).drop(columns="close")})
    with pytest.raises(ValueError, match="disagree"):
        run_backtest(_Once, aapl, object_store=ObjectStore(tmp_path / "a"),
                     zoo=Zoo(ObjectStore(tmp_path / "b")))
    with pytest.raises(ValueError, match="fee_rate"):
        run_backtest(_Once, aapl, fee_rate=-0.1)

    class Failing(_Once):
        def initialize(self):
            super().initialize()
            self.train(self.date_rules.month_start(), self.time_rules.at(8, 0), self.boom)

        def boom(self):
            raise ArithmeticError("diverged")

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(ArithmeticError, match="diverged"):  # as an exception in a LEAN backtest
        run_backtest(Failing, aapl)
    assert list(scratch.iterdir()) == []  # the temporary store went with the failed run


def test_orders_in_initialize_are_refused_and_statistics_start_from_the_cash(aapl, closes):
    # An order in initialize would fill at the close before the start and leave
    # starting_cash as the change: a +100,000% "total return" on a buy and hold.
    class Early(_Once):
        def initialize(self):
            super().initialize()
            self.early = self.set_holdings(self.aapl, 1.0)

    result = _run(Early, aapl)
    algo = result.algorithm
    assert algo.early.status == "invalid" and "initialize" in algo.early.message
    assert any("initialize" in entry.message for entry in result.logs)
    assert result.starting_cash == CASH
    (fill,) = result.fills  # the on_data order of the first bar, as without the early one
    assert fill.time == closes.index[0].to_pydatetime()
    stats = result.statistics()
    assert stats["total_return"] == pytest.approx(result.final_value / CASH - 1)
    assert -0.5 < stats["total_return"] < 1.0


def test_scheduled_orders_are_warm_up_by_their_own_time(aapl):
    class WarmEvents(Algorithm):
        def initialize(self):
            self.set_start_date(START)
            self.set_end_date(datetime(2016, 1, 31))
            self.sym = self.add_equity("AAPL")
            self.set_warm_up(5)
            self.flags = []
            self.schedule.on(self.date_rules.every_day(), self.time_rules.at(9, 30), self.buy)

        def buy(self):
            self.flags.append((self.time, self.is_warming_up))
            self.market_order(self.sym, 1)

    result = run_backtest(WarmEvents, aapl, CASH)
    assert result.fills and all(o.time >= START for o in result.fills)
    assert any(o.time < START for o in result.orders)
    assert all(o.status == "invalid" for o in result.orders if o.time < START)
    assert all(warm == (when < START) for when, warm in result.algorithm.flags)


def test_an_event_can_schedule_another_event(aapl):
    class Nested(Algorithm):
        def initialize(self):
            self.set_start_date(START)
            self.set_end_date(datetime(2016, 3, 31))
            self.add_equity("AAPL")
            self.noons = []
            self.schedule.on(self.date_rules.on("2016-03-01"), self.time_rules.at(8, 0),
                             self.arm)

        def arm(self):
            self.schedule.on(self.date_rules.every_day(), self.time_rules.at(12, 0),
                             lambda: self.noons.append(self.time))

    noons = run_backtest(Nested, aapl, CASH).algorithm.noons
    assert noons[0] == datetime(2016, 3, 1, 12) and noons == sorted(noons)


def test_liquidate_all_skips_a_symbol_without_a_price_yet(aapl):
    frame = _frame(aapl)
    later = frame[frame.index >= "2016-06-01"]

    class Two(Algorithm):
        def initialize(self):
            self.set_start_date(START)
            self.a, self.b = self.add_equity("A"), self.add_equity("B")

        def on_data(self, data):
            if self.time.month == 1:
                self.set_holdings(self.a, 0.5)
            elif self.time.month == 2:
                self.liquidate()

    result = run_backtest(Two, {"A": frame, "B": later}, CASH)
    assert result.fills and not result.algorithm.portfolio.invested


def _constant(value):
    from sklearn.dummy import DummyRegressor

    return DummyRegressor(strategy="constant", constant=float(value)).fit([[0.0], [0.0]], [0, 0])


def test_a_backtest_follows_the_alias_as_it_was_at_the_start(aapl, tmp_path):
    from alphazoo.training import save_version

    store = ObjectStore(tmp_path / "store")
    zoo = Zoo(store)
    for value in (1, 2):
        save_version(zoo, _constant(value), "spy/m")
    zoo.registry.promote("spy/m", 1, "production")
    key, _ = save_version(zoo, _constant(3), "spy/m", update_latest=False)
    data = bytearray(store.read_bytes(key))
    data[len(data) // 2] ^= 0xFF
    store.save_bytes(key, bytes(data))

    class Follows(Algorithm):
        def initialize(self):
            self.set_start_date(START)
            self.set_end_date(datetime(2016, 2, 1))
            self.sym = self.add_equity("AAPL")
            self.model = self.follow("spy/m@production")
            self.broken = self.follow("spy/m@v3")
            self.nothing = self.follow("spy/m@staging")
            self.scores = []

        def on_data(self, data):
            if self.model.ready:  # the LEAN-style readiness flag
                self.scores.append(self.model.predict([[0.0]])[0])

    result = run_backtest(Follows, aapl, CASH, object_store=store)
    algo = result.algorithm
    assert not algo.live_mode
    assert algo.scores and set(algo.scores) == {1.0}  # production at the start: v1, not latest
    assert not algo.broken.ready and not algo.nothing.ready
    assert any("spy/m/v000003 was not served" in entry.message and entry.level == "ERROR"
               for entry in result.logs)


def test_live_mode_keeps_following_and_closing_ends_the_threads(tmp_path):
    import threading

    from alphazoo.contrib.algorithm import AlgorithmDriver, LeanObjectStore
    from alphazoo.training import save_version

    store = ObjectStore(tmp_path / "store")
    zoo = Zoo(store)
    for value in (1, 2):
        save_version(zoo, _constant(value), "spy/m")
    zoo.registry.promote("spy/m", 1, "production")

    class Live(Algorithm):
        def initialize(self):
            self.model = self.follow("spy/m@production", poll=timedelta(milliseconds=20))

    algo = Live()
    driver = AlgorithmDriver(algo)
    driver.configure({}, LeanObjectStore(store), zoo, first=START, live=True)
    driver.initialize()
    assert algo.live_mode
    with pytest.raises(AttributeError):
        algo.live_mode = False  # set by the runner, read-only to the algorithm as in LEAN
    assert algo.model.wait(30) and algo.model.predict([[0.0]])[0] == 1.0
    zoo.registry.promote("spy/m", 2, "production", note="better")
    assert algo.model.wait_for_version(2, 30) and algo.model.predict([[0.0]])[0] == 2.0
    driver.finish()  # joins the follower's thread
    assert not [t for t in threading.enumerate() if t.name.startswith("alphazoo-follow-")]
