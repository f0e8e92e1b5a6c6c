"""``xgboost_gbdt``: gradient-boosted trees (xgboost) with early stopping, where qlib has its
``XGBModel``.

Up to alphazoo 0.1 this model was the zoo's ``gbdt``; ``gbdt`` is now LightGBM, as in qlib
(:mod:`alphazoo.contrib.gbdt`), and bundles saved under the old name still load as this model.
The trees are saved by the xgboost adapter (JSON, UBJ, ONNX). ``loss="mse"`` regresses the
label (for ``label_return``); ``loss="binary"`` classifies ``label_direction`` and scores P(up).
Early stopping watches the dataset's ``valid`` segment; without one (or with an empty one), the
last ``valid_fraction`` of the training rows (in date order: no shuffling, so no look-ahead) is
held out for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import Model, hold_out_tail

__all__ = ["XGBoostGBDT"]


class XGBoostGBDT(Model):
    """Gradient-boosted trees (xgboost) with early stopping on a validation split.

    Parameters
    ----------
    loss:
        ``"mse"`` (regression of the label) or ``"binary"`` (P(label == 1)).
    n_estimators, max_depth, learning_rate, subsample, colsample_bytree:
        xgboost's; qlib-like defaults sized for daily bars.
    early_stopping_rounds:
        Stop when the validation loss has not improved for this many rounds (0 = never).
    valid_fraction:
        Share of the training rows held out for early stopping when the dataset (or the
        ``fit(X, y)`` call) gives no validation rows.
    """

    name = "xgboost_gbdt"
    library = "xgboost"

    def __init__(self, loss: str = "mse", n_estimators: int = 300, max_depth: int = 4,
                 learning_rate: float = 0.05, subsample: float = 0.8,
                 colsample_bytree: float = 0.8, early_stopping_rounds: int = 20,
                 valid_fraction: float = 0.2, random_state: int = 0, n_jobs: int = 1) -> None:
        if loss not in ("mse", "binary"):
            raise ValueError(f"loss must be 'mse' or 'binary', got {loss!r}")
        if not 0 <= valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
        super().__init__(loss=loss, n_estimators=n_estimators, max_depth=max_depth,
                         learning_rate=learning_rate, subsample=subsample,
                         colsample_bytree=colsample_bytree,
                         early_stopping_rounds=early_stopping_rounds,
                         valid_fraction=valid_fraction, random_state=random_state, n_jobs=n_jobs)

    @property
    def classifier(self) -> bool:  # type: ignore[override]
        return self.params["loss"] == "binary"

    @property
    def best_iteration(self) -> int | None:
        """The boosting round early stopping kept (None before fit or without stopping)."""
        return self.state.get("best_iteration")

    def _fit(self, X: np.ndarray, y: np.ndarray | None, X_valid: np.ndarray | None,
             y_valid: np.ndarray | None, **fit_params: Any) -> None:
        import xgboost

        if y is None:
            raise ValueError("xgboost_gbdt learns a label: pass y or a dataset with labels")
        p = self.params
        fraction = p["valid_fraction"] if p["early_stopping_rounds"] else 0.0
        X, y, X_valid, y_valid = hold_out_tail(X, y, X_valid, y_valid, fraction)
        stop = p["early_stopping_rounds"] if X_valid is not None and len(X_valid) else None
        cls = xgboost.XGBClassifier if self.classifier else xgboost.XGBRegressor
        estimator = cls(n_estimators=p["n_estimators"], max_depth=p["max_depth"],
                        learning_rate=p["learning_rate"], subsample=p["subsample"],
                        colsample_bytree=p["colsample_bytree"], random_state=p["random_state"],
                        n_jobs=p["n_jobs"], early_stopping_rounds=stop or None)
        if self.classifier:
            # Up or not: the same target from label_direction (0/1) or label_return.
            y = (y > 0).astype(np.int32)
            y_valid = None if y_valid is None else (y_valid > 0).astype(np.int32)
        eval_set = [(X_valid, y_valid)] if stop else None
        estimator.fit(X, y, eval_set=eval_set, verbose=False, **fit_params)
        self.estimator = estimator
        self.state = {"best_iteration": int(estimator.best_iteration) if stop else None,
                      "rounds": int(estimator.get_booster().num_boosted_rounds())}

    def _predict_native(self, X: np.ndarray) -> np.ndarray:
        if self.classifier:
            return self.estimator.predict_proba(X)[:, -1]
        return self.estimator.predict(X)
