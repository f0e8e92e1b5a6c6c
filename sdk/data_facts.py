"""Facts a training records about its data: how many rows, which time window, a sample.

:meth:`alphazoo.Zoo.train` keeps them with the model (:mod:`alphazoo.model_facts`) and a save
writes them into the manifest; none of them may fail a training, so odd inputs give None.
"""

from __future__ import annotations

from typing import Any

__all__ = ["row_count", "time_window", "sample_head"]


def row_count(X: Any) -> int | None:
    """The number of rows of ``X`` (its first dimension), None when it has no length."""
    shape = getattr(X, "shape", None)
    if shape:
        return int(shape[0])
    try:
        return len(X)
    except TypeError:
        return None


def time_window(X: Any) -> dict[str, str] | None:
    """``{"start", "end"}`` of a pandas object's index, as text; None without one."""
    # A pandas object's time index; list.index is a method, hence the callable check.
    index = getattr(X, "index", None)
    if index is None or callable(index) or not len(index):
        return None
    try:
        return {"start": str(index.min()), "end": str(index.max())}
    except (TypeError, ValueError):
        return None


def sample_head(X: Any, rows: int) -> Any:
    """The first ``rows`` rows of ``X`` as a numeric numpy array, None when they are not
    numeric: the sample a save keeps for ONNX parity checks."""
    try:
        import numpy as np

        array = np.asarray(X[:rows] if not hasattr(X, "iloc") else X.iloc[:rows])
        return array if array.dtype.kind in "fiub" else None
    except Exception:  # a sample is a nicety; odd inputs simply have none
        return None
