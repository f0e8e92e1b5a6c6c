"""torch adapter: ``nn.Module`` as JSON weights, a ``state_dict`` file, pickle or ONNX.

=========  =========================================================  ========================
format     what is stored                                             loads with
=========  =========================================================  ========================
json       the architecture (builder) + the state_dict as JSON        torch (no code runs)
           tensors, bit-exact (default)
pt         the state_dict via ``torch.save``, read back with          torch (no code runs)
           ``torch.load(weights_only=True)``
pickle     the whole module via ``torch.save`` (runs code: trusted    torch + the module's code
           only)
onnx       ``torch.onnx.export`` graph, parity-checked when saved     onnxruntime only
=========  =========================================================  ========================

**Weights need an architecture.** ``json`` and ``pt`` hold tensors, never code: the module
is rebuilt, then ``load_state_dict(strict=True)`` fills it (buffers such as BatchNorm's
running statistics included; a dtype changed after building, float64 say, is kept, for the
non-persistent buffers the state_dict leaves out too, and tied weights stay tied). A module
made by ``zoo.build`` (``torch_mlp``, ``torch_lstm`` or a registered model) records its zoo
model name and parameters and reloads by itself. Any other ``nn.Module`` records its class
path, and loading needs a builder: ``zoo.load(key, builder=lambda: MyNet(20, 3))``, a
callable returning an unfitted module; without one the load raises
:class:`~alphazoo.UnsupportedModelError` naming the class and ``builder=``. Every tensor
keeps its bits and dtype (bfloat16 and other types numpy lacks travel as same-width integer
views). ``pickle`` stores the module object itself: its class must be importable where it
loads.

**Training** (``zoo.train(module, X, y, epochs=10, lr=1e-3, batch_size=64, weight_decay=0.0,
seed=0, shuffle=True)``): Adam, deterministic for a seed. Integer or bool ``y`` are class
labels: cross-entropy with one output per class, and the labels are kept as
``module.classes_`` (recorded in the manifest, so every format restores them). Float ``y``
are regression targets: mean squared error. The module comes back in eval mode.

**Prediction** (``zoo.predict(module, X)`` or :func:`predict`): numpy in, numpy out, under
``torch.no_grad``, in eval mode (a module left in train mode is switched for the call
only). A classifier (one with ``classes_``) returns labels; :func:`predict_proba` gives the
softmax probabilities. Other modules return their output, one output column as a 1-D array.
The ONNX predictor answers the same: ``predict`` (labels or values) and, for classifiers,
``predict_proba``.

**Input layout.** Rows are ``(batch, features)``. Sequence models (``torch_lstm``) take
``(batch, sequence, features)``, oldest step first, and predict from the last step. ONNX
exports leave the batch axis free and, for 3-D inputs, the sequence axis too, so one bundle
serves any batch size and window length; ``dynamic_axes={0: "batch"}`` on ``zoo.save``
chooses otherwise. The export traces the module on sample inputs: the rows ``zoo.train``
kept, ``sample=`` rows given to ``zoo.save``, or the module's own ``example_input(rows)``
method (the zoo models have one). Its input is float32.

Save options (onnx only): ``opset=``, ``dynamic_axes=`` and ``exporter=`` -- ``"dynamo"``
(torch's default exporter) or ``"torchscript"`` (torch's older tracer, deprecated by torch
but about 100x faster on an LSTM: for models exported at every retrain). Load options:
``builder=`` (json and pt only). Any other keyword raises TypeError.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alphazoo.compat.installed import installed_versions as _versions
from alphazoo.contracts import FormatSpec, LoadRequest, SavedPayload, SaveRequest
from alphazoo.errors import (
    BundleIntegrityError,
    UnsupportedFormatError,
    UnsupportedModelError,
    require,
)
from alphazoo.hookspecs import hookimpl
from alphazoo.limits import check_zip
from alphazoo.manifest_schema import (
    ONNX_OUTPUTS,
    array,
    either,
    null,
    obj,
    string,
)

from ._common import check_options, choose_format, class_path, payload_path

__all__ = ["ADAPTER", "FORMATS", "owns", "predict", "predict_proba", "torch_lstm", "torch_mlp"]

ADAPTER = "torch"
FORMATS = ("json", "pt", "pickle", "onnx")
_FILES = {"json": "weights.json", "pt": "state_dict.pt", "pickle": "module.pt",
          "onnx": "model.onnx"}
_SAVE_OPTIONS = {"onnx": ("opset", "dynamic_axes", "exporter")}
_LOAD_OPTIONS = {"json": ("builder",), "pt": ("builder",)}
_TRAIN_OPTIONS = ("epochs", "lr", "batch_size", "weight_decay", "seed", "shuffle")


def owns(model: Any) -> bool:
    """True for ``torch.nn.Module`` objects, decided without importing torch.

    Keras 3 layers and models are modules too under ``KERAS_BACKEND=torch``; they are the
    keras adapter's, whose formats keep their Keras architecture.
    """
    nn = sys.modules.get("torch.nn")
    if nn is None or not isinstance(model, nn.Module):
        return False
    keras = sys.modules.get("keras")
    layer = getattr(keras, "Layer", None) if keras is not None else None
    return not (isinstance(layer, type) and isinstance(model, layer))


def _models() -> Any:
    require("torch", "torch", "the torch adapter")
    from . import _torch_models

    return _torch_models


#: The adapter_data each format's loader reads (see :mod:`alphazoo.manifest_schema`).
_TASK = string(choices=("classification", "regression"))
_CLASSES = either(array(), null)
_WEIGHTS_DATA = obj(optional={
    "task": _TASK, "classes": _CLASSES,
    "builder": either(obj(required={"zoo_model": string()},
                          optional={"params": either(obj(), null)}), null),
    "buffers": either(obj(values=string()), null),
})
_ONNX_DATA = obj(required={"task": _TASK, "outputs": ONNX_OUTPUTS},
                 optional={"classes": _CLASSES})
#: The producer_name of the graphs torch.onnx.export writes.
ONNX_PRODUCERS = ("pytorch",)


# -- hooks ---------------------------------------------------------------------------------------
@hookimpl
def alphazoo_formats() -> list[FormatSpec]:
    return [
        FormatSpec("json", ADAPTER, True, "architecture + state_dict as JSON tensors, bit-exact",
                   True, ("torch",), _WEIGHTS_DATA),
        FormatSpec("pt", ADAPTER, True, "state_dict via torch.save, loaded weights_only", False,
                   ("torch",), _WEIGHTS_DATA),
        FormatSpec("pickle", ADAPTER, False, "whole module via torch.save; runs code on load, "
                   "trusted only", False, ("torch",)),
        FormatSpec("onnx", ADAPTER, True, "torch.onnx.export graph served by onnxruntime",
                   False, ("onnxruntime",), _ONNX_DATA),
    ]


@hookimpl
def alphazoo_requirements() -> list[str]:
    # The first requirement names the adapter's own library: `alphazoo plugins` shows its
    # installed version. 2.6 is the first torch whose ONNX exporter takes external_data=.
    return ["torch>=2.6", "onnx>=1.16", "onnxscript>=0.1", "onnxruntime>=1.19"]


@hookimpl
def alphazoo_register_models(register: Any) -> None:
    register("torch_mlp", torch_mlp, library="torch")
    register("torch_lstm", torch_lstm, library="torch")


@hookimpl
def alphazoo_train(model: Any, X: Any, y: Any, params: dict[str, Any]) -> Any:
    if not owns(model):
        return None
    check_options("torch", "train", params, _TRAIN_OPTIONS)
    return _models().fit(model, X, y, **params)


@hookimpl
def alphazoo_predict(model: Any, X: Any) -> Any:
    if not owns(model):
        return None
    return _models().predict(model, X)


@hookimpl
def alphazoo_save(request: SaveRequest) -> SavedPayload | None:
    model = request.model
    if not owns(model):
        return None
    fmt = choose_format("torch", request.format, FORMATS, "json")
    check_options("torch", f"save (format {fmt!r})", request.options, _SAVE_OPTIONS.get(fmt, ()))
    models = _models()
    import torch

    path = request.directory / _FILES[fmt]
    classes = getattr(model, "classes_", None)
    adapter_data: dict[str, Any] = {
        "task": "classification" if classes is not None else "regression",
        "classes": _plain(classes),
    }
    libraries = _versions("torch", "numpy")
    if fmt in ("json", "pt"):
        adapter_data["builder"] = _builder_record(request)
        buffers = models.buffer_dtypes(model)
        if buffers:  # left out of the state_dict, but their dtype may have been changed
            adapter_data["buffers"] = buffers
        if fmt == "json":
            from ._weights import write_weights

            state = model.state_dict()
            # Per-submodule format versions: load_state_dict hands them to modules that
            # migrate old layouts (BatchNorm's num_batches_tracked, for one).
            write_weights(path, models.state_to_tensors(state),
                          architecture={"class": class_path(model), **adapter_data},
                          versions=_jsonable_metadata(getattr(state, "_metadata", None)),
                          torch=torch.__version__)
        else:
            torch.save(model.state_dict(), path)
    elif fmt == "pickle":
        torch.save(model, path)
    else:
        adapter_data.update(_save_onnx(models, model, request, path, adapter_data["classes"]))
        libraries.update(_versions("onnx", "onnxscript", "onnxruntime"))
    return SavedPayload(
        adapter=ADAPTER,
        format=fmt,
        files=[path.name],
        model_class=class_path(model),
        libraries=libraries,
        adapter_data=adapter_data,
        input_signature=_signature(model, request.sample,
                                   "float32" if fmt == "onnx" else models.input_dtype(model)),
    )


@hookimpl
def alphazoo_load(request: LoadRequest) -> Any:
    manifest = request.manifest
    if manifest.get("adapter") != ADAPTER:
        return None
    fmt = manifest["format"]
    check_options("torch", f"load (format {fmt!r})", request.options, _LOAD_OPTIONS.get(fmt, ()))
    path = payload_path(request, _FILES)
    data = manifest.get("adapter_data", {})
    if fmt == "onnx":
        from ._onnx import OnnxPredictor
        from ._onnx_bounds import check_onnx

        check_onnx(path, request.limits, adapter=ADAPTER, producers=ONNX_PRODUCERS)
        return OnnxPredictor(str(path), task=data["task"], outputs=data["outputs"],
                             classes=data.get("classes"))
    models = _models()
    import torch

    if fmt == "pickle":  # the host's trust guard has already run
        module = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(module, torch.nn.Module):
            raise BundleIntegrityError(f"{path.name} holds a {type(module).__name__}, not a module")
        return module
    if fmt == "json":
        from ._weights import read_weights

        tensors, header = read_weights(path, request.limits)
        state = models.tensors_to_state(tensors, header.get("versions"))
    else:
        # weights_only admits tensors and plain values (a module's extra state) only; a .pt is
        # a zip whose members are the storages, so their declared sizes bound the load.
        check_zip(path, request.limits)
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
            raise BundleIntegrityError(f"{path.name} does not hold a state_dict")
    module, source = _rebuild(request, data, manifest.get("model_class", "?"))
    models.load_state(module, state, source, data.get("buffers"))
    if data.get("classes") is not None:
        import numpy as np

        module.classes_ = np.asarray(data["classes"])
    return module


# -- zoo models ----------------------------------------------------------------------------------
def torch_mlp(in_features: int, out_features: int, hidden: Sequence[int] = (64, 32),
              activation: str = "relu", dropout: float = 0.0, batch_norm: bool = False,
              seed: int | None = 0) -> Any:
    """Multi-layer perceptron (torch) over (batch, in_features) rows; seeded initialisation."""
    models = _models()
    with models.seeded(seed):
        return models.MLP(in_features, out_features, tuple(hidden), activation, dropout,
                          batch_norm)


def torch_lstm(in_features: int, out_features: int, hidden: int = 32, layers: int = 1,
               dropout: float = 0.0, seed: int | None = 0) -> Any:
    """LSTM (torch) over (batch, sequence, in_features), predicting from the last step."""
    models = _models()
    with models.seeded(seed):
        return models.LSTMNet(in_features, out_features, hidden, layers, dropout)


# -- public helpers ------------------------------------------------------------------------------
def predict(module: Any, X: Any) -> Any:
    """Labels of a classifier (``classes_``), else the module's output, as numpy."""
    return _models().predict(module, X)


def predict_proba(module: Any, X: Any) -> Any:
    """Softmax probabilities of a module trained as a classifier, as numpy."""
    return _models().predict_proba(module, X)


# -- helpers -------------------------------------------------------------------------------------
def _plain(classes: Any) -> list[Any] | None:
    if classes is None:
        return None
    import numpy as np

    return np.asarray(classes).tolist()


def _jsonable_metadata(metadata: Any) -> dict[str, Any] | None:
    if not isinstance(metadata, Mapping):
        return None
    return {str(k): {str(n): v for n, v in dict(entry).items()
                     if isinstance(v, (int, float, str, bool)) or v is None}
            for k, entry in metadata.items() if isinstance(entry, Mapping)}


def _builder_record(request: SaveRequest) -> dict[str, Any] | None:
    # The host also notes a name for modules it loaded from a user bundle (their class name)
    # but with params None; only Zoo.build leaves a params dict.
    if request.zoo_model is None or request.params is None:
        return None
    return {"zoo_model": request.zoo_model, "params": request.params}


def _rebuild(request: LoadRequest, data: Mapping[str, Any], saved_class: str) -> tuple[Any, str]:
    """An unfitted module for the saved weights, and a phrase naming where it came from."""
    import torch

    builder = request.options.get("builder")
    record = data.get("builder")
    if builder is not None:
        if not callable(builder) or isinstance(builder, torch.nn.Module):
            raise TypeError(
                "builder= takes a callable returning an unfitted nn.Module (a class, a function, "
                f"lambda: MyNet(...)), not {type(builder).__name__} {builder!r:.60}"
            )
        module, source = builder(), f"builder {getattr(builder, '__qualname__', builder)!r}"
    elif record is not None and request.build is not None:
        name, params = record["zoo_model"], dict(record.get("params") or {})
        module, source = request.build(name, params), f"zoo model {name!r}"
    else:
        short = saved_class.rpartition(".")[2]
        raise UnsupportedModelError(
            f"{request.key or 'this bundle'!r} holds the weights of a {saved_class}, which is not "
            f"a zoo model, and weights load into a module built by code: pass builder=, a "
            f"callable returning an unfitted {short}, e.g. zoo.load({request.key!r}, "
            f"builder=lambda: {short}(...))"
        )
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"{source} returned a {type(module).__name__}, not an nn.Module")
    return module, source


def _save_onnx(models: Any, model: Any, request: SaveRequest, path: Path,
               classes: list[Any] | None) -> dict[str, Any]:
    import numpy as np
    import torch

    from ._onnx import OnnxPredictor, check_parity

    require("onnxscript", "onnx", "the onnx format")
    # Rows given to zoo.save(sample=) or kept by zoo.train: the host passes either.
    sample, source = request.sample, "sample rows"
    if sample is None and callable(getattr(model, "example_input", None)):
        sample, source = model.example_input(64), f"{type(model).__name__}.example_input(64)"
    if sample is None:
        raise UnsupportedFormatError(
            "ONNX export of a torch module needs example inputs: train it with zoo.train (its "
            "first rows are kept), or pass sample=ROWS to zoo.save"
        )
    if models.input_dtype(model) != torch.float32:
        raise UnsupportedFormatError(
            f"ONNX bundles take float32 inputs, and this module computes in "
            f"{models.input_dtype(model)}: export a float32 copy (copy.deepcopy(m).float())"
        )
    sample = np.asarray(sample.numpy() if isinstance(sample, torch.Tensor) else sample,
                        dtype=np.float32)
    axes = _dynamic_axes(request.options.get("dynamic_axes"), sample.ndim)
    example = sample[:8]
    # The exporter treats an axis of size 0 or 1 as a constant: trace with at least two.
    for axis in axes:
        if example.shape[axis] < 2:
            example = np.concatenate([example, example], axis=axis)
    exporter = request.options.get("exporter", "dynamo")
    if exporter not in models.EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(models.EXPORTERS)}, "
                         f"not {exporter!r}")
    opsets = models.export_onnx(model, torch.from_numpy(np.ascontiguousarray(example)), path,
                                None if classes is None else np.asarray(classes), axes,
                                request.options.get("opset"), exporter)
    task = "classification" if classes is not None else "regression"
    outputs = ({"label": "label", "probabilities": "probabilities"} if classes is not None
               else {"value": "value"})
    predictor = OnnxPredictor(str(path), task=task, outputs=outputs, classes=classes)
    native_proba = (lambda X: models.predict_proba(model, X)) if classes is not None else None
    parity = check_parity(lambda X: models.predict(model, X), native_proba, predictor, sample,
                          request.parity_tolerance)
    parity["sample"] = source
    return {"outputs": outputs, "parity": parity, "opset": opsets, "exporter": exporter,
            "dynamic_axes": {str(k): v for k, v in axes.items()}}


def _dynamic_axes(requested: Any, ndim: int) -> dict[int, str]:
    if requested is None:
        return {0: "batch", 1: "sequence"} if ndim == 3 else {0: "batch"}
    if not isinstance(requested, Mapping) or not all(
        isinstance(k, int) and 0 <= k < ndim and isinstance(v, str) and v
        for k, v in requested.items()
    ):
        raise TypeError(
            f"dynamic_axes must map input axes (0..{ndim - 1}) to names, e.g. "
            f"{{0: 'batch'}}, not {requested!r}"
        )
    return dict(requested)


def _signature(model: Any, sample: Any, dtype: Any) -> dict[str, Any]:
    """Input shape and layout from the sample rows; ``dtype`` is what the model computes in
    (the sample's own dtype, float64 from numpy say, is cast on the way in)."""
    if sample is None and callable(getattr(model, "example_input", None)):
        sample = model.example_input(1)
    shape = getattr(sample, "shape", None)
    if shape is not None and len(shape) >= 2:
        dims: list[Any] = [None, *(int(n) for n in shape[1:])]
        if len(shape) == 3:
            dims[1] = None  # any window length
    else:
        width = getattr(model, "in_features", None)
        dims = [None, int(width) if isinstance(width, int) else None]
    layout = {2: "batch, features", 3: "batch, sequence, features"}.get(len(dims))
    return {"dtype": str(dtype).removeprefix("torch."), "shape": dims, "layout": layout,
            "feature_names": None}
