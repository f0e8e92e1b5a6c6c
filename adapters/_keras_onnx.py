"""The keras adapter's ONNX side: export, the SavedModel fallback, parity, the predictor.

:mod:`alphazoo.adapters.keras` documents the format and declares it. Nothing here imports
Keras, TensorFlow or torch at module level: :func:`predictor_class` serves a bundle with numpy
and onnxruntime alone, and the export functions are called with a live Keras model.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphazoo.contracts import SaveRequest
from alphazoo.errors import OnnxParityError, UnsupportedFormatError, require

from ._keras_facts import input_shape, layout, native_predict, task_of

if TYPE_CHECKING:
    import numpy as np

__all__ = ["check_parity", "predictor_class", "save_onnx"]

_SAMPLE_ROWS = 64


@cache
def predictor_class() -> type:
    """The :class:`KerasOnnxPredictor` class (numpy and onnxruntime only)."""
    import numpy as np

    from ._onnx import OnnxPredictor

    class KerasOnnxPredictor(OnnxPredictor):
        """A Keras model exported to ONNX, served by onnxruntime (no Keras, TensorFlow or torch).

        ``predict(X)`` returns what the Keras model's ``predict`` returns, a float32
        ``(batch, outputs)`` array; ``X`` is ``(batch, features)`` or, for sequence models,
        ``(batch, timesteps, features)``; one sample without its batch axis is accepted too.
        """

        def __init__(self, model: str | bytes, *, task: str, output: str,
                     input_layout: str | None = None) -> None:
            super().__init__(model, task=task, outputs={"value": output})
            self.input_layout = input_layout
            self._rank = len(self.input_shape)

        def _input(self, X: Any) -> dict[str, np.ndarray]:
            array = np.asarray(X, dtype=np.float32)
            if array.ndim == self._rank - 1:
                array = array[np.newaxis]
            if array.ndim != self._rank:
                layout = self.input_layout or f"{self._rank} axes"
                raise ValueError(f"expected input of layout {layout}, got shape {array.shape}")
            return {self.input_name: array}

        def predict(self, X: Any) -> np.ndarray:
            """The model's outputs for ``X``: ``(batch, outputs)`` float32, as Keras gives them."""
            return self.session.run(self._label, self._input(X))[0]

        def __repr__(self) -> str:
            return (f"KerasOnnxPredictor(task={self.task!r}, input={self.input_name!r}"
                    f"{self.input_shape})")

    KerasOnnxPredictor.__module__ = "alphazoo.adapters.keras"  # its public home
    return KerasOnnxPredictor


def _onnx_sample(model: Any, sample: Any) -> tuple[np.ndarray, str]:
    import numpy as np

    if sample is not None:
        array = np.asarray(sample, dtype=np.float32)
        return array, "training rows"
    shape = input_shape(model)
    if shape is None or any(d is None for d in shape[1:]):
        raise UnsupportedFormatError(
            "ONNX export of this Keras model needs input rows for the parity check: pass "
            "sample= (its input shape is not fully known)"
        )
    rng = np.random.default_rng(0)
    return (rng.normal(size=(_SAMPLE_ROWS, *shape[1:])).astype(np.float32),
            "synthetic normal rows (no training rows were recorded)")


def save_onnx(model: Any, request: SaveRequest, path: Path) -> dict[str, Any]:
    """Export ``model`` to ``path``, check parity, and return the manifest's adapter_data."""
    keras: Any = sys.modules["keras"]
    options = request.options
    exporter = options.get("exporter", "keras")
    if exporter not in ("keras", "saved_model"):
        raise ValueError(f"exporter must be 'keras' or 'saved_model', not {exporter!r}")
    opset = options.get("opset")
    if opset is not None and not isinstance(opset, int):
        raise TypeError(f"opset must be an int, not {opset!r}")
    for side in ("inputs", "outputs"):
        try:
            tensors = getattr(model, side, None)
        except (AttributeError, ValueError):  # a subclassed model has no symbolic tensors
            tensors = None
        if tensors is not None and len(tensors) != 1:
            raise UnsupportedFormatError(
                f"the onnx format takes Keras models with one input and one output, this one "
                f"has {len(tensors)} {side}; use format='keras' or 'json' for it"
            )
    sample, source = _onnx_sample(model, request.sample)
    native_predict(model, sample[:1])  # Keras exports only a model that has been called
    backend = keras.backend.backend()
    fallback_reason = None
    if exporter == "keras":
        try:
            with warnings.catch_warnings():  # Keras' numpy 2 patch of tf2onnx: noise, not news
                warnings.filterwarnings("ignore", "In the future `np.object`", FutureWarning)
                model.export(str(path), format="onnx", verbose=False, opset_version=opset)
        except Exception as exc:  # older Keras, or a graph Keras' own path cannot trace
            if backend != "tensorflow":
                raise
            fallback_reason = f"{type(exc).__name__}: {exc}"[:300]
            exporter = "saved_model"
    if exporter == "saved_model":
        _export_via_saved_model(model, request.directory / "saved-model", path, opset)

    onnx: Any = require("onnx", "onnx", "the onnx format")
    proto = onnx.load(str(path))
    if len(proto.graph.output) != 1:  # a subclassed model's outputs show only now
        raise UnsupportedFormatError("the onnx format takes single-output Keras models; use "
                                     "format='keras' or 'json' for this one")
    shape_layout = layout(input_shape(model)) or f"(batch, {sample.ndim - 1} axes)"
    task = task_of(model, request)
    predictor = predictor_class()(str(path), task=task, output=proto.graph.output[0].name,
                                   input_layout=shape_layout)
    parity = check_parity(model, predictor, sample, request.parity_tolerance)
    parity["sample"] = source
    data: dict[str, Any] = {
        "outputs": {"value": proto.graph.output[0].name},
        "input_name": predictor.input_name,
        "input_shape": [d if isinstance(d, int) else None for d in predictor.input_shape],
        "input_layout": shape_layout,
        "opset": {d.domain or "ai.onnx": d.version for d in proto.opset_import},
        "exporter": "torch" if backend == "torch" else exporter,
        "parity": parity,
    }
    if fallback_reason:
        data["fallback_reason"] = fallback_reason
    return data


def _export_via_saved_model(model: Any, folder: Path, target: Path, opset: int | None) -> None:
    """SavedModel, then tf2onnx on its serving function (TensorFlow backend only)."""
    tf: Any = require("tensorflow", "tensorflow", "the SavedModel route to ONNX")
    tf2onnx: Any = require("tf2onnx", "onnx", "the onnx format")
    try:
        model.export(str(folder), format="tf_saved_model", verbose=False)
        restored = tf.saved_model.load(str(folder))  # holds the variables: keep it alive
        serve = restored.serve
        try:  # tf2onnx predates numpy 2; Keras ships the patch its own export applies
            from keras.src.export.tf2onnx_lib import patch_tf2onnx
        except ImportError:
            pass
        else:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "In the future `np.object`", FutureWarning)
                patch_tf2onnx()
        tf2onnx.convert.from_function(serve, input_signature=list(serve.input_signature),
                                      opset=opset, output_path=str(target))
        del restored
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # not a payload file of the bundle


def check_parity(model: Any, predictor: Any, sample: np.ndarray,
                 tolerance: float) -> dict[str, Any]:
    """Compare the export ``predictor`` with the Keras ``model`` on one row and on the whole
    ``sample``.

    Two batch sizes prove the batch axis is dynamic. Values must agree within ``tolerance``
    times their scale (at least 1); raise OnnxParityError otherwise.
    """
    import numpy as np

    worst, scale_seen = 0.0, 1.0
    for batch in (sample[:1], sample):
        native = np.asarray(native_predict(model, batch), dtype=np.float64)
        try:
            exported = np.asarray(predictor.predict(batch), dtype=np.float64)
        except Exception as exc:  # onnxruntime rejects a batch size the graph fixed
            raise OnnxParityError(
                f"the ONNX export does not run on a batch of {len(batch)} rows ({exc}); "
                "not saved"
            ) from exc
        if native.shape != exported.shape:
            raise OnnxParityError(f"ONNX output shape {exported.shape} differs from the native "
                                  f"model's {native.shape}; not saved")
        scale = max(1.0, float(np.abs(native).max(initial=0.0)))
        diff = float(np.abs(native - exported).max(initial=0.0))
        if diff > tolerance * scale:
            raise OnnxParityError(
                f"ONNX outputs differ from the native model by up to {diff:.3g} on a batch of "
                f"{len(batch)} (tolerance {tolerance:g} x scale {scale:.3g}); not saved"
            )
        worst, scale_seen = max(worst, diff), max(scale_seen, scale)
    return {"rows": len(sample), "batch_sizes": [1, len(sample)],
            "tolerance": tolerance, "max_abs_diff": worst, "scale": scale_seen}
