"""stable-baselines3 adapter: PPO, A2C, DQN and SAC policies as JSON weights, safetensors,
SB3's own zip (pickle) or ONNX.

===========  ===================================================  ===========================
format       what is stored                                       loads with
===========  ===================================================  ===========================
json         the algorithm, its constructor arguments and spaces  stable-baselines3 (no code
             (manifest) + ``policy.state_dict()`` as a JSON       runs)
             weights document, bit-exact (default)
safetensors  the same, the tensors as a ``.safetensors`` file     stable-baselines3 +
                                                                  safetensors (no code runs)
pickle       SB3's own ``model.save`` zip (it pickles parts of    stable-baselines3
             its data: trusted only)
onnx         the policy's deterministic action, parity-checked    onnxruntime only
             when saved
===========  ===================================================  ===========================

**json** (the default) and **safetensors** store no code. The manifest's ``adapter_data``
records the algorithm (one of ``PPO``, ``A2C``, ``DQN``, ``SAC``, looked up by that name in
``stable_baselines3``, never from a class path in the bundle), its policy alias
(``MlpPolicy``...), ``policy_kwargs`` (JSON, with ``activation_fn``, ``optimizer_class`` and
``features_extractor_class`` named from fixed tables), the other constructor arguments that
have a JSON form (``gamma``, ``learning_rate`` when a number, ``n_steps``, ``buffer_size``...),
``num_timesteps`` and the observation and action spaces (Box, Discrete, MultiDiscrete,
MultiBinary as JSON; see :mod:`alphazoo.adapters._sb3_spaces`). Loading rebuilds the
algorithm as ``PPO.load`` does, with no environment, on the CPU, then loads the weights
(``strict``): ``model.predict(obs, deterministic=True)`` equals the saved model's bit for
bit. Not stored: optimizer state, replay and rollout buffers, SAC's entropy coefficient,
schedules and callables (saving names the arguments left out); they matter to further
training only. ``MlpPolicy`` and ``CnnPolicy`` (images: SB3's NatureCNN) load this way; a
custom policy class or features extractor has no safe form, and saving says to use pickle.
Before anything is built, the buffers and networks the manifest asks for are checked against
the load limits (:class:`~alphazoo.BundleLimitError`), so a crafted bundle cannot make the
loader allocate a billion-unit layer. ``json`` is named as every adapter's self-describing
JSON format is (torch's holds the same kind of document); the tensors are base64 in one JSON
document any JSON reader parses. ``safetensors`` keeps them as raw little-endian bytes
(smaller, faster to read), for the machines that have the package; it is not the default,
so that what a save writes does not depend on what is installed.

**pickle** is SB3's own ``model.save`` zip, loaded with the saved class's ``load``: everything
SB3 keeps (optimizer state, schedules, custom policies, subclasses, other algorithms such as
TD3), but it unpickles, so it loads only when trusted or signed.

**onnx** is the policy's deterministic action as an ONNX graph (see
:mod:`alphazoo.adapters._sb3_onnx`): Box observations in (float32, any batch size), actions
out (uint8 images are normalised in the graph), post-processed as ``predict`` does (clipped
or rescaled to the action space). Saving checks it against ``model.predict(obs,
deterministic=True)`` on sample observations; it loads as a
:class:`~alphazoo.adapters._sb3_serve.PolicyOnnxPredictor`, which needs numpy and
onnxruntime only (and the one-file reader, ``alphazoo export-reader``, serves it in
QuantConnect). ``predict(obs)`` gives the actions, as every loaded model predicts; called
with SB3's arguments it returns ``(actions, None)`` as SB3's does (``action, _ =
policy.predict(obs, deterministic=True)`` runs unchanged); ``act(obs)`` always gives the
actions alone. The spaces the manifest records are checked at load, and against the graph's
input and output. Save option: ``opset=``.

**Spaces at load.** ``zoo.load(key, env=env)`` (every format) checks that ``env``'s
observation and action spaces are the recorded ones, raising
:class:`~alphazoo.SpaceMismatchError` naming the one that differs; json, safetensors and
pickle then attach the environment, so ``model.learn`` continues on it.

**Ownership.** The adapter owns ``BaseAlgorithm`` objects; a bare policy or any other
``torch.nn.Module`` stays the torch adapter's. ``zoo.predict(model, obs)`` is
``model.predict(obs, deterministic=True)[0]``; ``zoo.train(model, env, None,
total_timesteps=N)`` attaches ``env`` (when not None) and calls ``model.learn``.

Nothing is imported from stable-baselines3, torch or gymnasium until a model is handled.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from alphazoo.contracts import LoadRequest
from alphazoo.errors import (
    BundleFormatError,
    BundleIntegrityError,
    SpaceMismatchError,
    UnsupportedFormatError,
    UnsupportedModelError,
    require,
)
from alphazoo.hookspecs import hookimpl
from alphazoo.limits import LoadLimits, check_zip
from alphazoo.manifest_schema import either, integer, null, obj, string

from ._common import check_options
from ._sb3_config import ALGORITHMS, algorithm_name, encode_config, rebuild
from ._sb3_spaces import SPACE, check_space, decode_space, encode_space
from .base import Adapter, Format, Saving, pickle_format

__all__ = ["ADAPTER", "ALGORITHMS", "owns"]

_TRAIN_OPTIONS = ("total_timesteps", "log_interval", "reset_num_timesteps", "progress_bar",
                  "tb_log_name", "callback")


# -- the formats ---------------------------------------------------------------------------------
def _config(model: Any, saving: Saving) -> dict[str, Any]:
    """The rebuild facts of a json or safetensors save, added to ``saving.data``."""
    config, left_out = encode_config(model)
    for which in ("observation_space", "action_space"):
        saving.data[which] = encode_space(getattr(model, which))
    saving.data.update(config)
    if left_out:
        saving.notices.append(
            f"constructor arguments with no JSON form are not stored: {left_out}; the loaded "
            "model predicts the same, but further training uses SB3's defaults for them "
            "(format='pickle' keeps them)"
        )
    if type(model).__name__ != config["algorithm"]:
        saving.notices.append(f"{type(model).__qualname__} is stored as stable_baselines3."
                              f"{config['algorithm']} and loads as that class "
                              "(format='pickle' keeps the subclass)")
    return config


def _state(model: Any) -> dict[str, Any]:
    return {name: tensor.detach().cpu().contiguous()
            for name, tensor in model.policy.state_dict().items()}


def _write_json(model: Any, path: Path, saving: Saving) -> None:
    from ._torch_state import state_to_tensors
    from ._weights import write_weights

    config = _config(model, saving)
    write_weights(path, state_to_tensors(model.policy.state_dict()),
                  algorithm=config["algorithm"])


def _read_json(path: Path, request: LoadRequest) -> Any:
    require("torch", "sb3", "loading a stable-baselines3 bundle")
    from ._torch_state import tensors_to_state
    from ._weights import read_weights

    tensors, header = read_weights(path, request.limits)
    algorithm = request.manifest["adapter_data"]["algorithm"]
    if header.get("algorithm") != algorithm:
        raise BundleIntegrityError(f"{path.name} holds {header.get('algorithm')!r} weights, "
                                   f"the manifest names {algorithm!r}")
    return _with_weights(request, tensors_to_state(tensors))


def _write_safetensors(model: Any, path: Path, saving: Saving) -> None:
    require("safetensors", "safetensors", "the safetensors format")
    from safetensors.torch import save_file

    config = _config(model, saving)
    # Clones: a shared features extractor appears under several names, and safetensors
    # refuses tensors that share memory; loading copies each into its own module anyway.
    save_file({name: tensor.clone() for name, tensor in _state(model).items()}, str(path),
              metadata={"algorithm": config["algorithm"]})


def _read_safetensors(path: Path, request: LoadRequest) -> Any:
    from ._safetensors import load_tensors

    # The shared reader: the header and every tensor bounded against the file and the
    # limits before safetensors allocates, its refusals as BundleFormatError.
    try:
        state, payload = load_tensors(path, request.limits, "torch")
    except BundleFormatError as exc:
        raise BundleFormatError(path.name, f"not a safetensors file: {exc.problem}") from exc
    algorithm = request.manifest["adapter_data"]["algorithm"]
    if payload.metadata.get("algorithm") != algorithm:
        raise BundleIntegrityError(f"{path.name} does not hold {algorithm} weights")
    return _with_weights(request, state)


def _with_weights(request: LoadRequest, state: dict[str, Any]) -> Any:
    """The algorithm the manifest describes, with ``state`` loaded into its policy."""
    data = request.manifest["adapter_data"]
    observation, action = (decode_space(data[which], request.limits, f"adapter_data.{which}")
                           for which in ("observation_space", "action_space"))
    model = rebuild(data, observation, action, request.limits or LoadLimits(),
                    _checked_env(request))
    try:
        model.policy.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # missing or unexpected names, shapes that differ
        raise BundleIntegrityError(
            f"the bundle's weights do not fit the {data['algorithm']} {data['policy']} its "
            f"manifest describes: {exc}"
        ) from exc
    model.num_timesteps = int(data.get("num_timesteps") or 0)
    model.policy.set_training_mode(False)
    if model.use_sde:
        model.policy.reset_noise()
    return model


def _checked_env(request: LoadRequest) -> Any:
    """The ``env=`` load option, after checking its spaces against the recorded ones."""
    env = request.options.get("env")
    if env is None:
        return None
    data = request.manifest.get("adapter_data") or {}
    for which in ("observation_space", "action_space"):
        saved = data.get(which)
        given: Any
        try:
            given = encode_space(getattr(env, which))
        except (AttributeError, UnsupportedFormatError) as exc:
            given = str(exc)
        if saved is not None and given != saved:
            raise SpaceMismatchError(which, saved, given)
    return env


def _write_pickle(model: Any, path: Path, saving: Saving) -> None:
    model.save(str(path))


def _read_pickle(path: Path, request: LoadRequest) -> Any:
    sb3: Any = require("stable_baselines3", "sb3", "loading a stable-baselines3 bundle")
    check_zip(path, request.limits)
    env = _checked_env(request)
    return _zip_class(request, sb3).load(str(path), env=env, device="cpu")


def _zip_class(request: LoadRequest, sb3: Any) -> Any:
    """The class whose ``load`` reads an SB3 zip: the saved model's own (a subclass, TD3, an
    sb3-contrib algorithm), imported since the trust guard has passed; the listed algorithm
    it derives from when that class cannot be imported here (defined in a script)."""
    import importlib

    module_name, _, qualname = str(request.manifest.get("model_class", "")).rpartition(".")
    try:
        found: Any = importlib.import_module(module_name)
        for attribute in qualname.split("."):
            found = getattr(found, attribute)
    except (ImportError, AttributeError, ValueError):
        found = None
    if isinstance(found, type) and callable(getattr(found, "load", None)):
        return found
    name = (request.manifest.get("adapter_data") or {}).get("algorithm")
    if name in ALGORITHMS:
        return getattr(sb3, name)
    raise UnsupportedModelError(
        f"the bundle holds a {request.manifest.get('model_class')!r}, which cannot be imported "
        "here: install the package that defines it to load this zip"
    )


def _write_onnx(model: Any, path: Path, saving: Saving) -> None:
    require("onnx", "onnx", "the onnx format")
    from ._sb3_onnx import write_onnx

    if saving.data.get("algorithm") is None:
        encode_config(model)  # raises, naming the algorithms the onnx format exports
    for which in ("observation_space", "action_space"):
        saving.data[which] = encode_space(getattr(model, which))
    write_onnx(model, path, saving)
    # The graph takes float32 observations whatever the space's dtype (uint8 images).
    saving.input_signature = {**_signature(model, None), "dtype": "float32"}


def _read_onnx(path: Path, request: LoadRequest) -> Any:
    from ._onnx_bounds import check_onnx
    from ._sb3_serve import PolicyOnnxPredictor

    check_onnx(path, request.limits, adapter="sb3", producers=("pytorch",))
    _checked_env(request)
    data = request.manifest["adapter_data"]
    # Checked as the json format decodes them (numpy only: no gymnasium here), then against
    # the graph's input and output by the predictor.
    shapes = [check_space(data[which], request.limits, f"adapter_data.{which}")["shape"]
              for which in ("observation_space", "action_space")]
    return PolicyOnnxPredictor(str(path), observation_shape=shapes[0], action_shape=shapes[1],
                               observation_space=data["observation_space"],
                               action_space=data["action_space"], algorithm=data["algorithm"],
                               key=request.key)


def _describe(model: Any) -> dict[str, Any]:
    """Facts every format records: the algorithm (None for one outside the table), the
    spaces when they have a JSON form, and the training steps taken."""
    facts: dict[str, Any] = {"algorithm": algorithm_name(model),
                             "num_timesteps": int(getattr(model, "num_timesteps", 0))}
    for which in ("observation_space", "action_space"):
        try:
            facts[which] = encode_space(getattr(model, which))
        except UnsupportedFormatError:
            facts[which] = None
    return facts


def _signature(model: Any, sample: Any) -> dict[str, Any]:
    space = model.observation_space
    shape = getattr(space, "shape", None)
    return {"dtype": str(getattr(space, "dtype", None) or "float32"),
            "shape": [None, *shape] if shape is not None else None,
            "feature_names": None}


#: The adapter_data each format's loader reads (see :mod:`alphazoo.manifest_schema`).
_ALGORITHM = string(choices=ALGORITHMS)
_WEIGHTS_DATA = obj(required={"algorithm": _ALGORITHM, "policy": string(),
                              "observation_space": SPACE, "action_space": SPACE},
                    optional={"policy_kwargs": obj(), "arguments": obj(),
                              "num_timesteps": either(integer(minimum=0), null)})
_ONNX_DATA = obj(required={"algorithm": _ALGORITHM, "observation_space": SPACE,
                           "action_space": SPACE})

ADAPTER = Adapter(
    "sb3",
    library="stable-baselines3",
    model_types=["stable_baselines3.common.base_class.BaseAlgorithm"],
    formats=[
        Format("json", "policy.json", True,
               "algorithm, arguments and spaces + policy weights as JSON, bit-exact",
               write=_write_json, read=_read_json, default=True,
               load_requires=("stable-baselines3",), adapter_data=_WEIGHTS_DATA,
               load_options=("env",)),
        Format("safetensors", "policy.safetensors", True,
               "as json, the policy weights as a safetensors file",
               write=_write_safetensors, read=_read_safetensors,
               load_requires=("stable-baselines3", "safetensors"), adapter_data=_WEIGHTS_DATA,
               load_options=("env",), records=("safetensors",)),
        # SB3's own zip; it takes the env= option like the others.
        replace(pickle_format(("stable-baselines3",), file="model.zip", write=_write_pickle,
                              read=_read_pickle), load_options=("env",)),
        Format("onnx", "model.onnx", True, "the policy's deterministic action, served by "
                                           "onnxruntime",
               write=_write_onnx, read=_read_onnx, load_requires=("onnxruntime",),
               adapter_data=_ONNX_DATA, save_options=("opset",), load_options=("env",),
               records=("onnx", "onnxruntime")),
    ],
    records=("stable-baselines3", "torch", "gymnasium", "numpy"),
    describe=_describe,
    signature=_signature,
    hints={"pt": "json or safetensors store an SB3 policy's weights safely"},
)
owns = ADAPTER.owns

# The hooks pluggy finds on this module.
alphazoo_formats = ADAPTER.alphazoo_formats
alphazoo_model_types = ADAPTER.alphazoo_model_types
alphazoo_save = ADAPTER.alphazoo_save
alphazoo_load = ADAPTER.alphazoo_load


@hookimpl
def alphazoo_requirements() -> list[str]:
    # The first requirement names the adapter's own library: `alphazoo plugins` shows its
    # installed version.
    return ["stable-baselines3>=2.3", "gymnasium>=0.29.1", "torch>=2.6", "onnxruntime>=1.19"]


@hookimpl
def alphazoo_train(model: Any, X: Any, y: Any, params: dict[str, Any]) -> Any:
    if not owns(model):
        return None
    check_options("stable-baselines3", "train", params, _TRAIN_OPTIONS)
    if X is not None:
        model.set_env(X)
    return model.learn(**{"total_timesteps": 1000, **params})


@hookimpl
def alphazoo_predict(model: Any, X: Any) -> Any:
    if not owns(model):
        return None
    import numpy as np

    observation = X if isinstance(X, dict) else np.asarray(X)
    return model.predict(observation, deterministic=True)[0]
