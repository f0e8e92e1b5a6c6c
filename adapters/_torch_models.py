"""The torch adapter's networks: the zoo's modules and the building blocks they share.

:class:`MLP` takes ``(batch, features)``; :class:`LSTMNet` takes ``(batch, sequence,
features)`` (``batch_first``) and predicts from the last time step. The building blocks
(:func:`mlp_layers`, :func:`activation`, :func:`seeded`) are public so other zoo models
(qlib's ALSTM, the policy-gradient trader) reuse them.

This module imports torch at the top, so :mod:`alphazoo.adapters.torch` (the plugin, which
must not import torch when discovered) imports it only when a model is handled. Pickled
bundles name these classes by this module's path: they stay here.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence

import torch
from torch import nn

__all__ = ["MLP", "LSTMNet", "activation", "mlp_layers", "seeded"]

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU,
                "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


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
