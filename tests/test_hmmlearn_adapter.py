"""The hmmlearn adapter: json (default) and pickle bundles of hmmlearn's five HMM classes.

Every class, and every covariance type of GaussianHMM and GMMHMM, is fitted (real AAPL
returns and volatility for the Gaussian models, small synthetic counts for the discrete ones),
saved in both formats into one store and loaded in a fresh process: parameters, the internal
covariance arrays, the random state and the convergence monitor must be bit-equal, and
predict, predict_proba, score, decode and sample must give the same results.
"""

from __future__ import annotations

import base64
import copy
import json
import pickle
import sys
import textwrap
import warnings
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _child import run_python

import alphazoo
from alphazoo.bundle import read_bundle, write_bundle
from alphazoo.datasets import load_prices

COVARIANCE_TYPES = ("diag", "full", "tied", "spherical")
FORMATS = ("json", "pickle")
#: case name -> (class name, constructor arguments, data kind)
CASES: dict[str, tuple[str, dict[str, Any], str]] = {
    **{f"gaussian-{c}": ("GaussianHMM", {"n_components": 3, "covariance_type": c}, "returns")
       for c in COVARIANCE_TYPES},
    **{f"gmm-{c}": ("GMMHMM", {"n_components": 2, "n_mix": 2, "covariance_type": c}, "returns")
       for c in COVARIANCE_TYPES},
    "categorical": ("CategoricalHMM", {"n_components": 3}, "symbols"),
    # n_trials=None: fit() stores the per-row totals, an array parameter.
    "multinomial": ("MultinomialHMM", {"n_components": 2, "n_trials": None}, "counts"),
    "poisson": ("PoissonHMM", {"n_components": 2}, "poisson"),
}
ALL_CASES = [*CASES, "zoo-gaussian_hmm"]


# -- data, models and helpers --------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Any:
    """hmmlearn initialises means with scikit-learn's KMeans, whose OpenMP threads spin against
    other processes on a busy 2-core machine: one fit took 4 s, and 0.04 s on one thread."""
    import hmmlearn.hmm  # noqa: F401  (threadpoolctl limits only the libraries loaded)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    """Daily % log returns and 10-day volatility of AAPL (2015-2017), and discrete samples."""
    close = load_prices("AAPL").close
    returns = np.diff(np.log(close)) * 100.0
    windows = np.lib.stride_tricks.sliding_window_view(returns, 10)
    features = np.column_stack([returns[9:], windows.std(axis=1)])
    split = int(len(features) * 0.8)
    rng = np.random.default_rng(7)
    states = np.repeat([0, 1, 2], 100)
    symbols = np.where(rng.random(300) < 0.7, states, rng.integers(0, 4, 300))[:, None]
    counts = np.array([rng.multinomial(6, [0.6, 0.3, 0.1] if s else [0.1, 0.3, 0.6])
                       for s in states % 2])
    poisson = rng.poisson(np.where(states[:, None] == 1, [8.0, 1.0], [2.0, 5.0]))
    return {"returns": features[:split], "returns_new": features[split:],
            "symbols": symbols, "counts": counts, "poisson": poisson}


def rows_for(case: str, data: dict[str, np.ndarray], new: bool = True) -> np.ndarray:
    """The rows a case is evaluated on: unseen later days for the Gaussian models."""
    kind = "returns" if case == "zoo-gaussian_hmm" else CASES[case][2]
    return data["returns_new"] if kind == "returns" and new else data[kind]


def build(case: str, n_iter: int = 20) -> Any:
    from hmmlearn import hmm

    name, kwargs, _ = CASES[case]
    return getattr(hmm, name)(n_iter=n_iter, random_state=0, **kwargs)


def state_of(model: Any) -> dict[str, Any]:
    """Everything a model holds (its whole ``__dict__``), the monitor as plain values."""
    state = dict(vars(model))
    monitor = state.pop("monitor_")
    state["monitor_"] = {k: (list(v), v.maxlen) if isinstance(v, deque) else v
                         for k, v in vars(monitor).items()}
    return {"class": f"{type(model).__module__}.{type(model).__qualname__}", "vars": state,
            "params": model.get_params(deep=False)}


def outputs_of(model: Any, X: np.ndarray) -> dict[str, Any]:
    """What a user asks of an HMM; sampling uses (and advances) the model's random state."""
    logprob, states = model.decode(X)
    sample_X, sample_states = model.sample(25)
    return {"predict": model.predict(X), "predict_proba": model.predict_proba(X),
            "score": model.score(X), "decode": (logprob, states),
            "score_samples": model.score_samples(X), "sample": (sample_X, sample_states)}


def assert_bit_equal(a: Any, b: Any, path: str = "model") -> None:
    """Same types, and arrays with the same dtype, shape and bytes, all the way down."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype, f"{path}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{path}: shape {a.shape} != {b.shape}"
        assert a.tobytes() == b.tobytes(), f"{path}: the bits differ"
    elif isinstance(a, np.random.RandomState):
        assert_bit_equal(list(a.get_state()), list(b.get_state()), f"{path}.get_state()")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{path}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_bit_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path}: keys differ: {sorted(a.keys() ^ b.keys())}"
        for key in a:
            assert_bit_equal(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, float):
        assert np.float64(a).tobytes() == np.float64(b).tobytes(), f"{path}: {a!r} != {b!r}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, data) -> dict[str, Any]:
    """Every case fitted and saved as json and pickle in one store; pristine copies kept."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ALPHAZOO_SIGNING_KEY", raising=False)
        store_dir = tmp_path_factory.mktemp("hmmlearn-zoo")
        zoo = alphazoo.Zoo(alphazoo.ObjectStore(store_dir))
        models, manifests = {}, {}
        for case in CASES:
            models[case] = zoo.train(build(case), rows_for(case, data, new=False))
        models["zoo-gaussian_hmm"] = zoo.train(zoo.build("gaussian_hmm", n_iter=30),
                                               data["returns"])
        for case, model in models.items():
            for fmt in FORMATS:
                manifests[case, fmt] = zoo.save(model, f"hmm/{case}/{fmt}", format=fmt)
        # outputs_of() samples, which advances a RandomState: compare against copies.
        pristine = {case: copy.deepcopy(model) for case, model in models.items()}
    return {"store_dir": store_dir, "zoo": zoo, "models": pristine, "manifests": manifests}


# -- registration and training -------------------------------------------------------------------
def test_zoo_model_and_formats_are_registered(zoo):
    from hmmlearn.hmm import GaussianHMM

    specs = {spec.name: spec for spec in zoo.models()}
    assert specs["gaussian_hmm"].library == "hmmlearn"
    assert specs["gaussian_hmm"].plugin == "hmmlearn"
    formats = {(s.name, s.safe, s.default) for s in zoo.formats() if s.adapter == "hmmlearn"}
    assert formats == {("json", True, True), ("pickle", False, False)}

    model = zoo.build("gaussian_hmm")
    assert type(model) is GaussianHMM
    assert (model.n_components, model.covariance_type, model.n_iter, model.random_state) == (
        3, "diag", 100, 0)
    assert zoo.build("gaussian_hmm", n_components=2, tol=0.5).get_params()["tol"] == 0.5


def test_train_takes_lengths_and_predict_gives_states(zoo, data):
    X = data["returns"]
    lengths = [len(X) // 2, len(X) - len(X) // 2]
    model = zoo.train(zoo.build("gaussian_hmm", n_components=2, n_iter=10), X, lengths=lengths)
    direct = build("gaussian-diag", n_iter=10).set_params(n_components=2).fit(X, lengths)
    assert_bit_equal(direct.means_, model.means_)
    states = zoo.predict(model, data["returns_new"])
    assert np.array_equal(states, model.predict(data["returns_new"]))
    assert states.shape == (len(data["returns_new"]),) and set(states) <= {0, 1}
    with pytest.raises(TypeError, match=r"unexpected options \['sample_weight'\].*lengths"):
        zoo.train(zoo.build("gaussian_hmm"), X, sample_weight=np.ones(len(X)))


# -- round trips ---------------------------------------------------------------------------------
FRESH_CHILD = textwrap.dedent(
    """
    import copy, json, pickle, sys
    from collections import deque
    import numpy as np
    import alphazoo

    store, plan_file, out = sys.argv[1:4]
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(store))
    plan = json.loads(open(plan_file).read())
    result = {"keys": zoo.store.keys()}
    for key, rows in plan.items():
        model = zoo.load(key, trusted=key.endswith("/pickle"))
        X = np.load(rows)
        state = copy.deepcopy(dict(vars(model)))  # sample() below advances a RandomState
        monitor = state.pop("monitor_")
        state["monitor_"] = {k: (list(v), v.maxlen) if isinstance(v, deque) else v
                             for k, v in vars(monitor).items()}
        params = copy.deepcopy(model.get_params(deep=False))
        logprob, states = model.decode(X)
        result[key] = {
            "state": {"class": f"{type(model).__module__}.{type(model).__qualname__}",
                      "vars": state, "params": params},
            "outputs": {"predict": model.predict(X), "predict_proba": model.predict_proba(X),
                        "score": model.score(X), "decode": (logprob, states),
                        "score_samples": model.score_samples(X),
                        "sample": model.sample(25)},
        }
    result["hmmlearn_imported_by_load"] = "hmmlearn" in sys.modules
    with open(out, "wb") as handle:  # our own child: pickle keeps dtypes and bits as they are
        pickle.dump(result, handle)
    """
)


@pytest.fixture(scope="module")
def fresh(saved, data, tmp_path_factory) -> dict[str, Any]:
    """One fresh process loads every bundle and reports state and outputs."""
    work = tmp_path_factory.mktemp("hmmlearn-fresh")
    plan = {}
    for case in ALL_CASES:
        rows = work / f"{case}.npy"
        np.save(rows, rows_for(case, data))
        for fmt in FORMATS:
            plan[f"hmm/{case}/{fmt}"] = str(rows)
    (work / "plan.json").write_text(json.dumps(plan))
    out = work / "out.pkl"
    run_python(FRESH_CHILD, str(saved["store_dir"]), str(work / "plan.json"), str(out), cwd=work)
    with open(out, "rb") as handle:
        return pickle.load(handle)


@pytest.mark.slow
def test_the_fresh_process_loaded_every_bundle(fresh):
    assert sorted(fresh["keys"]) == sorted(f"hmm/{c}/{f}" for c in ALL_CASES for f in FORMATS)
    assert fresh["hmmlearn_imported_by_load"] is True


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", ALL_CASES)
def test_round_trip_in_a_fresh_process_is_exact(saved, fresh, data, case, fmt):
    original = copy.deepcopy(saved["models"][case])
    child = fresh[f"hmm/{case}/{fmt}"]
    assert_bit_equal(state_of(original), child["state"])
    assert_bit_equal(outputs_of(original, rows_for(case, data)), child["outputs"])


@pytest.mark.slow
@pytest.mark.parametrize("case", ALL_CASES)
def test_json_round_trip_in_process(saved, data, case):
    zoo, original = saved["zoo"], copy.deepcopy(saved["models"][case])
    loaded = zoo.load(f"hmm/{case}/json")
    assert loaded is not original
    assert_bit_equal(state_of(original), state_of(loaded))
    X = rows_for(case, data)
    assert np.array_equal(zoo.predict(loaded, X), original.predict(X))
    assert loaded.monitor_.converged == original.monitor_.converged


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c.startswith(("gaussian", "gmm"))])
def test_json_keeps_the_internal_covariance_shape(saved, case):
    """GaussianHMM's _covars_ (not the always-full public covars_), GMMHMM's per mixture."""
    zoo, model = saved["zoo"], saved["models"][case]
    internal = "_covars_" if case.startswith("gaussian") else "covars_"
    document = bundle_document(zoo, f"hmm/{case}/json")
    (entry,) = [t for t in document["tensors"] if t["name"] == f"fitted/{internal}"]
    assert entry["shape"] == list(getattr(model, internal).shape)
    assert entry["dtype"] == "float64"
    nc, nf = model.n_components, model.n_features
    expected = {
        "gaussian-diag": [nc, nf], "gaussian-full": [nc, nf, nf], "gaussian-tied": [nf, nf],
        "gaussian-spherical": [nc, nf],  # (nc,) before fit, tiled to (nc, nf) by the M-step
        "gmm-diag": [nc, 2, nf], "gmm-full": [nc, 2, nf, nf], "gmm-tied": [nc, nf, nf],
        "gmm-spherical": [nc, 2],
    }[case]
    assert entry["shape"] == expected
    if case.startswith("gaussian") and case != "gaussian-full":
        assert list(model.covars_.shape) != entry["shape"]  # the public view is full matrices


def test_default_format_is_json_and_the_manifest_says_what_it_holds(zoo, saved, data):
    import hmmlearn

    manifest = saved["manifests"]["gaussian-diag", "json"]
    model = zoo.train(build("gaussian-diag", n_iter=5), data["returns"])
    default = zoo.save(model, "default")
    assert default["format"] == "json" and default["adapter"] == "hmmlearn"
    assert [f["name"] for f in default["files"]] == ["model.json"]
    assert manifest["model_class"] == "hmmlearn.hmm.GaussianHMM"
    assert manifest["libraries"]["hmmlearn"] == hmmlearn.__version__
    assert manifest["adapter_data"] == {"class": "GaussianHMM", "n_components": 3,
                                        "n_features": 2, "covariance_type": "diag",
                                        "fitted": True}
    assert manifest["input"]["shape"] == [None, 2]
    assert saved["manifests"]["categorical", "json"]["input"]["shape"] == [None, 1]
    assert saved["manifests"]["categorical", "json"]["adapter_data"]["n_features"] == 4


def test_json_documents_are_strict_json(saved):
    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    for case in ALL_CASES:
        document = bundle_document(saved["zoo"], f"hmm/{case}/json", parse_constant=no_constants)
        assert document["hmmlearn"]["class"] == saved["models"][case].__class__.__name__


def test_an_unfitted_model_round_trips_and_trains_the_same(zoo, data):
    model = zoo.build("gaussian_hmm", n_components=2, covariance_type="full", n_iter=15)
    manifest = zoo.save(model, "unfitted")
    assert manifest["adapter_data"]["fitted"] is False
    loaded = zoo.load("unfitted")
    assert not hasattr(loaded, "startprob_")
    assert_bit_equal(state_of(model), state_of(loaded))
    zoo.train(model, data["returns"])
    zoo.train(loaded, data["returns"])
    assert_bit_equal(state_of(model), state_of(loaded))


def test_a_model_set_by_hand_keeps_its_unfitted_covariance_shape(zoo, data):
    from hmmlearn.hmm import GaussianHMM

    model = GaussianHMM(2, covariance_type="spherical", init_params="")
    model.startprob_ = np.array([0.6, 0.4])
    model.transmat_ = np.array([[0.9, 0.1], [0.2, 0.8]])
    model.means_ = np.array([[0.0, 1.0], [-1.0, 2.0]])
    model.covars_ = np.array([1.0, 4.0])
    assert model._covars_.shape == (2,)  # fit() would tile it to (2, 2)
    zoo.save(model, "by-hand")
    loaded = zoo.load("by-hand")
    assert_bit_equal(state_of(model), state_of(loaded))
    X = data["returns_new"]
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert loaded.score(X) == model.score(X)


def test_non_finite_parameters_and_numpy_scalars_round_trip(zoo, data):
    model = build("gaussian-tied", n_iter=5).set_params(tol=float("-inf"),
                                                        min_covar=np.float32(1e-3))
    model.fit(data["returns"])
    zoo.save(model, "odd")
    loaded = zoo.load("odd")
    assert loaded.tol == float("-inf")
    assert type(loaded.min_covar) is np.float32 and loaded.min_covar == np.float32(1e-3)
    assert_bit_equal(state_of(model), state_of(loaded))


def test_attributes_set_by_hand_are_named_when_json_drops_them(zoo, data):
    model = zoo.train(build("poisson", n_iter=5), data["poisson"])
    model.regime_names = ["calm", "busy"]
    with pytest.warns(UserWarning, match=r"not the attributes \['regime_names'\]"):
        zoo.save(model, "named")
    assert not hasattr(zoo.load("named"), "regime_names")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zoo.save(model, "named-pickle", format="pickle")
    assert zoo.load("named-pickle", trusted=True).regime_names == ["calm", "busy"]


# -- trust, formats and options ------------------------------------------------------------------
def test_pickle_needs_trust(saved):
    zoo = saved["zoo"]
    with pytest.raises(alphazoo.UntrustedModelError, match="trusted=True"):
        zoo.load("hmm/gaussian-full/pickle")
    loaded = zoo.load("hmm/gaussian-full/pickle", trusted=True)
    assert_bit_equal(state_of(saved["models"]["gaussian-full"]), state_of(loaded))


@pytest.mark.parametrize("fmt", ["onnx", "skops", "ubj"])
def test_formats_it_lacks_are_refused_naming_json_and_pickle(zoo, saved, fmt):
    with pytest.raises(alphazoo.UnsupportedFormatError) as error:
        zoo.save(saved["models"]["gaussian-diag"], "nope", format=fmt)
    message = str(error.value)
    assert "hmmlearn" in message and "json" in message and "pickle" in message
    assert repr(fmt) in message
    if fmt == "onnx":
        assert "no ONNX converter exists for hmmlearn" in message
    assert zoo.store.keys() == []


def test_unknown_options_are_refused(saved):
    zoo = saved["zoo"]
    with pytest.raises(TypeError, match=r"hmmlearn adapter's save got unexpected options "
                                        r"\['opset'\]"):
        zoo.save(saved["models"]["poisson"], "opts", opset=13)
    assert not zoo.store.contains_key("opts")
    with pytest.raises(TypeError, match=r"load got unexpected options \['builder'\]"):
        zoo.load("hmm/poisson/json", builder=dict)


def test_other_hmmlearn_models_are_ours_but_json_sends_them_to_pickle(zoo, data):
    from hmmlearn.vhmm import VariationalGaussianHMM

    model = VariationalGaussianHMM(n_components=2, n_iter=3, random_state=0)
    model.fit(data["returns"])
    with pytest.raises(alphazoo.UnsupportedFormatError, match=r"format='pickle'"):
        zoo.save(model, "vhmm")
    manifest = zoo.save(model, "vhmm", format="pickle")
    assert manifest["adapter"] == "hmmlearn"
    loaded = zoo.load("vhmm", trusted=True)
    X = data["returns_new"]
    assert np.array_equal(loaded.predict(X), model.predict(X))


# -- hand-edited bundles -------------------------------------------------------------------------
def bundle_document(zoo: alphazoo.Zoo, key: str, **json_options: Any) -> dict[str, Any]:
    """The model.json of the bundle under ``key`` (verified on the way)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        opened = read_bundle(zoo.store, key, Path(tmp))
        return json.loads(opened.files["model.json"].read_text(), **json_options)


def rewrite(source: alphazoo.Zoo, key: str, target: alphazoo.Zoo, edit: Callable[[dict], None],
            workdir: Path, manifest_edit: Callable[[dict], None] | None = None) -> None:
    """Store an edited copy of a bundle under "edited" in ``target``, with fresh, valid
    checksums: what someone who can write to the store (without a signing key) could make."""
    workdir.mkdir(parents=True)
    opened = read_bundle(source.store, key, workdir)
    path = opened.files["model.json"]
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    manifest = {k: v for k, v in opened.manifest.items()
                if k not in ("protocol", "files", "signature")}
    manifest["key"] = "edited"
    if manifest_edit:
        manifest_edit(manifest)
    write_bundle(target.store, "edited", manifest, workdir, ["model.json"])


def _set_class(name: str) -> Callable[[dict], None]:
    return lambda doc: doc["hmmlearn"].update({"class": name})


def _tensor(doc: dict, name: str) -> dict:
    (entry,) = [t for t in doc["tensors"] if t["name"] == name]
    return entry


def _flatten_covars(doc: dict) -> None:
    entry = _tensor(doc, "fitted/_covars_")
    entry["shape"] = [entry["shape"][0] * entry["shape"][1]]  # the same bytes, one axis


def _unnormalised_startprob(doc: dict) -> None:
    _tensor(doc, "fitted/startprob_")["data"] = base64.b64encode(
        np.full(3, 0.5).tobytes()).decode("ascii")


EDITS: dict[str, tuple[Callable[[dict], None], str]] = {
    "class path": (_set_class("os.system"),
                   (r"names model class 'os\.system'.*GaussianHMM, GMMHMM, CategoricalHMM, "
                    r"MultinomialHMM, PoissonHMM")),
    "module import": (_set_class("this.s"), "never imported"),
    "other hmmlearn class": (_set_class("VariationalGaussianHMM"), "loads only"),
    "dunder class": (_set_class("__class__"), "loads only"),
    "unknown parameter": (lambda doc: doc["hmmlearn"]["params"].update(evil={"value": 1}),
                          r"parameters \['evil'\]"),
    "parameter as pickle": (lambda doc: doc["hmmlearn"]["params"].update(
        n_iter={"pickle": "gASVBQAAAAAAAABLBS4="}), "not a parameter entry"),
    "parameter as object": (lambda doc: doc["hmmlearn"]["params"].update(
        n_iter={"value": {"a": 1}}), "not a JSON scalar"),
    "foreign attribute": (lambda doc: doc["hmmlearn"]["attributes"].update(
        __class__={"value": 1}), "only n_features"),
    "foreign fitted array": (lambda doc: doc["hmmlearn"]["fitted"].append("__dict__"),
                             "fitted arrays"),
    "missing array": (lambda doc: doc["tensors"].remove(_tensor(doc, "fitted/means_")),
                      "fitted/means_"),
    "covariance shape": (_flatten_covars, r"'diag' _covars_ must have shape \(3, 2\)"),
    "rows not summing to one": (_unnormalised_startprob, "startprob_ must sum to 1"),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_hand_edited_json_is_refused(saved, zoo, tmp_path, edit):
    change, message = EDITS[edit]
    already_imported = "this" in sys.modules
    rewrite(saved["zoo"], "hmm/gaussian-diag/json", zoo, change, tmp_path / "edit")
    with pytest.raises(alphazoo.BundleIntegrityError, match=message):
        zoo.load("edited")
    assert ("this" in sys.modules) == already_imported  # the bundle imported nothing


def test_manifest_and_document_must_name_the_same_class(saved, zoo, tmp_path):
    rewrite(saved["zoo"], "hmm/gaussian-diag/json", zoo, lambda doc: None, tmp_path / "a",
            lambda manifest: manifest.update(model_class="hmmlearn.hmm.GMMHMM"))
    with pytest.raises(alphazoo.BundleIntegrityError, match="manifest names class"):
        zoo.load("edited")
    rewrite(saved["zoo"], "hmm/gaussian-diag/json", zoo, lambda doc: None, tmp_path / "b")
    assert type(zoo.load("edited")).__name__ == "GaussianHMM"  # the unedited copy loads


def test_a_payload_that_is_not_json_is_refused(saved, zoo, tmp_path):
    source = saved["zoo"]
    workdir = tmp_path / "bundle"
    workdir.mkdir()
    opened = read_bundle(source.store, "hmm/poisson/json", workdir)
    opened.files["model.json"].write_bytes(b"\x80not json")
    manifest = {k: v for k, v in opened.manifest.items()
                if k not in ("protocol", "files", "signature")}
    write_bundle(zoo.store, "garbled", {**manifest, "key": "garbled"}, workdir, ["model.json"])
    with pytest.raises(alphazoo.BundleIntegrityError, match="not a JSON document"):
        zoo.load("garbled")


def test_an_edit_without_new_checksums_is_caught_by_the_bundle(saved, zoo):
    raw = saved["zoo"].store.read_bytes("hmm/gaussian-diag/json")
    tampered = raw.replace(b'"class":"GaussianHMM"', b'"class":"PoissonHMM "')
    assert tampered != raw and len(tampered) == len(raw)
    zoo.store.save_bytes("tampered", tampered)
    with pytest.raises(alphazoo.BundleIntegrityError):
        zoo.load("tampered")


# -- import discipline ---------------------------------------------------------------------------
def test_discovery_and_refusals_do_not_import_hmmlearn(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys, alphazoo
        zoo = alphazoo.Zoo(alphazoo.ObjectStore({str(tmp_path / 'store')!r}))
        assert "gaussian_hmm" in {{m.name for m in zoo.models()}}
        assert ("hmmlearn", "json") in {{(f.adapter, f.name) for f in zoo.formats()}}
        try:
            zoo.save({{"a": 1}}, "x")  # every adapter's owns() is asked
        except alphazoo.UnsupportedModelError:
            pass
        print(sorted(m for m in sys.modules if m.partition(".")[0] in ("hmmlearn", "sklearn")))
        """
    )
    assert run_python(code, cwd=tmp_path).stdout.strip() == "[]"
