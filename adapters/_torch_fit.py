"""Training and prediction of torch modules: numpy in, numpy out.

:func:`fit` trains with Adam, deterministic for a seed (integer labels: cross-entropy, the
labels kept as ``module.classes_``; float targets: mean squared error). :func:`predict` and
:func:`predict_proba` run the module in eval mode without autograd.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torch import nn

from ._torch_models import seeded

__all__ = ["as_input", "fit", "input_dtype", "predict", "predict_proba"]


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
        # A plain attribute: nn.Module's __setattr__ stubs admit only tensors and modules.
        module.classes_ = classes  # type: ignore[assignment]
    elif hasattr(module, "classes_"):  # retrained as a regressor
        del module.classes_
    return module
