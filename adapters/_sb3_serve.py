"""Serving an SB3 policy's ONNX export: actions from observations with onnxruntime alone.

What the sb3 adapter's ``onnx`` bundles load as. Needs numpy and onnxruntime, not torch,
gymnasium or stable-baselines3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from alphazoo.errors import BundleFormatError

from ._onnx import open_session

__all__ = ["PolicyOnnxPredictor"]


class PolicyOnnxPredictor:
    """A stable-baselines3 policy's deterministic action, served by onnxruntime.

    ``predict(obs)`` answers as ``model.predict(obs, deterministic=True)[0]`` does, and
    ``predict(obs, deterministic=True)`` as ``model.predict(obs, deterministic=True)``,
    ``(actions, None)`` (see :meth:`predict`); :meth:`act` gives the actions alone: one
    observation (shaped like the observation space) gives one action, a batch of them a batch
    of actions, shaped ``(batch, *action_shape)``; discrete actions are int64, Box actions
    float32, already clipped or rescaled to the action space as SB3 does.

    ``observation_space`` and ``action_space`` are the spaces the policy was trained for, as
    the JSON the manifest records (see :mod:`alphazoo.adapters._sb3_spaces`).
    """

    def __init__(self, model: str | bytes, *, observation_shape: Sequence[int],
                 action_shape: Sequence[int], observation_space: Mapping[str, Any] | None = None,
                 action_space: Mapping[str, Any] | None = None, algorithm: str = "",
                 key: str = "") -> None:
        self.session = open_session(model, key=key)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or "action" not in {output.name for output in outputs}:
            raise BundleFormatError("model.onnx", "a policy graph takes one input and has an "
                                                  "'action' output")
        self.input_name: str = inputs[0].name
        self.observation_shape = tuple(int(d) for d in observation_shape)
        self.action_shape = tuple(int(d) for d in action_shape)
        action = next(output for output in outputs if output.name == "action")
        _check_fits(inputs[0].shape, self.observation_shape, "observation_space", "takes")
        _check_fits(action.shape, self.action_shape, "action_space", "gives")
        self.observation_space = dict(observation_space or {})
        self.action_space = dict(action_space or {})
        self.algorithm = algorithm

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool | None = None) -> Any:
        """Actions for one observation or a batch; ``(actions, None)`` when called as SB3's.

        ``predict(obs)`` returns the actions alone, as every model alphazoo loads predicts
        (``zoo.predict``, the conformance kit, the one-file reader). Called with SB3's
        arguments (``BaseAlgorithm.predict(observation, state=None, episode_start=None,
        deterministic=False)``, which returns ``(actions, state)``) it answers as SB3 does, so
        code written for the SB3 model runs unchanged: ``action, _ = policy.predict(obs,
        deterministic=True)``. The graph holds the deterministic action only, so
        ``deterministic=False`` (a sampled action) is refused: load the json/safetensors
        bundle with stable-baselines3 for those. The policies exported are not recurrent:
        ``state`` must be None and ``episode_start`` is ignored, as SB3 ignores it for them;
        the state returned is None, as SB3's is. :meth:`act` always returns the actions alone.
        """
        if deterministic is False:
            raise ValueError("this ONNX policy holds the deterministic action only; pass "
                             "deterministic=True, or load the json/safetensors bundle with "
                             "stable-baselines3 for sampled actions")
        if state is not None:
            raise ValueError("this ONNX policy is not recurrent: it takes no state (pass "
                             "state=None)")
        actions = self.act(observation)
        if deterministic is None and episode_start is None:
            return actions
        return actions, None

    def act(self, observation: Any) -> np.ndarray:
        """The deterministic action for one observation, or actions for a batch
        (``predict(observation)[0]``)."""
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


def _check_fits(graph_shape: Any, shape: tuple[int, ...], which: str, verb: str) -> None:
    """The recorded space's sample shape against the graph's (after its batch axis): else a
    manifest that lies about the space would make ``predict`` reshape actions wrongly."""
    if not isinstance(graph_shape, list):  # onnxruntime knows no shape for this value
        return
    dims = graph_shape[1:]
    if len(dims) != len(shape) or any(isinstance(d, int) and d != s
                                      for d, s in zip(dims, shape)):
        raise BundleFormatError(f"adapter_data.{which}",
                                f"has samples of shape {list(shape)}, but the graph {verb} "
                                f"{['batch', *dims]}; the manifest does not describe this "
                                "policy")
