"""Renamed modules and classes keep their old names for one release, with a DeprecationWarning
that names the new one; the errors users catch are alphazoo errors."""

from __future__ import annotations

import importlib
import sys

import pytest

import alphazoo
import alphazoo.training
from alphazoo import AlphazooError, ObjectStore


def _fresh_import(name: str):
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def test_alphazoo_demo_warns_and_is_example_features():
    from alphazoo import example_features

    with pytest.warns(DeprecationWarning, match="alphazoo.example_features"):
        old = _fresh_import("alphazoo.demo")
    assert old.make_features is example_features.make_features
    assert old.FEATURES is example_features.FEATURES


def test_training_versions_warns_and_the_versions_function_keeps_working(tmp_path):
    from alphazoo.training import model_versions

    store = ObjectStore(tmp_path)
    store.save_bytes("spy/rf/v000002", b"x")
    saved = alphazoo.training.versions
    try:
        with pytest.warns(DeprecationWarning, match="alphazoo.training.model_versions"):
            old = _fresh_import("alphazoo.training.versions")
        assert old.save_version is model_versions.save_version
        assert old.LATEST == model_versions.LATEST
        # Importing the old module bound alphazoo.training.versions to it: the function
        # call alphazoo.training.versions(store, name) still answers.
        assert alphazoo.training.versions(store, "spy/rf") == [2]
    finally:
        alphazoo.training.versions = saved
        sys.modules.pop("alphazoo.training.versions", None)
    assert alphazoo.training.versions is model_versions.versions


def test_the_two_backtest_results_have_distinct_names_and_the_old_one_warns():
    pytest.importorskip("pandas")
    from alphazoo.contrib import algorithm, evaluation

    with pytest.warns(DeprecationWarning, match="AlgorithmBacktest"):
        assert algorithm.BacktestResult is algorithm.AlgorithmBacktest
    with pytest.warns(DeprecationWarning, match="WeightsBacktest"):
        assert evaluation.BacktestResult is evaluation.WeightsBacktest
    assert algorithm.AlgorithmBacktest is not evaluation.WeightsBacktest
    assert hasattr(algorithm.AlgorithmBacktest, "statistics")
    assert hasattr(evaluation.WeightsBacktest, "metrics")
    with pytest.raises(AttributeError, match="no_such_name"):
        algorithm.no_such_name  # noqa: B018


def test_job_and_optimization_and_lock_file_errors_are_alphazoo_errors_with_their_old_bases():
    pytest.importorskip("scipy")
    from alphazoo.compat.environment import LockFileError
    from alphazoo.contrib.optimizer import OptimizationError
    from alphazoo.training import JobError

    for error, old_base in ((JobError, RuntimeError), (OptimizationError, RuntimeError),
                            (LockFileError, ValueError)):
        assert issubclass(error, AlphazooError) and issubclass(error, old_base), error
        with pytest.raises(old_base):  # an existing `except` clause still catches it
            raise error("boom")
