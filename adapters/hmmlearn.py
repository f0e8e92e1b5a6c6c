"""hmmlearn adapter: hidden Markov models as JSON parameters or pickle.

=========  ======================================================  ==========================
format     what is stored                                          loads with
=========  ======================================================  ==========================
json       ``get_params()`` and the fitted arrays, bit-exact        hmmlearn (no code runs)
           (default)
pickle     the pickled object (runs code: trusted only)            hmmlearn
=========  ======================================================  ==========================

No ONNX converter exists for hmmlearn models: ``format="onnx"`` is refused, naming the formats
above.

The ``json`` format holds the five models of :mod:`hmmlearn.hmm` (GaussianHMM, GMMHMM,
CategoricalHMM, MultinomialHMM, PoissonHMM). It is an alphazoo weights document (see
:mod:`alphazoo.adapters._weights`): every array as its raw bytes in base64, so a reloaded model
has the same bits and therefore the same ``predict``, ``decode``, ``score`` and
``predict_proba``. What it stores per model:

- ``get_params()``: JSON values as they are; arrays and numpy scalars (GMMHMM's priors once
  fitted, CategoricalHMM's ``n_features``, MultinomialHMM's ``n_trials``) as tensors of their
  own dtype; a ``RandomState`` (which CategoricalHMM, MultinomialHMM and PoissonHMM keep after
  ``fit``) as its Mersenne Twister state, so ``sample()`` continues the same stream.
- ``startprob_``, ``transmat_`` and the emission parameters: ``means_`` and the *internal*
  ``_covars_`` of GaussianHMM (the public ``covars_`` is always a stack of full matrices and
  cannot be assigned back for ``diag``, ``spherical`` or ``tied``; ``spherical`` is
  ``(n_components,)`` before fitting and ``(n_components, n_features)`` after),
  ``weights_``/``means_``/``covars_`` of GMMHMM (shaped per mixture), ``emissionprob_`` of
  CategoricalHMM and MultinomialHMM, ``lambdas_`` of PoissonHMM; ``n_features``.
- the convergence monitor's ``history``, ``iter``, ``tol``, ``n_iter`` and ``verbose``.

Loading rebuilds the class from that fixed list of names: a bundle never names a class path to
import. An unfitted model round-trips too (its parameters only).

Nothing is imported from hmmlearn until a model is handled; whether a model is ours is decided
from its declared base classes (BaseHMM, VariationalBaseHMM) in ``sys.modules``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alphazoo.contracts import LoadRequest
from alphazoo.errors import BundleIntegrityError, UnsupportedFormatError, require
from alphazoo.hookspecs import hookimpl

from ._common import check_options, class_path
from .base import Adapter, Format, Saving, pickle_format

__all__ = ["ADAPTER", "MODEL_CLASSES", "gaussian_hmm", "owns", "read_json", "write_json"]

_MODULE = "hmmlearn.hmm"

#: The classes the ``json`` format stores, each with the fitted arrays it keeps. Loading looks
#: a class up here and nowhere else.
MODEL_CLASSES: dict[str, tuple[str, ...]] = {
    "GaussianHMM": ("startprob_", "transmat_", "means_", "_covars_"),
    "GMMHMM": ("startprob_", "transmat_", "weights_", "means_", "covars_"),
    "CategoricalHMM": ("startprob_", "transmat_", "emissionprob_"),
    "MultinomialHMM": ("startprob_", "transmat_", "emissionprob_"),
    "PoissonHMM": ("startprob_", "transmat_", "lambdas_"),
}
#: State that is neither a parameter nor a fitted array, but handled on its own.
_OTHER_STATE = frozenset({"n_features", "monitor_"})
_MONITOR_FIELDS = ("iter", "tol", "n_iter", "verbose")


def _write_json_format(model: Any, path: Path, saving: Saving) -> None:
    left_out = write_json(model, path)
    if left_out:
        saving.notices.append(
            f"the json format keeps hmmlearn's parameters and fitted arrays, not the "
            f"attributes {left_out} set on this model; save as 'pickle' to keep them"
        )


def _read_json_format(path: Path, request: LoadRequest) -> Any:
    model = read_json(path, request.limits)
    recorded = request.manifest.get("model_class")
    if recorded != class_path(model):
        raise BundleIntegrityError(
            f"the manifest names class {recorded!r}, but the JSON document holds a "
            f"{class_path(model)}"
        )
    return model


def _describe(model: Any) -> dict[str, Any]:
    return {
        "class": type(model).__name__,
        "n_components": _plain(getattr(model, "n_components", None)),
        "n_features": _plain(getattr(model, "n_features", None)),
        "covariance_type": getattr(model, "covariance_type", None),
        "fitted": hasattr(model, "startprob_") and hasattr(model, "transmat_"),
    }


ADAPTER = Adapter(
    "hmmlearn",
    library="hmmlearn",
    model_types=["hmmlearn.base.BaseHMM", "hmmlearn.base.VariationalBaseHMM"],
    formats=[
        Format("json", "model.json", True,
               "parameters and fitted arrays as JSON, bit-exact; no code runs on load",
               write=_write_json_format, read=_read_json_format, default=True,
               load_requires=("hmmlearn",)),
        pickle_format(("hmmlearn",)),
    ],
    records=("hmmlearn", "numpy", "scipy", "scikit-learn"),
    describe=_describe,
    signature=lambda model, sample: _signature(model, sample),
    hints={"onnx": "no ONNX converter exists for hmmlearn models; save as 'json' (safe, "
                   "bit-exact) or 'pickle'"},
)
owns = ADAPTER.owns

# The hooks pluggy finds on this module.
alphazoo_formats = ADAPTER.alphazoo_formats
alphazoo_model_types = ADAPTER.alphazoo_model_types
alphazoo_save = ADAPTER.alphazoo_save
alphazoo_load = ADAPTER.alphazoo_load


@hookimpl
def alphazoo_requirements() -> list[str]:
    # The first requirement names the adapter's own library: `alphazoo plugins` shows its
    # installed version.
    return ["hmmlearn>=0.3.2"]


@hookimpl
def alphazoo_register_models(register: Any) -> None:
    register("gaussian_hmm", gaussian_hmm, library="hmmlearn")


@hookimpl
def alphazoo_train(model: Any, X: Any, y: Any, params: dict[str, Any]) -> Any:
    if not owns(model):
        return None
    # Unsupervised: y is not used. ``lengths`` splits X into independent sequences.
    check_options("hmmlearn", "train", params, ("lengths",))
    return model.fit(X, **params)


@hookimpl
def alphazoo_predict(model: Any, X: Any) -> Any:
    if not owns(model):
        return None
    return model.predict(X)


# -- zoo models ----------------------------------------------------------------------------------
def gaussian_hmm(n_components: int = 3, covariance_type: str = "diag", n_iter: int = 100,
                 random_state: int = 0, **params: Any) -> Any:
    """Gaussian hidden Markov model (hmmlearn): hidden regimes of, say, returns and volatility.

    Train with ``zoo.train(model, X)`` (X of shape (n_samples, n_features); pass
    ``lengths=[...]`` for several sequences); ``zoo.predict`` gives the most likely state
    sequence (Viterbi), one state per row. Other keyword arguments go to
    ``hmmlearn.hmm.GaussianHMM``.
    """
    hmm: Any = require(_MODULE, "hmmlearn", "this zoo model")
    return hmm.GaussianHMM(n_components=n_components, covariance_type=covariance_type,
                           n_iter=n_iter, random_state=random_state, **params)


# -- the json format -----------------------------------------------------------------------------
def write_json(model: Any, path: Path) -> list[str]:
    """Write ``model`` (one of :data:`MODEL_CLASSES`) as a weights document to ``path``.

    Returns the names of attributes the document does not keep (ones a user set on the
    model); raises :class:`~alphazoo.UnsupportedFormatError` for another class, or for a
    parameter value JSON cannot hold exactly.
    """
    import numpy as np

    cls = type(model)
    name = cls.__name__
    if cls.__module__ != _MODULE or name not in MODEL_CLASSES:
        raise UnsupportedFormatError(
            f"the hmmlearn json format holds {', '.join(MODEL_CLASSES)} from {_MODULE}, not "
            f"{class_path(model)}; save it with format='pickle' (loads with trusted=True)"
        )
    tensors: dict[str, Any] = {}
    params = model.get_params(deep=False)
    encoded = {key: _encode_value(value, f"params/{key}", tensors)
               for key, value in params.items()}
    attributes = {}
    if "n_features" not in params and hasattr(model, "n_features"):
        attributes["n_features"] = _encode_value(model.n_features, "attributes/n_features",
                                                 tensors)
    fitted = [attr for attr in MODEL_CLASSES[name] if hasattr(model, attr)]
    for attr in fitted:
        tensors[f"fitted/{attr}"] = np.asarray(getattr(model, attr))
    document: dict[str, Any] = {"class": name, "params": encoded, "attributes": attributes,
                                "fitted": fitted}
    monitor = getattr(model, "monitor_", None)
    if monitor is not None:
        tensors["monitor/history"] = np.asarray(list(monitor.history), dtype=np.float64)
        # tol, n_iter and verbose too: set_params() after construction leaves the monitor's
        # copies behind, and fit() reads the monitor's.
        document["monitor"] = {
            "maxlen": monitor.history.maxlen,
            **{key: _encode_value(getattr(monitor, key), f"monitor/{key}", tensors)
               for key in _MONITOR_FIELDS},
        }
    write_weights = _weights().write_weights
    write_weights(path, tensors, hmmlearn=document)
    kept = set(params) | set(MODEL_CLASSES[name]) | _OTHER_STATE
    return sorted(set(vars(model)) - kept)


def read_json(path: Path, limits: Any = None) -> Any:
    """The model in the weights document at ``path`` (see :func:`write_json`).

    The class comes from :data:`MODEL_CLASSES` only; a document naming another class, a
    parameter the installed hmmlearn lacks, or arrays of the wrong shape raises
    :class:`~alphazoo.BundleIntegrityError`. ``limits`` (an :class:`~alphazoo.LoadLimits`)
    bounds the document and its arrays before they are parsed.
    """
    try:
        tensors, header = _weights().read_weights(path, limits)
    except ValueError as exc:  # not JSON at all (read_weights checks the rest)
        raise BundleIntegrityError(f"{path.name} is not a JSON document: {exc}") from exc
    arrays = {t.name: t.array for t in tensors}
    document = header.get("hmmlearn")
    if not isinstance(document, dict):
        raise BundleIntegrityError(f"{path.name} holds no hmmlearn model description")
    name = document.get("class")
    if not isinstance(name, str) or name not in MODEL_CLASSES:
        raise BundleIntegrityError(
            f"{path.name} names model class {name!r}; the hmmlearn json format loads only "
            f"{', '.join(MODEL_CLASSES)} (a class path in a bundle is never imported)"
        )
    hmm: Any = require(_MODULE, "hmmlearn", "loading an hmmlearn bundle")
    cls = getattr(hmm, name)
    try:
        model = _rebuild(cls, name, document, arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleIntegrityError(f"{path.name} does not describe a {name}: {exc}") from exc
    _validate(model, name, path.name)
    return model


# -- helpers -------------------------------------------------------------------------------------
def _rebuild(cls: Any, name: str, document: dict[str, Any], arrays: dict[str, Any]) -> Any:
    params = {key: _decode_value(value, arrays)
              for key, value in _mapping(document, "params").items()}
    attributes = {key: _decode_value(value, arrays)
                  for key, value in _mapping(document, "attributes").items()}
    unknown = sorted(set(params) - set(cls._get_param_names()))
    if unknown:
        raise ValueError(
            f"it sets parameters {unknown} that {name} of the installed hmmlearn does not have "
            "(saved with another hmmlearn version?)"
        )
    if set(attributes) - {"n_features"}:
        raise ValueError(f"it sets attributes {sorted(attributes)}; only n_features is allowed")
    fitted = document.get("fitted", [])
    if (not isinstance(fitted, list) or not all(isinstance(a, str) for a in fitted)
            or not set(fitted) <= set(MODEL_CLASSES[name])):
        raise ValueError(f"it lists fitted arrays {fitted!r}; {name} has {MODEL_CLASSES[name]}")
    with _quiet_multinomial_notice():
        model = cls(**params)
    for key, value in attributes.items():
        setattr(model, key, value)
    for attr in fitted:
        # Straight into the attribute (for GaussianHMM the internal _covars_), as fit() leaves
        # it: the public covars_ setter would copy and re-validate.
        setattr(model, attr, arrays[f"fitted/{attr}"])
    monitor = document.get("monitor")
    if monitor is not None:
        history = [float(v) for v in arrays["monitor/history"]]
        model.monitor_.history = deque(history, maxlen=monitor.get("maxlen"))
        for key in _MONITOR_FIELDS:
            setattr(model.monitor_, key, _decode_value(monitor[key], arrays))
    return model


def _weights() -> Any:
    # _weights imports numpy at module level; alphazoo's import must not pay for it.
    from . import _weights

    return _weights


def _encode_value(value: Any, tensor_name: str, tensors: dict[str, Any]) -> dict[str, Any]:
    """A JSON entry for one parameter, putting arrays into ``tensors``; exact or refused."""
    import numpy as np

    if value is None or type(value) in (bool, int, str):
        return {"value": value}
    if type(value) is float:
        return {"value": value} if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, np.ndarray):
        tensors[tensor_name] = value
        return {"tensor": tensor_name}
    if isinstance(value, np.generic):
        tensors[tensor_name] = np.asarray(value)
        return {"tensor": tensor_name, "scalar": True}
    if isinstance(value, np.random.RandomState):
        state = value.get_state(legacy=False)
        if state["bit_generator"] != "MT19937":
            raise UnsupportedFormatError(
                f"{tensor_name}: a RandomState over {state['bit_generator']} has no json form; "
                "save with format='pickle'"
            )
        tensors[tensor_name] = np.asarray(state["state"]["key"], dtype=np.uint32)
        return {"random_state": {"tensor": tensor_name, "pos": int(state["state"]["pos"]),
                                 "has_gauss": int(state["has_gauss"]),
                                 "gauss": float(state["gauss"]).hex()}}
    raise UnsupportedFormatError(
        f"{tensor_name} is a {type(value).__module__}.{type(value).__qualname__}, which the "
        "hmmlearn json format cannot hold exactly; save with format='pickle'"
    )


def _decode_value(entry: Any, arrays: dict[str, Any]) -> Any:
    import numpy as np

    if not isinstance(entry, dict) or len(entry) not in (1, 2):
        raise ValueError(f"{entry!r} is not a parameter entry")
    if "value" in entry:
        value = entry["value"]
        if value is not None and type(value) not in (bool, int, float, str):
            raise TypeError(f"parameter value {value!r} is not a JSON scalar")
        return value
    if "float" in entry:
        return float(str(entry["float"]))
    if "tensor" in entry:
        array = arrays[str(entry["tensor"])]
        return array[()] if entry.get("scalar") else array
    if "random_state" not in entry:
        raise ValueError(f"{entry!r} is not a parameter entry")
    state = entry["random_state"]
    keys = arrays[str(state["tensor"])]
    if keys.dtype != np.uint32 or keys.shape != (624,):
        raise ValueError(f"random state keys have dtype {keys.dtype} and shape {keys.shape}")
    generator = np.random.RandomState()
    generator.set_state(("MT19937", keys, int(state["pos"]), int(state["has_gauss"]),
                         float.fromhex(str(state["gauss"]))))
    return generator


def _mapping(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise TypeError(f"{key!r} must be an object, not {type(value).__name__}")
    return value


def _validate(model: Any, name: str, file_name: str) -> None:
    """Refuse arrays that do not fit the model, as hmmlearn would at the first predict."""
    if not all(hasattr(model, attr) for attr in MODEL_CLASSES[name]):
        return  # unfitted (or partly initialised by hand): nothing to check yet
    # hmmlearn's own check, on a shallow copy: it normalises attributes as it goes (GMMHMM
    # broadcasts its priors), and the loaded model must stay exactly as saved.
    probe = copy.copy(model)
    try:
        probe._check()
        if name == "GaussianHMM":
            nc, nf = probe.n_components, probe.n_features
            shape = probe._covars_.shape
            allowed = {"spherical": [(nc,), (nc, nf)], "diag": [(nc, nf)],
                       "full": [(nc, nf, nf)], "tied": [(nf, nf)]}[probe.covariance_type]
            if shape not in allowed:
                raise ValueError(
                    f"{probe.covariance_type!r} _covars_ must have shape "
                    f"{' or '.join(map(str, allowed))}, not {shape}"
                )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise BundleIntegrityError(f"{file_name} does not describe a valid {name}: {exc}") \
            from exc


class _DropNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("MultinomialHMM has undergone major changes")


@contextlib.contextmanager
def _quiet_multinomial_notice() -> Iterator[None]:
    # MultinomialHMM.__init__ logs a notice about its 0.2.8 API change on every construction;
    # the user saw it when building the model, a load should not repeat it.
    logger = logging.getLogger(_MODULE)
    notice = _DropNotice()
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


def _plain(value: Any) -> Any:
    """A JSON value for the manifest (numpy integers become ints)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _signature(model: Any, sample: Any) -> dict[str, Any] | None:
    name = type(model).__name__
    n_features = getattr(model, "n_features", None)
    # CategoricalHMM reads one column of symbol indices; n_features is the symbol count.
    width = 1 if name == "CategoricalHMM" else _plain(n_features)
    dtype = getattr(sample, "dtype", None)
    default = "float64" if name in ("GaussianHMM", "GMMHMM") else "int64"
    return {"dtype": str(dtype) if dtype is not None else default, "shape": [None, width],
            "feature_names": None}
