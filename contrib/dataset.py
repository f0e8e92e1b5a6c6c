"""Features and labels on a ``(datetime, instrument)`` index, split into named date segments.

A small cousin of qlib's ``DatasetH``: a model asks for one segment's arrays with
:meth:`Dataset.prepare`; sequence models ask for windows of the last ``n`` rows of each
instrument, which may reach back before the segment's first date (history is not a leak: it is
known at the row's date).

>>> from alphazoo.contrib.dataset import Dataset
>>> from alphazoo.contrib.features import load_panel
>>> ds = Dataset.from_bars(load_panel(), segments={
...     "train": ("2015-01-01", "2016-06-30"), "valid": ("2016-07-01", "2016-12-31"),
...     "test": ("2017-01-01", "2017-12-31")})
>>> X, y, index = ds.prepare("train")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Dataset", "Segment"]

#: A segment: inclusive first and last date (strings or timestamps; None = open end).
Segment = tuple[Any, Any]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


class Dataset:
    """Features (and optionally labels) of one symbol or a panel, with named date segments.

    Parameters
    ----------
    features:
        DataFrame on a ``(datetime, instrument)`` MultiIndex, one column per feature. Rows with
        a missing feature (indicator warm-up) or an infinite one are dropped.
    labels:
        DataFrame or Series on the same index; ``label`` picks the column to learn. Rows with a
        missing label stay for prediction and are dropped only when labels are asked for.
    segments:
        ``{"train": (first, last), ...}`` inclusive date ranges; None ends are open.
    label:
        The label column (default: the first one).
    """

    def __init__(
        self,
        features: pd.DataFrame,
        labels: pd.DataFrame | pd.Series | None = None,
        segments: Mapping[str, Segment] | None = None,
        label: str | None = None,
    ) -> None:
        if not isinstance(features, pd.DataFrame):
            raise TypeError(f"features must be a pandas DataFrame, not {type(features).__name__}")
        if not isinstance(features.index, pd.MultiIndex) or features.index.nlevels != 2:
            raise ValueError(
                "features need a (datetime, instrument) MultiIndex; build them with "
                "alphazoo.contrib.features.compute_features"
            )
        features = features.sort_index()
        if features.index.has_duplicates:
            raise ValueError("features have duplicate (datetime, instrument) rows")
        values = features.to_numpy(dtype="float64", na_value=np.nan)
        # Infinite values (a zero price, or beyond float32) are as unusable as missing ones.
        usable = np.isfinite(values).all(axis=1) & (np.abs(values) <= _FLOAT32_MAX).all(axis=1)
        self.features = features[usable].astype("float32")
        self.label_name: str | None = None
        self.labels: pd.Series | None = None
        if labels is not None:
            frame = labels.to_frame() if isinstance(labels, pd.Series) else labels
            if label is not None and label not in frame.columns:
                raise KeyError(f"no label column {label!r}; columns: {list(frame.columns)}")
            self.label_name = str(label if label is not None else frame.columns[0])
            self.labels = frame[self.label_name].reindex(self.features.index)
        self.segments: dict[str, Segment] = _checked_segments(segments or {})

    @classmethod
    def from_bars(
        cls,
        bars: Any,
        *,
        label: str = "label_direction",
        segments: Mapping[str, Segment] | None = None,
        instrument: str | None = None,
        calendar: str | None = None,
    ) -> Dataset:
        """The LEAN feature set and next-day labels of ``bars`` (one symbol or a panel).

        ``bars``: a one-symbol OHLCV frame (named by ``instrument``, else its
        ``attrs["symbol"]``), a ``(datetime, instrument)`` panel, ``{symbol: frame}`` or
        :class:`~alphazoo.datasets.Bars`; see :mod:`alphazoo.contrib.features`. ``calendar``
        (a market such as ``"XNYS"``) counts feature windows and label horizons in that
        exchange's trading days instead of in bars.
        """
        from .features import compute_features, compute_labels

        features = compute_features(bars, instrument=instrument, calendar=calendar)
        labels = compute_labels(bars, instrument=instrument, calendar=calendar)
        return cls(features, labels, segments, label=label)

    # -- views -------------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [str(c) for c in self.features.columns]

    @property
    def instruments(self) -> list[str]:
        return [str(i) for i in self.features.index.get_level_values(1).unique()]

    def __len__(self) -> int:
        return len(self.features)

    def __repr__(self) -> str:
        segments = ", ".join(f"{k}={_day(v[0])}..{_day(v[1])}" for k, v in self.segments.items())
        return (f"Dataset({len(self)} rows, {len(self.instruments)} instruments, "
                f"{len(self.feature_names)} features, label={self.label_name!r}, {segments})")

    def dates(self, segment: str | None = None) -> pd.DatetimeIndex:
        """The distinct dates of ``segment`` (all dates when None)."""
        return pd.DatetimeIndex(self._rows(segment).get_level_values(0).unique())

    def with_segments(self, **segments: Segment) -> Dataset:
        """A copy sharing the data, with ``segments`` replaced (``walk-forward`` folds)."""
        copy = object.__new__(Dataset)
        copy.__dict__.update(self.__dict__)
        copy.segments = _checked_segments(segments)
        return copy

    def has_segment(self, name: str) -> bool:
        return name in self.segments

    def prepare(
        self, segment: str | None = None, *, sequence: int | None = None, labels: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None, pd.MultiIndex]:
        """``(X, y, index)`` of one segment (all rows when None), as float32 arrays.

        With ``labels`` (and a label column), rows whose label is missing (the last bar) are
        left out. ``sequence=n`` gives ``X`` of shape ``(rows, n, features)``: each row's last
        ``n`` rows of the same instrument, oldest first; rows with less history are left out.
        """
        index = self._rows(segment)
        if labels and self.labels is not None:
            index = index[self.labels.reindex(index).notna().to_numpy()]
        if sequence is None:
            X = self.features.loc[index].to_numpy(np.float32)
        else:
            X, index = self._windows(index, int(sequence))
        y = None
        if labels and self.labels is not None:
            y = self.labels.reindex(index).to_numpy(np.float32)
        return X, y, index

    # -- internals ---------------------------------------------------------------------------
    def _rows(self, segment: str | None) -> pd.MultiIndex:
        index = self.features.index
        if segment is None:
            return index
        if segment not in self.segments:
            known = ", ".join(self.segments) or "none"
            raise KeyError(f"no segment {segment!r} in this dataset; segments: {known}")
        first, last = self.segments[segment]
        dates = index.get_level_values(0)
        keep = np.ones(len(index), dtype=bool)
        if first is not None:
            keep &= dates >= first
        if last is not None:
            keep &= dates <= last
        return index[keep]

    def _windows(self, index: pd.MultiIndex, n: int) -> tuple[np.ndarray, pd.MultiIndex]:
        if n < 1:
            raise ValueError(f"sequence must be >= 1, got {n}")
        full = self.features.index
        values = self.features.to_numpy(np.float32)
        codes = np.asarray(full.codes[1])
        # The frame is sorted by (datetime, instrument), so one instrument's rows are spread
        # out: ``order`` lists row positions grouped by instrument, each group in date order.
        order = np.lexsort((np.arange(len(full)), codes))
        rank = np.empty(len(full), dtype=np.int64)  # a row's place within its instrument
        group_start = np.searchsorted(codes[order], codes)
        rank[order] = np.arange(len(full)) - group_start[order]
        positions = full.get_indexer(index)
        enough = rank[positions] >= n - 1
        positions = positions[enough]
        slot = group_start[positions] + rank[positions]
        take = order[slot[:, None] - (n - 1) + np.arange(n)[None, :]]
        return values[take], index[enough]


def _checked_segments(segments: Mapping[str, Segment]) -> dict[str, Segment]:
    """``segments`` with their ends as Timestamps (or None), refused early when malformed.

    Checked here rather than when a segment is first used: a typo should not surface as an
    unpacking error in the middle of a walk-forward.
    """
    if not isinstance(segments, Mapping):
        raise TypeError(f"segments must be a mapping of name -> (first, last), "
                        f"not {type(segments).__name__}")
    checked: dict[str, Segment] = {}
    for name, bounds in segments.items():
        if isinstance(bounds, (str, bytes)) or not isinstance(bounds, (tuple, list)) \
                or len(bounds) != 2:
            raise ValueError(f"segment {name!r} must be a (first, last) pair of dates (None for "
                             f"an open end), got {bounds!r}")
        ends: list[Any] = []
        for end in bounds:
            if end is None:
                ends.append(None)
                continue
            try:
                stamp = pd.Timestamp(end)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"segment {name!r}: {end!r} is not a date ({exc})") from None
            if stamp is pd.NaT:
                raise ValueError(f"segment {name!r}: {end!r} is not a date (use None for an "
                                 "open end)")
            if stamp.tz is not None:
                raise ValueError(f"segment {name!r}: {end!r} must be a tz-naive date, as the "
                                 "dataset's dates are")
            ends.append(stamp)
        first, last = ends
        if first is not None and last is not None and first > last:
            raise ValueError(f"segment {name!r} starts after it ends: {bounds[0]!r} > "
                             f"{bounds[1]!r}")
        checked[str(name)] = (first, last)
    return checked


def _day(stamp: pd.Timestamp | None) -> str:
    if stamp is None:
        return ""
    return str(stamp.date()) if stamp == stamp.normalize() else str(stamp)
