"""The stable-baselines3 adapter: PPO, A2C, DQN and SAC in json, safetensors, pickle and onnx.

Fresh (untrained) models round-trip in the fast lane: their weights are random, so equal actions
after a reload test the weights and the rebuilt architecture. The `slow` tests train a few
hundred steps first (the trading environment included), run the conformance kit in every
format and serve the ONNX bundles in a child where torch, stable-baselines3 and gymnasium
cannot be imported.
"""

from __future__ import annotations

import base64
import json
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _child import blocking_prelude, run_python
from _crafted import rebundle

import alphazoo
from alphazoo.bundle import read_bundle
from alphazoo.contracts import LoadRequest
from alphazoo.limits import LoadLimits

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in the [sb3] extra")
gym = pytest.importorskip("gymnasium")
torch = pytest.importorskip("torch")
from gymnasium import spaces  # noqa: E402

from alphazoo.adapters import sb3 as adapter  # noqa: E402
from alphazoo.contrib.trading_env import TradingEnv  # noqa: E402

FORMATS = ("json", "safetensors", "pickle", "onnx")
SAFE = ("json", "safetensors")


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class SpacesEnv(gym.Env):
    """An environment of any two spaces, for policies of spaces no bundled env has."""

    def __init__(self, observation_space: Any, action_space: Any) -> None:
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> Any:
        return self.observation_space.sample(), 0.0, False, False, {}


def _box(n: int = 4, bound: float = 1.0) -> Any:
    return spaces.Box(-bound, bound, shape=(n,), dtype=np.float32)


#: case -> (algorithm, observation space, action space, constructor arguments)
CASES: dict[str, tuple[str, Any, Any, dict[str, Any]]] = {
    "ppo-discrete": ("PPO", _box(), spaces.Discrete(3), {"n_steps": 32, "batch_size": 16}),
    "ppo-box": ("PPO", _box(), _box(2, 0.5), {"n_steps": 32, "batch_size": 16}),
    "ppo-multidiscrete": ("PPO", _box(), spaces.MultiDiscrete([3, 2]),
                          {"n_steps": 32, "batch_size": 16}),
    "ppo-multibinary": ("PPO", _box(), spaces.MultiBinary(3), {"n_steps": 32, "batch_size": 16}),
    "ppo-squashed": ("PPO", _box(), _box(2, 3.0),
                     {"n_steps": 32, "batch_size": 16, "use_sde": True,
                      "policy_kwargs": {"squash_output": True, "net_arch": [8]}}),
    "a2c-box": ("A2C", _box(), _box(1, 2.0), {"n_steps": 8}),
    "a2c-discrete": ("A2C", _box(), spaces.Discrete(2), {"n_steps": 8}),
    "dqn": ("DQN", _box(), spaces.Discrete(4), {"learning_starts": 16, "buffer_size": 500}),
    "sac": ("SAC", _box(), spaces.Box(np.array([-1.0, 0.0], np.float32),
                                      np.array([1.0, 5.0], np.float32)),
            {"learning_starts": 16, "buffer_size": 500, "batch_size": 16}),
}


def make(case: str, steps: int = 0, seed: int = 0) -> Any:
    """A model of ``case``, small nets, trained ``steps`` steps."""
    name, observation, action, arguments = CASES[case]
    arguments = dict(arguments)
    policy_kwargs = {"net_arch": [16, 16], **arguments.pop("policy_kwargs", {})}
    env = SpacesEnv(observation, action)
    model = getattr(sb3, name)("MlpPolicy", env, seed=seed, policy_kwargs=policy_kwargs,
                               device="cpu", **arguments)
    return model.learn(steps) if steps else model


def observations(model: Any, rows: int = 40) -> np.ndarray:
    space = model.observation_space
    space.seed(1)
    # Twice the space's range too: a policy meets observations beyond what it trained on.
    return np.stack([space.sample() * 2 for _ in range(rows)]).astype(np.float32)


def actions(model: Any, obs: np.ndarray) -> np.ndarray:
    return model.predict(obs, deterministic=True)[0]


def _assert_same_actions(loaded: Any, model: Any, fmt: str, obs: np.ndarray) -> None:
    want = actions(model, obs)
    got = np.asarray(actions(loaded, obs))  # the ONNX predictor answers as SB3 does
    assert got.shape == want.shape and got.dtype == want.dtype, (got.dtype, want.dtype)
    if fmt == "onnx" and want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(got, want)  # bit for bit
    single = loaded.act(obs[0]) if fmt == "onnx" else actions(loaded, obs[0])
    assert np.shape(single) == np.shape(actions(model, obs[0]))


# -- every algorithm, every format -------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_algorithm_reloads_with_equal_actions(zoo, case, fmt) -> None:
    model = make(case)
    manifest = zoo.save(model, f"rl/{case}", format=fmt)
    assert (manifest["adapter"], manifest["format"]) == ("sb3", fmt)
    loaded = zoo.load(f"rl/{case}", trusted=fmt == "pickle")
    if fmt == "onnx":
        assert type(loaded).__name__ == "PolicyOnnxPredictor"
    else:
        assert type(loaded) is type(model) and loaded.policy is not model.policy
    _assert_same_actions(loaded, model, fmt, observations(model))
    # zoo.predict answers the deterministic action for the model and for its ONNX bundle.
    np.testing.assert_array_equal(zoo.predict(model, observations(model)),
                                  actions(model, observations(model)))


@pytest.mark.parametrize("fmt", SAFE)
def test_the_safe_formats_keep_every_weight_bit_for_bit(zoo, fmt) -> None:
    model = make("sac")
    zoo.save(model, "rl/sac", format=fmt)
    loaded = zoo.load("rl/sac")
    saved, back = model.policy.state_dict(), loaded.policy.state_dict()
    assert list(saved) == list(back)  # actor, critic and the critic's target
    for name in saved:
        assert torch.equal(saved[name], back[name]) and saved[name].dtype == back[name].dtype


def test_the_manifest_records_algorithm_arguments_and_spaces(zoo) -> None:
    model = make("sac")
    data = zoo.save(model, "rl/sac")["adapter_data"]
    assert (data["algorithm"], data["policy"]) == ("SAC", "MlpPolicy")
    assert data["policy_kwargs"]["net_arch"] == [16, 16]
    args = data["arguments"]
    assert args["gamma"] == 0.99 and args["buffer_size"] == 500
    assert args["train_freq"] == [1, "step"] and args["learning_rate"] == 0.0003
    assert data["observation_space"] == {"type": "Box", "shape": [4], "dtype": "float32",
                                         "low": -1.0, "high": 1.0}
    assert data["action_space"]["low"] == [-1.0, 0.0]
    assert data["action_space"]["high"] == [1.0, 5.0]
    loaded = zoo.load("rl/sac")
    assert loaded.gamma == model.gamma and loaded.batch_size == 16
    assert loaded.observation_space == model.observation_space
    assert loaded.action_space == model.action_space
    # A2C's RMSprop optimizer is a class in policy_kwargs, recorded by name.
    a2c = zoo.save(make("a2c-box"), "rl/a2c")["adapter_data"]
    assert a2c["policy_kwargs"]["optimizer_class"] == "RMSprop"
    assert type(zoo.load("rl/a2c").policy.optimizer).__name__ == "RMSprop"


def test_policy_kwargs_classes_come_from_a_fixed_table(zoo) -> None:
    env = SpacesEnv(_box(), spaces.Discrete(2))
    model = sb3.PPO("MlpPolicy", env, n_steps=16, batch_size=16, seed=0, policy_kwargs={
        "activation_fn": torch.nn.ReLU, "net_arch": {"pi": [8], "vf": [12]}})
    data = zoo.save(model, "rl/relu")["adapter_data"]
    assert data["policy_kwargs"] == {"activation_fn": "ReLU",
                                     "net_arch": {"pi": [8], "vf": [12]}}
    loaded = zoo.load("rl/relu")
    assert loaded.policy.activation_fn is torch.nn.ReLU
    _assert_same_actions(loaded, model, "json", observations(model))

    class Custom(torch.nn.ReLU):  # a class the table does not name: no safe format
        pass

    custom = sb3.PPO("MlpPolicy", env, n_steps=16, batch_size=16,
                     policy_kwargs={"activation_fn": Custom})
    with pytest.raises(alphazoo.UnsupportedFormatError, match="activation_fn.*pickle"):
        zoo.save(custom, "rl/custom")
    assert not zoo.store.contains_key("rl/custom")
    zoo.save(custom, "rl/custom", format="pickle")  # SB3's zip keeps it


def test_arguments_without_json_form_are_left_out_with_a_notice(zoo) -> None:
    env = SpacesEnv(_box(), spaces.Discrete(2))
    model = sb3.PPO("MlpPolicy", env, n_steps=16, batch_size=16,
                    learning_rate=lambda left: 1e-3 * left)
    with pytest.warns(alphazoo.SaveWarning, match=r"\['learning_rate'\].*pickle"):
        data = zoo.save(model, "rl/schedule")["adapter_data"]
    assert "learning_rate" not in data["arguments"]
    assert data["arguments"]["clip_range"] == 0.2  # a constant schedule is its value
    _assert_same_actions(zoo.load("rl/schedule"), model, "json", observations(model))


def test_other_algorithms_are_stored_as_sb3s_zip_only(zoo) -> None:
    model = sb3.TD3("MlpPolicy", SpacesEnv(_box(), _box(1)), learning_starts=8,
                    buffer_size=100, policy_kwargs={"net_arch": [8]})
    for fmt in ("json", "onnx"):
        with pytest.raises(alphazoo.UnsupportedFormatError, match="PPO, A2C, DQN, SAC.*"
                                                                  "pickle"):
            zoo.save(model, "rl/td3", format=fmt)
    zoo.save(model, "rl/td3", format="pickle")
    with pytest.raises(alphazoo.UntrustedModelError):
        zoo.load("rl/td3")
    loaded = zoo.load("rl/td3", trusted=True)
    assert type(loaded) is sb3.TD3
    _assert_same_actions(loaded, model, "pickle", observations(model))


class TunedPPO(sb3.PPO):
    """A user's subclass: importable from this module."""


def test_a_subclass_is_stored_as_its_algorithm_and_pickle_keeps_it(zoo) -> None:
    model = TunedPPO("MlpPolicy", SpacesEnv(_box(), spaces.Discrete(2)), n_steps=16,
                     batch_size=16)
    with pytest.warns(alphazoo.SaveWarning, match="TunedPPO is stored as stable_baselines3.PPO"):
        zoo.save(model, "rl/tuned")
    assert type(zoo.load("rl/tuned")) is sb3.PPO
    zoo.save(model, "rl/tuned-zip", format="pickle")
    loaded = zoo.load("rl/tuned-zip", trusted=True)
    assert type(loaded) is TunedPPO
    _assert_same_actions(loaded, model, "pickle", observations(model))


def test_onnx_takes_box_observations_only(zoo) -> None:
    model = sb3.PPO("MlpPolicy", SpacesEnv(spaces.Discrete(5), spaces.Discrete(2)),
                    n_steps=16, batch_size=16)
    with pytest.raises(alphazoo.UnsupportedFormatError, match="Box observations"):
        zoo.save(model, "rl/discrete-obs", format="onnx")
    zoo.save(model, "rl/discrete-obs")  # json records a Discrete observation space
    obs = np.arange(5)
    np.testing.assert_array_equal(actions(zoo.load("rl/discrete-obs"), obs),
                                  actions(model, obs))


@pytest.mark.parametrize("algorithm", ["PPO", "DQN"])
def test_image_policies_normalise_pixels_in_every_safe_format_and_onnx(zoo, algorithm) -> None:
    image = spaces.Box(0, 255, (1, 36, 36), np.uint8)  # NatureCNN's smallest input
    arguments = {"n_steps": 16, "batch_size": 16} if algorithm == "PPO" else {"buffer_size": 64}
    model = getattr(sb3, algorithm)("CnnPolicy", SpacesEnv(image, spaces.Discrete(3)), seed=0,
                                    policy_kwargs={"features_extractor_kwargs":
                                                   {"features_dim": 16}, "net_arch": [8]},
                                    **arguments)
    obs = np.stack([image.sample() for _ in range(12)])
    for fmt in ("json", "onnx"):
        manifest = zoo.save(model, f"rl/{fmt}", format=fmt)
        _assert_same_actions(zoo.load(f"rl/{fmt}"), model, fmt, obs)
    assert manifest["input"]["dtype"] == "float32"  # onnx: pixels go in as float32
    assert zoo.inspect("rl/json")["adapter_data"]["policy"] == "CnnPolicy"


def test_onnx_clips_and_rescales_as_predict_does(zoo) -> None:
    # Bounds much narrower than the policy's raw means: predict clips most actions.
    model = make("ppo-box")
    model.policy.action_net.bias.data += 3.0
    zoo.save(model, "rl/clipped", format="onnx")
    want = actions(model, observations(model))
    assert np.isin(want, [0.5]).mean() > 0.5
    np.testing.assert_allclose(zoo.load("rl/clipped").predict(observations(model)), want,
                               rtol=1e-6)
    assert zoo.inspect("rl/clipped")["adapter_data"]["parity"]["max_abs_diff"] < 1e-5


def test_spaces_round_trip_through_json_exactly() -> None:
    from alphazoo.adapters._sb3_spaces import decode_space, encode_space

    cases = [
        spaces.Box(-np.inf, np.inf, (3,), np.float32),
        spaces.Box(np.array([-1.5, 0.0]), np.array([np.inf, 1e-7]), dtype=np.float64),
        spaces.Box(0, 255, (2, 4, 4), np.uint8),
        spaces.Discrete(7, start=-3),
        spaces.MultiDiscrete(np.array([[3, 2], [4, 5]]), start=np.array([[0, 1], [-1, 0]])),
        spaces.MultiBinary(5),
        spaces.MultiBinary([2, 3]),
    ]
    for space in cases:
        document = json.loads(json.dumps(encode_space(space), allow_nan=False))
        back = decode_space(document)
        assert back == space and back.dtype == space.dtype, space
        if isinstance(space, spaces.Box):
            assert np.array_equal(back.low, space.low) and np.array_equal(back.high, space.high)
    with pytest.raises(alphazoo.UnsupportedFormatError, match="Dict.*pickle"):
        encode_space(spaces.Dict({"a": spaces.Discrete(2)}))
    with pytest.raises(alphazoo.BundleFormatError, match="low holds 3 values"):
        decode_space({"type": "Box", "shape": [2], "dtype": "float32", "low": [0, 0, 0],
                      "high": 1})
    with pytest.raises(alphazoo.BundleFormatError, match="dtype 'object'"):
        decode_space({"type": "Box", "shape": [2], "dtype": "object", "low": 0, "high": 1})


# -- spaces at load ------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_env_at_load_must_have_the_recorded_spaces(zoo, fmt) -> None:
    model = make("ppo-discrete")
    zoo.save(model, "rl/ppo", format=fmt)
    trusted = fmt == "pickle"
    same = SpacesEnv(_box(), spaces.Discrete(3))
    loaded = zoo.load("rl/ppo", env=same, trusted=trusted)
    if fmt != "onnx":
        assert loaded.get_env() is not None and loaded.get_env().num_envs == 1
    with pytest.raises(alphazoo.SpaceMismatchError, match="action_space") as info:
        zoo.load("rl/ppo", env=SpacesEnv(_box(), spaces.Discrete(4)), trusted=trusted)
    assert info.value.which == "action_space" and info.value.saved["n"] == 3
    with pytest.raises(alphazoo.SpaceMismatchError, match="observation_space"):
        zoo.load("rl/ppo", env=SpacesEnv(_box(5), spaces.Discrete(3)), trusted=trusted)
    with pytest.raises(alphazoo.SpaceMismatchError, match="observation_space"):
        zoo.load("rl/ppo", env=SpacesEnv(_box(4, 2.0), spaces.Discrete(3)), trusted=trusted)


def test_a_loaded_model_trains_on_in_the_env_it_was_given(zoo) -> None:
    model = make("ppo-discrete")
    zoo.save(model, "rl/ppo")
    loaded = zoo.load("rl/ppo", env=SpacesEnv(_box(), spaces.Discrete(3)))
    before = actions(loaded, observations(model))
    zoo.train(loaded, None, None, total_timesteps=64)  # on the env given at load
    assert loaded.num_timesteps >= 64
    # ...or on an env given to zoo.train, as X
    zoo.train(loaded, SpacesEnv(_box(), spaces.Discrete(3)), None, total_timesteps=32,
              reset_num_timesteps=False)
    assert loaded.num_timesteps >= 96
    assert not all(torch.equal(a, b) for a, b in zip(loaded.policy.state_dict().values(),
                                                     model.policy.state_dict().values()))
    assert before.shape == actions(loaded, observations(model)).shape
    with pytest.raises(TypeError, match="unexpected options"):
        zoo.train(loaded, None, None, epochs=3)


# -- ownership -----------------------------------------------------------------------------------
def test_the_algorithm_is_sb3s_and_its_torch_modules_stay_torchs(zoo) -> None:
    model = make("ppo-discrete")
    assert adapter.owns(model) and not adapter.owns(model.policy)
    assert zoo.save(model, "rl/ppo")["adapter"] == "sb3"
    # The policy alone is a torch module: the torch adapter stores it (as a pickle here,
    # since its json format needs a builder to reload).
    assert zoo.save(model.policy, "rl/policy", format="pickle")["adapter"] == "torch"
    assert zoo.save(torch.nn.Linear(2, 1), "rl/linear")["adapter"] == "torch"


# -- hostile bundles -----------------------------------------------------------------------------
def test_a_safetensors_payload_that_is_not_one_is_refused(zoo, tmp_path) -> None:
    zoo.save(make("ppo-discrete"), "rl/tensors", format="safetensors")
    source = tmp_path / "policy.safetensors"
    for case, content in (("garbage", b"not a safetensors file"),
                          ("huge-header", (2**40).to_bytes(8, "little") + b"{}")):
        source.write_bytes(content)
        rebundle(zoo.store, "rl/tensors", f"rl/{case}", source)
        with pytest.raises(alphazoo.BundleFormatError, match="not a safetensors file"):
            zoo.load(f"rl/{case}")


def test_an_onnx_bundle_with_malformed_spaces_is_refused(zoo, tmp_path) -> None:
    zoo.save(make("ppo-discrete"), "rl/onnx", format="onnx")
    folder = tmp_path / "onnx"
    folder.mkdir()
    source = read_bundle(zoo.store, "rl/onnx", folder).files["model.onnx"]

    def shape(manifest: dict[str, Any]) -> None:
        manifest["adapter_data"]["observation_space"]["shape"] = "4"

    def kind(manifest: dict[str, Any]) -> None:
        manifest["adapter_data"]["action_space"]["type"] = "Tuple"

    rebundle(zoo.store, "rl/onnx", "rl/shape", source, edit=shape)
    with pytest.raises(alphazoo.BundleFormatError, match="shape"):
        zoo.load("rl/shape")
    rebundle(zoo.store, "rl/onnx", "rl/kind", source, edit=kind)
    with pytest.raises(alphazoo.BundleFormatError, match="action_space.type"):
        zoo.load("rl/kind")


@pytest.mark.parametrize("edit,match", [
    # 11 bounds for a Box of shape [5]: the json format's decode refuses it, so must onnx.
    (lambda d: d["observation_space"].update(shape=[5], low=[-1.0] * 11),
     "observation_space: not a valid Box space: low holds 11 values"),
    (lambda d: d["observation_space"].update(shape=[5]),
     "observation_space: has samples of shape \\[5\\], but the graph takes"),
    (lambda d: d.update(action_space={"type": "Box", "shape": [3], "dtype": "float32",
                                      "low": -1.0, "high": 1.0}),
     "action_space: has samples of shape \\[3\\], but the graph gives"),
    (lambda d: d["observation_space"].update(dtype="object"), "dtype 'object'"),
])
def test_an_onnx_bundle_whose_spaces_do_not_fit_its_graph_is_refused(zoo, tmp_path, edit,
                                                                      match) -> None:
    zoo.save(make("ppo-discrete"), "rl/onnx", format="onnx")
    source = read_bundle(zoo.store, "rl/onnx", tmp_path).files["model.onnx"]
    rebundle(zoo.store, "rl/onnx", "rl/lying", source,
             edit=lambda manifest: edit(manifest["adapter_data"]))
    with pytest.raises(alphazoo.BundleFormatError, match=match):
        zoo.load("rl/lying")


def test_an_onnx_graph_onnxruntime_refuses_is_a_typed_error_naming_the_key(zoo,
                                                                          tmp_path) -> None:
    import onnx

    zoo.save(make("ppo-discrete"), "rl/onnx", format="onnx")
    source = read_bundle(zoo.store, "rl/onnx", tmp_path).files["model.onnx"]
    graph = onnx.load(str(source))
    graph.graph.node[0].op_type = "NoSuchOperator"  # onnxruntime: InvalidGraph at session
    onnx.save(graph, str(source))
    rebundle(zoo.store, "rl/onnx", "rl/broken", source)
    with pytest.raises(alphazoo.BundleFormatError,
                       match="model.onnx: onnxruntime cannot open the graph of bundle "
                             "'rl/broken' \\(InvalidGraph"):
        zoo.load("rl/broken")


def test_the_onnx_policy_takes_sb3s_predict_arguments_and_answers_as_sb3(zoo) -> None:
    model = make("ppo-box")
    zoo.save(model, "rl/onnx", format="onnx")
    policy, obs = zoo.load("rl/onnx"), observations(model)
    want_actions, want_state = model.predict(obs, deterministic=True)
    got_actions, got_state = policy.predict(obs, state=None, episode_start=np.ones(len(obs)),
                                            deterministic=True)
    np.testing.assert_allclose(got_actions, want_actions, rtol=1e-5, atol=1e-5)
    assert got_state is want_state is None
    np.testing.assert_array_equal(policy.act(obs), got_actions)
    # Called bare, it predicts as every loaded model does: the actions alone.
    np.testing.assert_array_equal(policy.predict(obs), got_actions)
    np.testing.assert_array_equal(policy.predict(obs, deterministic=True)[0], got_actions)
    with pytest.raises(ValueError, match="deterministic action only"):
        policy.predict(obs, deterministic=False)
    with pytest.raises(ValueError, match="not recurrent"):
        policy.predict(obs, state=(np.zeros(3),))


def test_a_safetensors_bundle_loads_through_the_shared_bounded_reader(zoo, tmp_path) -> None:
    model = make("ppo-discrete")
    zoo.save(model, "rl/tensors", format="safetensors")
    opened = read_bundle(zoo.store, "rl/tensors", tmp_path)
    manifest = dict(opened.manifest)
    # A request without limits (the adapter's default limits apply, as in the other
    # adapters); its size checked before it is read.
    request = LoadRequest(manifest=manifest, files=dict(opened.files))
    loaded = adapter.alphazoo_load(request)
    obs = observations(model)
    np.testing.assert_array_equal(actions(loaded, obs), actions(model, obs))
    small = LoadRequest(manifest=manifest, files=dict(opened.files),
                        limits=LoadLimits(max_bytes=100))
    with pytest.raises(alphazoo.BundleLimitError, match="policy.safetensors"):
        adapter.alphazoo_load(small)


def _document(zoo: Any, tmp_path: Path) -> dict[str, Any]:
    """The weights document of the bundle ``rl/good``."""
    folder = tmp_path / "extract"
    folder.mkdir(exist_ok=True)
    return json.loads(read_bundle(zoo.store, "rl/good", folder).files["policy.json"]
                      .read_text())


def _rewrite(zoo: Any, tmp_path: Path, key: str, *, document: dict[str, Any],
             edit: Any = None) -> None:
    """Store ``document`` under ``key`` with rl/good's manifest (``edit`` changes it)."""
    source = tmp_path / "policy.json"
    source.write_text(json.dumps(document))
    rebundle(zoo.store, "rl/good", key, source, edit=edit)


@pytest.fixture
def good(zoo) -> None:
    """An honest json bundle at rl/good, whose manifest the hostile bundles reuse."""
    zoo.save(make("ppo-discrete"), "rl/good")


def test_a_weight_of_the_wrong_shape_is_refused(zoo, tmp_path, good) -> None:
    document = _document(zoo, tmp_path)
    entry = document["tensors"][0]
    array = np.zeros(np.prod(entry["shape"]) + 1, dtype=entry["dtype"])
    entry.update(shape=[len(array)], data=base64.b64encode(array.tobytes()).decode())
    _rewrite(zoo, tmp_path, "rl/shape", document=document)
    with pytest.raises(alphazoo.BundleIntegrityError, match="do not fit the PPO MlpPolicy"):
        zoo.load("rl/shape")


def test_an_unknown_algorithm_is_refused_before_anything_is_imported(zoo, tmp_path,
                                                                      good) -> None:
    def td3(manifest: dict[str, Any]) -> None:
        manifest["adapter_data"]["algorithm"] = "TD3"

    _rewrite(zoo, tmp_path, "rl/td3", document=_document(zoo, tmp_path), edit=td3)
    with pytest.raises(alphazoo.BundleFormatError, match="adapter_data.algorithm"):
        zoo.load("rl/td3")

    def policy(manifest: dict[str, Any]) -> None:
        manifest["adapter_data"]["policy"] = "os.system"

    _rewrite(zoo, tmp_path, "rl/policy", document=_document(zoo, tmp_path), edit=policy)
    with pytest.raises(alphazoo.BundleIntegrityError, match="names the policy 'os.system'"):
        zoo.load("rl/policy")

    def activation(manifest: dict[str, Any]) -> None:
        manifest["adapter_data"]["policy_kwargs"]["activation_fn"] = "subprocess.Popen"

    _rewrite(zoo, tmp_path, "rl/activation", document=_document(zoo, tmp_path),
             edit=activation)
    with pytest.raises(alphazoo.BundleIntegrityError, match="activation_fn.*names"):
        zoo.load("rl/activation")


@pytest.mark.parametrize("where", ["observation_space", "weights", "buffer", "argument",
                                   "net_arch", "one_hot"])
def test_absurd_sizes_are_refused_before_allocating(zoo, tmp_path, good, where) -> None:
    document = _document(zoo, tmp_path)

    def edit(manifest: dict[str, Any]) -> None:
        data = manifest["adapter_data"]
        if where == "observation_space":
            data["observation_space"]["shape"] = [10**6, 10**6]
        elif where == "buffer":
            data["arguments"]["n_steps"] = 10**13
        elif where == "argument":
            data["arguments"]["exec"] = "print(1)"
        elif where == "net_arch":  # 10^5 x 10^5 floats: 40 GB if it were built
            data["policy_kwargs"]["net_arch"] = [10**5, 10**5]
        elif where == "one_hot":  # a Discrete observation is one-hot encoded: 10^10 inputs
            data["observation_space"] = {"type": "Discrete", "n": 10**10, "start": 0}

    if where == "weights":
        document["tensors"][0]["shape"] = [10**7, 10**7]
    _rewrite(zoo, tmp_path, f"rl/{where}", document=document, edit=edit)
    error = alphazoo.BundleIntegrityError if where == "argument" else alphazoo.BundleLimitError
    with pytest.raises(error):
        zoo.load(f"rl/{where}")


# -- the trading environment ---------------------------------------------------------------------
def test_the_trading_env_passes_gymnasiums_checker() -> None:
    from gymnasium.utils.env_checker import check_env

    for options in ({}, {"continuous": True}, {"episode_length": 30}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(TradingEnv(**options))
        # Only the checker's note that an env made without gymnasium.make has no spec.
        assert all("spec" in str(w.message) for w in caught), [str(w.message) for w in caught]


def test_the_trading_env_pays_position_times_return_less_costs() -> None:
    prices = [100.0, 101.0, 99.99, 102.0, 102.0]
    env = TradingEnv(prices=prices, window=1, cost=0.001)
    obs, info = env.reset(seed=0)
    np.testing.assert_allclose(obs, [1.0, 0.0], rtol=1e-6)  # +1% in percent, flat
    _, reward, *_ = env.step(2)  # long over 101 -> 99.99: -1%, and one unit traded
    assert reward == pytest.approx(-0.01 - 0.001)
    _, reward, *_ = env.step(0)  # short over 99.99 -> 102: two units traded
    assert reward == pytest.approx(-(102 / 99.99 - 1) - 0.002)
    obs, reward, terminated, truncated, info = env.step(0)
    assert reward == 0.0 and terminated and not truncated and info["position"] == -1.0
    assert obs[-1] == -1.0
    with pytest.raises(ValueError, match="action must be"):
        env.step(3)
    env = TradingEnv(episode_length=5, continuous=True)
    env.reset(seed=3)
    for _ in range(4):
        assert env.step(np.array([0.5], np.float32))[3] is False
    assert env.step(np.array([2.0], np.float32))[4]["position"] == 1.0  # clipped


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_ppo_policy_trained_on_the_trading_env_reloads_with_equal_actions(zoo, fmt) -> None:
    env = TradingEnv("AAPL", window=8, episode_length=64)
    model = sb3.PPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=2, seed=0,
                    policy_kwargs={"net_arch": [32]}, device="cpu").learn(512)
    bars = TradingEnv("AAPL", window=8)
    obs = [bars.reset(seed=0)[0]]
    done = False
    while not done:  # the greedy policy over the whole series, every observation kept
        observation, _, done, _, _ = bars.step(int(actions(model, obs[-1])))
        obs.append(observation)
    zoo.save(model, "rl/aapl", format=fmt)
    loaded = zoo.load("rl/aapl", trusted=fmt == "pickle", env=env)
    _assert_same_actions(loaded, model, fmt, np.stack(obs))


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_trained_models_reload_with_equal_actions(zoo, case) -> None:
    model = make(case, steps=96)
    for fmt in FORMATS:
        zoo.save(model, f"rl/{case}-{fmt}", format=fmt)
        loaded = zoo.load(f"rl/{case}-{fmt}", trusted=fmt == "pickle")
        _assert_same_actions(loaded, model, fmt, observations(model))


# -- the conformance kit and serving without the libraries ----------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("case", ["ppo-discrete", "a2c-box", "dqn", "sac"])
def test_the_adapter_passes_the_conformance_kit(case, monkeypatch) -> None:
    from alphazoo.testing import CHECK_NAMES, check_adapter

    monkeypatch.delenv("ALPHAZOO_SIGNING_KEY", raising=False)
    model = make(case, steps=64)
    X = observations(model, 24)
    report = check_adapter("alphazoo.adapters.sb3", lambda: model, X,
                           library_modules=("stable_baselines3", "torch", "gymnasium"),
                           foreign_models=[model.policy, torch.nn.Linear(2, 1)])
    assert report.checks == list(CHECK_NAMES) and report.formats == list(FORMATS)
    assert "without_library" not in report.skipped


SERVE_BLOCKED = blocking_prelude("torch", "stable_baselines3", "gymnasium") + textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import alphazoo

    store, rows, out = sys.argv[1:4]
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(store))
    X = np.load(rows)
    served = {key: zoo.load(key).predict(X).tolist() for key in zoo.store.keys()}
    json.dump(served, open(out, "w"))
    """)


@pytest.mark.slow
def test_onnx_bundles_serve_without_torch_sb3_or_gymnasium(store, tmp_path) -> None:
    zoo = alphazoo.Zoo(store)
    wanted = {}
    X = None
    for case in ("ppo-discrete", "ppo-box", "ppo-multidiscrete", "dqn", "sac"):
        model = make(case, steps=64)
        X = observations(model) if X is None else X
        zoo.save(model, f"rl/{case}", format="onnx")
        wanted[f"rl/{case}"] = actions(model, X)
    np.save(tmp_path / "rows.npy", X)
    run_python(SERVE_BLOCKED, str(tmp_path / "store"), str(tmp_path / "rows.npy"),
               str(tmp_path / "out.json"), cwd=tmp_path)
    served = json.loads((tmp_path / "out.json").read_text())
    assert sorted(served) == sorted(wanted)
    for key, want in wanted.items():
        np.testing.assert_allclose(np.asarray(served[key]), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", ["ppo-discrete", "a2c-box", "ppo-multidiscrete"])
def test_the_one_file_reader_serves_onnx_policies_as_predict_answers(zoo, case) -> None:
    from alphazoo.reader import load

    model = make(case)
    zoo.save(model, "rl/served", format="onnx")
    served = load(zoo.store.read_bytes("rl/served"))  # what a QuantConnect project runs
    obs = observations(model)
    for batch in (obs, obs[0]):
        want = actions(model, batch)
        got = served.predict(batch)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert zoo.check_target("rl/served", "quantconnect").loads
    zoo.save(model, "rl/json")
    assert zoo.check_target("rl/json", "quantconnect").instead == "onnx"
