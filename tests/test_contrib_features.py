"""alphazoo.contrib.features: the LEAN feature set and next-bar labels, without look-ahead,
for one symbol or a panel, on the bundled data and the 20-year files in ../shared/data."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alphazoo.contrib.features import (
    FEATURES,
    LABELS,
    bars_frame,
    compute_features,
    compute_labels,
    load_panel,
    read_bars_csv,
    split_panel,
    to_panel,
)
from alphazoo.datasets import load_prices

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(),
                                  reason=f"real data folder {SHARED} is absent")

# First row index with a value, per feature (documented warm-up lengths).
WARM_UP = {"ret_1d": 1, "ret_5d": 5, "ret_20d": 20, "vol_5d": 5, "vol_20d": 20,
           "ma_ratio_5": 4, "ma_ratio_20": 19, "rsi_14": 14, "macd": 25, "bollinger": 19}


def frame_of(close, start="2020-01-01") -> pd.DataFrame:
    close = np.asarray(close, dtype=float)
    index = pd.bdate_range(start, periods=len(close), name="datetime")
    return pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99,
                         "close": close, "volume": 1e6}, index=index)


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return load_panel()


@pytest.fixture(scope="module")
def aapl() -> pd.DataFrame:
    return bars_frame(load_prices("AAPL"))


# ------------------------------------------------------------------------- shape and contract

def test_panel_features_and_labels_share_the_panel_index(panel):
    X, y = compute_features(panel), compute_labels(panel)
    assert list(X.columns) == FEATURES and list(y.columns) == LABELS
    assert X.index.equals(panel.index) and y.index.equals(panel.index)
    assert X.index.names == ["datetime", "instrument"]
    assert (X.dtypes == "float64").all() and (y.dtypes == "float64").all()
    assert sorted(X.index.get_level_values("instrument").unique()) == \
        ["AAPL", "COKE", "GOOGL", "TSLA", "YHOO"]


def test_one_symbol_gets_the_instrument_level(aapl):
    named = compute_features(aapl)  # bars_frame records the symbol in attrs
    assert set(named.index.get_level_values("instrument")) == {"AAPL"}
    plain = aapl.copy()
    plain.attrs.clear()
    assert set(compute_features(plain).index.get_level_values("instrument")) == {"symbol"}
    explicit = compute_features(plain, instrument="X")
    assert set(explicit.index.get_level_values("instrument")) == {"X"}
    from_bars = compute_features(load_prices("AAPL"))
    pd.testing.assert_frame_equal(from_bars, named)
    np.testing.assert_array_equal(explicit.to_numpy(), named.to_numpy())
    panel = to_panel({"AAPL": aapl})
    pd.testing.assert_frame_equal(compute_features(panel, instrument="ignored"), named)


def test_warm_up_rows_are_nan_per_instrument_never_dropped(panel):
    X = compute_features(panel)
    for symbol, part in X.groupby(level="instrument"):
        for name, first in WARM_UP.items():
            column = part[name].to_numpy()
            assert np.isnan(column[:first]).all(), (symbol, name)
            assert not np.isnan(column[first:]).any(), (symbol, name)


def test_panel_equals_each_symbol_alone(panel):
    # No window reaches across an instrument boundary: the stacked computation is the
    # per-symbol one, row for row.
    X = compute_features(panel)
    for symbol, frame in split_panel(panel).items():
        alone = compute_features(frame)
        pd.testing.assert_frame_equal(X.xs(symbol, level="instrument", drop_level=False),
                                      alone, check_exact=True)


# ----------------------------------------------------------------------------- no look-ahead

@pytest.mark.slow
def test_every_truncation_reproduces_the_full_history_features(aapl):
    full = compute_features(aapl).to_numpy()
    for t in range(len(aapl)):
        cut = compute_features(aapl.iloc[:t + 1]).to_numpy()
        np.testing.assert_array_equal(cut[t], full[t], err_msg=f"row {t}")


@pytest.mark.slow
@needs_shared
def test_truncations_of_twenty_years_of_nvda_reproduce_the_features():
    bars = read_bars_csv(SHARED / "nvda-1999-2014.csv")
    full = compute_features(bars).to_numpy()
    for t in np.unique(np.r_[0:30, np.linspace(30, len(bars) - 1, 40).astype(int)]):
        cut = compute_features(bars.iloc[:t + 1]).to_numpy()
        np.testing.assert_array_equal(cut[-1], full[t], err_msg=f"row {t}")


def test_panel_truncation_at_sampled_dates(panel):
    full = compute_features(panel)
    dates = panel.index.get_level_values("datetime").unique()
    for cut_date in dates[::37]:
        cut = compute_features(panel.loc[:cut_date])
        pd.testing.assert_frame_equal(cut.loc[[cut_date]], full.loc[[cut_date]],
                                      check_exact=True)


def test_changing_later_bars_never_changes_earlier_features(aapl):
    rng = np.random.default_rng(0)
    base = compute_features(aapl)
    for t in (0, 13, 25, 200, len(aapl) - 2):
        changed = aapl.copy()
        factor = rng.uniform(0.5, 2.0, len(aapl) - t - 1)
        for column in ("open", "high", "low", "close", "volume"):
            changed.iloc[t + 1:, changed.columns.get_loc(column)] *= factor
        after = compute_features(changed)
        pd.testing.assert_frame_equal(after.iloc[:t + 1], base.iloc[:t + 1], check_exact=True)
        assert not after.iloc[t + 1:].equals(base.iloc[t + 1:])


def test_one_instrument_does_not_leak_into_another(panel):
    base = compute_features(panel)
    changed = panel.copy()
    tsla = changed.index.get_level_values("instrument") == "TSLA"
    changed.loc[tsla, "close"] *= np.linspace(0.5, 3.0, tsla.sum())
    after = compute_features(changed)
    pd.testing.assert_frame_equal(after[~tsla], base[~tsla], check_exact=True)
    assert not after[tsla].equals(base[tsla])


def test_labels_look_exactly_one_bar_ahead(aapl):
    base = compute_labels(aapl)
    t = 100
    moved = aapl.copy()
    moved.iloc[t + 1, moved.columns.get_loc("close")] *= 1.5
    after = compute_labels(moved)
    assert after["label_return"].iloc[t] != base["label_return"].iloc[t]
    pd.testing.assert_frame_equal(after.iloc[:t], base.iloc[:t])      # earlier labels fixed
    later = aapl.copy()
    later.iloc[t + 2:, later.columns.get_loc("close")] *= 1.5
    pd.testing.assert_frame_equal(compute_labels(later).iloc[:t + 1], base.iloc[:t + 1])
    close = aapl["close"].to_numpy()
    np.testing.assert_allclose(base["label_return"].to_numpy()[:-1], close[1:] / close[:-1] - 1)
    assert base.iloc[-1].isna().all()


def test_labels_closed_form_and_last_bar_per_instrument(panel):
    y = compute_labels(frame_of([1.0, 2.0, 1.0, 1.0]), instrument="T")
    np.testing.assert_array_equal(y["label_direction"], [1.0, 0.0, 0.0, np.nan])
    np.testing.assert_array_equal(y["label_return"], [1.0, -0.5, 0.0, np.nan])
    labels = compute_labels(panel)
    for symbol, part in labels.groupby(level="instrument"):
        assert part.iloc[-1].isna().all() and part.iloc[:-1].notna().all().all(), symbol
    # YHOO's last bar is 2017-06-16; its label must not borrow another symbol's next bar.
    assert labels.loc[("2017-06-16", "YHOO")].isna().all()


# ------------------------------------------------------------------------------ closed forms

def test_geometric_series_returns_volatility_and_moving_average():
    growth = 1.01
    X = compute_features(frame_of(100.0 * growth ** np.arange(60)))
    last = X.iloc[-1]
    assert last["ret_1d"] == pytest.approx(growth - 1, rel=1e-12)
    assert last["ret_5d"] == pytest.approx(growth ** 5 - 1, rel=1e-12)
    assert last["ret_20d"] == pytest.approx(growth ** 20 - 1, rel=1e-12)
    assert last["vol_5d"] == pytest.approx(0.0, abs=1e-12)
    ma5 = sum(growth ** -k for k in range(5)) / 5
    assert last["ma_ratio_5"] == pytest.approx(1 / ma5 - 1, rel=1e-10)
    assert last["rsi_14"] == 1.0


def test_rsi_extremes_and_flat_prices():
    rising = compute_features(frame_of(np.arange(1.0, 41.0)))["rsi_14"]
    falling = compute_features(frame_of(np.arange(40.0, 0.0, -1.0)))["rsi_14"]
    flat = compute_features(frame_of(np.full(30, 7.0)))["rsi_14"]
    assert np.isnan(rising.iloc[:14]).all()
    assert (rising.iloc[14:] == 1.0).all() and (falling.iloc[14:] == 0.0).all()
    assert (flat.iloc[14:] == 0.5).all()
    # Wilder's averages never forget a move: flat after a fall is 0, not the flat 0.5.
    after_fall = compute_features(frame_of(np.r_[np.full(20, 9.0), 8.0, np.full(100, 8.0)]))
    assert (after_fall["rsi_14"].iloc[20:] == 0.0).all()


def test_rsi_matches_wilders_recursion_by_hand():
    close = 50 + np.cumsum(np.random.default_rng(1).normal(0, 1, 80))
    change = np.diff(close)
    gains, losses = np.maximum(change, 0), np.maximum(-change, 0)
    avg_gain, avg_loss = gains[:14].mean(), losses[:14].mean()
    expected = [avg_gain / (avg_gain + avg_loss)]
    for g, loss in zip(gains[14:], losses[14:]):
        avg_gain = (13 * avg_gain + g) / 14
        avg_loss = (13 * avg_loss + loss) / 14
        expected.append(avg_gain / (avg_gain + avg_loss))
    rsi = compute_features(frame_of(close))["rsi_14"].to_numpy()
    np.testing.assert_allclose(rsi[14:], expected, rtol=1e-12)


def test_macd_matches_hand_computed_emas():
    close = 20 + np.cumsum(np.random.default_rng(2).normal(0, 0.5, 60))

    def ema(values, span):
        alpha, out = 2 / (span + 1), [values[0]]
        for v in values[1:]:
            out.append(alpha * v + (1 - alpha) * out[-1])
        return np.array(out)

    expected = (ema(close, 12) - ema(close, 26)) / close
    macd = compute_features(frame_of(close))["macd"].to_numpy()
    assert np.isnan(macd[:25]).all()
    np.testing.assert_allclose(macd[25:], expected[25:], rtol=1e-10)


def test_bollinger_of_a_constant_then_jump_series():
    c, d = 10.0, 1.0
    X = compute_features(frame_of([c] * 20 + [c + d]))
    # Window: 19 closes at c and one at c + d -> mean c + d/20, population std d*sqrt(19)/20,
    # position (close - mid + 2 std) / (4 std) = 1/2 + sqrt(19)/4, above the upper band.
    assert X["bollinger"].iloc[-1] == pytest.approx(0.5 + math.sqrt(19) / 4, rel=1e-9)
    assert X["bollinger"].iloc[19] == 0.5  # a flat window: zero-width band
    down = compute_features(frame_of([c] * 20 + [c - d]))
    assert down["bollinger"].iloc[-1] == pytest.approx(0.5 - math.sqrt(19) / 4, rel=1e-9)


# --------------------------------------------------------------------------- files and panels

@needs_shared
def test_backtrader_csv_uses_adjusted_prices():
    raw = pd.read_csv(SHARED / "nvda-1999-2014.csv", index_col="Date", parse_dates=True)
    bars = read_bars_csv(SHARED / "nvda-1999-2014.csv")
    assert bars.attrs["symbol"] == "NVDA" and list(bars.columns) == \
        ["open", "high", "low", "close", "volume"]
    assert bars.index.is_monotonic_increasing and len(bars) == len(raw)
    np.testing.assert_allclose(bars["close"], raw["Adj Close"], rtol=1e-12)
    factor = raw["Adj Close"] / raw["Close"]
    np.testing.assert_allclose(bars["open"], raw["Open"] * factor, rtol=1e-12)
    np.testing.assert_allclose(bars["low"], raw["Low"] * factor, rtol=1e-12)
    np.testing.assert_array_equal(bars["volume"], raw["Volume"])
    X = compute_features(bars)
    assert X.iloc[25:].notna().all().all()


@needs_shared
def test_five_tickers_csv_is_the_bundled_panel(panel):
    read = read_bars_csv(SHARED / "five-tickers-2015-2017.csv")
    assert read.index.names == ["datetime", "instrument"] and read.index.is_monotonic_increasing
    assert read.index.equals(panel.index)
    # The bundled file holds the same adjusted prices rounded to six significant digits.
    np.testing.assert_allclose(read[["open", "high", "low", "close"]],
                               panel[["open", "high", "low", "close"]], rtol=1e-5)


def test_csv_newest_first_is_sorted_and_duplicates_refused(tmp_path):
    path = tmp_path / "abc-2020.csv"
    path.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n"
                    "2020-01-03,2,2,2,2,1,10\n2020-01-02,4,4,4,4,2,10\n")
    bars = read_bars_csv(path)
    assert bars.attrs["symbol"] == "ABC"
    assert list(bars.index.strftime("%Y-%m-%d")) == ["2020-01-02", "2020-01-03"]
    assert list(bars["close"]) == [2.0, 1.0] and list(bars["open"]) == [2.0, 1.0]
    path.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n"
                    "2020-01-02,2,2,2,2,1,10\n2020-01-02,4,4,4,4,2,10\n")
    with pytest.raises(ValueError, match="duplicate date"):
        read_bars_csv(path)


def test_to_panel_and_split_panel_round_trip(panel):
    parts = split_panel(panel)
    assert sorted(parts) == ["AAPL", "COKE", "GOOGL", "TSLA", "YHOO"]
    assert parts["YHOO"].index[-1] == pd.Timestamp("2017-06-16")
    pd.testing.assert_frame_equal(to_panel(parts), panel)
    swapped = panel.swaplevel().sort_index()
    pd.testing.assert_frame_equal(to_panel(swapped), panel)


# ------------------------------------------------------------------------------- validation

@pytest.mark.parametrize("mutate, message", [
    (lambda f: f.drop(columns="close"), "missing column 'close'"),
    (lambda f: f.rename(columns=str.title), "missing column 'close'"),
    (lambda f: f.iloc[::-1], "not sorted"),
    (lambda f: pd.concat([f.iloc[:3], f.iloc[2:]]), "duplicate date"),
    (lambda f: f.assign(close=f["close"].where(f.index != f.index[5], 0.0)), "non-positive"),
    (lambda f: f.assign(low=f["low"].where(f.index != f.index[5], -1.0)), "non-positive low"),
    (lambda f: f.assign(close=f["close"].where(f.index != f.index[5])), "missing close"),
    (lambda f: f.reset_index(drop=True), "DatetimeIndex"),
])
def test_bad_bars_are_refused_with_the_reason(mutate, message):
    bars = mutate(frame_of(np.linspace(10, 20, 30)))
    with pytest.raises(ValueError, match=message):
        compute_features(bars)
    with pytest.raises(ValueError, match=message):
        compute_labels(bars)


def test_bad_panels_are_refused(panel):
    with pytest.raises(ValueError, match="not sorted"):
        compute_features(panel.iloc[::-1])
    with pytest.raises(ValueError, match="duplicate"):
        compute_features(pd.concat([panel, panel.iloc[:1]]).sort_index())
    with pytest.raises(TypeError):
        compute_features([1.0, 2.0])


# ------------------------------------------------------------- trading days instead of bars

needs_calendars = pytest.mark.skipif(importlib.util.find_spec("exchange_calendars") is None,
                                     reason="exchange_calendars (alphazoo[calendars]) is absent")


@needs_shared
def test_the_bundled_gaps_are_gaps_of_the_source_too(panel):
    # NYSE sessions the bundled bars lack (sdk/data/README.md): missing in the source file as
    # well, so there is nothing to fill them from.
    source = read_bars_csv(SHARED / "five-tickers-2015-2017.csv")
    for date, symbols in (("2017-08-07", ["AAPL"]),
                          ("2017-11-08", ["AAPL", "COKE", "GOOGL", "TSLA"])):
        for frame in (panel, source):
            held = frame.index[frame.index.get_level_values("datetime") == date]
            assert not set(symbols) & set(held.get_level_values("instrument"))


@needs_calendars
def test_calendar_windows_count_trading_days_across_a_missing_bar(aapl):
    bars = compute_features(aapl)
    sessions = compute_features(aapl, calendar="XNYS")
    close = aapl["close"]
    day = sessions.xs("AAPL", level="instrument")
    # 2017-08-07 has no bar: 5 trading days before Friday 2017-08-11 is 08-04, where counting
    # bars reaches back to 08-03.
    assert day.loc["2017-08-11", "ret_5d"] == close["2017-08-11"] / close["2017-08-04"] - 1
    assert bars.xs("AAPL", level="instrument").loc["2017-08-11", "ret_5d"] == \
        close["2017-08-11"] / close["2017-08-03"] - 1
    # What reaches the missing session is unknown, not stretched over two days.
    assert math.isnan(day.loc["2017-08-08", "ret_1d"])           # 08-04 -> 08-08: two sessions
    assert math.isnan(day.loc["2017-08-14", "ret_5d"])           # from 08-07
    assert day.loc["2017-08-08":"2017-08-14", "vol_5d"].isna().all()
    assert day.loc["2017-08-15", "vol_5d"] == bars.xs("AAPL", level="instrument").loc[
        "2017-08-15", "vol_5d"]                                  # window clear of the gap again
    labels = compute_labels(aapl, calendar="XNYS").xs("AAPL", level="instrument")
    assert math.isnan(labels.loc["2017-08-04", "label_return"])  # the next session has no bar
    assert np.isfinite(sessions.loc[:, "rsi_14"].iloc[-1]) and np.isfinite(day["macd"].iloc[-1])


@needs_calendars
def test_without_gaps_trading_days_and_bars_agree_bit_for_bit(panel):
    complete = panel.loc[:"2017-06-30"]    # every symbol has every NYSE session up to here
    pd.testing.assert_frame_equal(compute_features(complete, calendar="XNYS"),
                                  compute_features(complete), check_exact=True)
    pd.testing.assert_frame_equal(compute_labels(complete, calendar="NYSE"),
                                  compute_labels(complete), check_exact=True)


@needs_calendars
def test_calendar_features_see_no_future(aapl):
    full = compute_features(aapl, calendar="XNYS")
    for cut in ("2017-08-04", "2017-08-09", "2017-08-16", "2017-11-09", "2017-12-29"):
        part = compute_features(aapl.loc[:cut], calendar="XNYS")
        pd.testing.assert_frame_equal(part, full.loc[:cut], check_exact=True)


@needs_calendars
def test_a_bar_on_a_closed_day_is_refused_in_calendar_mode():
    bars = frame_of(np.linspace(100, 110, 30), start="2017-06-26")   # covers July 4th
    assert "2017-07-04" in bars.index
    compute_features(bars)                                           # bars mode: no calendar
    with pytest.raises(ValueError, match="2017-07-04, which is not a trading day of the XNYS"):
        compute_features(bars, calendar="XNYS")
    with pytest.raises(ValueError, match="unknown market"):
        compute_features(bars.drop(pd.Timestamp("2017-07-04")), calendar="MOON")
