"""torch adapter: ``nn.Module`` as JSON or safetensors weights, a ``state_dict`` file, pickle
or ONNX.

===========  =======================================================  ========================
format       what is stored                                           loads with
===========  =======================================================  ========================
json         the architecture (builder) + the state_dict as JSON      torch (no code runs)
             tensors, bit-exact (default)
safetensors  the same architecture + the state_dict as a              torch + safetensors
             ``.safetensors`` file: raw little-endian tensors any     (no code runs)
             framework reads, bit-exact, no base64
pt           the state_dict via ``torch.save``, read back with        torch (no code runs)
             ``torch.load(weights_only=True)``
pickle       the whole module via ``torch.save`` (runs code: trusted  torch + the module's code
             only)
onnx         ``torch.onnx.export`` graph, parity-checked when saved   onnxruntime only
===========  =======================================================  ========================

**safetensors** (``pip install 'alphazoo[safetensors]'``) keeps what ``json`` keeps (the
builder in the manifest, the architecture and the submodules' state_dict versions as JSON in
the file's ``__metadata__``); only the tensor container changes. It is the smallest safe
format (the tensors' bytes plus a short header, where base64 costs 4/3): for a 25 MB MLP,
``zoo.load`` took 2.9x less time than from ``json`` and ``zoo.save`` 4.2x less, and a model of
a few KB loads as fast (``benchmarks/bench_safetensors.py``). ``safetensors.torch.load_file``
or any other framework's safetensors reader opens it. Its header is checked against the file
and the load limits before safetensors reads it (:mod:`alphazoo.adapters._safetensors`).
bfloat16 and float8 tensors keep their own safetensors dtypes; tied weights are written once
per name and stay tied on load.

**Weights need an architecture.** ``json``, ``safetensors`` and ``pt`` hold tensors, never
code: the module
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

Save options (onnx only): ``opset=``, ``dynamic_axes=`` and ``exporter=`` --
``"torchscript"`` (torch's older tracer, the default here: it exported an MLP in 96 ms where
dynamo took 2,280 ms, with outputs equal within 6e-8, and models are exported at every
retrain; alphazoo falls back to dynamo when it cannot trace a module) or ``"dynamo"``
(torch's own default, wider but slower; torch deprecates the tracer). Load options:
``builder=`` (json, safetensors and pt only). Any other keyword raises TypeError.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from alphazoo.contracts import LoadRequest
from alphazoo.errors import (
    BundleIntegrityError,
    UnsupportedFormatError,
    UnsupportedModelError,
    require,
)
from alphazoo.hookspecs import hookimpl
from alphazoo.limits import check_zip
from alphazoo.manifest_schema import ONNX_OUTPUTS, array, either, null, obj, string

from ._common import check_options, class_path
from .base import Adapter, Format, Saving, onnx_facts, onnx_reader, pickle_format

__all__ = ["ADAPTER", "FORMATS", "owns", "predict", "predict_proba", "torch_lstm", "torch_mlp"]

_TRAIN_OPTIONS = ("epochs", "lr", "batch_size", "weight_decay", "seed", "shuffle")
#: The producer_name of the graphs torch.onnx.export writes.
ONNX_PRODUCERS = ("pytorch",)

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


def _torch() -> Any:
    """torch, imported when a model is handled (plugin discovery must not import it)."""
    return require("torch", "torch", "the torch adapter")


# -- the formats: torch's own write and read code ----------------------------------------------
def _write_json(model: Any, path: Path, saving: Saving) -> None:
    torch = _torch()
    from ._torch_state import state_to_tensors, versions_of
    from ._weights import write_weights

    _weights_facts(model, saving)
    state = model.state_dict()
    write_weights(path, state_to_tensors(state),
                  architecture={"class": class_path(model), **saving.data},
                  versions=versions_of(state), torch=torch.__version__)


def _write_safetensors(model: Any, path: Path, saving: Saving) -> None:
    from ._safetensors import metadata, require_safetensors, save_tensors

    require_safetensors()  # before any work: the message names the extra to install
    torch = _torch()
    from ._torch_state import dense_state, versions_of

    _weights_facts(model, saving)
    state = model.state_dict()
    # "pt": the format entry Hugging Face's loaders expect of a torch state_dict.
    save_tensors(path, dense_state(state, "safetensors"), "torch", metadata(
        "pt", architecture={"class": class_path(model), **saving.data},
        versions=versions_of(state), torch=torch.__version__))


def _read_safetensors(path: Path, request: LoadRequest) -> Any:
    _torch()
    from ._safetensors import load_tensors
    from ._torch_state import state_of

    tensors, payload = load_tensors(path, request.limits, "torch")
    return _into_module(request, state_of(tensors, payload.metadata.get("versions")))


def _write_pt(model: Any, path: Path, saving: Saving) -> None:
    _weights_facts(model, saving)
    _torch().save(model.state_dict(), path)


def _weights_facts(model: Any, saving: Saving) -> None:
    """What a module rebuilt for the weights needs: its zoo builder, its buffers' dtypes."""
    from ._torch_state import buffer_dtypes

    request = saving.request
    # The host also notes a name for modules it loaded from a user bundle (their class name)
    # but with params None; only Zoo.build leaves a params dict.
    saving.data["builder"] = (None if request.zoo_model is None or request.params is None
                              else {"zoo_model": request.zoo_model, "params": request.params})
    buffers = buffer_dtypes(model)
    if buffers:  # left out of the state_dict, but their dtype may have been changed
        saving.data["buffers"] = buffers


def _read_json(path: Path, request: LoadRequest) -> Any:
    _torch()
    from ._torch_state import tensors_to_state
    from ._weights import read_weights

    tensors, header = read_weights(path, request.limits)
    return _into_module(request, tensors_to_state(tensors, header.get("versions")))


def _read_pt(path: Path, request: LoadRequest) -> Any:
    torch = _torch()
    # weights_only admits tensors and plain values (a module's extra state) only; a .pt is a
    # zip whose members are the storages, so their declared sizes bound the load.
    check_zip(path, request.limits)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise BundleIntegrityError(f"{path.name} does not hold a state_dict")
    return _into_module(request, state)


def _write_pickle(model: Any, path: Path, saving: Saving) -> None:
    _torch().save(model, path)


def _read_pickle(path: Path, request: LoadRequest) -> Any:
    torch = _torch()
    module = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(module, torch.nn.Module):
        raise BundleIntegrityError(f"{path.name} holds a {type(module).__name__}, not a module")
    return module


def _write_onnx(model: Any, path: Path, saving: Saving) -> None:
    torch = _torch()
    import numpy as np

    from ._torch_fit import input_dtype
    from ._torch_fit import predict as native_predict
    from ._torch_fit import predict_proba as native_proba
    from ._torch_onnx import export_onnx, free_axes

    require("onnxscript", "onnx", "the onnx format")
    request, options = saving.request, saving.options
    # Rows given to zoo.save(sample=) or kept by zoo.train: the host passes either.
    sample, source = request.sample, "sample rows"
    if sample is None and callable(getattr(model, "example_input", None)):
        sample, source = model.example_input(64), f"{type(model).__name__}.example_input(64)"
    if sample is None:
        raise UnsupportedFormatError(
            "ONNX export of a torch module needs example inputs: train it with zoo.train (its "
            "first rows are kept), or pass sample=ROWS to zoo.save"
        )
    if input_dtype(model) != torch.float32:
        raise UnsupportedFormatError(
            f"ONNX bundles take float32 inputs, and this module computes in "
            f"{input_dtype(model)}: export a float32 copy (copy.deepcopy(m).float())"
        )
    sample = np.asarray(sample.numpy() if isinstance(sample, torch.Tensor) else sample,
                        dtype=np.float32)
    axes = free_axes(options.get("dynamic_axes"), sample.ndim)
    classes = saving.data["classes"]
    labels = None if classes is None else np.asarray(classes)
    exporter = options.get("exporter")
    try:
        proto = export_onnx(model, sample, path, labels, axes, options.get("opset"),
                            exporter or "torchscript")
        exporter = exporter or "torchscript"
    except (RuntimeError, UnsupportedFormatError):
        # The default tracer cannot take every module (data-dependent control flow, ops it
        # lacks); dynamo, torch's own default, is slower but wider. An explicit choice stands.
        if exporter is not None:
            raise
        proto = export_onnx(model, sample, path, labels, axes, options.get("opset"), "dynamo")
        exporter = "dynamo"
    outputs = ({"label": "label", "probabilities": "probabilities"} if classes is not None
               else {"value": "value"})
    saving.data.update(onnx_facts(
        proto, path, saving, task=saving.data["task"], outputs=outputs, classes=classes,
        native_predict=lambda X: native_predict(model, X),
        native_proba=(lambda X: native_proba(model, X)) if classes is not None else None,
        sample=sample, sample_source=source, write=False,
    ))
    saving.data.update(exporter=exporter, dynamic_axes={str(k): v for k, v in axes.items()})
    saving.input_signature = _signature(model, request.sample, "float32")


ADAPTER = Adapter(
    "torch",
    library="torch",
    model_types=["torch.nn.modules.module.Module"],
    formats=[
        Format("json", "weights.json", True,
               "architecture + state_dict as JSON tensors, bit-exact",
               write=_write_json, read=_read_json, default=True, load_requires=("torch",),
               adapter_data=_WEIGHTS_DATA, load_options=("builder",)),
        Format("safetensors", "weights.safetensors", True,
               "architecture + state_dict as raw safetensors tensors, bit-exact",
               write=_write_safetensors, read=_read_safetensors,
               load_requires=("torch", "safetensors"), adapter_data=_WEIGHTS_DATA,
               load_options=("builder",), records=("safetensors",)),
        Format("pt", "state_dict.pt", True, "state_dict via torch.save, loaded weights_only",
               write=_write_pt, read=_read_pt, load_requires=("torch",),
               adapter_data=_WEIGHTS_DATA, load_options=("builder",)),
        pickle_format(("torch",), file="module.pt", write=_write_pickle, read=_read_pickle),
        Format("onnx", "model.onnx", True, "torch.onnx.export graph served by onnxruntime",
               write=_write_onnx, read=onnx_reader("torch", ONNX_PRODUCERS),
               load_requires=("onnxruntime",), adapter_data=_ONNX_DATA,
               save_options=("opset", "dynamic_axes", "exporter"),
               records=("onnx", "onnxscript", "onnxruntime")),
    ],
    records=("torch", "numpy"),
    describe=lambda model: _describe(model),
    signature=lambda model, sample: _signature(model, sample, None),
    owns=lambda model: _owns(model),
)
FORMATS = tuple(ADAPTER.formats)


def _owns(model: Any) -> bool:
    # Keras 3 layers and models are nn.Modules too under KERAS_BACKEND=torch; the host gives
    # them to the keras adapter (its Layer is nearer in their MRO), whose formats keep their
    # Keras architecture. With the keras adapter disabled, torch still does not claim them:
    # its formats would save weights without the Keras model around them.
    if not any(isinstance(model, cls) for cls in ADAPTER.declared_classes()):
        return False
    keras = sys.modules.get("keras")
    layer = getattr(keras, "Layer", None) if keras is not None else None
    return not (isinstance(layer, type) and isinstance(model, layer))


def owns(model: Any) -> bool:
    """True for ``torch.nn.Module`` objects, decided without importing torch.

    Keras 3 layers and models are modules too under ``KERAS_BACKEND=torch``; they are the
    keras adapter's, whose formats keep their Keras architecture.
    """
    return ADAPTER.owns(model)


# The hooks pluggy finds on this module.
alphazoo_formats = ADAPTER.alphazoo_formats
alphazoo_model_types = ADAPTER.alphazoo_model_types
alphazoo_save = ADAPTER.alphazoo_save
alphazoo_load = ADAPTER.alphazoo_load


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
    from ._torch_fit import fit

    return fit(model, X, y, **params)


@hookimpl
def alphazoo_predict(model: Any, X: Any) -> Any:
    if not owns(model):
        return None
    return predict(model, X)


# -- zoo models ----------------------------------------------------------------------------------
def torch_mlp(in_features: int, out_features: int, hidden: Sequence[int] = (64, 32),
              activation: str = "relu", dropout: float = 0.0, batch_norm: bool = False,
              seed: int | None = 0) -> Any:
    """Multi-layer perceptron (torch) over (batch, in_features) rows; seeded initialisation."""
    _torch()
    from ._torch_models import MLP, seeded

    with seeded(seed):
        return MLP(in_features, out_features, tuple(hidden), activation, dropout, batch_norm)


def torch_lstm(in_features: int, out_features: int, hidden: int = 32, layers: int = 1,
               dropout: float = 0.0, seed: int | None = 0) -> Any:
    """LSTM (torch) over (batch, sequence, in_features), predicting from the last step."""
    _torch()
    from ._torch_models import LSTMNet, seeded

    with seeded(seed):
        return LSTMNet(in_features, out_features, hidden, layers, dropout)


# -- public helpers ------------------------------------------------------------------------------
def predict(module: Any, X: Any) -> Any:
    """Labels of a classifier (``classes_``), else the module's output, as numpy."""
    _torch()
    from . import _torch_fit

    return _torch_fit.predict(module, X)


def predict_proba(module: Any, X: Any) -> Any:
    """Softmax probabilities of a module trained as a classifier, as numpy."""
    _torch()
    from . import _torch_fit

    return _torch_fit.predict_proba(module, X)


# -- helpers -------------------------------------------------------------------------------------
def _describe(model: Any) -> dict[str, Any]:
    classes = getattr(model, "classes_", None)
    listed = None
    if classes is not None:
        import numpy as np

        listed = np.asarray(classes).tolist()
    return {"task": "classification" if classes is not None else "regression",
            "classes": listed}


def _into_module(request: LoadRequest, state: Mapping[str, Any]) -> Any:
    """A module rebuilt for the bundle, ``state`` loaded into it and its classes restored."""
    from ._torch_state import load_state

    data = request.manifest.get("adapter_data", {})
    module, source = _rebuild(request, data, request.manifest.get("model_class", "?"))
    load_state(module, state, source, data.get("buffers"))
    if data.get("classes") is not None:
        import numpy as np

        module.classes_ = np.asarray(data["classes"])
    return module


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


def _signature(model: Any, sample: Any, dtype: Any) -> dict[str, Any]:
    """Input shape and layout from the sample rows; ``dtype`` is what the model takes: what it
    computes in when None (the sample's own dtype, float64 from numpy say, is cast on the way
    in), float32 for an ONNX graph."""
    if dtype is None:
        from ._torch_fit import input_dtype

        dtype = input_dtype(model)
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
