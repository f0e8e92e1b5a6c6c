"""xgboost models to ONNX: onnxmltools' conversion, made to predict as xgboost does.

The xgboost adapter's ``onnx`` format writes through :func:`write_onnx`. onnxmltools converts
the booster's trees; this module makes the graph match what the native model's ``predict``
gives before :func:`~alphazoo.adapters.base.onnx_facts` checks parity:

- an early-stopped wrapper exports only the trees its ``predict`` uses (``best_iteration``);
- split features are converted without names (onnxmltools reads only ``f0, f1...``);
- a ``missing`` other than NaN gets ``Where(input == missing, NaN, input)`` in front of the
  trees, since the ONNX tree ensemble knows only NaN (needs opset >= 11);
- parity also covers copies of the sample with a quarter of the values missing, so the
  trees' default directions are checked too;
- a classifying Booster (``binary:logistic``, ``multi:softprob``, ``multi:softmax``) is
  compared label for label with what ``XGBClassifier`` would answer from its output.

Nothing here imports xgboost: the adapter hands over the model, its booster and the
booster's own predict function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alphazoo.errors import UnsupportedFormatError, require

from .base import Saving, onnx_facts, onnx_sample

__all__ = ["MAX_ONNX_OPSET", "ONNX_PRODUCERS", "write_onnx"]

#: The highest ONNX opset onnxmltools' xgboost converter targets (1.16 raises above it).
MAX_ONNX_OPSET = 15
#: The producer_name of the graphs onnxmltools writes.
ONNX_PRODUCERS = ("OnnxMLTools",)


def write_onnx(model: Any, booster: Any, path: Path, saving: Saving,
               booster_predict: Callable[[Any], Any]) -> None:
    """Convert ``model`` (a Booster, or a wrapper whose fitted Booster is ``booster``) to
    ONNX at ``path`` and add its facts to ``saving.data``.

    ``saving.data`` already holds the model's ``task``, ``objective`` and ``classes``;
    ``booster_predict(X)`` is ``Booster.predict``'s output for rows ``X``. The ``opset``
    save option picks a target opset up to :data:`MAX_ONNX_OPSET`.
    """
    onnxmltools: Any = require("onnxmltools", "onnx", "the onnx format")
    from onnxmltools.convert.common.data_types import FloatTensorType

    data = saving.data
    opset = saving.options.get("opset", MAX_ONNX_OPSET)
    if isinstance(opset, bool) or not isinstance(opset, int) or not 1 <= opset <= MAX_ONNX_OPSET:
        raise ValueError(f"opset must be an int from 1 to {MAX_ONNX_OPSET}, not {opset!r}")
    native_predict, native_proba = _native(model, booster, data, booster_predict)
    n_features = booster.num_features()
    sample, source = onnx_sample(saving.request.sample, (n_features,))
    missing = _missing_value(None if model is booster else model)
    sample, missing_rows = _with_missing_rows(sample, missing)
    # The wrappers predict with the trees up to best_iteration after early stopping, while
    # onnxmltools exports every tree: export the ones predict uses.
    rounds = booster.num_boosted_rounds()
    best = None if model is booster else getattr(model, "best_iteration", None)
    plain = booster[: best + 1] if best is not None and best + 1 < rounds else booster
    # onnxmltools reads split features from the tree dump and understands only f0, f1...:
    # convert a copy without names (columns are positional in ONNX anyway).
    if plain.feature_names is not None:
        plain = plain.copy()
        plain.feature_names = None
    try:
        onx = onnxmltools.convert_xgboost(
            plain, initial_types=[("input", FloatTensorType([None, n_features]))],
            target_opset=opset,
        )
    except Exception as exc:  # the converter raises bare RuntimeErrors, KeyErrors...
        raise UnsupportedFormatError(
            f"onnxmltools could not convert this xgboost model (objective "
            f"{data['objective']!r}): {type(exc).__name__}: {exc}"
        ) from exc
    if missing is not None:
        _map_missing_to_nan(onx, missing, opset)
    if data["task"] == "classification":
        outputs = {"label": "label"}
        if native_proba is not None:  # multi:softmax exports margins, not probabilities
            outputs["probabilities"] = "probabilities"
    else:
        outputs = {"value": onx.graph.output[0].name}
    facts = onnx_facts(onx, path, saving, task=data["task"], outputs=outputs,
                       classes=data.get("classes"), native_predict=native_predict,
                       native_proba=native_proba, sample=sample, sample_source=source)
    facts["parity"]["missing_rows"] = missing_rows
    data.update(facts, target_opset=opset, rounds_exported=plain.num_boosted_rounds())


def _native(model: Any, booster: Any, data: dict[str, Any],
            booster_predict: Callable[[Any], Any],
            ) -> tuple[Callable[..., Any], Callable[..., Any] | None]:
    """The native predict and predict_proba that an ONNX export of ``model`` must match."""
    import numpy as np

    classifier = data["task"] == "classification"
    if model is not booster:
        return model.predict, getattr(model, "predict_proba", None) if classifier else None
    if not classifier:
        return booster_predict, None
    objective = data["objective"]
    raw = booster_predict
    if objective == "binary:logistic":
        def proba(X: Any) -> Any:
            p = raw(X)
            return np.column_stack([1.0 - p, p])

        # XGBClassifier's own rule: class 1 when its probability is above one half.
        return (lambda X: (raw(X) > 0.5).astype(np.int64)), proba
    if objective == "multi:softprob":
        return (lambda X: np.argmax(raw(X), axis=1)), raw
    if objective == "multi:softmax":
        return (lambda X: raw(X).astype(np.int64)), None
    raise UnsupportedFormatError(
        f"ONNX export of a Booster with objective {objective!r} is not supported: the "
        "classification objectives it exports are binary:logistic, multi:softprob and "
        "multi:softmax (save this one as json, ubj or pickle)"
    )


def _missing_value(wrapper: Any) -> float | None:
    """The wrapper's ``missing`` when it is a number other than NaN, else None (and for a
    Booster, which has no ``missing``).

    xgboost skips NaN and ``missing`` alike when it walks a tree; the ONNX tree ensemble knows
    only NaN, so another ``missing`` needs a mapping in front of it (:func:`_map_missing_to_nan`).
    """
    missing = getattr(wrapper, "missing", None)
    if missing is None or math.isnan(float(missing)):
        return None
    return float(missing)


def _with_missing_rows(sample: Any, missing: float | None) -> tuple[Any, int]:
    """``sample`` and copies of it with a fixed quarter of the values missing (NaN, and the
    model's own ``missing`` value), so parity covers the trees' default directions too."""
    import numpy as np

    holes = np.random.default_rng(0).random(sample.shape) < 0.25
    copies = [np.where(holes, np.float32(value), sample)
              for value in (np.nan, missing) if value is not None]
    return np.concatenate([sample, *copies]), sum(len(c) for c in copies)


def _map_missing_to_nan(onx: Any, missing: float, target_opset: int) -> None:
    """Put ``Where(input == missing, NaN, input)`` in front of the exported trees."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = onx.graph
    default = [d for d in onx.opset_import if d.domain in ("", "ai.onnx")]
    opset = default[0].version if default else target_opset  # a regressor uses only ai.onnx.ml
    if opset < 11:  # Equal on floats
        raise UnsupportedFormatError(
            f"missing={missing!r} is mapped to NaN in the ONNX graph, which needs opset >= 11 "
            f"(this export targets {opset}): save with a higher opset or missing=np.nan"
        )
    if not default:
        onx.opset_import.append(helper.make_opsetid("", opset))
    source, mapped = graph.input[0].name, "alphazoo_input_missing_as_nan"
    for node in graph.node:
        node.input[:] = [mapped if name == source else name for name in node.input]
    graph.initializer.extend([
        numpy_helper.from_array(np.array(missing, dtype=np.float32), "alphazoo_missing"),
        numpy_helper.from_array(np.array(np.nan, dtype=np.float32), "alphazoo_nan"),
    ])
    first = [helper.make_node("Equal", [source, "alphazoo_missing"], ["alphazoo_is_missing"]),
             helper.make_node("Where", ["alphazoo_is_missing", "alphazoo_nan", source],
                              [mapped])]
    nodes = first + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
