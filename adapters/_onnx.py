"""Serving ONNX models with onnxruntime, shared by the adapters that export to ONNX.

An :class:`OnnxPredictor` needs only numpy and onnxruntime: a bundle saved from scikit-learn,
xgboost, torch or keras loads on a machine that has none of them. The session is created once
and reused; ``predict`` on one row adds a few microseconds to onnxruntime's own run.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from alphazoo.errors import BundleFormatError, OnnxParityError, require

__all__ = ["OnnxPredictor", "check_parity", "open_session"]


def open_session(model: str | bytes, *, what: str = "model.onnx", key: str = "") -> Any:
    """An onnxruntime CPU session on the ONNX graph ``model`` (a path or the graph's bytes).

    Every session a load creates goes through here: a graph onnxruntime refuses when it
    creates the session (``InvalidGraph``, ``Fail``, ``InvalidArgument``, ``InvalidProtobuf``:
    an op it does not know, mismatched types, a truncated file) raises
    :class:`~alphazoo.BundleFormatError` for ``what`` naming the bundle's ``key``, instead of
    onnxruntime's own exception types, which a caller could not catch as alphazoo's.
    """
    onnxruntime: Any = require("onnxruntime", "onnx", "serving an ONNX model")
    try:
        return onnxruntime.InferenceSession(model, onnxruntime.SessionOptions(),
                                            providers=["CPUExecutionProvider"])
    except Exception as exc:
        # onnxruntime's errors come from its pybind module (not RuntimeError subclasses);
        # its Python wrapper raises ValueError/RuntimeError. Anything else is not the graph's.
        if not (type(exc).__module__.startswith("onnxruntime")
                or isinstance(exc, (RuntimeError, ValueError))):
            raise
        bundle = f" of bundle {key!r}" if key else ""
        raise BundleFormatError(
            what, f"onnxruntime cannot open the graph{bundle} ({type(exc).__name__}: "
                  f"{str(exc)[:300]}); the bundle is damaged or was not written by an "
                  "alphazoo ONNX export: save the model again") from exc


class OnnxPredictor:
    """A trained model served by an onnxruntime session (predict only, no training library).

    Parameters
    ----------
    model:
        Path to an ``.onnx`` file or its bytes.
    task:
        ``"classification"`` or ``"regression"``.
    outputs:
        Output names: ``{"label": ..., "probabilities": ...}`` for classifiers,
        ``{"value": ...}`` for regressors.
    classes:
        Class labels of a classifier, in probability-column order.
    feature_names:
        Input column names, when the model was fitted with named columns.
    key:
        The store key the bundle was loaded from, named when onnxruntime refuses the graph.
    """

    def __init__(
        self,
        model: str | bytes,
        *,
        task: str,
        outputs: dict[str, str],
        classes: list[Any] | None = None,
        feature_names: list[str] | None = None,
        key: str = "",
    ) -> None:
        self.session = open_session(model, key=key)
        graph_outputs = {output.name for output in self.session.get_outputs()}
        missing = sorted(set(outputs.values()) - graph_outputs)
        if missing:  # else the first predict would fail inside onnxruntime
            raise BundleFormatError("adapter_data.outputs",
                                    f"names outputs {missing} the graph lacks (it has "
                                    f"{sorted(graph_outputs)})")
        if not (outputs.get("label") or outputs.get("value")):
            raise BundleFormatError("adapter_data.outputs",
                                    f"names no 'label' or 'value' output ({dict(outputs)})")
        if not self.session.get_inputs():
            raise BundleFormatError("model.onnx", "the graph takes no input")
        first_input = self.session.get_inputs()[0]
        self.input_name: str = first_input.name
        self.input_shape = list(first_input.shape)
        self.task = task
        self.outputs = dict(outputs)
        self.classes_ = np.asarray(classes) if classes is not None else None
        self.feature_names_in_ = feature_names
        self._label = [outputs.get("label") or outputs.get("value")]
        self._proba = [outputs["probabilities"]] if "probabilities" in outputs else None

    def _input(self, X: Any) -> dict[str, np.ndarray]:
        names = self.feature_names_in_
        columns = getattr(X, "columns", None)
        if names is not None and columns is not None and list(columns) != names:
            # A DataFrame in another column order would be fed position by position and give
            # wrong predictions silently; reorder by name as scikit-learn would refuse to.
            missing = [name for name in names if name not in set(columns)]
            if missing:
                raise ValueError(f"input is missing the model's feature columns {missing}")
            X = X[names]
        array = np.asarray(X, dtype=np.float32)
        if array.ndim == 1:
            array = array.reshape(1, -1)
        return {self.input_name: array}

    def predict(self, X: Any) -> np.ndarray:
        """Labels (classifiers) or values (regressors) for the rows of ``X``."""
        result = self.session.run(self._label, self._input(X))[0]
        return result.ravel() if result.ndim == 2 and result.shape[1] == 1 else result

    @property
    def predict_proba(self) -> Callable[[Any], np.ndarray]:
        """Class probabilities, one column per class in ``classes_`` order.

        Present only when the export has a probability output, so ``hasattr(model,
        "predict_proba")`` answers as it would for the native model.
        """
        if self._proba is None:
            raise AttributeError("this ONNX model has no probability output")
        return self._predict_proba

    def _predict_proba(self, X: Any) -> np.ndarray:
        return self.session.run(self._proba, self._input(X))[0]

    def run(self, X: Any) -> dict[str, np.ndarray]:
        """Every output of the graph by name."""
        names = [output.name for output in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, self._input(X))))

    def __repr__(self) -> str:
        return f"OnnxPredictor(task={self.task!r}, input={self.input_name!r}{self.input_shape})"


def check_parity(
    native_predict: Callable[[np.ndarray], Any],
    native_proba: Callable[[np.ndarray], Any] | None,
    predictor: OnnxPredictor,
    sample: np.ndarray,
    tolerance: float,
) -> dict[str, Any]:
    """Compare an export with its native model on ``sample``; raise OnnxParityError if off.

    Both sides see the sample cast to float32, the ONNX input type. Probabilities (or
    regression values, relative to their scale) must agree within ``tolerance``; a label may
    differ only where the native model's top two probabilities are within ``tolerance`` (a tie
    that float rounding can break either way).
    """
    X = np.asarray(sample, dtype=np.float32).astype(np.float64)
    report: dict[str, Any] = {"rows": int(X.shape[0]), "tolerance": tolerance}
    native = np.asarray(native_predict(X))
    exported = np.asarray(predictor.predict(X))
    if predictor.task == "regression":
        native = native.astype(np.float64).reshape(exported.shape)
        scale = max(1.0, float(np.abs(native).max(initial=0.0)))
        diff = float(np.abs(native - exported).max(initial=0.0))
        report["max_abs_diff"] = diff
        if diff > tolerance * scale:
            raise OnnxParityError(
                f"ONNX predictions differ from the native model by up to {diff:.3g} "
                f"(tolerance {tolerance:g} x scale {scale:.3g}); not saved"
            )
        return report
    ties = np.zeros(len(native), dtype=bool)
    if native_proba is not None and predictor._proba is not None:
        native_p = np.asarray(native_proba(X), dtype=np.float64)
        exported_p = predictor._predict_proba(X)
        diff = float(np.abs(native_p - exported_p).max(initial=0.0))
        report["max_abs_diff"] = diff
        if diff > tolerance:
            raise OnnxParityError(
                f"ONNX probabilities differ from the native model by up to {diff:.3g} "
                f"(tolerance {tolerance:g}); not saved"
            )
        top2 = np.sort(native_p, axis=1)[:, -2:] if native_p.shape[1] > 1 else native_p
        ties = np.abs(top2[:, -1] - top2[:, 0]) <= tolerance if native_p.shape[1] > 1 else ties
    mismatched = (native.ravel() != exported.ravel()) & ~ties
    same = native.ravel() == exported.ravel()
    report["label_agreement"] = float(np.mean(same)) if len(same) else 1.0
    if mismatched.any():
        raise OnnxParityError(
            f"ONNX labels differ from the native model on {int(mismatched.sum())} of "
            f"{len(native)} rows; not saved"
        )
    return report
