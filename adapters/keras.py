"""keras adapter: Keras 3 models (TensorFlow or torch backend) as .keras, JSON weights, pickle
or ONNX.

=======  ==========================================================  =========================
format   what is stored                                              loads with
=======  ==========================================================  =========================
keras    Keras' native ``.keras`` archive, optimizer state included  keras (any backend)
         (default; loaded with ``safe_mode=True``)
json     ``model.to_json()`` and ``get_weights()`` as one JSON        keras (any backend)
         document (LEAN's pattern); bit-exact weights, NO
         optimizer state (a loaded model trains from a fresh one)
pickle   the pickled model (runs code: trusted only)                 keras
onnx     ``model.export(format="onnx")``, parity-checked when saved  onnxruntime only
=======  ==========================================================  =========================

Backends. Models train and predict under whatever backend Keras runs on (TensorFlow by
default). ``keras``, ``json`` and ``pickle`` bundles hold no backend code: one saved under
TensorFlow loads under ``KERAS_BACKEND=torch`` with bit-equal weights (predictions then agree
to float32 rounding, the kernels differ). ONNX bundles need no Keras at all.

Safe mode. The ``keras`` and ``json`` formats are rebuilt from a JSON architecture with Keras'
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

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphazoo.compat.installed import installed_versions as _versions
from alphazoo.contracts import FormatSpec, LoadRequest, SavedPayload, SaveRequest
from alphazoo.errors import (
    BundleFormatError,
    BundleIntegrityError,
    UnsupportedFormatError,
    UntrustedModelError,
    require,
)
from alphazoo.hookspecs import hookimpl
from alphazoo.limits import check_zip
from alphazoo.manifest_schema import array as array_of
from alphazoo.manifest_schema import either, null, obj, string
from alphazoo.trust import may_run_code

from ._common import (
    check_options,
    choose_format,
    class_path,
    dump_pickle,
    load_pickle,
    payload_path,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ADAPTER",
    "FORMATS",
    "ONE_BATCH_ROWS",
    "KerasOnnxPredictor",  # noqa: F822 (made on first use, by __getattr__)
    "UnknownKerasClassError",
    "keras_lstm",
    "keras_mlp",
    "owns",
]

ADAPTER = "keras"
FORMATS = ("keras", "json", "pickle", "onnx")
_FILES = {"keras": "model.keras", "json": "model.json", "pickle": "model.pkl",
          "onnx": "model.onnx"}
_SAVE_OPTIONS: dict[str, tuple[str, ...]] = {"onnx": ("opset", "exporter")}
_LOAD_OPTIONS: dict[str, tuple[str, ...]] = {"keras": ("custom_objects",),
                                             "json": ("custom_objects",)}
_HINTS = {
    "skops": "skops is scikit-learn's format",
    "pt": "'pt' is the torch adapter's state_dict; Keras weights go in 'json' or 'keras'",
    "ubj": "'ubj' is xgboost's binary model format",
}
#: Zoo.predict runs up to this many rows as one batch (predict_on_batch); more go through
#: model.predict in batches of this size, which bounds the memory activations take.
ONE_BATCH_ROWS = 65_536
#: The first Keras release without a known bypass of safe_mode (see the module docstring).
SAFE_MODE_KERAS = (3, 14)
_BACKEND_DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "torch": ("torch",),
                          "jax": ("jax",)}


def owns(model: Any) -> bool:
    """True for Keras 3 models (Sequential, functional, subclassed), decided without importing
    Keras: none can exist unless it is already imported."""
    keras = sys.modules.get("keras")
    model_class = getattr(keras, "Model", None) if keras is not None else None
    return isinstance(model_class, type) and isinstance(model, model_class)


# -- hooks ---------------------------------------------------------------------------------------
#: The adapter_data each format's loader reads (see :mod:`alphazoo.manifest_schema`).
_NATIVE_DATA = obj(optional={"backend": string(), "task": either(string(), null),
                             "lambda_layers": array_of(string())})
_ONNX_DATA = obj(required={"outputs": obj(required={"value": string()})},
                 optional={"task": either(string(), null),
                           "input_layout": either(string(), null)})
#: The producer_name of Keras' ONNX exports: tf2onnx (TensorFlow backend, and the SavedModel
#: fallback) or torch's exporter (torch backend).
ONNX_PRODUCERS = ("tf2onnx", "pytorch")


@hookimpl
def alphazoo_formats() -> list[FormatSpec]:
    return [
        FormatSpec("keras", ADAPTER, True, ".keras archive loaded with safe_mode=True", True,
                   ("keras",), _NATIVE_DATA),
        FormatSpec("json", ADAPTER, True, "to_json() + bit-exact JSON weights, no optimizer",
                   False, ("keras",), _NATIVE_DATA),
        FormatSpec("pickle", ADAPTER, False, "pickle; runs code on load, trusted only", False,
                   ("keras",)),
        FormatSpec("onnx", ADAPTER, True, "model.export(format='onnx') served by onnxruntime",
                   False, ("onnxruntime",), _ONNX_DATA),
    ]


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


# tryfirst: under the torch backend a Keras model is also a torch.nn.Module, and the torch
# adapter must not claim it (its state_dict and exporter know nothing of Keras' structure).
@hookimpl(tryfirst=True)
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


@hookimpl(tryfirst=True)
def alphazoo_predict(model: Any, X: Any) -> Any:
    if not owns(model):
        return None
    return _native_predict(model, X)


@hookimpl(tryfirst=True)
def alphazoo_save(request: SaveRequest) -> SavedPayload | None:
    model = request.model
    if not owns(model):
        return None
    fmt = choose_format("keras", request.format, FORMATS, "keras", hints=_HINTS)
    check_options("keras", f"save (format {fmt!r})", request.options, _SAVE_OPTIONS.get(fmt, ()))
    keras: Any = sys.modules["keras"]
    backend = keras.backend.backend()
    path = request.directory / _FILES[fmt]
    libraries = _versions("keras", "numpy", *_BACKEND_DISTRIBUTIONS.get(backend, ()))
    adapter_data: dict[str, Any] = {"backend": backend, "task": _task(model, request)}
    notices: list[str] = []
    lambdas = _lambda_layers(model)
    if lambdas and fmt in ("keras", "json"):
        notices.append(
            f"this model has Lambda layers {lambdas}: their Python code runs on load, so the "
            "bundle loads only with trusted=True or a signature (save with sign_key=KEY)"
        )
        adapter_data["lambda_layers"] = lambdas
    if fmt == "keras":
        model.save(path)
    elif fmt == "json":
        adapter_data["weights"] = _save_json(model, path)
    elif fmt == "pickle":
        dump_pickle(model, path)
    else:
        from ._keras_onnx import save_onnx

        adapter_data.update(save_onnx(model, request, path))
        libraries.update(_versions("onnx", "onnxruntime"))
        # The converter that wrote the graph: tf2onnx, or torch's exporter (onnxscript).
        libraries.update(_versions("onnxscript" if adapter_data["exporter"] == "torch"
                                   else "tf2onnx"))
    return SavedPayload(
        adapter=ADAPTER,
        format=fmt,
        files=[path.name],
        model_class=class_path(model),
        libraries=libraries,
        adapter_data=adapter_data,
        input_signature=_signature(model),
        warnings=notices,
    )


@hookimpl
def alphazoo_load(request: LoadRequest) -> Any:
    manifest = request.manifest
    if manifest.get("adapter") != ADAPTER:
        return None
    fmt = manifest["format"]
    check_options("keras", f"load (format {fmt!r})", request.options, _LOAD_OPTIONS.get(fmt, ()))
    path = payload_path(request, _FILES)
    if fmt == "onnx":
        data = manifest.get("adapter_data", {})
        from ._keras_onnx import predictor_class
        from ._onnx_bounds import check_onnx

        check_onnx(path, request.limits, adapter=ADAPTER, producers=ONNX_PRODUCERS)
        return predictor_class()(str(path), task=data.get("task") or "regression",
                                  output=data["outputs"]["value"],
                                  input_layout=data.get("input_layout"))
    if fmt == "keras":
        # Bounded before Keras opens the archive (members, decompressed size, HDF5 datasets),
        # and before it is imported: a bomb costs no TensorFlow start-up.
        check_zip(path, request.limits, json_members=("config.json", "metadata.json"))
        _check_h5_weights(path, request.limits)
    keras: Any = require("keras", "keras", "loading a Keras model")
    if fmt == "pickle":  # the host's trust guard has already run
        return load_pickle(path)
    # One rule for every adapter (alphazoo.trust): trusted=True, or a signature valid for
    # this key, switches safe mode off; a signed bundle copied to another key does not.
    trusted = may_run_code(request)
    _check_safe_mode_version(keras, trusted)
    custom_objects = request.options.get("custom_objects")
    try:
        with _safe_mode_scope(not trusted):
            if fmt == "keras":
                return keras.saving.load_model(path, custom_objects=custom_objects,
                                               safe_mode=not trusted)
            return _load_json(keras, path, custom_objects, safe_mode=not trusted,
                              limits=request.limits)
    except ValueError as exc:
        if "safe_mode" not in str(exc):
            raise _unreadable(fmt, exc) from exc
        raise UntrustedModelError(
            f"Keras' safe mode refused this {fmt} bundle ({exc}). Its Lambda layers run "
            "Python code: pass trusted=True (or load with the bundle's sign_key) if you trust "
            "it."
        ) from exc
    except (KeyError, IndexError, AttributeError) as exc:
        raise _unreadable(fmt, exc) from exc
    except TypeError as exc:
        if "Could not locate" not in str(exc):
            raise _unreadable(fmt, exc) from exc
        raise UnknownKerasClassError(f"{fmt} payload", (
            f"{exc} Import the module that registers the class "
            "(@keras.saving.register_keras_serializable) before loading, or pass "
            "custom_objects={'Name': cls} to zoo.load."
        )) from exc


class UnknownKerasClassError(BundleFormatError, TypeError):
    """The bundle names a Keras class that is not registered here.

    Most often the user's own layer, whose module is not imported yet (hence also a
    ``TypeError``, as Keras raises it); a crafted bundle naming nonsense lands here too.
    """


def _unreadable(fmt: str, exc: Exception) -> BundleFormatError:
    # The hashes matched, so the bytes are what the writer stored: what Keras cannot rebuild
    # from them is a malformed (or crafted) bundle, not a Keras bug to surface raw.
    return BundleFormatError(f"{fmt} payload", f"Keras could not rebuild the model from it "
                             f"({type(exc).__name__}: {exc})")


# -- the ONNX predictor --------------------------------------------------------------------------
def __getattr__(name: str) -> Any:
    """``KerasOnnxPredictor``, made on first use (PEP 562)."""
    # It subclasses OnnxPredictor, whose module imports numpy; plugin discovery imports this
    # module and must stay cheap.
    if name == "KerasOnnxPredictor":
        from ._keras_onnx import predictor_class

        return predictor_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# -- zoo models ----------------------------------------------------------------------------------
def keras_mlp(
    in_features: int | None = None, out_features: int = 1, hidden: tuple[int, ...] = (32, 16),
    task: str = "regression", activation: str = "relu", dropout: float = 0.0,
    learning_rate: float = 1e-3, seed: int = 0,
) -> Any:
    """Dense network over ``(batch, in_features)`` rows (Keras), compiled with Adam.

    ``task="regression"``: ``out_features`` linear outputs, mean squared error.
    ``task="classification"``: one output gives a sigmoid probability (binary cross-entropy,
    labels 0/1); ``out_features`` >= 2 gives softmax probabilities over that many classes
    (sparse categorical cross-entropy, integer labels). ``in_features=None`` takes the width
    of the first ``zoo.train`` data. Initial weights follow ``seed``.
    """
    keras: Any = require("keras", "keras", "this zoo model")
    layers = keras.layers
    stack: list[Any] = [] if in_features is None else [keras.Input((int(in_features),))]
    for i, units in enumerate(hidden):
        stack.append(layers.Dense(int(units), activation=activation,
                                  kernel_initializer=_glorot(keras, seed + i)))
        if dropout:
            stack.append(layers.Dropout(dropout, seed=seed + 100 + i))
    return _compiled(keras, stack, "keras_mlp", task, out_features, learning_rate,
                     seed + len(hidden))


def keras_lstm(
    timesteps: int | None = None, features: int | None = None, units: int = 16,
    out_features: int = 1, dense: int = 0, task: str = "regression",
    learning_rate: float = 1e-3, seed: int = 0,
) -> Any:
    """LSTM over ``(batch, timesteps, features)`` windows, oldest step first (Keras).

    One LSTM layer of ``units``, an optional ``dense`` ReLU layer, and the head of
    :func:`keras_mlp` for ``task``/``out_features``. ``timesteps``/``features`` None take the
    shape of the first ``zoo.train`` data. Initial weights follow ``seed``.
    """
    keras: Any = require("keras", "keras", "this zoo model")
    layers = keras.layers
    stack: list[Any] = []
    if timesteps is not None and features is not None:
        stack.append(keras.Input((int(timesteps), int(features))))
    stack.append(layers.LSTM(int(units), kernel_initializer=_glorot(keras, seed),
                             recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1)))
    if dense:
        stack.append(layers.Dense(int(dense), activation="relu",
                                  kernel_initializer=_glorot(keras, seed + 2)))
    return _compiled(keras, stack, "keras_lstm", task, out_features, learning_rate, seed + 3)


def _glorot(keras: Any, seed: int) -> Any:
    return keras.initializers.GlorotUniform(seed=seed)


def _compiled(keras: Any, stack: list[Any], name: str, task: str, out_features: int,
              learning_rate: float, seed: int) -> Any:
    """``stack`` with the output layer of ``task``, as a Sequential compiled with Adam."""
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', not {task!r}")
    head, loss = None, "mse"
    if task == "classification":
        head, loss = (("sigmoid", "binary_crossentropy") if out_features == 1
                      else ("softmax", "sparse_categorical_crossentropy"))
    stack.append(keras.layers.Dense(int(out_features), activation=head,
                                    kernel_initializer=_glorot(keras, seed)))
    model = keras.Sequential(stack, name=name)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss,
                  metrics=["accuracy"] if task == "classification" else [])
    return model


# -- helpers -------------------------------------------------------------------------------------
def _native_predict(model: Any, X: Any) -> np.ndarray:
    import numpy as np

    rows = getattr(X, "shape", (None,))[0]
    if rows is not None and rows <= ONE_BATCH_ROWS:
        return np.asarray(model.predict_on_batch(X))
    return model.predict(X, batch_size=ONE_BATCH_ROWS, verbose=0)


def _task(model: Any, request: SaveRequest) -> str:
    """The zoo model's task, else guessed from the output activation (probabilities or not)."""
    if request.zoo_model in ("keras_mlp", "keras_lstm"):
        return str((request.params or {}).get("task", "regression"))
    layers = getattr(model, "layers", None) or []
    activation = getattr(getattr(layers[-1], "activation", None), "__name__", "") if layers else ""
    return "classification" if activation in ("softmax", "sigmoid") else "regression"


def _lambda_layers(model: Any) -> list[str]:
    """Names of the Lambda layers in ``model``, nested models included."""
    keras: Any = sys.modules["keras"]
    found, stack, seen = [], list(getattr(model, "layers", [])), set()
    while stack:
        layer = stack.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.Lambda):
            found.append(layer.name)
        stack.extend(getattr(layer, "layers", None) or [])
    return found


@contextlib.contextmanager
def _safe_mode_scope(safe: bool) -> Iterator[None]:
    """Hold Keras' safe mode at ``safe`` for the load, whatever the process set before.

    ``load_model(safe_mode=True)`` gives way to a process-wide
    ``keras.config.enable_unsafe_deserialization()`` (Keras reads its scope flag first), so a
    notebook that once called it would run the Lambda code of an untrusted bundle. Keras'
    own scope class pins the flag; it is private, so a Keras without it loads unpinned.
    """
    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:  # pragma: no cover - a future Keras; _check_safe_mode_version applies
        yield
        return
    with SafeModeScope(safe):
        yield


def _check_safe_mode_version(keras: Any, trusted: bool) -> None:
    version = tuple(int(part) for part in keras.__version__.split(".")[:2] if part.isdigit())
    if not trusted and version < SAFE_MODE_KERAS:
        raise UntrustedModelError(
            f"keras {keras.__version__} has known bypasses of its safe_mode (fixed in "
            f"{'.'.join(map(str, SAFE_MODE_KERAS))}); upgrade keras, or pass trusted=True if you "
            "trust this bundle"
        )


def _save_json(model: Any, path: Path) -> dict[str, Any]:
    import numpy as np

    from ._weights import Tensor, write_weights

    try:
        architecture = json.loads(model.to_json())
    except (NotImplementedError, TypeError, ValueError) as exc:
        raise UnsupportedFormatError(
            f"the json format needs the model's architecture as JSON, and Keras could not "
            f"serialize this {type(model).__name__} ({exc}); give a subclassed model a "
            "get_config() and @keras.saving.register_keras_serializable, or use format='keras'"
        ) from exc
    tensors = []
    for variable, array in zip(model.weights, model.get_weights()):
        array, name = np.asarray(array), getattr(variable, "path", variable.name)
        if array.dtype.kind in "biuf":
            tensors.append(Tensor(name, array))
        else:  # a type numpy lacks (ml_dtypes' bfloat16...): stored as same-width integers
            tensors.append(Tensor(name, array.view(f"u{array.dtype.itemsize}"), array.dtype.name))
    write_weights(path, tensors, architecture=architecture)
    return {"tensors": len(tensors), "bytes": int(sum(t.array.nbytes for t in tensors))}


def _check_h5_weights(path: Path, limits: Any) -> None:
    """Refuse a ``.keras`` archive whose HDF5 weights declare more than ``limits`` allow.

    The zip check bounds the HDF5 file's bytes, but an HDF5 dataset can be chunked and
    compressed: a small file may declare arrays of any size, which Keras allocates when it
    reads them. h5py reads only the metadata here (shapes and dtypes).
    """
    import zipfile

    from alphazoo.limits import LoadLimits, array_bytes, check_bytes

    try:
        import h5py
    except ImportError:  # pragma: no cover - Keras itself needs h5py to read these
        return
    limits = limits or LoadLimits()
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(".h5")]
        for name in names:
            total = 0
            with archive.open(name) as member, h5py.File(member, "r") as weights:
                datasets: list[Any] = []
                weights.visititems(lambda _, item: datasets.append(item)
                                   if isinstance(item, h5py.Dataset) else None)
                for dataset in datasets:
                    size = array_bytes(dataset.shape or (), dataset.dtype.itemsize)
                    check_bytes(size, limits, f"{path.name}:{name} dataset {dataset.name!r}")
                    total += size
                    check_bytes(total, limits, f"{path.name}:{name} datasets together")


def _load_json(keras: Any, path: Path, custom_objects: Any, *, safe_mode: bool,
               limits: Any = None) -> Any:
    from ._weights import read_weights

    tensors, header = read_weights(path, limits)
    if "architecture" not in header:
        raise BundleIntegrityError(f"{path.name} has no 'architecture' entry")
    # model_from_json is json.loads + this call; spelled out so safe_mode is explicit.
    model = keras.saving.deserialize_keras_object(header["architecture"],
                                                  custom_objects=custom_objects,
                                                  safe_mode=safe_mode)
    variables = list(model.weights)
    if len(variables) != len(tensors):
        raise BundleIntegrityError(
            f"{path.name} holds {len(tensors)} weights, but its architecture builds "
            f"{len(variables)}"
        )
    arrays = []
    for variable, tensor in zip(variables, tensors):
        array = tensor.array
        if tensor.type is not None:
            array = _view_as(tensor.name, array, tensor.type)
        if tuple(variable.shape) != array.shape:
            raise BundleIntegrityError(
                f"weight {tensor.name!r} has shape {list(array.shape)}, but the architecture's "
                f"{getattr(variable, 'path', variable.name)!r} needs {list(variable.shape)}"
            )
        arrays.append(array)
    model.set_weights(arrays)
    return model


def _view_as(name: str, array: np.ndarray, type_name: str) -> np.ndarray:
    """``array`` (same-width integers) seen as ml_dtypes' ``type_name`` (bfloat16...)."""
    import ml_dtypes  # Keras' own dependency: the home of bfloat16 and friends
    import numpy as np

    kind = getattr(ml_dtypes, str(type_name), None)
    try:
        dtype = np.dtype(kind) if isinstance(kind, type) else None
    except TypeError:
        dtype = None
    if dtype is None or dtype.itemsize != array.dtype.itemsize:
        raise BundleIntegrityError(
            f"weights entry {name!r} names type {type_name!r}, not an ml_dtypes number type "
            f"{array.dtype.itemsize} bytes wide"
        )
    return array.view(dtype)


def _signature(model: Any) -> dict[str, Any]:
    shape = _input_shape(model)
    layout = _layout(shape)
    return {"dtype": "float32", "shape": list(shape) if shape is not None else None,
            "feature_names": None, "layout": layout}


def _input_shape(model: Any) -> tuple[Any, ...] | None:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):  # subclassed models have no symbolic inputs
        return None
    if not inputs or len(inputs) != 1:
        return None
    return tuple(None if d is None else int(d) for d in inputs[0].shape)


def _layout(shape: tuple[Any, ...] | None) -> str | None:
    if shape is None:
        return None
    return {2: "(batch, features)", 3: "(batch, timesteps, features)"}.get(
        len(shape), f"(batch, {len(shape) - 1} axes)")


