"""Recompute the qlib LightGBM GBDT reference numbers that tests/test_contrib_gbdt.py pastes in.

Needs qlib and alphazoo in one interpreter (alphazoo does not depend on qlib), from the repo
root::

    python -m venv .qlib && .qlib/bin/pip install pyqlib==0.9.7 -e .
    .qlib/bin/python tests/data/qlib_gbdt_oracle.py            # prints JSON

It trains qlib's own ``qlib.contrib.model.gbdt.LGBModel`` -- its constructor, its ``fit`` (which
builds the ``lightgbm.Dataset`` objects and calls ``lightgbm.train`` with early stopping), its
``predict`` -- on the features and labels of alphazoo's bundled panel. qlib's ``DatasetH`` would
need qlib's data server, so :class:`Segments` stands in for it: it answers ``fit``'s
``prepare(segment, col_set=["feature", "label"], data_key=...)`` and ``predict``'s
``prepare("test", col_set="feature", ...)`` with the frames a ``DatasetH`` returns (columns
``("feature", name)`` and ``("label", name)``) holding alphazoo's ``Dataset.prepare`` arrays.
qlib's recorder (``R.log_metrics``) writes into a temporary MLflow folder.

Printed per configuration: LightGBM's ``best_iteration``, the trees kept, and the test segment's
predictions (their count, sum, sum of squares and first five values, as float64 reprs).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from typing import Any

import lightgbm
import numpy as np
import pandas as pd

# qlib prints which of its models it skipped, and LGBModel.fit its metrics: not into the JSON.
with contextlib.redirect_stdout(sys.stderr):
    import qlib
    from qlib.contrib.model.gbdt import LGBModel
    from qlib.workflow import R

from alphazoo.contrib.dataset import Dataset
from alphazoo.contrib.features import load_panel

# MLflow 3 refuses its folder store unless told (qlib's recorder is MLflow's).
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

SEGMENTS = {"train": ("2015-01-01", "2016-06-30"), "valid": ("2016-07-01", "2016-12-31"),
            "test": ("2017-01-01", "2017-12-31")}
#: name -> (label column, LGBModel kwargs). num_threads=1: LightGBM's sums in another order
#: with other thread counts, and the test must reproduce the numbers on any machine.
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "mse": ("label_return", {"num_threads": 1}),
    "binary": ("label_direction", {"loss": "binary", "num_threads": 1}),
    # No early stopping (qlib passes 0 to lightgbm.early_stopping, which then does nothing),
    # with bagging and feature sampling: LightGBM's seeded draws must match too.
    "mse_bagging": ("label_return", {"early_stopping_rounds": 0, "num_boost_round": 80,
                                     "subsample": 0.8, "bagging_freq": 1,
                                     "colsample_bytree": 0.8, "num_leaves": 15,
                                     "num_threads": 1}),
    # A dataset without a valid segment: qlib evaluates the training set alone, LightGBM
    # disables early stopping, and every round is trained.
    "binary_no_valid": ("label_direction", {"loss": "binary", "num_boost_round": 40,
                                            "num_threads": 1}),
}


class Segments:
    """The part of qlib's ``DatasetH`` that ``LGBModel`` reads, over alphazoo's Dataset."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.segments = dict(dataset.segments)

    def prepare(self, segment: str, col_set: Any = "feature", data_key: Any = None) -> Any:
        labels = col_set != "feature"
        X, y, index = self.dataset.prepare(segment, labels=labels)
        columns = pd.MultiIndex.from_tuples([("feature", n) for n in self.dataset.feature_names])
        frame = pd.DataFrame(X, index=index, columns=columns)
        if not labels:
            return frame
        frame[("label", self.dataset.label_name)] = y
        return frame


def main() -> None:
    panel = load_panel()
    out: dict[str, Any] = {"qlib": qlib.__version__, "lightgbm": lightgbm.__version__}
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)  # qlib's recorder leaves ./tmp/ folders behind
        qlib.init(provider_uri=folder, exp_manager={
            "class": "MLflowExpManager", "module_path": "qlib.workflow.expm",
            "kwargs": {"uri": f"file:{folder}/mlruns", "default_exp_name": "oracle"}})
        for name, (label, kwargs) in CONFIGS.items():
            segments = SEGMENTS if "no_valid" not in name else \
                {k: v for k, v in SEGMENTS.items() if k != "valid"}
            dataset = Segments(Dataset.from_bars(panel, label=label, segments=segments))
            model = LGBModel(**kwargs)
            with R.start(experiment_name="oracle"), contextlib.redirect_stdout(sys.stderr):
                model.fit(dataset)
            scores = model.predict(dataset, segment="test").to_numpy(dtype=np.float64)
            out[name] = {"best_iteration": int(model.model.best_iteration),
                         "trees": int(model.model.current_iteration()),
                         "params": model.params, "count": len(scores),
                         "sum": float(scores.sum()), "sum_sq": float((scores ** 2).sum()),
                         "first": [float(s) for s in scores[:5]]}
        os.chdir(here)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
