"""The keras adapter's zoo models: ``keras_mlp`` and ``keras_lstm``, compiled with Adam.

Each imports Keras when called (its backend costs seconds to start), never at module import.
"""

from __future__ import annotations

from typing import Any

from alphazoo.errors import require

__all__ = ["keras_lstm", "keras_mlp"]


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
