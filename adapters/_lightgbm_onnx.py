"""LightGBM models to ONNX: onnxmltools' conversion, checked to predict as LightGBM does.

The lightgbm adapter's ``onnx`` format writes through :func:`write_onnx`. onnxmltools converts
the trees (categorical splits included, as chains of equality branches); this module decides
what is exported and what it is compared with before
:func:`~alphazoo.adapters.base.onnx_facts` checks parity:

- an early-stopped model exports only the trees its ``predict`` uses (``best_iteration``);
- a Booster trained with an alias of its objective (qlib's ``"mse"``, ``"l2"``, ``"softmax"``,
  ``"xendcg"``...) is converted with the canonical name its model string holds: onnxmltools
  reads a Booster's objective from ``params``, as given to ``lightgbm.train``, and knows none
  of LightGBM's aliases;
- a model fitted on pandas ``category`` columns is refused: its wrapper maps categories to
  codes in Python, the graph takes floats, so a DataFrame fed to the served model would be
  read as category values, not codes (fit with integer codes and ``categorical_feature=``);
- linear trees (``linear_tree=True``) are refused: the converter drops the leaves' linear
  models;
- parity also covers copies of the sample with a quarter of the values missing (NaN), so the
  trees' default directions are checked too;
- a classifying Booster (``binary``, ``multiclass``) is compared label for label with what
  ``LGBMClassifier`` would answer from its probabilities;
- a classifier's label output is recomputed in the graph as the class of highest probability,
  the first on ties (what ``LGBMClassifier.predict`` does). onnxruntime's
  ``TreeEnsembleClassifier`` labels a binary model whose leaf values are all positive by its
  raw score against one half, as if the leaves held probabilities; a LightGBM model started
  from the average (``boost_from_average``, the default) with one or a few trees often has
  only positive leaves, and its labels were then all 0 while its probabilities were above
  one half;
- the label output's declared shape is made ``[N]`` (onnxmltools declares ``[1]``, which
  onnxruntime warns about on every batch of more than one row).

Nothing here imports lightgbm before a model is handled.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any, Callable

from alphazoo.errors import OnnxParityError, UnsupportedFormatError, require

from .base import Saving, onnx_facts, onnx_sample

__all__ = ["MAX_ONNX_OPSET", "ONNX_PRODUCERS", "write_onnx"]

#: The highest ONNX opset the export targets (onnxmltools' tree converters, as for xgboost).
MAX_ONNX_OPSET = 15
#: The producer_name of the graphs onnxmltools writes.
ONNX_PRODUCERS = ("OnnxMLTools",)


def write_onnx(model: Any, booster: Any, path: Path, saving: Saving) -> None:
    """Convert ``model`` (a Booster, or a wrapper whose fitted Booster is ``booster``) to
    ONNX at ``path`` and add its facts to ``saving.data``.

    ``saving.data`` already holds the model's ``task``, ``objective`` and ``classes``. The
    ``opset`` save option picks a target opset up to :data:`MAX_ONNX_OPSET`.
    """
    onnxmltools: Any = require("onnxmltools", "onnx", "the onnx format")
    from onnxmltools.convert.common.data_types import FloatTensorType

    data = saving.data
    opset = saving.options.get("opset", MAX_ONNX_OPSET)
    if isinstance(opset, bool) or not isinstance(opset, int) or not 1 <= opset <= MAX_ONNX_OPSET:
        raise ValueError(f"opset must be an int from 1 to {MAX_ONNX_OPSET}, not {opset!r}")
    _refuse_unconvertible(model, booster)
    exported, used = _predicting_trees(model, booster)
    native_predict, native_proba = _native(model, booster, data)
    n_features = booster.num_feature()
    sample, source = onnx_sample(saving.request.sample, (n_features,))
    sample, missing_rows = _with_missing_rows(sample)
    exported = _with_canonical_objective(exported, data["objective"])
    try:
        onx = onnxmltools.convert_lightgbm(
            exported, initial_types=[("input", FloatTensorType([None, n_features]))],
            target_opset=opset, zipmap=False,
        )
    except Exception as exc:  # the converter raises bare RuntimeErrors, KeyErrors...
        raise UnsupportedFormatError(
            f"onnxmltools could not convert this LightGBM model (objective "
            f"{data['objective']!r}): {type(exc).__name__}: {exc}; format='text' stores it"
        ) from exc
    if data["task"] == "classification":
        outputs = {"label": "label", "probabilities": "probabilities"}
        _labels_from_probabilities(onx, label="label", probabilities="probabilities")
        _batch_label_shape(onx)
    else:
        outputs = {"value": onx.graph.output[0].name}
    try:
        facts = onnx_facts(onx, path, saving, task=data["task"], outputs=outputs,
                           classes=data.get("classes"), native_predict=native_predict,
                           native_proba=native_proba, sample=sample, sample_source=source)
    except OnnxParityError as exc:
        raise OnnxParityError(f"{exc} (objective {data['objective']!r}: format='text' "
                              "stores this model exactly)") from None
    facts["parity"]["missing_rows"] = missing_rows
    data.update(facts, target_opset=opset, rounds_exported=used)


def _refuse_unconvertible(model: Any, booster: Any) -> None:
    """Refuse what the graph would compute differently (see the module's docstring)."""
    if callable(getattr(model, "_objective", None)):
        raise UnsupportedFormatError(
            "ONNX export of a LightGBM model with a callable objective is not supported: its "
            "predict returns raw scores the converter does not know of (save it as pickle)"
        )
    if booster.pandas_categorical:
        raise UnsupportedFormatError(
            "this LightGBM model was fitted on pandas 'category' columns; the ONNX graph takes "
            "float inputs, so a served DataFrame would be read as category values, not codes: "
            "save it with format='text', or fit on integer codes with categorical_feature="
        )
    if booster.params.get("linear_tree") or "\nis_linear=1\n" in booster.model_to_string(
            num_iteration=1):
        raise UnsupportedFormatError(
            "ONNX export of LightGBM linear trees (linear_tree=True) is not supported: the "
            "converter drops the leaves' linear models; save it with format='text'"
        )


def _predicting_trees(model: Any, booster: Any) -> tuple[Any, int]:
    """What to convert: ``model``, or a copy holding only the iterations its ``predict``
    uses when it stopped early; and that number of iterations."""
    lightgbm: Any = sys.modules["lightgbm"]
    rounds = booster.current_iteration()
    best = booster.best_iteration
    if not 0 < best < rounds:
        return model, rounds
    trimmed = lightgbm.Booster(model_str=booster.model_to_string(num_iteration=best))
    if model is booster:
        return trimmed, best
    wrapper = copy.copy(model)  # shallow: the caller's wrapper keeps its own booster
    wrapper._Booster = trimmed
    return wrapper, best


def _with_canonical_objective(exported: Any, objective: str) -> Any:
    """``exported``, or when it is a Booster whose ``params`` name its objective by an alias,
    a copy whose ``params`` name it as its model string does (``"mse"`` -> ``"regression"``).

    The model string is LightGBM's own canonical name (its ``ParseObjectiveAlias``), so no
    alias table is kept here. The caller's Booster is left as it is. Wrappers are converted by
    their class and need no copy.
    """
    lightgbm: Any = sys.modules["lightgbm"]
    if not isinstance(exported, lightgbm.Booster) or objective == "custom":
        return exported
    given = exported.params.get("objective")
    if given is None or given == objective:
        return exported
    canonical = lightgbm.Booster(model_str=exported.model_to_string())
    canonical.params = {**exported.params, "objective": objective}
    return canonical


def _native(model: Any, booster: Any, data: dict[str, Any],
            ) -> tuple[Callable[..., Any], Callable[..., Any] | None]:
    """The native predict and predict_proba that an ONNX export of ``model`` must match."""
    import numpy as np

    classifier = data["task"] == "classification"
    if model is not booster:
        return model.predict, model.predict_proba if classifier else None
    if not classifier:
        return booster.predict, None
    if data["objective"] == "binary":
        def proba(X: Any) -> Any:
            p = booster.predict(X)
            return np.column_stack([1.0 - p, p])
    else:
        proba = booster.predict
    # LGBMClassifier's rule: the first class of highest probability.
    return (lambda X: np.argmax(proba(X), axis=1)), proba


def _with_missing_rows(sample: Any) -> tuple[Any, int]:
    """``sample`` and a copy of it with a fixed quarter of the values NaN."""
    import numpy as np

    holes = np.random.default_rng(0).random(sample.shape) < 0.25
    return np.concatenate([sample, np.where(holes, np.float32(np.nan), sample)]), len(sample)


def _labels_from_probabilities(onx: Any, *, label: str, probabilities: str) -> None:
    """Make the graph's ``label`` output the class of highest probability (the first on ties).

    The label onnxmltools wires from ``TreeEnsembleClassifier`` is replaced by
    ``Gather(classes, ArgMax(probabilities))``, so labels and probabilities cannot disagree;
    the nodes and initializers only the old label used are dropped.
    """
    from onnx import TensorProto, helper

    graph = onx.graph
    trees = next(n for n in graph.node if n.op_type == "TreeEnsembleClassifier")
    attributes = {a.name: a for a in trees.attribute}
    if "classlabels_int64s" in attributes:
        ints = list(attributes["classlabels_int64s"].ints)
        classes = helper.make_tensor("label_classes", TensorProto.INT64, [len(ints)], ints)
    else:
        strings = list(attributes["classlabels_strings"].strings)
        classes = helper.make_tensor("label_classes", TensorProto.STRING, [len(strings)],
                                     strings)
    kept = [n for n in graph.node if label not in n.output]
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.append(classes)
    graph.node.extend([
        helper.make_node("ArgMax", [probabilities], ["label_index"], name="label_argmax",
                         axis=1, keepdims=0),
        helper.make_node("Gather", ["label_classes", "label_index"], [label],
                         name="label_gather", axis=0),
    ])
    _drop_unused(graph)


def _drop_unused(graph: Any) -> None:
    """Remove the nodes none of whose outputs is read, then the initializers none reads."""
    while True:
        read = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
        kept = [n for n in graph.node if any(out in read for out in n.output)]
        if len(kept) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(kept)
    read = {name for n in graph.node for name in n.input}
    kept_init = [i for i in graph.initializer if i.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept_init)


def _batch_label_shape(onx: Any) -> None:
    """Declare the label output as one value per row (``[N]``), not onnxmltools' ``[1]``."""
    for output in onx.graph.output:
        if output.name == "label":
            dims = output.type.tensor_type.shape.dim
            if len(dims) == 1:
                dims[0].ClearField("dim_value")
                dims[0].dim_param = "N"
