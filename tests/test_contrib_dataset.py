"""Dataset: segments, label handling and per-instrument windows on hand-made panels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphazoo.contrib.dataset import Dataset


def _panel(days: int = 6, instruments=("A", "B")) -> tuple[pd.DataFrame, pd.Series]:
    dates = pd.date_range("2020-01-01", periods=days)
    index = pd.MultiIndex.from_product([dates, list(instruments)],
                                       names=["datetime", "instrument"])
    # Value encodes (day, instrument) so a window's contents can be checked exactly.
    day = np.repeat(np.arange(days), len(instruments))
    inst = np.tile(np.arange(len(instruments)), days)
    features = pd.DataFrame({"x": day * 10.0 + inst, "z": -day.astype(float)}, index=index)
    labels = pd.Series(day * 1.0, index=index, name="label_return")
    return features, labels


def test_segments_select_dates_inclusively():
    features, labels = _panel()
    ds = Dataset(features, labels, {"train": ("2020-01-01", "2020-01-03"),
                                    "test": ("2020-01-04", None)})
    X, y, index = ds.prepare("train")
    assert X.shape == (6, 2) and X.dtype == np.float32
    assert list(index.get_level_values(0).unique().day) == [1, 2, 3]
    assert list(y) == [0, 0, 1, 1, 2, 2]
    assert list(ds.dates("test").day) == [4, 5, 6]


def test_rows_with_missing_features_are_dropped_and_missing_labels_only_for_training():
    features, labels = _panel()
    features.iloc[0, 0] = np.nan  # warm-up row of A on day 1
    labels.iloc[-2:] = np.nan     # the last day has no next bar
    ds = Dataset(features, labels)
    assert len(ds) == 11
    X, y, _ = ds.prepare()
    assert len(X) == 9 and not np.isnan(y).any()
    X_all, y_all, _ = ds.prepare(labels=False)
    assert len(X_all) == 11 and y_all is None


def test_windows_stay_within_one_instrument_and_end_at_the_row():
    features, labels = _panel()
    ds = Dataset(features, labels, {"test": ("2020-01-04", None)})
    X, y, index = ds.prepare("test", sequence=3)
    assert X.shape == (6, 3, 2)
    for window, (date, instrument) in zip(X, index):
        day = date.day - 1
        inst = 0 if instrument == "A" else 1
        # oldest first, the row's own values last, never another instrument's
        assert list(window[:, 0]) == [(day - 2) * 10 + inst, (day - 1) * 10 + inst,
                                      day * 10 + inst]
    assert list(y) == [3, 3, 4, 4, 5, 5]


def test_windows_without_enough_history_are_left_out():
    features, labels = _panel(days=4)
    X, _, index = Dataset(features, labels).prepare(sequence=3)
    assert list(index.get_level_values(0).day) == [3, 3, 4, 4]
    assert X.shape == (4, 3, 2)


def test_windows_on_a_single_instrument_and_uneven_histories():
    features, labels = _panel(days=5, instruments=("A", "B"))
    features = features.drop(index=[(pd.Timestamp("2020-01-01"), "B")])  # B starts a day late
    X, _, index = Dataset(features, labels).prepare(sequence=2)
    got = {(d.day, i): list(w[:, 0]) for w, (d, i) in zip(X, index)}
    assert (2, "B") not in got  # B's first row has no previous row of its own
    assert got[(3, "B")] == [11.0, 21.0] and got[(2, "A")] == [0.0, 10.0]


def test_bad_input_is_refused_with_a_reason():
    features, labels = _panel()
    with pytest.raises(ValueError, match="MultiIndex"):
        Dataset(features.reset_index(level=1, drop=True))
    with pytest.raises(KeyError, match="no label column"):
        Dataset(features, labels.to_frame(), label="nope")
    with pytest.raises(ValueError, match="duplicate"):
        Dataset(pd.concat([features, features.iloc[:1]]))
    with pytest.raises(KeyError, match="segments: train"):
        Dataset(features, labels, {"train": (None, None)}).prepare("valid")
    with pytest.raises(ValueError, match="sequence"):
        Dataset(features, labels).prepare(sequence=0)


@pytest.mark.parametrize("bounds, message", [
    ("2020-01-03", "must be a .first, last. pair"),           # a date, not a pair
    (("2020-01-03",), "must be a .first, last. pair"),
    (("2020-01-01", "2020-01-04", "2020-01-06"), "must be a .first, last. pair"),
    (("2020-13-01", None), "'2020-13-01' is not a date"),
    ((None, "soon"), "'soon' is not a date"),
    (("NaT", None), "is not a date .use None for an open end"),
    (("2020-01-04", "2020-01-02"), "starts after it ends"),
    ((pd.Timestamp("2020-01-02", tz="UTC"), None), "tz-naive"),
])
def test_malformed_segments_are_refused_when_given(bounds, message):
    # Refused at construction, naming the segment: not as an unpacking error (or an empty
    # training set) the first time a model asks for the rows.
    features, labels = _panel()
    with pytest.raises(ValueError, match=f"segment 'train'.*{message}"):
        Dataset(features, labels, {"train": bounds})
    ds = Dataset(features, labels, {"train": (None, "2020-01-03")})
    with pytest.raises(ValueError, match=f"segment 'train'.*{message}"):
        ds.with_segments(train=bounds)
    assert list(ds.dates("train").day) == [1, 2, 3]  # the original is untouched


def test_segment_ends_may_be_strings_dates_or_timestamps():
    import datetime

    features, labels = _panel()
    ways = [("2020-01-02", "2020-01-04"), (datetime.date(2020, 1, 2), pd.Timestamp("2020-01-04")),
            [np.datetime64("2020-01-02"), "2020-01-04"]]
    for bounds in ways:
        ds = Dataset(features, labels, {"valid": bounds})
        assert list(ds.dates("valid").day) == [2, 3, 4]
    assert "valid=2020-01-02..2020-01-04" in repr(ds)


def test_rows_with_infinite_features_are_dropped_like_missing_ones():
    features, labels = _panel()
    features.iloc[3, 1] = np.inf   # a zero price's return, say
    features.iloc[5, 0] = 1e39     # finite in float64, infinite as float32
    ds = Dataset(features, labels)
    assert len(ds) == 10 and np.isfinite(ds.features.to_numpy()).all()
    X, y, index = ds.prepare()
    assert np.isfinite(X).all() and len(X) == len(y) == 10
    assert features.index[3] not in index and features.index[5] not in index


def test_from_bars_can_count_trading_days():
    pytest.importorskip("exchange_calendars")
    from alphazoo.contrib.features import compute_features, compute_labels, load_panel

    bars = load_panel(["AAPL"])
    ds = Dataset.from_bars(bars, label="label_return", calendar="XNYS")
    expected = Dataset(compute_features(bars, calendar="XNYS"),
                       compute_labels(bars, calendar="XNYS"), label="label_return")
    pd.testing.assert_frame_equal(ds.features, expected.features)
    pd.testing.assert_series_equal(ds.labels, expected.labels)
    # Rows whose windows (up to 20 sessions) reach the missing 2017-08-07 are unusable;
    # counting bars keeps them.
    dates = ds.features.index.get_level_values("datetime")
    assert pd.Timestamp("2017-08-08") not in dates and pd.Timestamp("2017-09-08") in dates
    assert np.isnan(ds.labels.xs("AAPL", level="instrument")["2017-08-04"])
    assert len(Dataset.from_bars(bars).features) > len(ds.features)
