"""The dataset interface for the scikit-learn adapter's zoo models.

``random_forest``, ``svm`` and ``gradient_boosting`` are zoo models of the scikit-learn adapter
(``zoo.build("random_forest")`` gives the estimator itself, as it always has). This wrapper gives
any of them qlib's interface, so they run beside ``gbdt`` and ``alstm`` in the same trainer and
backtest::

    model = SklearnModel("random_forest", n_estimators=200)
    model.fit(dataset)
    scores = model.predict(dataset)          # P(up) for classifiers

The estimator is stored by the scikit-learn adapter (skops, pickle or ONNX).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import Model

__all__ = ["SklearnModel", "SKLEARN_MODELS"]

#: The scikit-learn adapter's zoo models this wrapper builds.
SKLEARN_MODELS = ("random_forest", "svm", "gradient_boosting", "logistic_regression")


class SklearnModel(Model):
    """A scikit-learn zoo model (``random_forest``, ``svm``, ...) with qlib's interface.

    ``model`` names the scikit-learn adapter's zoo model; other keyword arguments go to its
    builder (``task="regression"`` for a regressor). Classifiers are trained on ``label > 0``
    (``label_direction`` and ``label_return`` alike) and score P(up). Inputs are scaled where
    the model needs it (``svm``): the builder's pipeline does that.
    """

    name = "sklearn"
    library = "scikit-learn"

    @property
    def classifier(self) -> bool:  # type: ignore[override]
        return self.params.get("task", "classification") != "regression"

    def __init__(self, model: str = "random_forest", **params: Any) -> None:
        if model not in SKLEARN_MODELS:
            raise ValueError(f"model must be one of {', '.join(SKLEARN_MODELS)}; got {model!r}")
        super().__init__(model=model, **params)

    def _fit(self, X: np.ndarray, y: np.ndarray | None, X_valid: np.ndarray | None,
             y_valid: np.ndarray | None, **fit_params: Any) -> None:
        from alphazoo.adapters import sklearn as adapter

        if y is None:
            raise ValueError(f"{self.params['model']} learns a label: pass y or a labelled dataset")
        params = {k: v for k, v in self.params.items() if k != "model"}
        estimator = getattr(adapter, self.params["model"])(**params)
        target = (y > 0).astype(np.int32) if self.classifier else y
        estimator.fit(X, target, **fit_params)
        self.estimator = estimator

    def _predict_native(self, X: np.ndarray) -> np.ndarray:
        if not self.classifier:
            return self.estimator.predict(X)
        if hasattr(self.estimator, "predict_proba"):
            return self.estimator.predict_proba(X)[:, -1]
        # SVC without Platt scaling: the signed distance to the boundary ranks rows the same way.
        return self.estimator.decision_function(X)

    def _predict_onnx(self, X: np.ndarray) -> np.ndarray:
        if not self.classifier or hasattr(self.estimator, "predict_proba"):
            return super()._predict_onnx(X)
        # skl2onnx writes an SVC without probabilities as (decision, -decision) in its
        # "probabilities" output; column 0 is scikit-learn's decision_function.
        return self.estimator.run(X)["probabilities"][:, 0]

    def __repr__(self) -> str:
        return super().__repr__().replace("SklearnModel(", f"SklearnModel[{self.params['model']}](")
