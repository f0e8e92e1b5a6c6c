"""A one-file reader of alphazoo model bundles, for Python where alphazoo is not installed.

QuantConnect's cloud installs only its own list of libraries, so alphazoo cannot run inside a
QuantConnect algorithm. This module can: it needs the standard library and numpy, plus the
model's own library (or onnxruntime for ONNX bundles), each imported only when a bundle needs
it. ``alphazoo export-reader -o alphazoo_reader.py`` writes it as one file to add to a project::

    from alphazoo_reader import load

    model = load(self.object_store.read_bytes("spy/rf"))   # bytes of a bundle
    signal = model.predict(features)                        # and predict_proba where it has one

:func:`load` verifies the bundle's closing SHA-256, and with ``sign_key`` its HMAC-SHA256,
before it parses the manifest, and each payload file's SHA-256 before the file is read (any
changed byte raises ``BundleIntegrityError``). Pickle bundles run code when loaded: they load
only with ``trusted=True``, or a verifying ``sign_key`` together with ``key=``, the key the
bytes were read from, equal to the key the bundle was signed for (bytes carry no key of their
own: without ``key=`` a signature cannot tell a bundle from a copy under another key). Nothing
may exceed ``max_bytes`` (default 256 MiB): the bundle, a .keras archive's members and HDF5
datasets, a weights tensor, an xgboost model's declared counts (JSON or UBJSON), an ONNX
initializer or constant-folded tensor (these need the ``onnx`` package and are skipped without
it). It reads every bundle protocol alphazoo has written (1 and 2) and these formats:

=========================  ====================================================  ===============
format                     what it returns                                       needs
=========================  ====================================================  ===============
onnx (any adapter)         a predictor over an onnxruntime session (sb3:          onnxruntime
                           actions shaped as ``model.predict`` gives them)
xgboost json / ubj         the saved estimator (XGBClassifier...) or Booster      xgboost
hmmlearn json              the saved hidden Markov model, bit-exact               hmmlearn
keras keras / json         the Keras model (Keras' safe mode unless trusted)      keras
sklearn/xgboost/hmmlearn   the unpickled model (trusted or signed only)           its library
pickle
=========================  ====================================================  ===============

Every error raised for a bundle derives from ``ReaderError``: ``BundleIntegrityError`` (corrupt,
malformed, or a payload its library refuses), ``BundleLimitError`` (``limit``, ``value``,
``maximum``), ``UntrustedModelError``, ``UnsupportedFormatError``, ``MissingDependencyError``.
Inside alphazoo these are alphazoo's own classes (``ReaderError`` is ``AlphazooError``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import io
import json
import math
import os
import pickle
import re
import struct
import tempfile
import zipfile
from typing import Any

__all__ = ["load", "read_bundle_bytes", "Predictor", "PROTOCOLS", "READER_VERSION",
           "MAX_BYTES", "ReaderError", "BundleIntegrityError", "BundleLimitError",
           "UntrustedModelError", "UnsupportedFormatError", "MissingDependencyError"]

#: The bundle protocols this reader verifies (all that alphazoo has written).
PROTOCOLS = (1, 2)
READER_VERSION = "2"
#: The default ``max_bytes``: the most a bundle, or anything loading it declares, may take.
MAX_BYTES = 256 * 1024 * 1024
_MAX_MEMBERS = 10_000  # files of a bundle, members of a .keras archive

try:  # inside alphazoo: its own error classes, so `except alphazoo.AlphazooError` catches them
    from alphazoo.errors import (
        AlphazooError,
        BundleIntegrityError,
        BundleLimitError,
        MissingDependencyError,
        UnsupportedFormatError,
        UntrustedModelError,
    )
except ImportError:  # standing alone (exported with `alphazoo export-reader`)
    class AlphazooError(Exception):  # type: ignore[no-redef]
        """Base class of every error this reader raises on purpose (alias ``ReaderError``)."""

    class BundleIntegrityError(AlphazooError):  # type: ignore[no-redef]
        """The bundle is corrupt, truncated, extended, tampered with or malformed."""

    class BundleLimitError(AlphazooError):  # type: ignore[no-redef]
        """Loading would read or allocate more than ``max_bytes`` (or the member limit)."""

        def __init__(self, limit: str, value: int, maximum: int, what: str) -> None:
            self.limit, self.value, self.maximum, self.what = limit, value, maximum, what
            hint = "; pass a higher max_bytes= if it is that large" if limit == "max_bytes" else ""
            super().__init__(f"{what} needs {value:,} (limit {limit}={maximum:,}): refused "
                             f"before allocating{hint}")

    class UntrustedModelError(AlphazooError):  # type: ignore[no-redef]
        """A format that runs code on load (pickle) was not shown to be trusted."""

    class UnsupportedFormatError(AlphazooError, ValueError):  # type: ignore[no-redef]
        """This reader cannot read the bundle's format."""

    class MissingDependencyError(AlphazooError, ImportError):  # type: ignore[no-redef]
        """The bundle's format needs a library that is not installed."""
ReaderError = AlphazooError

_MAGIC = b"ALPHAZOO-BUNDLE\n"
_HEADER = struct.Struct(">HQ")
_DIGEST = 32
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_SIGNED = "hmac-sha256"
#: Formats that run code when loaded, per adapter (the reader's own table, never the bundle's).
_UNSAFE = {"pickle"}
_PICKLE_ADAPTERS = ("sklearn", "xgboost", "hmmlearn")
_SAFE_MODE_KERAS = (3, 14)
_XGB_ESTIMATORS = ("XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor",
                   "XGBRanker")
#: hmmlearn classes of the json format and the fitted arrays each keeps.
_HMM_CLASSES = {
    "GaussianHMM": ("startprob_", "transmat_", "means_", "_covars_"),
    "GMMHMM": ("startprob_", "transmat_", "weights_", "means_", "covars_"),
    "CategoricalHMM": ("startprob_", "transmat_", "emissionprob_"),
    "MultinomialHMM": ("startprob_", "transmat_", "emissionprob_"),
    "PoissonHMM": ("startprob_", "transmat_", "lambdas_"),
}


def load(data: bytes, *, sign_key: str | bytes | None = None, trusted: bool = False,
         key: str | None = None, max_bytes: int = MAX_BYTES) -> Predictor:
    """The model in ``data``, the bytes of an alphazoo bundle, ready to ``predict``.

    ``sign_key``: the HMAC key the bundle was signed with; when given, a signed bundle whose
    HMAC does not verify is refused. ``key``: where the bytes were read from. A signature
    vouches only for the key the bundle was saved under, and bytes carry no key of their own,
    so a verified signature lets a pickle load (or Keras leave its safe mode) only when ``key``
    is given and is the bundle's recorded key (alphazoo's ``Zoo.load_bytes`` takes the recorded
    key by default; this reader does not). ``trusted``: load a pickle without a signature.
    ``max_bytes``: the most the bundle, or any one thing its model declares (an ONNX tensor, a
    .keras archive's contents), may take; more raises ``BundleLimitError`` before allocating.
    Every error it raises for a bundle is a ``ReaderError`` (see the module's docstring).
    """
    secret = _secret(sign_key)
    manifest, files, signature_valid = read_bundle_bytes(data, sign_key=secret,
                                                         max_bytes=max_bytes)
    fmt, adapter = manifest.get("format"), manifest.get("adapter")
    name = f"{key or manifest.get('key')!r}"
    if manifest.get("signature") and secret is not None and not signature_valid:
        raise UntrustedModelError(
            f"{name} is signed, but its HMAC does not verify with the sign_key given: the bundle "
            "was changed after signing, or signed with another key")
    vouched = signature_valid and key is not None and manifest.get("key") == key
    if fmt in _UNSAFE and not trusted and not vouched:
        if not signature_valid:
            raise UntrustedModelError(
                f"format {fmt!r} runs code when it is loaded, and {name} is not "
                f"{'verified' if manifest.get('signature') else 'signed'}: pass the bundle's "
                "sign_key, or trusted=True if you know where it came from")
        raise UntrustedModelError(
            f"{name} holds a bundle signed for key {manifest.get('key')!r}: a signature vouches "
            "only for the key it was saved under; pass key= (where the bytes were read from), "
            "or trusted=True")
    model_class = str(manifest.get("model_class") or "")
    if fmt != "onnx" and model_class.startswith("alphazoo."):
        raise UnsupportedFormatError(
            f"{name} holds alphazoo's own class {model_class}, which needs alphazoo; save it "
            "as format='onnx' to serve it without alphazoo")
    payload = _payload(files, name)
    try:
        model = _model(payload, manifest, fmt, adapter, name, trusted or vouched, max_bytes)
    except ReaderError:
        raise
    except Exception as exc:  # noqa: BLE001 - the libraries' own errors on a crafted payload
        raise BundleIntegrityError(f"{name}: its {adapter} {fmt} payload does not load "
                                   f"({type(exc).__name__}: {exc})") from exc
    return Predictor(model, manifest)


def _model(payload: bytes, manifest: dict[str, Any], fmt: Any, adapter: Any, name: str,
           unsafe: bool, max_bytes: int) -> Any:
    if not isinstance(manifest.get("adapter_data") or {}, dict):
        raise BundleIntegrityError(f"{name}: adapter_data is not an object")
    if fmt == "onnx":
        return _Onnx(payload, manifest, max_bytes)
    if fmt in ("json", "ubj") and adapter == "xgboost":
        return _xgboost(payload, manifest, max_bytes)
    if fmt == "json" and adapter == "hmmlearn":
        return _hmmlearn(payload, max_bytes)
    if fmt in ("keras", "json") and adapter == "keras":
        return _keras(payload, fmt, safe_mode=not unsafe, max_bytes=max_bytes)
    if fmt == "pickle" and adapter in _PICKLE_ADAPTERS:
        _need(adapter, name)
        return pickle.loads(payload)  # noqa: S301 - trusted or signed, checked in load()
    raise UnsupportedFormatError(
        f"{name} is a {adapter!r} bundle in format {fmt!r}, which this reader does not read "
        "(it reads onnx, xgboost json/ubj, hmmlearn json, keras keras/json and the pickles "
        f"of {', '.join(_PICKLE_ADAPTERS)}); load it with alphazoo, or save it as onnx")


class Predictor:
    """A loaded model: ``predict(X)``, and ``predict_proba(X)`` when the model has one.

    ``model`` is the underlying object (the library's own estimator, or for ONNX the session
    wrapper), ``manifest`` the bundle's manifest (adapter, format, libraries, training window).
    """

    def __init__(self, model: Any, manifest: dict[str, Any]) -> None:
        self.model = model
        self.manifest = manifest

    def predict(self, X: Any) -> Any:
        """The model's predictions for the rows of ``X``."""
        if _is_booster(self.model):
            return self.model.predict(_dmatrix(X))
        return self.model.predict(X)

    @property
    def predict_proba(self) -> Any:
        """Class probabilities; absent (AttributeError) when the model has none."""
        method = getattr(self.model, "predict_proba", None)
        if method is None:
            raise AttributeError(f"this {self.manifest.get('model_class')} has no predict_proba")
        return method

    def __repr__(self) -> str:
        return (f"Predictor({self.manifest.get('key')!r}, adapter={self.manifest.get('adapter')!r}"
                f", format={self.manifest.get('format')!r})")


def read_bundle_bytes(data: bytes, *, sign_key: bytes | None = None, max_bytes: int = MAX_BYTES
                      ) -> tuple[dict[str, Any], dict[str, bytes], bool]:
    """Verify a bundle held in memory: ``(manifest, {file name: bytes}, signature_valid)``.

    Every size and SHA-256 is checked (protocol 1: the closing SHA-256 and the MAC cover the
    payload too; protocol 2: the manifest's per-file SHA-256 values stand for the payload).
    Unlike alphazoo's streaming loader, which must parse the manifest to find its files, this
    one holds every byte: the closing SHA-256 and the HMAC are checked before the manifest is
    parsed, and each file's SHA-256 before it is returned.
    """
    _limit(len(data), max_bytes, "the bundle")
    view = memoryview(bytes(data))
    if bytes(view[:len(_MAGIC)]) != _MAGIC:
        raise BundleIntegrityError("not an alphazoo model bundle (bad magic bytes)")
    start = len(_MAGIC) + _HEADER.size
    if len(view) < start + _DIGEST:
        raise BundleIntegrityError("the bundle ends early (truncated)")
    protocol, length = _HEADER.unpack(bytes(view[len(_MAGIC):start]))
    if protocol not in PROTOCOLS:
        raise BundleIntegrityError(
            f"bundle protocol {protocol}: this reader reads {list(PROTOCOLS)}; export a newer "
            "reader with `alphazoo export-reader`")
    if length > len(view) - start - _DIGEST:
        raise BundleIntegrityError("the manifest length exceeds the bundle (truncated?)")
    closing, mac = bytes(view[-_DIGEST:]), bytes(view[-2 * _DIGEST:-_DIGEST])
    # Whether the bundle is signed is a manifest field; before trusting the manifest, try both
    # layouts: protocol 1 hashes everything before the digest (the MAC included) either way.
    head = view[:start + length]
    layouts: dict[tuple[bool, ...], bytes | memoryview] = (
        {(False, True): view[:-_DIGEST]} if protocol == 1
        else {(False,): head, (True,): bytes(head) + mac})
    matched = [signed for layout, covered in layouts.items() for signed in layout
               if hmac.compare_digest(hashlib.sha256(covered).digest(), closing)]
    if not matched:
        raise BundleIntegrityError("the bundle's SHA-256 does not match (truncated, extended "
                                   "or changed)")
    covered = view[:-2 * _DIGEST] if protocol == 1 else head
    valid = bool(sign_key and len(view) >= start + length + 2 * _DIGEST and hmac.compare_digest(
        mac, hmac.new(sign_key, covered, hashlib.sha256).digest()))
    try:
        manifest = _json(bytes(view[start:start + length]), max_bytes, "the manifest")
        entries = manifest["files"] if isinstance(manifest, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise TypeError("the manifest must be an object whose files are a list of objects")
        names = [entry["name"] for entry in entries]
        sizes = [int(entry["size"]) for entry in entries]
        hashes = [str(entry["sha256"]) for entry in entries]
        signed = manifest.get("signature") == _SIGNED
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as exc:
        raise BundleIntegrityError(f"unreadable manifest ({exc})") from None
    _limit(len(names), _MAX_MEMBERS, "the bundle's payload files", "max_members")
    if (any(not isinstance(n, str) or not _FILE_NAME.fullmatch(n) for n in names)
            or len(set(names)) != len(names)):
        raise BundleIntegrityError(f"bad payload file names {names}")
    if any(not _SHA256_HEX.fullmatch(h) for h in hashes) or any(s < 0 for s in sizes):
        raise BundleIntegrityError("bad payload sizes or SHA-256 values")
    expected = start + length + sum(sizes) + _DIGEST * (2 if signed else 1)
    if expected != len(view) or signed not in matched:
        raise BundleIntegrityError(
            f"{len(view)} bytes, the manifest accounts for {expected} (truncated or extended)")
    position = start + length
    files = {}
    for name, size, expected_hash in zip(names, sizes, hashes):
        chunk = view[position:position + size]
        if not hmac.compare_digest(hashlib.sha256(chunk).hexdigest(), expected_hash):
            raise BundleIntegrityError(f"payload file {name!r} fails its SHA-256")
        files[name] = bytes(chunk)
        position += size
    return manifest, files, valid and signed


# -- formats -----------------------------------------------------------------------------------
class _Onnx:
    """An ONNX model on onnxruntime, answering as alphazoo's OnnxPredictor does."""

    def __init__(self, payload: bytes, manifest: dict[str, Any], max_bytes: int) -> None:
        onnxruntime = _need("onnxruntime", "an ONNX bundle")
        _check_onnx(payload, max_bytes)
        self.session = onnxruntime.InferenceSession(payload, providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self._input_name, self._rank = first.name, len(first.shape)
        data = manifest.get("adapter_data") or {}
        outputs = data.get("outputs") or {}
        self._keras = manifest.get("adapter") == "keras"
        self._label = [outputs.get("label") or outputs.get("value")
                       or self.session.get_outputs()[0].name]
        self._proba = [outputs["probabilities"]] if "probabilities" in outputs else None
        self.classes_ = data.get("classes")
        self.feature_names_in_ = (manifest.get("input") or {}).get("feature_names")
        # A stable-baselines3 policy answers actions shaped as model.predict does.
        self._spaces = (_space_shape(data.get("observation_space")),
                        _space_shape(data.get("action_space"))) \
            if manifest.get("adapter") == "sb3" else None

    def _feed(self, X: Any) -> dict[str, Any]:
        import numpy as np

        names, columns = self.feature_names_in_, getattr(X, "columns", None)
        if names and columns is not None and list(columns) != list(names):
            missing = [n for n in names if n not in set(columns)]
            if missing:
                raise ValueError(f"input is missing the model's feature columns {missing}")
            X = X[names]
        array = np.asarray(X, dtype=np.float32)
        if array.ndim == self._rank - 1:
            array = array[np.newaxis]  # one sample without its batch axis
        return {self._input_name: array}

    def predict(self, X: Any) -> Any:
        if self._spaces is not None:
            return self._act(X, *self._spaces)
        result = self.session.run(self._label, self._feed(X))[0]
        if not self._keras and result.ndim == 2 and result.shape[1] == 1:
            return result.ravel()
        return result

    def _act(self, X: Any, observation: tuple[int, ...], action: tuple[int, ...]) -> Any:
        """An SB3 policy's actions: one for one observation, ``(batch, *action)`` for more."""
        import numpy as np

        obs = np.asarray(X, dtype=np.float32)
        single = obs.shape == observation
        feed = {self._input_name: obs[np.newaxis] if single else obs}
        actions = self.session.run(self._label, feed)[0].reshape((-1, *action))
        return actions[0] if single else actions

    def __getattr__(self, name: str) -> Any:
        # predict_proba exists only when the export has a probability output, so hasattr()
        # answers as it would for the native model.
        if name == "predict_proba" and self.__dict__.get("_proba"):
            return lambda X: self.session.run(self._proba, self._feed(X))[0]
        raise AttributeError(name)


def _space_shape(space: Any) -> tuple[int, ...]:
    """The sample shape of a gymnasium space as the sb3 adapter records it (JSON)."""
    if not isinstance(space, dict):
        raise BundleIntegrityError("an sb3 ONNX bundle records its observation and action "
                                   "spaces")
    if space.get("type") == "Discrete":
        return ()
    shape = space.get("n") if space.get("type") == "MultiBinary" else space.get("shape")
    shape = shape if isinstance(shape, list) else [shape]
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise BundleIntegrityError(f"an sb3 space's shape is {shape!r}, not a list of sizes")
    return tuple(shape)


def _check_onnx(payload: bytes, max_bytes: int) -> None:
    """Refuse a graph whose stored or constant-folded tensors exceed ``max_bytes``.

    onnxruntime loads every initializer and folds constant subgraphs when the session is
    created: ``ConstantOfShape`` of a constant [100000, 100000] is 40 GB from a few hundred
    bytes. With the ``onnx`` package (QuantConnect has it) this sums initializers and Constant
    values, sizes each ConstantOfShape of a constant shape and every tensor shape inference
    finds, and refuses ``external_data`` (onnxruntime would read other paths). Without
    ``onnx`` all of this is skipped: only the bundle's own size is bounded.
    """
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return
    try:
        model = onnx.load_model_from_string(payload)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise BundleIntegrityError(f"not a readable ONNX model ({exc})") from None

    def width(data_type: int) -> int:  # bytes per element; 8 when unknown (strings)
        try:
            return int(onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize) or 8
        except (KeyError, TypeError, ValueError):
            return 8

    graphs, total, shapes = [model.graph], 0, {}
    for graph in graphs:  # grows as subgraphs (If, Loop, Scan bodies) are found
        tensors = [(t, t.name) for t in graph.initializer]
        sparse = list(graph.sparse_initializer)
        for node in graph.node:
            for attribute in node.attribute:
                graphs.extend([attribute.g] if attribute.HasField("g") else [])
                graphs.extend(attribute.graphs)
                if node.op_type == "Constant" and attribute.HasField("t"):
                    tensors.append((attribute.t, node.output[0] if node.output else ""))
                elif node.op_type == "Constant" and attribute.HasField("sparse_tensor"):
                    sparse.append(attribute.sparse_tensor)
        for tensor in sparse:  # onnxruntime makes them dense: their full shape counts
            tensors.append((tensor.values, tensor.values.name))
            total += _size(tensor.dims, width(tensor.values.data_type), max_bytes,
                           f"ONNX sparse tensor {tensor.values.name!r} of shape {tensor.dims}")
        for tensor, name in tensors:
            if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
                raise BundleIntegrityError(f"ONNX tensor {name!r} refers to data outside the "
                                           "file (external_data)")
            total += _size(tensor.dims, width(tensor.data_type), max_bytes,
                           f"ONNX tensor {name!r}")
            _limit(total, max_bytes, "the ONNX initializers and constants together")
            if len(tensor.dims) == 1 and tensor.data_type == onnx.TensorProto.INT64:
                shapes[name] = tensor
        for node in graph.node:
            if node.op_type == "ConstantOfShape" and node.input and node.input[0] in shapes:
                dims = numpy_helper.to_array(shapes[node.input[0]]).tolist()
                _size(dims, 8, max_bytes, f"ONNX ConstantOfShape {node.name!r} of {dims}")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - a graph inference cannot follow: the checks above hold
        return
    for info in (*inferred.graph.value_info, *inferred.graph.output):
        dims = info.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shape = [d.dim_value for d in dims]
            _size(shape, width(info.type.tensor_type.elem_type), max_bytes,
                  f"ONNX tensor {info.name!r} of shape {shape}")


def _xgboost(payload: bytes, manifest: dict[str, Any], max_bytes: int) -> Any:
    xgboost = _need("xgboost", "an xgboost bundle")
    _check_xgboost(payload, manifest.get("format"), max_bytes)
    data = manifest.get("adapter_data") or {}
    name = data.get("estimator")
    suffix = ".ubj" if manifest.get("format") == "ubj" else ".json"
    if name == "Booster":
        model = xgboost.Booster()
    elif name in _XGB_ESTIMATORS:
        params = _xgb_params(data.get("params") or {})
        model = getattr(xgboost, name)(**params)
    else:
        raise BundleIntegrityError(f"the manifest names xgboost estimator {name!r}")
    # Through a file with the format's suffix: xgboost tells JSON from UBJSON by it.
    with tempfile.TemporaryDirectory(prefix="alphazoo-reader-") as folder:
        path = os.path.join(folder, "model" + suffix)
        with open(path, "wb") as handle:
            handle.write(payload)
        model.load_model(path)
    offsets = _restore_intercept(xgboost, model, payload, manifest.get("format"))
    if offsets is not None:
        objective = str(data.get("objective") or "")
        if not objective.startswith("multi:"):
            raise UnsupportedFormatError(
                f"the model holds several intercepts with objective {objective!r}, which "
                f"xgboost {xgboost.__version__} cannot hold: serve it as onnx")
        return _PerClassIntercepts(model, offsets)
    return model


def _check_xgboost(payload: bytes, fmt: Any, max_bytes: int) -> None:
    """xgboost trusts the counts a model file declares: a ``size_leaf_vector`` beyond a tree's
    arrays crashes the process, a ``num_class`` of 10**9 allocates for that many."""
    try:
        document = json.loads(payload) if fmt == "json" else _ubjson(payload, max_bytes)
        learner = document["learner"]
        declared = learner["learner_model_param"]
        for field in ("num_feature", "num_class", "num_target"):
            _size([int(declared.get(field, 0))], 8, max_bytes, f"xgboost {field}")
        booster = learner["gradient_booster"]
        for tree in (booster.get("gbtree") or booster).get("model", {}).get("trees", []):
            param = tree["tree_param"]
            nodes, leaf = int(param["num_nodes"]), int(param.get("size_leaf_vector", 1))
            if (min(nodes, leaf) < 0 or nodes > len(tree["left_children"])
                    or nodes * max(leaf, 1) > len(tree["base_weights"])):
                raise ValueError(f"{nodes} nodes of {leaf} values exceed the tree's arrays")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise BundleIntegrityError(f"not a well-formed xgboost {fmt} model ({exc})") from None


def _ubjson(data: bytes, max_bytes: int) -> Any:
    """A UBJSON document (xgboost's .ubj) as Python values; typed numeric arrays become
    ``range`` objects of their length, all the checks need, so nothing is copied."""
    at = made = 0
    numbers = {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q", b"d": ">f", b"D": ">d"}

    def take(count: int) -> bytes:
        nonlocal at
        if count < 0 or at + count > len(data):
            raise ValueError("the UBJSON ends early")
        at += count
        return data[at - count:at]

    def value(marker: bytes) -> Any:
        nonlocal made
        made += 1  # a few bytes each can become ~100 bytes of Python objects
        _limit(100 * made, max_bytes, "the xgboost UBJSON model (as Python objects)")
        if marker in numbers:
            return struct.unpack(numbers[marker], take(struct.calcsize(numbers[marker])))[0]
        if marker in (b"S", b"H"):
            return take(value(take(1))).decode("utf-8", "replace")
        if marker in (b"T", b"F", b"Z"):
            return {b"T": True, b"F": False, b"Z": None}[marker]
        if marker not in (b"[", b"{"):
            raise ValueError(f"UBJSON marker {marker!r}")
        kind = take(2)[1:] if data[at:at + 1] == b"$" else None
        count = value(take(2)[1:]) if data[at:at + 1] == b"#" else None
        if kind is not None:  # typed: only numbers, whose count the bytes must hold
            if kind not in numbers or count is None or marker != b"[":
                raise ValueError(f"UBJSON typed container of {kind!r}")
            take(count * struct.calcsize(numbers[kind]))
            return range(count)
        items: Any = {} if marker == b"{" else []
        while (len(items) < count) if count is not None else data[at:at + 1] not in (b"]", b"}"):
            key = take(value(take(1))).decode("utf-8", "replace") if marker == b"{" else None
            item = value(take(1))
            if key is None:
                items.append(item)
            else:
                items[key] = item
        if count is None:
            take(1)
        return items

    return value(take(1))


class _PerClassIntercepts:
    """A multi-class xgboost model whose per-class intercepts (xgboost 3.1+) an older xgboost
    cannot hold: its trees' margins plus the intercepts, through a softmax, as 3.1 computes."""

    def __init__(self, model: Any, offsets: list[float]) -> None:
        self.model, self.offsets = model, offsets
        self.classes_ = getattr(model, "classes_", None)

    def _margins(self, X: Any) -> Any:
        import numpy as np

        if _is_booster(self.model):
            margin = self.model.predict(_dmatrix(X), output_margin=True)
        else:
            margin = self.model.predict(X, output_margin=True)
        return np.asarray(margin, dtype=np.float64) + np.asarray(self.offsets)

    def predict_proba(self, X: Any) -> Any:
        import numpy as np

        margin = self._margins(X)
        exp = np.exp(margin - margin.max(axis=1, keepdims=True))
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict(self, X: Any) -> Any:
        best = self._margins(X).argmax(axis=1)
        return best if self.classes_ is None else self.classes_[best]


def _restore_intercept(xgboost: Any, model: Any, payload: bytes, fmt: Any
                       ) -> list[float] | None:
    """Give an xgboost older than 3.1 the intercept a 3.1+ model file holds.

    xgboost 3.1 writes ``base_score`` as a vector (``"[4.625E-1]"``); 3.0 cannot parse it and
    silently uses 0.5, shifting every prediction (LEAN's image has 3.0.5). One value, or equal
    values per class (a softmax ignores a common shift), is set back. Differing per-class
    intercepts cannot be held by the older version: the intercept is set to 0 and the values
    are returned, to be added to the margins.
    """
    version = tuple(int(p) for p in xgboost.__version__.split(".")[:2] if p.isdigit())
    saved = _saved_base_score(payload, fmt)
    if version >= (3, 1) or not saved or not saved.startswith("["):
        return None
    try:
        values = [float(v) for v in saved.strip("[]").split(",") if v.strip()]
    except ValueError:
        raise BundleIntegrityError(f"unreadable xgboost base_score {saved!r}") from None
    if not values:
        raise BundleIntegrityError(f"empty xgboost base_score {saved!r}")
    booster = model if _is_booster(model) else model.get_booster()
    distinct = len(set(values)) > 1
    booster.set_param({"base_score": 0.0 if distinct else values[0]})
    return values if distinct else None


def _saved_base_score(payload: bytes, fmt: Any) -> str | None:
    """The ``base_score`` text of an xgboost JSON or UBJSON model file (None: not found)."""
    if fmt == "json":
        try:
            learner = json.loads(payload)["learner"]["learner_model_param"]
            return str(learner["base_score"])
        except (ValueError, KeyError, TypeError):
            return None
    # UBJSON: the key, then "S", an integer type marker, the length (big-endian), the text.
    start = payload.find(b"base_score")
    if start < 0:
        return None
    at = start + len(b"base_score")
    widths = {b"i": 1, b"U": 1, b"I": 2, b"l": 4, b"L": 8}
    width = widths.get(payload[at + 1:at + 2])
    if payload[at:at + 1] != b"S" or width is None:
        return None
    length = int.from_bytes(payload[at + 2:at + 2 + width], "big")
    return payload[at + 2 + width:at + 2 + width + length].decode("ascii", "replace")


def _xgb_params(value: Any, top: bool = True) -> Any:
    # The adapter's JSON spelling of constructor arguments: {"float": ...}, {"tuple": [...]}.
    if isinstance(value, list):
        return [_xgb_params(v, False) for v in value]
    if isinstance(value, dict):
        if not top and set(value) == {"float"}:
            return float(value["float"])
        if not top and set(value) == {"tuple"}:
            return tuple(_xgb_params(v, False) for v in value["tuple"])
        if not top and set(value) == {"dict"}:
            return {k: _xgb_params(v, False) for k, v in value["dict"].items()}
        params = {k: _xgb_params(v, False) for k, v in value.items()}
        if top:
            odd = [k for k in params if not k.isidentifier() or k.startswith("_")
                   or k.endswith("_") or k == "kwargs"]
            if odd:
                raise BundleIntegrityError(f"xgboost parameters {odd} are not parameter names")
        return params
    return value


def _hmmlearn(payload: bytes, max_bytes: int) -> Any:
    tensors, header = _weights(payload, max_bytes)
    arrays = dict(tensors)
    document = header.get("hmmlearn")
    if not isinstance(document, dict):
        raise BundleIntegrityError("the weights document holds no hmmlearn model")
    hmm = _need("hmmlearn.hmm", "an hmmlearn bundle")
    name = document.get("class")
    if name not in _HMM_CLASSES:
        raise BundleIntegrityError(f"hmmlearn class {name!r} is not one of {list(_HMM_CLASSES)}")
    cls = getattr(hmm, name)
    try:
        params = {k: _hmm_value(v, arrays) for k, v in document.get("params", {}).items()}
        unknown = sorted(set(params) - set(cls._get_param_names()))
        if unknown:
            raise ValueError(f"parameters {unknown} unknown to this hmmlearn")
        model = cls(**params)
        for attribute, value in document.get("attributes", {}).items():
            if attribute != "n_features":
                raise ValueError(f"attribute {attribute!r} is not allowed")
            model.n_features = _hmm_value(value, arrays)
        fitted = document.get("fitted", [])
        if not set(fitted) <= set(_HMM_CLASSES[name]):
            raise ValueError(f"fitted arrays {fitted!r}")
        for attribute in fitted:
            setattr(model, attribute, arrays[f"fitted/{attribute}"])
        monitor = document.get("monitor")
        if monitor is not None:
            from collections import deque

            model.monitor_.history = deque((float(v) for v in arrays["monitor/history"]),
                                           maxlen=monitor.get("maxlen"))
            for field in ("iter", "tol", "n_iter", "verbose"):
                setattr(model.monitor_, field, _hmm_value(monitor[field], arrays))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleIntegrityError(f"the document does not describe a {name}: {exc}") from exc
    if all(hasattr(model, a) for a in _HMM_CLASSES[name]):
        try:
            model._check()
        except (ValueError, TypeError, AttributeError) as exc:
            raise BundleIntegrityError(f"not a valid {name}: {exc}") from exc
    return model


def _hmm_value(entry: Any, arrays: dict[str, Any]) -> Any:
    import numpy as np

    if not isinstance(entry, dict):
        raise ValueError(f"{entry!r} is not a parameter entry")
    if "value" in entry:
        value = entry["value"]
        if value is not None and type(value) not in (bool, int, float, str):
            raise TypeError(f"{value!r} is not a JSON scalar")
        return value
    if "float" in entry:
        return float(str(entry["float"]))
    if "tensor" in entry:
        array = arrays[str(entry["tensor"])]
        return array[()] if entry.get("scalar") else array
    state = entry["random_state"]
    keys = arrays[str(state["tensor"])]
    if keys.dtype != np.uint32 or keys.shape != (624,):
        raise ValueError("bad random state")
    generator = np.random.RandomState()
    generator.set_state(("MT19937", keys, int(state["pos"]), int(state["has_gauss"]),
                         float.fromhex(str(state["gauss"]))))
    return generator


def _keras(payload: bytes, fmt: str, *, safe_mode: bool, max_bytes: int) -> Any:
    if fmt == "keras":
        _check_zip(payload, max_bytes)
    keras = _need("keras", "a Keras bundle")
    version = tuple(int(p) for p in keras.__version__.split(".")[:2] if p.isdigit())
    if safe_mode and version < _SAFE_MODE_KERAS:
        # Keras fixed bypasses of safe_mode up to 3.14 (CVE-2025-1550, -8747, -9906,
        # CVE-2026-1462): with an older one, safe mode is no protection to rely on.
        raise UntrustedModelError(
            f"keras {keras.__version__} has known bypasses of its safe_mode (fixed in 3.14): "
            "pass trusted=True or the bundle's sign_key if you trust it, or serve it as onnx")
    try:
        if fmt == "keras":
            with tempfile.TemporaryDirectory(prefix="alphazoo-reader-") as folder:
                path = os.path.join(folder, "model.keras")
                with open(path, "wb") as handle:
                    handle.write(payload)
                return keras.saving.load_model(path, safe_mode=safe_mode)
        tensors, header = _weights(payload, max_bytes)
        if "architecture" not in header:
            raise BundleIntegrityError("the weights document has no 'architecture' entry")
        model = keras.saving.deserialize_keras_object(header["architecture"],
                                                      safe_mode=safe_mode)
    except ValueError as exc:
        if "safe_mode" not in str(exc):
            raise
        raise UntrustedModelError(f"Keras' safe mode refused the model ({exc}); pass "
                                  "trusted=True or the bundle's sign_key if you trust it") from exc
    values = [array for _, array in tensors]
    if len(values) != len(model.weights):
        raise BundleIntegrityError(f"{len(values)} weights for {len(model.weights)} variables")
    model.set_weights(values)
    return model


def _check_zip(payload: bytes, max_bytes: int) -> None:
    """Refuse a .keras archive of too many members or whose members declare more than
    ``max_bytes`` in all: Python's zipfile never inflates a member past its declared size."""
    # zipfile makes an object per central directory record before anything can be counted:
    # count their signatures first (an over-count, if the bytes occur inside a member).
    _limit(payload.count(b"PK\x01\x02"), _MAX_MEMBERS, "the .keras archive's members",
           "max_members")
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise BundleIntegrityError(f"the .keras payload is not a zip archive ({exc})") from None
    with archive:
        members = archive.infolist()
        _limit(sum(m.file_size for m in members), max_bytes, "the .keras archive's members")
        # An HDF5 dataset can be chunked and compressed: a small file may declare arrays of
        # any size, which Keras allocates when it reads them. h5py reads only shapes here.
        h5py = _need("h5py", "a .keras archive")
        for member in (m for m in members if m.filename.endswith(".h5")):
            found: list[Any] = []
            with archive.open(member) as handle, h5py.File(handle, "r") as weights:
                weights.visititems(lambda _, item, found=found: found.append(
                    (item.name, item.shape or (), item.dtype.itemsize))
                    if isinstance(item, h5py.Dataset) else None)
            total = 0
            for name, shape, itemsize in found:
                total += _size(shape, itemsize, max_bytes, f"{member.filename}:{name}")
                _limit(total, max_bytes, f"{member.filename}'s datasets together")


def _weights(payload: bytes, max_bytes: int) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """The ``(name, array)`` pairs, in order, and the whole of an alphazoo weights document."""
    import numpy as np

    try:
        document = _json(payload, max_bytes, "the weights document")
    except (ValueError, RecursionError) as exc:
        raise BundleIntegrityError(f"not a JSON document: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("tensors", []), list):
        raise BundleIntegrityError("the weights document is not an object")
    if document.get("format") != "alphazoo-weights" or document.get("version") != 1:
        raise BundleIntegrityError("not an alphazoo weights document of version 1")
    arrays: list[tuple[str, Any]] = []
    for entry in document.get("tensors", []):
        if not isinstance(entry, dict):
            raise BundleIntegrityError(f"weights entry {entry!r} is not an object")
        if entry.get("type"):
            raise UnsupportedFormatError(f"weights of type {entry['type']!r} need alphazoo")
        try:
            dtype = np.dtype(str(entry["dtype"])).newbyteorder("<")
            shape = tuple(int(n) for n in entry["shape"])
            raw = base64.b64decode(entry["data"], validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleIntegrityError(f"malformed weights entry: {exc}") from exc
        if dtype.kind not in "biuf":
            raise BundleIntegrityError(f"weights entry of dtype {dtype}")
        what = f"weights entry {entry.get('name')!r} of shape {list(shape)}"
        if len(raw) != _size(shape, dtype.itemsize, max_bytes, what):
            raise BundleIntegrityError(f"weights entry {entry.get('name')!r} has a wrong size")
        array = np.frombuffer(bytearray(raw), dtype=dtype).reshape(shape)
        arrays.append((str(entry.get("name")), array.astype(dtype.newbyteorder("="), copy=False)))
    return arrays, document


# -- helpers -----------------------------------------------------------------------------------
def _need(module: str, purpose: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs {module.split('.')[0]}, which is not installed: {exc}") from exc


def _json(text: bytes, max_bytes: int, what: str) -> Any:
    # json.loads can make twenty times its text in Python objects ("[[],[],..."): estimate
    # from the containers and separators first (as alphazoo's check_json_text does).
    estimate = len(text) + 100 * (text.count(b"[") + text.count(b"{")) + 32 * text.count(b",")
    _limit(estimate, max_bytes, f"{what} (JSON of {len(text):,} bytes, as Python objects)")
    return json.loads(text)


def _limit(value: int, maximum: int, what: str, limit: str = "max_bytes") -> None:
    if value > maximum:
        raise BundleLimitError(limit, value, maximum, what)


def _size(shape: Any, itemsize: int, max_bytes: int, what: str) -> int:
    """The bytes of a tensor of ``shape``, in Python integers (numpy's int64 product wraps
    around), refused past ``max_bytes``; a negative dimension is malformed."""
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape):
        raise BundleIntegrityError(f"{what}: bad dimensions {list(shape)}")
    size = math.prod(shape) * itemsize
    _limit(size, max_bytes, what)
    return size


def _payload(files: dict[str, bytes], name: str) -> bytes:
    if len(files) != 1:
        raise BundleIntegrityError(f"{name} holds {len(files)} payload files, expected one")
    return next(iter(files.values()))


def _secret(sign_key: str | bytes | None) -> bytes | None:
    if sign_key is None:
        return None
    secret = sign_key.encode("utf-8") if isinstance(sign_key, str) else bytes(sign_key)
    if not secret:
        raise ValueError("a signing key must not be empty")
    return secret


def _is_booster(model: Any) -> bool:
    return type(model).__name__ == "Booster" and type(model).__module__.startswith("xgboost")


def _dmatrix(X: Any) -> Any:
    return importlib.import_module("xgboost").DMatrix(X)
