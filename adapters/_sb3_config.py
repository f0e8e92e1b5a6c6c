"""An SB3 algorithm's constructor arguments as JSON, and the algorithm rebuilt from them.

The sb3 adapter's safe formats store no code: the algorithm is one of :data:`ALGORITHMS`
(looked up by name in ``stable_baselines3``, never from a class path in a bundle), its policy
one of that algorithm's ``policy_aliases`` (``"MlpPolicy"``...), and ``policy_kwargs`` hold
JSON values plus classes named from fixed tables (:data:`CLASS_ARGUMENTS`: ``activation_fn``
from ``torch.nn``, ``optimizer_class`` from ``torch.optim``, ``features_extractor_class``
from SB3's own extractors). The other constructor arguments (``gamma``, ``learning_rate`` when
it is a number, ``n_steps``, ``buffer_size``...) are recorded when they have a JSON form;
schedules and other callables are left out, with a notice, and a reloaded model uses SB3's
defaults for them (they matter to further training only, never to ``predict``).

:func:`rebuild` makes the algorithm as ``BaseAlgorithm.load`` does: the constructor without
an environment (or with the caller's), the recorded spaces, then ``_setup_model``. Imports
stable-baselines3 and torch only when called.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

from alphazoo.errors import BundleIntegrityError, UnsupportedFormatError, require
from alphazoo.limits import LoadLimits, check_bytes

__all__ = ["ALGORITHMS", "CLASS_ARGUMENTS", "algorithm_name", "encode_config", "rebuild"]

#: The algorithms the safe formats and ONNX store, by their name in ``stable_baselines3``.
ALGORITHMS = ("PPO", "A2C", "DQN", "SAC")
#: ``policy_kwargs`` entries that are classes: the module they are looked up in, and the
#: names a bundle may give.
CLASS_ARGUMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "activation_fn": ("torch.nn", ("ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU",
                                   "Sigmoid", "Softplus", "Mish", "SELU", "Identity")),
    "optimizer_class": ("torch.optim", ("Adam", "AdamW", "RMSprop", "SGD")),
    "features_extractor_class": ("stable_baselines3.common.torch_layers",
                                 ("FlattenExtractor", "NatureCNN")),
}
#: Constructor arguments never recorded: the environment and where things run or log, and
#: objects with no JSON form (buffers' classes, action noise).
_NOT_RECORDED = frozenset({
    "self", "policy", "env", "policy_kwargs", "tensorboard_log", "verbose", "device",
    "_init_setup_model", "seed", "rollout_buffer_class", "rollout_buffer_kwargs",
    "replay_buffer_class", "replay_buffer_kwargs", "action_noise",
})


def algorithm_name(model: Any) -> str | None:
    """The nearest of :data:`ALGORITHMS` in ``model``'s class hierarchy, or None."""
    sb3 = sys.modules.get("stable_baselines3")
    for cls in type(model).__mro__:
        if cls.__name__ in ALGORITHMS and getattr(sb3, cls.__name__, None) is cls:
            return cls.__name__
    return None


def _constructor_names(cls: type) -> list[str]:
    import inspect

    return [name for name in inspect.signature(cls).parameters
            if name not in _NOT_RECORDED]


def encode_config(model: Any) -> tuple[dict[str, Any], list[str]]:
    """The facts :func:`rebuild` needs: ``algorithm``, ``policy``, ``policy_kwargs`` and
    ``arguments``, and the names of constructor arguments left out (no JSON form).

    Raises :class:`~alphazoo.UnsupportedFormatError` when the model cannot be rebuilt from
    JSON: another algorithm, a custom policy class, a class in ``policy_kwargs`` outside
    :data:`CLASS_ARGUMENTS`.
    """
    name = algorithm_name(model)
    if name is None:
        raise UnsupportedFormatError(
            f"the sb3 adapter's safe formats and ONNX hold {', '.join(ALGORITHMS)}; "
            f"{type(model).__name__} is none of them: save it with format='pickle'"
        )
    cls = getattr(sys.modules["stable_baselines3"], name)
    policy = next((alias for alias, policy_cls in cls.policy_aliases.items()
                   if policy_cls is type(model.policy)), None)
    if policy is None:
        raise UnsupportedFormatError(
            f"the policy class {type(model.policy).__qualname__} is not one of {name}'s "
            f"{', '.join(cls.policy_aliases)}; save this model with format='pickle'"
        )
    policy_kwargs = {}
    for key, value in (model.policy_kwargs or {}).items():
        try:
            policy_kwargs[key] = _encode_class(key, value) if isinstance(value, type) \
                else _encode(value)
        except _NotJSON as exc:
            raise UnsupportedFormatError(
                f"policy_kwargs[{key!r}] is {exc}, which the safe formats cannot record (they "
                f"name classes only for {', '.join(CLASS_ARGUMENTS)}); save this model with "
                "format='pickle'"
            ) from None
    arguments, left_out = {}, []
    for key in _constructor_names(cls):
        if not hasattr(model, key):
            continue  # A2C's use_rms_prop: it lives on in policy_kwargs' optimizer
        try:
            arguments[key] = _encode_argument(getattr(model, key))
        except _NotJSON:
            left_out.append(key)
    return ({"algorithm": name, "policy": policy, "policy_kwargs": policy_kwargs,
             "arguments": arguments}, left_out)


class _NotJSON(Exception):
    """A value with no faithful JSON form."""


def _encode_class(key: str, value: type) -> str:
    module_name, names = CLASS_ARGUMENTS.get(key, ("", ()))
    module = sys.modules.get(module_name)
    if value.__name__ in names and getattr(module, value.__name__, None) is value:
        return value.__name__
    raise _NotJSON(f"the class {value.__module__}.{value.__qualname__}")


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJSON(repr(value))
        return value
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return _encode(value.item())
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _encode(v) for k, v in value.items()}
    raise _NotJSON(f"a {type(value).__name__}")


def _encode_argument(value: Any) -> Any:
    frequency = getattr(value, "frequency", None)
    unit = getattr(getattr(value, "unit", None), "value", None)
    if isinstance(frequency, int) and isinstance(unit, str):  # DQN's and SAC's TrainFreq
        return [frequency, unit]
    constant = getattr(getattr(value, "value_schedule", None), "val", None)
    if isinstance(constant, float):  # PPO's clip_range: FloatSchedule(ConstantSchedule(0.2))
        return constant
    return _encode(value)


def _decode_policy_kwargs(data: Mapping[str, Any]) -> dict[str, Any]:
    import importlib

    kwargs = dict(data)
    for key, (module_name, names) in CLASS_ARGUMENTS.items():
        if key not in kwargs:
            continue
        if kwargs[key] not in names:
            raise BundleIntegrityError(
                f"policy_kwargs[{key!r}] names {kwargs[key]!r}; a bundle names one of "
                f"{', '.join(names)}"
            )
        kwargs[key] = getattr(importlib.import_module(module_name), kwargs[key])
    return kwargs


def _replay_bytes(arguments: Mapping[str, Any], obs_space: Any, action_space: Any) -> int:
    """What the algorithm's buffers take once set up: SB3 allocates them in
    ``_setup_model`` (a replay buffer of ``buffer_size`` transitions, a rollout buffer of
    ``n_steps``), so a crafted size is refused before they are made."""
    obs = math.prod(obs_space.shape or (1,)) * 4
    act = math.prod(action_space.shape or (1,)) * 8
    size = arguments.get("buffer_size", arguments.get("n_steps", 1))
    copies = 1 if arguments.get("optimize_memory_usage") else 2
    return max(int(size), 1) * (copies * obs + act + 32)


def _flat_size(space: Any) -> int:
    """The width of ``space`` as SB3 feeds it to a network: one-hot for discrete spaces."""
    kind = type(space).__name__
    if kind == "Discrete":
        return int(space.n)
    if kind == "MultiDiscrete":
        return int(sum(int(n) for n in space.nvec.ravel()))
    return math.prod(int(d) for d in space.shape)


def _widths(value: Any, what: str) -> list[list[int]]:
    """The layer widths of a ``net_arch`` (a list, or a dict of lists per network)."""
    chains = list(value.values()) if isinstance(value, Mapping) else [value]
    for chain in chains:
        if not isinstance(chain, list) or not all(
                isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in chain):
            raise BundleIntegrityError(f"{what} is {value!r}, not lists of layer widths")
    return chains


def _nature_cnn_width(shape: tuple[int, ...]) -> int:
    """``NatureCNN``'s flattened width for a (channels, height, width) image."""
    sizes = []
    for side in shape[1:3]:
        for kernel, stride in ((8, 4), (4, 2), (3, 1)):
            side = (side - kernel) // stride + 1
        sizes.append(max(side, 0))
    return 64 * sizes[0] * sizes[1] if len(sizes) == 2 else 0


def _policy_bytes(policy: str, policy_kwargs: Mapping[str, Any], obs_space: Any,
                  action_space: Any) -> int:
    """A lower bound of the float32 parameters the policy's networks will allocate when
    built: each ``net_arch`` chain from the observation's width to the action's, and
    ``NatureCNN``'s linear layer. Checked before building, so a crafted architecture (a layer
    of a billion units, a one-hot of a huge Discrete space) is refused, not allocated."""
    features = _flat_size(obs_space)
    extractor = policy_kwargs.get("features_extractor_class",
                                  "NatureCNN" if policy == "CnnPolicy" else "FlattenExtractor")
    parameters = 0
    if extractor == "NatureCNN":
        dim = (policy_kwargs.get("features_extractor_kwargs") or {}).get("features_dim", 512)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise BundleIntegrityError(f"NatureCNN's features_dim is {dim!r}")
        parameters += _nature_cnn_width(tuple(obs_space.shape)) * dim
        features = dim
    outputs = _flat_size(action_space)
    for chain in _widths(policy_kwargs.get("net_arch", []), "net_arch"):
        layers = [features, *chain, outputs]
        parameters += sum(a * b for a, b in zip(layers, layers[1:]))
    return parameters * 4


def rebuild(data: Mapping[str, Any], obs_space: Any, action_space: Any,
            limits: LoadLimits, env: Any = None) -> Any:
    """The algorithm ``data`` (:func:`encode_config`'s facts) describes, set up for
    ``obs_space`` and ``action_space`` on the CPU, its weights not yet loaded.

    ``env`` (checked against the spaces by the caller) is attached for further training.
    """
    sb3: Any = require("stable_baselines3", "sb3", "loading a stable-baselines3 bundle")
    name = data["algorithm"]
    cls = getattr(sb3, name)
    policy = data["policy"]
    if policy not in cls.policy_aliases:
        raise BundleIntegrityError(f"the bundle names the policy {policy!r}; {name} has "
                                   f"{', '.join(cls.policy_aliases)}")
    arguments = dict(data.get("arguments") or {})
    unknown = sorted(set(arguments) - set(_constructor_names(cls)))
    if unknown:
        raise BundleIntegrityError(f"the bundle gives {name} the arguments {unknown}, which "
                                   "are not constructor arguments a bundle records")
    for key in ("buffer_size", "n_steps", "batch_size"):
        value = arguments.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise BundleIntegrityError(f"{name}'s {key} is {value!r}, not an integer")
    check_bytes(_replay_bytes(arguments, obs_space, action_space), limits,
                f"the {name} buffers its constructor arguments ask for")
    policy_kwargs = data.get("policy_kwargs") or {}
    check_bytes(_policy_bytes(policy, policy_kwargs, obs_space, action_space), limits,
                f"the {name} {policy} its policy_kwargs describe")
    if isinstance(arguments.get("train_freq"), list):
        arguments["train_freq"] = tuple(arguments["train_freq"])
    try:
        model = cls(policy, env, policy_kwargs=_decode_policy_kwargs(policy_kwargs),
                    device="cpu",
                    _init_setup_model=False, **arguments)
        model.observation_space, model.action_space = obs_space, action_space
        if env is None:
            model.n_envs = 1
        model._setup_model()
    except (TypeError, ValueError, AssertionError, KeyError, AttributeError) as exc:
        raise BundleIntegrityError(
            f"the bundle's {name} arguments do not build a model: {type(exc).__name__}: {exc}"
        ) from exc
    return model
