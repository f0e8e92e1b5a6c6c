"""ONNX export of torch modules: a classifier's label head, the exporters, free axes.

Serving needs none of this (onnxruntime alone, :class:`alphazoo.adapters._onnx.OnnxPredictor`);
it runs when the torch adapter writes its ``onnx`` format.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from alphazoo.errors import UnsupportedFormatError

__all__ = ["EXPORTERS", "LabelHead", "export_onnx", "free_axes", "quiet_exporter"]


class LabelHead(nn.Module):
    """A classifier's export wrapper: labels (``classes`` at the argmax) and probabilities."""

    def __init__(self, module: nn.Module, classes: np.ndarray) -> None:
        super().__init__()
        self.module = module
        self.classes: torch.Tensor
        self.register_buffer("classes", torch.as_tensor(np.asarray(classes)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.module(x)
        return self.classes[logits.argmax(dim=-1)], torch.softmax(logits, dim=-1)


#: Ops that torch.onnx swaps for loop-based decompositions while exporting dynamic shapes.
_RNN_OPS = ("lstm", "gru")
#: One export at a time per process: torch.export traces through process-wide state (the
#: RNN kernels above, the python dispatcher, logger levels, warning filters), and two
#: threads exporting at once both fail.
_EXPORT_LOCK = threading.Lock()


def _clear_rnn_dispatch_cache() -> None:
    # torch.onnx (2.13) registers a while_loop LSTM/GRU kernel around each export, but the
    # operator's dispatch cache keeps the first kernel it resolved: from the second export in a
    # process on, the sequence axis silently becomes a constant. Emptying the cache makes each
    # export resolve afresh; the dimension check in export_onnx catches any other cause.
    for name in _RNN_OPS:
        for overload in ("input", "data"):
            op = getattr(getattr(torch.ops.aten, name), overload, None)
            cache = getattr(op, "_dispatch_cache", None)
            if isinstance(cache, dict):
                cache.clear()


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """Silence torch.onnx's logging and warnings for the block.

    The exporter warns about its own internals (deprecations, torchvision ops it skips) on
    every call; none of it is about the user's model.
    """
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


#: ONNX exporters: torch's default (dynamo, torch.export) and the older TorchScript tracer.
EXPORTERS = ("dynamo", "torchscript")


def export_onnx(module: nn.Module, sample: np.ndarray, path: Path,
                classes: np.ndarray | None, dynamic_axes: Mapping[int, str],
                opset: int | None, exporter: str = "dynamo") -> Any:
    """Export ``module`` to ``path``, traced on ``sample`` rows (float32), with
    ``dynamic_axes`` of its one input left free; a classifier (``classes`` given) exports
    through :class:`LabelHead`.

    ``exporter="torchscript"`` traces with torch's older exporter: deprecated by torch, but
    it exports an LSTM in tens of milliseconds where dynamo takes seconds, which matters when
    every retrain is exported (the caller's parity check covers both).
    Returns the graph (an ``onnx.ModelProto``) read back from ``path``. Raises ValueError for
    an unknown ``exporter``, :class:`UnsupportedFormatError` when the exporter fixed an axis
    that was asked to stay dynamic (the module's code depends on that size).
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {', '.join(EXPORTERS)}, not {exporter!r}")
    rows = sample[:8]
    # The exporter treats an axis of size 0 or 1 as a constant: trace with at least two.
    for axis in dynamic_axes:
        if rows.shape[axis] < 2:
            rows = np.concatenate([rows, rows], axis=axis)
    example = torch.from_numpy(np.ascontiguousarray(rows))
    import onnx

    target: nn.Module = LabelHead(module, classes) if classes is not None else module
    outputs = ["label", "probabilities"] if classes is not None else ["value"]
    shapes = ({axis: torch.export.Dim(name) for axis, name in dynamic_axes.items()},)
    was_training = module.training
    with _EXPORT_LOCK:
        target.eval()
        _clear_rnn_dispatch_cache()
        try:
            with quiet_exporter():
                if exporter == "torchscript":
                    torch.onnx.export(target, (example,), str(path), dynamo=False,
                                      input_names=["input"], output_names=outputs,
                                      opset_version=opset,
                                      dynamic_axes={"input": dict(dynamic_axes)})
                else:
                    torch.onnx.export(target, (example,), str(path), dynamo=True,
                                      external_data=False, input_names=["input"],
                                      output_names=outputs, opset_version=opset,
                                      dynamic_shapes=shapes, verbose=False)
        finally:
            _clear_rnn_dispatch_cache()
            module.train(was_training)
    if exporter == "torchscript":
        _check_free_axes(path, target, rows, dynamic_axes)
    proto = onnx.load(str(path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    fixed = {axis: dims[axis].dim_value for axis in dynamic_axes
             if axis < len(dims) and not dims[axis].dim_param}
    if fixed:
        raise UnsupportedFormatError(
            f"torch.onnx.export fixed input axes {fixed} (axis: size) that should stay dynamic "
            f"({dict(dynamic_axes)}); the module's forward probably depends on those sizes. "
            "Pass dynamic_axes= to zoo.save to choose the free axes."
        )
    return proto


def _check_free_axes(path: Path, target: nn.Module, rows: np.ndarray,
                     dynamic_axes: Mapping[int, str]) -> None:
    """Run the exported graph on rows one longer along every free axis and compare it with the
    module: the tracer marks an axis free even when the module's code baked its size into the
    graph (a reshape to the traced length), which dynamo would have refused. Raises
    :class:`UnsupportedFormatError` naming the axes when the graph fails or disagrees."""
    import onnxruntime

    probe = rows
    for axis in dynamic_axes:
        first = np.take(probe, [0], axis=axis)
        probe = np.concatenate([probe, first], axis=axis)
    probe = np.ascontiguousarray(probe, dtype=np.float32)
    with torch.no_grad():
        native = target(torch.from_numpy(probe))
    expected = [t.detach().numpy() for t in (native if isinstance(native, tuple) else (native,))]
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        served = session.run(None, {"input": probe})
        same = all(np.allclose(np.asarray(got, dtype=np.float64),
                               np.asarray(want, dtype=np.float64), rtol=1e-4, atol=1e-4)
                   for got, want in zip(served, expected, strict=True))
    except Exception as exc:  # noqa: BLE001 -- any failure here means the axes are not free
        same, why = False, f" ({type(exc).__name__})"
    else:
        why = ""
    if not same:
        raise UnsupportedFormatError(
            f"the traced ONNX graph does not serve other sizes of input axes "
            f"{dict(dynamic_axes)}{why}: the module's forward depends on them. Pass "
            "dynamic_axes= to zoo.save to choose the free axes."
        )


def free_axes(requested: Any, ndim: int) -> dict[int, str]:
    """The input axes an export leaves free: ``requested`` (``dynamic_axes=`` of
    ``zoo.save``) checked against the input's ``ndim``, else the batch axis and, for 3-D
    sequences, the sequence axis."""
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
