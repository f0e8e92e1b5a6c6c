"""CatBoost models to ONNX: CatBoost's own exporter, served as the other adapters' exports are.

The catboost adapter's ``onnx`` format writes through :func:`write_onnx`. The graph is what
``model.save_model(path, format="onnx")`` writes (one ``TreeEnsembleClassifier`` or
``TreeEnsembleRegressor`` of the ``ai.onnx.ml`` domain, producer ``CatBoost``), with two
changes before :func:`~alphazoo.adapters.base.onnx_facts` checks parity on it:

- a classifier's probabilities leave the graph as the ``[N, n_classes]`` float tensor the
  tree ensemble computes, not through the ``ZipMap`` CatBoost appends (a list of one dict per
  row, which ``predict_proba`` would have to rebuild in Python on every call);
- a regressor's output is declared ``[N, 1]``, the shape onnxruntime produces, so serving it
  does not log a shape warning on every run.

What CatBoost 1.2's exporter refuses, and this module refuses first with
:class:`~alphazoo.UnsupportedFormatError` (save those as ``cbm``): categorical features,
text and embedding features, non-symmetric trees (``grow_policy`` ``Depthwise`` or
``Lossguide``), and multi-target losses (``MultiRMSE``, ``MultiLogloss``...: CatBoost writes
a graph for some of them that onnxruntime cannot load). Any other refusal of CatBoost's is
turned into the same error with its message. A regression loss whose ``predict`` transforms
the raw sum (``Poisson``, ``Tweedie``: exponent) exports the raw sum, so the parity check
refuses it with :class:`~alphazoo.OnnxParityError` and nothing is stored.

Parity is checked on the training rows (or ``sample=``) and on copies of them with a quarter
of the values missing, so the trees' ``nan_mode`` is checked too.

Nothing here imports catboost: the adapter hands over the model and its facts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alphazoo.errors import UnsupportedFormatError, require

from ._catboost_native import save_native
from .base import Saving, onnx_facts, onnx_sample

__all__ = ["CLASSIFICATION_LOSSES", "ONNX_PRODUCERS", "onnx_refusal", "write_onnx"]

#: The producer_name of the graphs CatBoost's ONNX exporter writes.
ONNX_PRODUCERS = ("CatBoost",)
#: The loss functions of CatBoost models that classify (the bare ``CatBoost`` class included).
CLASSIFICATION_LOSSES = ("Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll")


def onnx_refusal(model: Any, loss: str) -> str | None:
    """Why CatBoost's ONNX exporter cannot export ``model`` (trained with ``loss``), or None."""
    named = {"cat": "categorical", "text": "text", "embedding": "embedding"}
    found = [f"{label} features (columns {list(indices)})" for kind, label in named.items()
             if (indices := getattr(model, f"get_{kind}_feature_indices")())]
    if found:
        return (f"it has {' and '.join(found)}, which CatBoost's ONNX exporter does not "
                "support")
    policy = model.get_all_params().get("grow_policy", "SymmetricTree")
    if policy != "SymmetricTree":
        return (f"its trees are non-symmetric (grow_policy={policy!r}); CatBoost exports "
                "only symmetric trees to ONNX")
    if loss.startswith("Multi") and loss not in CLASSIFICATION_LOSSES:
        return f"its loss {loss!r} has several targets, which the ONNX export does not serve"
    return None


def write_onnx(model: Any, path: Path, saving: Saving) -> None:
    """Export the fitted ``model`` to ONNX at ``path`` and add its facts to ``saving.data``.

    ``saving.data`` already holds the model's ``task``, ``loss_function``, ``classes`` and
    ``n_features``.
    """
    onnx: Any = require("onnx", "onnx", "the onnx format")
    import numpy as np

    data = saving.data
    why = onnx_refusal(model, data["loss_function"])
    if why is not None:
        raise UnsupportedFormatError(
            f"the onnx format cannot hold this {type(model).__name__}: {why}; save it as "
            "'cbm' (the default, which holds every CatBoost model) or 'pickle'"
        )
    save_native(model, path, "onnx")
    onx = onnx.load(str(path))
    classifier = data["task"] == "classification"
    if classifier:
        outputs = {"label": "label", "probabilities": _drop_zipmap(onnx, onx)}
    else:
        outputs = {"value": _declare_column(onnx, onx)}
    sample, source = onnx_sample(saving.request.sample, (data["n_features"],))
    holes = np.random.default_rng(0).random(sample.shape) < 0.25
    sample = np.concatenate([sample, np.where(holes, np.float32(np.nan), sample)])
    native_predict, native_proba = _native(model, classifier)
    facts = onnx_facts(onx, path, saving, task=data["task"], outputs=outputs,
                       classes=data.get("classes"), native_predict=native_predict,
                       native_proba=native_proba, sample=sample, sample_source=source)
    facts["parity"]["missing_rows"] = len(sample) // 2
    data.update(facts)


def _native(model: Any, classifier: bool) -> tuple[Any, Any]:
    """The native outputs an export must match: labels and probabilities, or values.

    The bare ``CatBoost`` class predicts raw sums by default; its export serves labels and
    probabilities as a classifier's does, so those are what it is compared with.
    """
    if not classifier:
        return model.predict, None
    return ((lambda X: model.predict(X, prediction_type="Class")),
            (lambda X: model.predict(X, prediction_type="Probability")))


def _drop_zipmap(onnx: Any, onx: Any) -> str:
    """Serve the classifier's probability tensor instead of CatBoost's ``ZipMap`` of it;
    return the tensor's name."""
    graph = onx.graph
    zipmaps = [node for node in graph.node if node.op_type == "ZipMap"]
    if len(zipmaps) != 1:
        raise UnsupportedFormatError(
            f"CatBoost's ONNX export has {len(zipmaps)} ZipMap nodes, where this adapter "
            "knows graphs with one: save as 'cbm' (or report the catboost version)"
        )
    (zipmap,) = zipmaps
    tensor, mapped = zipmap.input[0], zipmap.output[0]
    ensemble = next(node for node in graph.node if tensor in node.output)
    labels = next(a for a in ensemble.attribute if a.name.startswith("classlabels_"))
    n_classes = len(labels.ints) or len(labels.strings)
    graph.node.remove(zipmap)
    probabilities = onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT,
                                                       ["N", n_classes])
    _replace_outputs(onx, {mapped: probabilities})
    return str(tensor)


def _declare_column(onnx: Any, onx: Any) -> str:
    """Declare a regressor's output ``[N, 1]``; return its name."""
    name = onx.graph.output[0].name
    _replace_outputs(onx, {name: onnx.helper.make_tensor_value_info(
        name, onnx.TensorProto.FLOAT, ["N", 1])})
    return str(name)


def _replace_outputs(onx: Any, replacements: dict[str, Any]) -> None:
    """The graph's outputs with those named in ``replacements`` swapped, in order."""
    outputs = []
    for output in onx.graph.output:
        kept = type(output)()
        kept.CopyFrom(replacements.get(output.name, output))
        outputs.append(kept)
    del onx.graph.output[:]
    onx.graph.output.extend(outputs)
