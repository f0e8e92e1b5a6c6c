"""One-pass skops loading (alphazoo.adapters._skops_load) and the tree depth check it ends
with: real skops files, real forests; skops' own scan is replaced by a tripwire where a test
asserts that the common path never needs it."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

pytest.importorskip("sklearn")
skops_io = pytest.importorskip("skops.io")

import alphazoo  # noqa: E402
from alphazoo.adapters._sklearn_trees import validate_trees  # noqa: E402
from alphazoo.adapters._skops_load import load_skops  # noqa: E402
from alphazoo.adapters.sklearn import SKLEARN_STATE_TYPES  # noqa: E402


@pytest.fixture
def rows():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    return X, (X[:, 0] + rng.normal(scale=0.5, size=300) > 0).astype(int)


@pytest.fixture
def no_scan(monkeypatch):
    """Fail the test if skops' separate untrusted-type scan runs."""
    def tripwire(**_: object) -> list[str]:
        raise AssertionError("get_untrusted_types ran: the load took two passes")

    monkeypatch.setattr(skops_io, "get_untrusted_types", tripwire)


def _categorical_booster(X, y):
    # Categorical histogram boosting stores a functools.partial, which skops does not trust.
    from sklearn.ensemble import HistGradientBoostingClassifier

    inputs = np.column_stack([X, (np.abs(X[:, 0]) * 3).astype(int) % 4])
    model = HistGradientBoostingClassifier(max_iter=5, categorical_features=[4]).fit(inputs, y)
    return model, inputs


def test_a_forest_loads_in_one_pass_and_predicts_the_same(tmp_path, rows, no_scan):
    from sklearn.ensemble import RandomForestClassifier

    X, y = rows
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    path = tmp_path / "model.skops"
    skops_io.dump(model, path)
    loaded = load_skops(path, None, trusted_types=SKLEARN_STATE_TYPES, may_run_code=False)
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_a_type_skops_does_not_trust_is_refused_unless_code_may_run(tmp_path, rows):
    model, inputs = _categorical_booster(*rows)
    path = tmp_path / "model.skops"
    skops_io.dump(model, path)
    with pytest.raises(alphazoo.UntrustedModelError, match=r"functools\.partial.*trusted=True"):
        load_skops(path, None, trusted_types=SKLEARN_STATE_TYPES, may_run_code=False)
    # Trusted, without the save's record of the types: skops is asked which, then loads.
    loaded = load_skops(path, None, trusted_types=SKLEARN_STATE_TYPES, may_run_code=True)
    assert np.array_equal(loaded.predict(inputs), model.predict(inputs))


def test_recorded_types_let_a_trusted_load_take_one_pass(tmp_path, rows, monkeypatch):
    model, inputs = _categorical_booster(*rows)
    path = tmp_path / "model.skops"
    skops_io.dump(model, path)
    recorded = skops_io.get_untrusted_types(file=path)
    monkeypatch.setattr(skops_io, "get_untrusted_types", None)  # any call would fail
    loaded = load_skops(path, None, trusted_types=SKLEARN_STATE_TYPES, may_run_code=True,
                        recorded_types=recorded)
    assert np.array_equal(loaded.predict(inputs), model.predict(inputs))


def test_recorded_types_are_ignored_when_code_may_not_run(tmp_path, rows):
    model, _ = _categorical_booster(*rows)
    path = tmp_path / "model.skops"
    skops_io.dump(model, path)
    with pytest.raises(alphazoo.UntrustedModelError, match=r"functools\.partial"):
        load_skops(path, None, trusted_types=SKLEARN_STATE_TYPES, may_run_code=False,
                   recorded_types=["functools.partial"])


def test_a_schema_skops_cannot_read_is_a_bundle_format_error(tmp_path):
    path = tmp_path / "model.skops"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("schema.json", '{"protocol": 2, "__class__": "X"}')
    with pytest.raises(alphazoo.BundleFormatError, match="model.skops.*skops could not rebuild"):
        load_skops(path, None, trusted_types=SKLEARN_STATE_TYPES, may_run_code=True)


def test_a_zip_past_the_limits_is_refused_before_skops_reads_it(tmp_path, rows, no_scan):
    from sklearn.ensemble import RandomForestClassifier

    X, y = rows
    path = tmp_path / "model.skops"
    skops_io.dump(RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y), path)
    with pytest.raises(alphazoo.BundleLimitError):
        load_skops(path, alphazoo.LoadLimits(max_bytes=1024), trusted_types=(),
                   may_run_code=True)


# -- depth check: level by level, pointer jumping past 64 levels -------------------------------
def _chain_tree():
    """A real regression tree about 99 levels deep: each split isolates the largest target."""
    from sklearn.tree import DecisionTreeRegressor

    X = np.arange(100, dtype=float).reshape(-1, 1)
    return DecisionTreeRegressor(random_state=0).fit(X, 4.0 ** np.arange(100))


def _set_max_depth(model, value: int) -> None:
    state = model.tree_.__getstate__()
    state["max_depth"] = value
    model.tree_.__setstate__(state)


def test_a_tree_deeper_than_the_level_passes_is_validated_by_pointer_jumping():
    model = _chain_tree()
    real = model.tree_.max_depth
    assert real > 64  # past _LEVEL_PASSES: the fallback runs
    assert validate_trees(model, "chain") == 1
    _set_max_depth(model, real - 1)
    with pytest.raises(alphazoo.BundleFormatError,
                       match=f"max_depth {real - 1} but the nodes are {real} deep"):
        validate_trees(model, "chain")


def test_each_tree_of_a_forest_is_held_to_its_own_max_depth(rows):
    from sklearn.ensemble import RandomForestClassifier

    X, y = rows
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    assert validate_trees(forest, "forest") == 5
    last = forest.estimators_[-1]
    real = last.tree_.max_depth
    _set_max_depth(last, real - 1)
    with pytest.raises(alphazoo.BundleFormatError,
                       match=rf"estimators_\[4\].*max_depth {real - 1} but the nodes are {real}"):
        validate_trees(forest, "forest")
