"""Serving an SB3 policy's ONNX export: actions from observations with onnxruntime alone.

What the sb3 adapter's ``onnx`` bundles load as. Needs numpy and onnxruntime, not torch,
gymnasium or stable-baselines3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alphazoo.errors import BundleFormatError, require

__all__ = ["PolicyOnnxPredictor"]


class PolicyOnnxPredictor:
    """A stable-baselines3 policy's deterministic action, served by onnxruntime.

    ``predict(obs)`` answers as ``model.predict(obs, deterministic=True)[0]`` does: one
    observation (shaped like the observation space) gives one action, a batch of them a
    batch of actions, shaped ``(batch, *action_shape)``; discrete actions are int64, Box
    actions float32, already clipped or rescaled to the action space as SB3 does.

    ``observation_space`` and ``action_space`` are the spaces the policy was trained for, as
    the JSON the manifest records (see :mod:`alphazoo.adapters._sb3_spaces`).
    """

    def __init__(self, model: str | bytes, *, observation_shape: Sequence[int],
                 action_shape: Sequence[int], observation_space: Mapping[str, Any] | None = None,
                 action_space: Mapping[str, Any] | None = None, algorithm: str = "") -> None:
        onnxruntime: Any = require("onnxruntime", "onnx", "serving an ONNX model")
        self.session = onnxruntime.InferenceSession(model, onnxruntime.SessionOptions(),
                                                    providers=["CPUExecutionProvider"])
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or "action" not in {output.name for output in outputs}:
            raise BundleFormatError("model.onnx", "a policy graph takes one input and has an "
                                                  "'action' output")
        self.input_name: str = inputs[0].name
        self.observation_shape = tuple(int(d) for d in observation_shape)
        self.action_shape = tuple(int(d) for d in action_shape)
        self.observation_space = dict(observation_space or {})
        self.action_space = dict(action_space or {})
        self.algorithm = algorithm

    def predict(self, observation: Any) -> np.ndarray:
        """The deterministic action for one observation, or actions for a batch."""
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.shape == self.observation_shape
        if single:
            obs = obs.reshape((1, *self.observation_shape))
        elif obs.shape[1:] != self.observation_shape:
            raise ValueError(f"observations of shape {obs.shape} do not fit the observation "
                             f"space's {self.observation_shape} (nor a batch of them)")
        actions = self.session.run(["action"], {self.input_name: np.ascontiguousarray(obs)})[0]
        actions = actions.reshape((-1, *self.action_shape))
        return actions[0] if single else actions

    def __repr__(self) -> str:
        return (f"PolicyOnnxPredictor({self.algorithm or 'policy'}, observation "
                f"{list(self.observation_shape)} -> action {list(self.action_shape)})")
