"""keras adapter: Keras 3 models (TensorFlow or torch backend) as .keras, JSON or safetensors
weights, pickle or ONNX.

===========  =======================================================  =======================
format       what is stored                                           loads with
===========  =======================================================  =======================
keras        Keras' native ``.keras`` archive, optimizer state        keras (any backend)
             included (default; loaded with ``safe_mode=True``)
json         ``model.to_json()`` and ``get_weights()`` as one JSON     keras (any backend)
             document (LEAN's pattern); bit-exact weights, NO
             optimizer state (a loaded model trains from a fresh one)
safetensors  the same ``to_json()`` architecture, and                 keras + safetensors
             ``get_weights()`` as raw safetensors tensors;
             bit-exact, NO optimizer state
pickle       the pickled model (runs code: trusted only)              keras
onnx         ``model.export(format="onnx")``, parity-checked when     onnxruntime only
             saved
===========  =======================================================  =======================

safetensors (``pip install 'alphazoo[safetensors]'``). Keras 3 itself writes weights only as
HDF5 (``model.save_weights("x.weights.h5")``), but ``get_weights()``/``set_weights()`` are an
ordered list of arrays, which is what a safetensors file holds: the format is the ``json``
format with the tensor container changed. The tensors are named by their variables' paths
(``sequential/dense/kernel``), the architecture and the ``get_weights()`` order are JSON in the
file's ``__metadata__``, and the header is bounded before safetensors reads it. No base64:
the file is the raw weights plus the architecture, 3/4 of the ``json`` file for a 25 MB model,
which ``zoo.load`` read 2.6x faster (``benchmarks/bench_safetensors.py``); for a model of a
few KB the architecture's JSON (escaped as a metadata string) is most of either file.

Backends. Models train and predict under whatever backend Keras runs on (TensorFlow by
default). ``keras``, ``json``, ``safetensors`` and ``pickle`` bundles hold no backend code: one
saved under TensorFlow loads under ``KERAS_BACKEND=torch`` with bit-equal weights (predictions
then agree to float32 rounding, the kernels differ). ONNX bundles need no Keras at all.

Safe mode. The ``keras``, ``json`` and ``safetensors`` formats are rebuilt from a JSON
architecture with Keras'
``safe_mode=True``: a ``Lambda`` layer holding Python bytecode is refused with
:class:`~alphazoo.UntrustedModelError` unless the load passes ``trusted=True`` or verifies the
bundle's signature (``sign_key=``), which turns safe mode off. Keras fixed safe-mode bypasses up
to 3.14 (CVE-2025-1550, CVE-2025-8747, CVE-2025-9906, CVE-2026-1462), so with an older Keras
these formats load only when trusted. Custom layers or subclassed models load when their module
registered them (``@keras.saving.register_keras_serializable``) or with
``zoo.load(key, custom_objects={...})``.

ONNX. Keras exports the model's forward pass (``model.export(path, format="onnx")``: tf2onnx
under TensorFlow, the torch exporter under torch); when that fails under TensorFlow (older
Keras), a SavedModel converted by tf2onnx is the fallback (``exporter="saved_model"`` forces
it). ``opset=`` picks the ONNX opset. The batch axis is dynamic, checked at save time by
running the export on one row and on the whole sample against the native model. Single-input,
single-output models only (the ``keras`` and ``json`` formats hold any model).

Input layout. An MLP takes ``(batch, features)``; a sequence model (``keras_lstm``) takes
``(batch, timesteps, features)`` float32, oldest step first. A loaded
:class:`KerasOnnxPredictor` adds the batch axis to a single sample (``(features,)`` or
``(timesteps, features)``) and returns what ``model.predict`` returns: ``(batch, outputs)``.

Training and prediction through the zoo. ``zoo.train(model, X, y, epochs=5)`` calls
``model.fit(X, y, verbose=0, **params)`` (verbose=0 unless given; Keras' default of one
epoch). ``zoo.predict`` calls ``model.predict_on_batch(X)`` for up to :data:`ONE_BATCH_ROWS`
rows and ``model.predict(X, batch_size=ONE_BATCH_ROWS, verbose=0)`` above that: both run Keras'
compiled predict step, but ``model.predict`` builds a data pipeline on every call (tens of
milliseconds for one row on 2 cores), and an eager ``model(X)`` runs an LSTM step by step in
Python (as slow). ``predict_on_batch`` takes about 0.5 ms for one row of a small MLP, the ONNX
predictor about 0.01 ms (``benchmarks/bench_keras.py``): serve live bars from ONNX.

Importing Keras loads its backend (TensorFlow: about 4 s), so nothing here imports it until a
model is handled; whether a model is ours is decided from ``sys.modules``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from alphazoo.contracts import LoadRequest
from alphazoo.errors import require
from alphazoo.hookspecs import hookimpl
from alphazoo.limits import check_zip
from alphazoo.manifest_schema import array as array_of
from alphazoo.manifest_schema import either, null, obj, string

from ._keras_facts import ONE_BATCH_ROWS, lambda_layers, native_predict, signature, task_of
from ._keras_models import keras_lstm, keras_mlp
from ._keras_safe import SAFE_MODE_KERAS, UnknownKerasClassError
from .base import Adapter, Format, Saving, pickle_format

__all__ = [
    "ADAPTER",
    "FORMATS",
    "ONE_BATCH_ROWS",
    "SAFE_MODE_KERAS",
    "KerasOnnxPredictor",  # noqa: F822 (made on first use, by __getattr__)
    "UnknownKerasClassError",
    "keras_lstm",
    "keras_mlp",
    "owns",
]

_HINTS = {"pt": "Keras weights go in 'json', 'safetensors' or 'keras'"}
_BACKEND_DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "torch": ("torch",),
                          "jax": ("jax",)}
#: The adapter_data each format's loader reads (see :mod:`alphazoo.manifest_schema`).
_NATIVE_DATA = obj(optional={"backend": string(), "task": either(string(), null),
                             "lambda_layers": array_of(string())})
_ONNX_DATA = obj(required={"outputs": obj(required={"value": string()})},
                 optional={"task": either(string(), null),
                           "input_layout": either(string(), null)})
#: The producer_name of Keras' ONNX exports: tf2onnx (TensorFlow backend, and the SavedModel
#: fallback) or torch's exporter (torch backend).
ONNX_PRODUCERS = ("tf2onnx", "pytorch")
#: The members of a .keras archive that are JSON (bounded as such before Keras reads them).
_ARCHIVE_JSON = ("config.json", "metadata.json")


# -- the formats: Keras' own write and read code -----------------------------------------------
def _prepare(model: Any, saving: Saving) -> None:
    """Facts every format records: the backend the model ran on, and its task."""
    backend = sys.modules["keras"].backend.backend()
    saving.record(*_BACKEND_DISTRIBUTIONS.get(backend, ()))
    saving.data.update(backend=backend, task=task_of(model, saving.request))


def _note_lambdas(model: Any, saving: Saving) -> None:
    # The keras, json and safetensors formats rebuild the architecture, Lambda bytecode
    # included.
    lambdas = lambda_layers(model)
    if lambdas:
        saving.notices.append(
            f"this model has Lambda layers {lambdas}: their Python code runs on load, so the "
            "bundle loads only with trusted=True or a signature (save with sign_key=KEY)"
        )
        saving.data["lambda_layers"] = lambdas


def _write_keras(model: Any, path: Path, saving: Saving) -> None:
    _note_lambdas(model, saving)
    model.save(path)


def _read_keras(path: Path, request: LoadRequest) -> Any:
    from ._keras_safe import check_h5_weights, rebuilding

    # Bounded before Keras opens the archive (members, decompressed size, HDF5 datasets),
    # and before it is imported: a bomb costs no TensorFlow start-up.
    check_zip(path, request.limits, json_members=_ARCHIVE_JSON)
    check_h5_weights(path, request.limits)
    keras = _keras()
    # The host decided trust once (trusted=True, or a signature valid for this key): only
    # then is safe mode off.
    safe = not request.may_run_code
    with rebuilding(keras, "keras", safe=safe):
        return keras.saving.load_model(path, custom_objects=request.options.get("custom_objects"),
                                       safe_mode=safe)


def _write_json(model: Any, path: Path, saving: Saving) -> None:
    from ._keras_json import save_json

    _note_lambdas(model, saving)
    saving.data["weights"] = save_json(model, path)


def _read_json(path: Path, request: LoadRequest) -> Any:
    from ._keras_json import load_json
    from ._keras_safe import rebuilding

    keras = _keras()
    safe = not request.may_run_code
    with rebuilding(keras, "json", safe=safe):
        return load_json(keras, path, request.options.get("custom_objects"), safe_mode=safe,
                         limits=request.limits)


def _write_safetensors(model: Any, path: Path, saving: Saving) -> None:
    from ._keras_json import save_safetensors

    _note_lambdas(model, saving)
    saving.data["weights"] = save_safetensors(model, path)


def _read_safetensors(path: Path, request: LoadRequest) -> Any:
    from ._keras_json import load_safetensors
    from ._keras_safe import rebuilding
    from ._safetensors import check_payload

    # Bounded before Keras is imported, as the keras format is: a crafted header costs no
    # TensorFlow start-up (load_safetensors checks it again, as every reader of it does).
    check_payload(path, request.limits)
    keras = _keras()
    safe = not request.may_run_code
    with rebuilding(keras, "safetensors", safe=safe):
        return load_safetensors(keras, path, request.options.get("custom_objects"),
                                safe_mode=safe, limits=request.limits)


def _write_onnx(model: Any, path: Path, saving: Saving) -> None:
    from ._keras_onnx import save_onnx

    saving.data.update(save_onnx(model, saving.request, path))
    # The converter that wrote the graph: tf2onnx, or torch's exporter (onnxscript).
    saving.record("onnxscript" if saving.data["exporter"] == "torch" else "tf2onnx")


def _read_onnx(path: Path, request: LoadRequest) -> Any:
    from ._keras_onnx import predictor_class
    from ._onnx_bounds import check_onnx

    check_onnx(path, request.limits, adapter="keras", producers=ONNX_PRODUCERS)
    data = request.manifest.get("adapter_data", {})
    return predictor_class()(str(path), task=data.get("task") or "regression",
                              output=data["outputs"]["value"],
                              input_layout=data.get("input_layout"))


def _keras() -> Any:
    return require("keras", "keras", "loading a Keras model")


def _owns(model: Any) -> bool:
    # Keras' Layer is declared so that under KERAS_BACKEND=torch, where every Keras layer is
    # an nn.Module, no layer is ever the torch adapter's; but only a Model is saved (a bare
    # layer has no save() and no inputs to export).
    keras = sys.modules.get("keras")
    model_class = getattr(keras, "Model", None) if keras is not None else None
    return isinstance(model_class, type) and isinstance(model, model_class)


ADAPTER = Adapter(
    "keras",
    library="keras",
    # Keras 3's classes, which tf.keras is too from TensorFlow 2.16 on (Keras 2's tf_keras
    # is not supported: the safe formats need Keras >= 3.14).
    model_types=["keras.src.models.model.Model", "keras.src.layers.layer.Layer"],
    formats=[
        Format("keras", "model.keras", True, ".keras archive loaded with safe_mode=True",
               write=_write_keras, read=_read_keras, default=True, load_requires=("keras",),
               adapter_data=_NATIVE_DATA, load_options=("custom_objects",)),
        Format("json", "model.json", True, "to_json() + bit-exact JSON weights, no optimizer",
               write=_write_json, read=_read_json, load_requires=("keras",),
               adapter_data=_NATIVE_DATA, load_options=("custom_objects",)),
        Format("safetensors", "model.safetensors", True,
               "to_json() + get_weights() as raw safetensors tensors, no optimizer",
               write=_write_safetensors, read=_read_safetensors,
               load_requires=("keras", "safetensors"), adapter_data=_NATIVE_DATA,
               load_options=("custom_objects",), records=("safetensors",)),
        pickle_format(("keras",)),
        Format("onnx", "model.onnx", True, "model.export(format='onnx') served by onnxruntime",
               write=_write_onnx, read=_read_onnx, load_requires=("onnxruntime",),
               adapter_data=_ONNX_DATA, save_options=("opset", "exporter"),
               records=("onnx", "onnxruntime")),
    ],
    records=("keras", "numpy"),
    prepare=_prepare,
    signature=lambda model, sample: signature(model),
    hints=_HINTS,
    owns=_owns,
)
FORMATS = tuple(ADAPTER.formats)


def owns(model: Any) -> bool:
    """True for Keras 3 models (Sequential, functional, subclassed), decided without importing
    Keras: none can exist unless it is already imported."""
    return ADAPTER.owns(model)


# The hooks pluggy finds on this module. No tryfirst: under the torch backend a Keras model
# is also an nn.Module, and the torch adapter refuses Keras layers itself.
alphazoo_formats = ADAPTER.alphazoo_formats
alphazoo_model_types = ADAPTER.alphazoo_model_types
alphazoo_save = ADAPTER.alphazoo_save
alphazoo_load = ADAPTER.alphazoo_load


@hookimpl
def alphazoo_requirements() -> list[str]:
    # The first requirement names the adapter's own library: `alphazoo plugins` shows its
    # installed version. 3.14: the safe formats rely on safe_mode (see SAFE_MODE_KERAS).
    return ["keras>=3.14", "tf2onnx>=1.16", "onnxruntime>=1.19"]


@hookimpl
def alphazoo_register_models(register: Any) -> None:
    register("keras_mlp", keras_mlp, library="keras",
             description="Keras dense network (batch, features) -> outputs")
    register("keras_lstm", keras_lstm, library="keras",
             description="Keras LSTM over (batch, timesteps, features) windows")


@hookimpl
def alphazoo_train(model: Any, X: Any, y: Any, params: dict[str, Any]) -> Any:
    if not owns(model):
        return None
    keras: Any = sys.modules["keras"]
    if isinstance(model, keras.Sequential) and not model.built:
        # Built lazily, a Sequential would record the first batch's size as its input shape.
        shape = getattr(X, "shape", None)
        if shape is not None:
            model.build((None, *tuple(shape)[1:]))
    model.fit(X, y, **{"verbose": 0, **params})
    return model


@hookimpl
def alphazoo_predict(model: Any, X: Any) -> Any:
    if not owns(model):
        return None
    return native_predict(model, X)


def __getattr__(name: str) -> Any:
    """``KerasOnnxPredictor``, made on first use (PEP 562)."""
    # It subclasses OnnxPredictor, whose module imports numpy; plugin discovery imports this
    # module and must stay cheap.
    if name == "KerasOnnxPredictor":
        from ._keras_onnx import predictor_class

        return predictor_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
