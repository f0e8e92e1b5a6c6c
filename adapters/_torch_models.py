"""The torch side of the torch adapter: zoo modules, training, prediction, state and ONNX.

This module imports torch at the top, so :mod:`alphazoo.adapters.torch` (the plugin, which
must not import torch when discovered) imports it only inside its hooks. The building blocks
(:func:`mlp_layers`, :func:`activation`, :class:`LSTMNet`'s last-step head) are public so
other zoo models (qlib's ALSTM, say) can reuse them.

Input layout: an :class:`MLP` takes ``(batch, features)``; an :class:`LSTMNet` takes
``(batch, sequence, features)`` (``batch_first``) and predicts from the last time step.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from alphazoo.errors import UnsupportedFormatError, UnsupportedModelError
from torch import nn

from ._weights import Tensor

__all__ = [
    "MLP", "LSTMNet", "LabelHead", "activation", "as_input", "buffer_dtypes", "export_onnx", "fit",
    "input_dtype", "load_state", "mlp_layers", "predict", "predict_proba", "seeded",
    "state_to_tensors", "tensors_to_state",
]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU,
                "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}
#: Integer types of each width, for torch dtypes numpy has no name for (bfloat16, float8...).
_VIEW_AS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


# -- building blocks -----------------------------------------------------------------------------
@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded, restoring the caller's state after.

    Weight initialisation and dropout draw from the global generator; forking it makes a zoo
    model the same for the same seed without changing the random stream of the caller.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def activation(name: str) -> nn.Module:
    """A fresh activation module by name: relu, tanh, gelu, silu, elu or leaky_relu."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose from {', '.join(_ACTIVATIONS)}"
        ) from None


def mlp_layers(sizes: Sequence[int], *, activation_name: str = "relu", dropout: float = 0.0,
               batch_norm: bool = False) -> nn.Sequential:
    """Linear layers through ``sizes`` (input, hidden..., output); the last one is bare."""
    if len(sizes) < 2 or any(int(n) < 1 for n in sizes):
        raise ValueError(f"layer sizes must be at least two positive integers, not {sizes}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(int(n_in), int(n_out)))
        if i < len(sizes) - 2:
            if batch_norm:
                layers.append(nn.BatchNorm1d(int(n_out)))
            layers.append(activation(activation_name))
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLP(nn.Module):
    """A multi-layer perceptron over ``(batch, in_features)`` rows."""

    def __init__(self, in_features: int, out_features: int, hidden: Sequence[int] = (64, 32),
                 activation: str = "relu", dropout: float = 0.0, batch_norm: bool = False
                 ) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.layers = mlp_layers([in_features, *hidden, out_features], activation_name=activation,
                                 dropout=dropout, batch_norm=batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def example_input(self, rows: int = 8) -> torch.Tensor:
        """Random rows of the input shape (ONNX export when no sample rows are known)."""
        return torch.randn(rows, self.in_features)


class LSTMNet(nn.Module):
    """An LSTM over ``(batch, sequence, in_features)``, a linear head on the last step."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 32, layers: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        # torch applies LSTM dropout between layers only, and warns when there is one layer.
        self.lstm = nn.LSTM(int(in_features), int(hidden), int(layers), batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(int(hidden), int(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])

    def example_input(self, rows: int = 8, steps: int = 8) -> torch.Tensor:
        """Random sequences of the input shape (ONNX export when no sample rows are known)."""
        return torch.randn(rows, steps, self.in_features)


# -- training and prediction ---------------------------------------------------------------------
def input_dtype(module: nn.Module) -> torch.dtype:
    """The dtype inputs are cast to: the module's first floating parameter's (else float32)."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):  # lazily: the first
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def as_input(module: nn.Module, X: Any) -> torch.Tensor:
    """``X`` (array, DataFrame, tensor) as a tensor of the module's dtype; one row made 2-D."""
    if isinstance(X, torch.Tensor):
        tensor = X.detach().to(input_dtype(module))
    else:
        array = np.asarray(X)
        if array.dtype.kind not in "fiub":
            raise TypeError(f"torch modules take numeric inputs, not {array.dtype}")
        tensor = torch.as_tensor(array).to(input_dtype(module))
    return tensor.reshape(1, -1) if tensor.ndim == 1 else tensor


def _forward(module: nn.Module, X: Any) -> torch.Tensor:
    """The module's output in eval mode and without autograd; the mode is restored after."""
    inputs = as_input(module, X)
    if not module.training:  # the usual case; switching modes walks every submodule
        with torch.no_grad():
            out = module(inputs)
    else:
        module.eval()
        try:
            with torch.no_grad():
                out = module(inputs)
        finally:
            module.train()
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"{type(module).__name__}.forward returned {type(out).__name__}; alphazoo's predict "
            "needs a module that returns one tensor"
        )
    return out


def predict(module: nn.Module, X: Any) -> np.ndarray:
    """Labels of a classifier (``module.classes_`` set by training), else the module's output.

    One output column is returned as a 1-D array, as scikit-learn's regressors do.
    """
    out = _forward(module, X)
    classes = getattr(module, "classes_", None)
    if classes is not None:
        return np.asarray(classes)[out.argmax(dim=-1).numpy()]
    values = out.numpy()
    return values.ravel() if values.ndim == 2 and values.shape[1] == 1 else values


def predict_proba(module: nn.Module, X: Any) -> np.ndarray:
    """Class probabilities (softmax of the outputs) of a module trained as a classifier."""
    if getattr(module, "classes_", None) is None:
        raise AttributeError(
            f"{type(module).__name__} has no classes_: it was not trained as a classifier "
            "(integer labels) by zoo.train"
        )
    return torch.softmax(_forward(module, X), dim=-1).numpy()


def fit(module: nn.Module, X: Any, y: Any, *, epochs: int = 10, lr: float = 1e-3,
        batch_size: int = 64, weight_decay: float = 0.0, seed: int | None = 0,
        shuffle: bool = True) -> nn.Module:
    """Train ``module`` with Adam; the same inputs and seed give the same weights.

    Integer (or bool) ``y`` are class labels: cross-entropy over one output per class, and
    ``module.classes_`` records the labels in output order. Float ``y`` are regression
    targets: mean squared error against the outputs. Returns the module in eval mode.
    """
    if y is None:
        raise TypeError("training a torch module needs targets y")
    inputs = as_input(module, X)
    target_array = np.asarray(y)
    if len(target_array) != len(inputs):
        raise ValueError(f"X has {len(inputs)} rows but y has {len(target_array)}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, not {epochs}, {batch_size}")
    classes = None
    with seeded(seed):
        probe = _forward(module, inputs[:2])
        width = probe.shape[-1]
        if target_array.dtype.kind in "iub":
            classes, codes = np.unique(target_array, return_inverse=True)
            if width != len(classes):
                raise ValueError(
                    f"integer labels train with cross-entropy, one output per class: the module "
                    f"has {width} outputs for {len(classes)} classes {classes.tolist()}; pass "
                    "float targets for a regression"
                )
            targets = torch.as_tensor(codes.reshape(-1), dtype=torch.long)
            loss_fn: nn.Module = nn.CrossEntropyLoss()
        elif target_array.dtype.kind == "f":
            targets = torch.as_tensor(target_array).to(probe.dtype)
            if targets.ndim == 1:
                targets = targets.reshape(-1, 1)
            if targets.shape[1] != width:
                raise ValueError(f"the module has {width} outputs, y has {targets.shape[1]}")
            loss_fn = nn.MSELoss()
        else:
            raise TypeError(
                f"y must hold integer labels or float targets, not {target_array.dtype}"
            )

        generator = torch.Generator().manual_seed(0 if seed is None else seed)
        optimizer = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
        module.train()
        n = len(inputs)
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
            batches = list(torch.split(order, batch_size))
            if len(batches) > 1 and len(batches[-1]) == 1:  # BatchNorm cannot train on one row
                batches[-2:] = [torch.cat(batches[-2:])]
            for index in batches:
                optimizer.zero_grad()
                out = module(inputs[index])
                loss = loss_fn(out.reshape(len(index), -1) if classes is None else out,
                               targets[index])
                loss.backward()
                optimizer.step()
    module.eval()
    if classes is not None:
        module.classes_ = classes
    elif hasattr(module, "classes_"):  # retrained as a regressor
        del module.classes_
    return module


# -- state_dict <-> tensors ----------------------------------------------------------------------
def state_to_tensors(state: Mapping[str, Any]) -> list[Tensor]:
    """A ``state_dict``'s tensors as :class:`Tensor` entries, bit for bit.

    A dtype numpy lacks (bfloat16, float8...) is stored as a same-width integer view with its
    torch name in ``type``.
    """
    entries = []
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise UnsupportedFormatError(
                f"state_dict entry {name!r} is a {type(value).__name__}, not a tensor (extra "
                "state); save this module as 'pt' or 'pickle'"
            )
        if value.layout != torch.strided or value.is_quantized or value.is_complex():
            raise UnsupportedFormatError(
                f"state_dict entry {name!r} is a {value.dtype} {value.layout} tensor; the json "
                "format holds dense real tensors: save this module as 'pt' or 'pickle'"
            )
        tensor = value.detach().cpu().contiguous()
        try:
            entries.append(Tensor(name, tensor.numpy()))
        except TypeError:  # numpy has no such dtype
            view = tensor.view(_VIEW_AS[tensor.element_size()])
            entries.append(Tensor(name, view.numpy(), str(tensor.dtype).removeprefix("torch.")))
    return entries


def tensors_to_state(tensors: Sequence[Tensor], versions: Mapping[str, Any] | None = None
                     ) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of :func:`state_to_tensors` entries, with the submodules' format
    ``versions`` (``state_dict()._metadata``) when given."""
    from collections import OrderedDict

    from alphazoo.errors import BundleIntegrityError

    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    if isinstance(versions, Mapping):
        state._metadata = OrderedDict(  # type: ignore[attr-defined]
            (str(k), dict(v)) for k, v in versions.items() if isinstance(v, Mapping))
    for entry in tensors:
        tensor = torch.from_numpy(entry.array)
        if entry.type is not None:
            dtype = getattr(torch, entry.type, None)
            if not isinstance(dtype, torch.dtype) or dtype.itemsize != tensor.element_size():
                raise BundleIntegrityError(
                    f"weights entry {entry.name!r} names type {entry.type!r}, not a torch dtype "
                    f"{tensor.element_size()} bytes wide"
                )
            tensor = tensor.view(dtype)
        state[entry.name] = tensor
    return state


def buffer_dtypes(module: nn.Module) -> dict[str, str]:
    """The dtypes of ``module``'s non-persistent buffers, which its ``state_dict`` leaves out.

    A rebuilt module makes them anew in its constructor's dtype; recording them lets
    :func:`load_state` give back a module that was converted (``.double()``) after building.
    """
    persistent = set(module.state_dict(keep_vars=True))
    return {name: str(buffer.dtype).removeprefix("torch.")
            for name, buffer in module.named_buffers() if name not in persistent}


def _cast_in_place(module: nn.Module, name: str, dtype: torch.dtype) -> None:
    # Through .data, as Module.to() does: the Parameter (or buffer) object stays the same, so
    # parameters shared between submodules (tied weights) stay shared and optimizers keep
    # their references.
    owner_name, _, attr = name.rpartition(".")
    owner = module.get_submodule(owner_name)
    tensor = owner._parameters.get(attr)
    if tensor is None:
        tensor = owner._buffers.get(attr)
    if tensor is not None and tensor.dtype != dtype:
        tensor.data = tensor.data.to(dtype)


def load_state(module: nn.Module, state: Mapping[str, Any], source: str,
               buffers: Mapping[str, str] | None = None) -> nn.Module:
    """Load ``state`` into ``module`` exactly: every key, every bit, every dtype.

    ``load_state_dict`` copies into the module's tensors, which would cast a float64 weight
    into a rebuilt float32 layer; so each tensor whose saved dtype differs is converted first
    (in place, keeping tied weights tied), then the saved bits are copied in. ``buffers`` are
    the dtypes of non-persistent buffers (:func:`buffer_dtypes`), converted the same way.
    """
    current = module.state_dict(keep_vars=True)
    wanted = [(name, value.dtype) for name, value in state.items()
              if isinstance(value, torch.Tensor) and isinstance(current.get(name), torch.Tensor)]
    for name, text in (buffers or {}).items():
        dtype = getattr(torch, str(text), None)
        if isinstance(dtype, torch.dtype):
            wanted.append((name, dtype))
    try:
        for name, dtype in wanted:
            _cast_in_place(module, name, dtype)
        module.load_state_dict(state, strict=True)
    except (AttributeError, RuntimeError) as exc:
        raise UnsupportedModelError(
            f"the saved state_dict does not fit the {type(module).__name__} made by {source}: "
            f"{exc}"
        ) from exc
    return module.eval()


# -- ONNX ----------------------------------------------------------------------------------------
class LabelHead(nn.Module):
    """A classifier's export wrapper: labels (``classes`` at the argmax) and probabilities."""

    def __init__(self, module: nn.Module, classes: np.ndarray) -> None:
        super().__init__()
        self.module = module
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
def _quiet_exporter() -> Iterator[None]:
    # The exporter warns about its own internals (deprecations, torchvision ops it skips) on
    # every call; none of it is about the user's model.
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


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path,
                classes: np.ndarray | None, dynamic_axes: Mapping[int, str],
                opset: int | None, exporter: str = "dynamo") -> dict[str, int]:
    """Export ``module`` to ``path`` with ``dynamic_axes`` of its one input left free.

    ``exporter="torchscript"`` traces with torch's older exporter: deprecated by torch, but
    it exports an LSTM in tens of milliseconds where dynamo takes seconds, which matters when
    every retrain is exported (the caller's parity check covers both).
    Returns the graph's opsets. Raises :class:`UnsupportedFormatError` when the exporter fixed
    an axis that was asked to stay dynamic (the module's code depends on that size).
    """
    import onnx

    target: nn.Module = LabelHead(module, classes) if classes is not None else module
    outputs = ["label", "probabilities"] if classes is not None else ["value"]
    shapes = ({axis: torch.export.Dim(name) for axis, name in dynamic_axes.items()},)
    was_training = module.training
    with _EXPORT_LOCK:
        target.eval()
        _clear_rnn_dispatch_cache()
        try:
            with _quiet_exporter():
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
    return {entry.domain or "ai.onnx": entry.version for entry in proto.opset_import}
