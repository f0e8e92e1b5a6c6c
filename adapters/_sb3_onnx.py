"""An SB3 policy's deterministic action as an ONNX graph, checked against ``model.predict``.

:func:`write_onnx` exports a small module that computes what
``model.predict(obs, deterministic=True)`` computes, post-processing included:

- PPO and A2C: the actor's features and latent, ``action_net``, then the distribution's mode:
  the mean for a Box (through ``tanh`` when the policy squashes), the argmax of the
  probabilities for Discrete (per dimension for MultiDiscrete), rounded probabilities for
  MultiBinary; a Box action is then rescaled to the action space (squashing policies) or
  clipped to it, as ``BasePolicy.predict`` does in numpy;
- DQN: the argmax of ``q_net``'s Q-values;
- SAC: the actor's ``mu`` through ``tanh``, rescaled from [-1, 1] to the action space.

The graph takes float32 observations of a Box space (batch axis free) and has one output,
``action``. Before the bundle is written, its actions are compared with ``model.predict`` on
sample observations (the rows given to ``zoo.save(sample=...)``, else 64 drawn from the
observation space with seed 0): discrete actions must be equal, Box actions within the
save's ``parity_tolerance`` (times their scale), else :class:`~alphazoo.OnnxParityError`.
Runs only when the onnx format is written; serving needs :mod:`._sb3_serve` alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from alphazoo.errors import OnnxParityError, UnsupportedFormatError

from ._sb3_serve import PolicyOnnxPredictor
from ._torch_onnx import quiet_exporter
from .base import Saving

__all__ = ["DeterministicAction", "write_onnx"]

#: Observations drawn from the space for the parity check when no sample was given.
_SAMPLE_ROWS = 64


class DeterministicAction(nn.Module):
    """``model.predict(obs, deterministic=True)`` of an SB3 algorithm as one torch module."""

    def __init__(self, model: Any, algorithm: str) -> None:
        super().__init__()
        from gymnasium import spaces

        self.policy = model.policy
        self.algorithm = algorithm
        space = model.action_space
        self.kind = type(space).__name__
        self.nvec = [int(n) for n in space.nvec] if isinstance(space, spaces.MultiDiscrete) \
            else []
        self.squash = bool(getattr(self.policy, "squash_output", False)) or algorithm == "SAC"
        self.low: torch.Tensor
        self.high: torch.Tensor
        self.span: torch.Tensor
        if isinstance(space, spaces.Box):
            low, high = space.low.astype(np.float32), space.high.astype(np.float32)
            self.register_buffer("low", torch.from_numpy(low.copy()))
            self.register_buffer("high", torch.from_numpy(high.copy()))
            # As BasePolicy.unscale_action computes it in numpy: (high - low) in float32 first.
            self.register_buffer("span", torch.from_numpy((high - low).astype(np.float32)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        policy = self.policy
        if self.algorithm == "DQN":
            return policy.q_net(obs).argmax(dim=1)
        if self.algorithm == "SAC":
            actor = policy.actor
            features = actor.extract_features(obs, actor.features_extractor)
            return self._box(torch.tanh(actor.mu(actor.latent_pi(features))))
        from stable_baselines3.common.policies import BaseModel

        features = BaseModel.extract_features(policy, obs, policy.pi_features_extractor)
        out = policy.action_net(policy.mlp_extractor.forward_actor(features))
        if self.kind == "Box":
            return self._box(torch.tanh(out) if self.squash else out)
        if self.kind == "Discrete":
            return torch.softmax(out, dim=1).argmax(dim=1)
        if self.kind == "MultiDiscrete":
            parts = torch.split(out, self.nvec, dim=1)
            return torch.stack([torch.softmax(p, dim=1).argmax(dim=1) for p in parts], dim=1)
        return torch.round(torch.sigmoid(out))  # MultiBinary: Bernoulli's mode

    def _box(self, actions: torch.Tensor) -> torch.Tensor:
        if self.squash:  # BasePolicy.unscale_action
            return self.low + (0.5 * (actions + 1.0) * self.span)
        return torch.minimum(torch.maximum(actions, self.low), self.high)  # np.clip


def _sample(model: Any, given: Any) -> tuple[np.ndarray, str]:
    shape = tuple(model.observation_space.shape)
    if given is not None:
        sample = np.asarray(given, dtype=np.float32)
        return (sample.reshape((1, *shape)) if sample.shape == shape else sample), "sample rows"
    space = model.observation_space
    space.seed(0)
    rows = np.stack([space.sample() for _ in range(_SAMPLE_ROWS)]).astype(np.float32)
    return rows, f"{_SAMPLE_ROWS} observations drawn from the observation space (seed 0)"


def write_onnx(model: Any, path: Path, saving: Saving) -> None:
    """Export ``model``'s deterministic action to ``path`` and check it (see the module's
    documentation); adds the export's facts to ``saving.data``."""
    from gymnasium import spaces

    algorithm = saving.data["algorithm"]
    if not isinstance(model.observation_space, spaces.Box):
        raise UnsupportedFormatError(
            f"the onnx format takes policies of Box observations (float32 input); this one "
            f"observes {type(model.observation_space).__name__}: save it as 'json' or 'pickle'"
        )
    opset = saving.options.get("opset")
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int)):
        raise ValueError(f"opset must be an int, not {opset!r}")
    sample, source = _sample(model, saving.request.sample)
    module = DeterministicAction(model, algorithm).eval()
    model.policy.set_training_mode(False)
    example = torch.from_numpy(np.ascontiguousarray(sample[:8]))
    if example.shape[0] < 2:  # the tracer fixes an axis traced at size 1
        example = torch.cat([example, example])
    with quiet_exporter(), torch.no_grad():
        torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=["obs"],
                          output_names=["action"], opset_version=opset,
                          dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}})
    import onnx

    proto = onnx.load(str(path))
    predictor = PolicyOnnxPredictor(str(path), observation_shape=model.observation_space.shape,
                                    action_shape=model.action_space.shape)
    native = np.asarray(model.predict(sample, deterministic=True)[0])
    exported = predictor.act(sample)
    tolerance = saving.request.parity_tolerance
    parity: dict[str, Any] = {"rows": int(len(sample)), "sample": source,
                              "tolerance": tolerance}
    if native.shape != exported.shape:
        raise OnnxParityError(f"the ONNX graph gives actions of shape {exported.shape}, "
                              f"model.predict {native.shape}; not saved")
    if isinstance(model.action_space, spaces.Box):
        scale = max(1.0, float(np.abs(native).max(initial=0.0)))
        diff = float(np.abs(native.astype(np.float64) - exported).max(initial=0.0))
        parity["max_abs_diff"] = diff
        if diff > tolerance * scale:
            raise OnnxParityError(f"ONNX actions differ from model.predict by up to {diff:.3g} "
                                  f"(tolerance {tolerance:g} x scale {scale:.3g}); not saved")
    else:
        rows = native.reshape(len(native), -1) != exported.reshape(len(native), -1)
        parity["action_agreement"] = 1.0 - float(rows.any(axis=1).mean())
        if rows.any():
            raise OnnxParityError(f"ONNX actions differ from model.predict on "
                                  f"{int(rows.any(axis=1).sum())} of {len(native)} "
                                  "observations; not saved")
    saving.data.update(parity=parity, outputs={"action": "action"},
                       opset={d.domain or "ai.onnx": d.version for d in proto.opset_import})
