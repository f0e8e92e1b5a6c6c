"""promote_to=: scheduled training, walk-forward and fan-out register their versions and move
a registry alias when the gates pass (qlib's online rolling loop on alphazoo's store), and a
live model following that alias picks each promotion up."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor

from alphazoo import ObjectStore, PromotionRefusedError, Zoo
from alphazoo.training import (
    DateRules,
    ServedModel,
    TimeRules,
    Trainer,
    TrainJob,
    map_train,
    walk_forward,
)

X = np.zeros((3, 1))
WAIT = 30.0


def constant(value: float) -> DummyRegressor:
    return DummyRegressor(strategy="constant", constant=float(value)).fit(X[:2], [0, 0])


def no_worse(candidate: Any, current: Any) -> Any:
    """A user gate: the candidate's constant must not be below the incumbent's."""
    if current is None:
        return True
    new, old = (c.load().predict(X)[0] for c in (candidate, current))
    return True if new >= old else f"score {new} is below the current {old}"


def served_version_becomes(served: ServedModel, version: int | None) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        snap = served.snapshot()
        if snap is not None and snap.extra.get("registry_version") == version:
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def zoo(tmp_path: Any) -> Zoo:
    return Zoo(ObjectStore(tmp_path / "store"))


def test_scheduled_trainings_promote_when_the_gate_passes(zoo: Zoo) -> None:
    zoo.registry.set_gates("spy/gbdt", "production", ["integrity", no_worse])
    scores = iter([1.0, 3.0, 2.0, 4.0])
    trainer = Trainer(start=datetime(2024, 1, 1), zoo=zoo)
    trainer.train(DateRules.every_day(), TimeRules.at(9, 0), lambda: constant(next(scores)),
                  name="daily", save_as="spy/gbdt", promote_to="production")
    records = trainer.advance(datetime(2024, 1, 4, 12))
    assert [r.status for r in records] == ["served", "served", "unpromoted", "served"]
    refused = records[2]
    assert isinstance(refused.promotion_error, PromotionRefusedError)
    assert refused.promotion_error.gate == "no_worse" and refused.ok
    assert refused.key == "spy/gbdt/v000003"  # saved: registered, only not promoted
    # the refused model never went into service: v2's model served until v4's
    assert trainer.model.predict(X)[0] == 4.0 and trainer.model.version == 3
    snap = trainer.model.snapshot()
    assert snap is not None and snap.extra == {"alias": "production", "registry_version": 4}
    registry = zoo.registry
    assert registry.target("spy/gbdt", "production") == 4
    assert [row["version"] for row in registry.versions("spy/gbdt", facts=False)] == [1, 2, 3, 4]
    history = registry.history("spy/gbdt", "production")
    assert [(e["from"], e["to"]) for e in history] == [(None, 1), (1, 2), (2, 4)]
    assert "daily" in history[0]["note"]
    assert records[3].promotion == history[-1]
    assert trainer.errors == []  # a refusal is an outcome, not a failed training


def test_promote_to_needs_save_as(zoo: Zoo) -> None:
    trainer = Trainer(zoo=zoo)
    with pytest.raises(ValueError, match="save_as"):
        trainer.train(lambda: constant(1), promote_to="production")
    with pytest.raises(ValueError, match="save_as"):
        walk_forward(pd.DataFrame({"x": [0.0]}, index=pd.DatetimeIndex(["2024-01-01"])),
                     None, lambda X, y: constant(1), promote_to="production")


def test_walk_forward_promotes_its_last_fold(zoo: Zoo) -> None:
    index = pd.date_range("2024-01-01", periods=120, freq="D")
    frame = pd.DataFrame({"x": np.arange(120.0)}, index=index)
    labels = pd.Series(np.arange(120.0), index=index)

    def fit(X: Any, y: Any) -> Any:
        return constant(len(X))  # a later fold trains on more rows: a higher score

    zoo.registry.set_gates("wf/m", "production", [no_worse])
    result = walk_forward(frame, labels, fit, every="MS", zoo=zoo, save_as="wf/m",
                          promote_to="production")
    last = result.folds[-1].version
    assert result.promotion is not None and result.promotion["to"] == last
    assert result.promotion_error is None
    assert zoo.registry.target("wf/m", "production") == last

    def shrink(X: Any, y: Any) -> Any:
        return constant(0)

    again = walk_forward(frame, labels, shrink, every="MS", zoo=zoo, save_as="wf/m",
                         promote_to="production")
    assert again.promotion is None
    assert isinstance(again.promotion_error, PromotionRefusedError)
    assert zoo.registry.target("wf/m", "production") == last  # the alias stayed
    assert again.folds[-1].version == 2 * last  # every fold still saved


def make(value: float) -> DummyRegressor:
    return constant(value)


def test_fan_out_promotes_each_series_newest_version(zoo: Zoo) -> None:
    jobs = [TrainJob(make, (value,), save_as=name, promote_to="staging")
            for name, value in (("a/m", 1), ("a/m", 2), ("b/m", 5))]
    jobs.append(TrainJob(make, (9,), save_as="c/m"))  # no promote_to: no alias
    results = map_train(jobs, store=zoo.store, registry=zoo.registry)
    assert all(r.ok for r in results)
    registry = zoo.registry
    assert registry.target("a/m", "staging") == 2
    assert registry.target("b/m", "staging") == 1
    assert registry.target("c/m", "staging") is None
    assert results[1].promotion is not None and results[1].promotion["to"] == 2
    assert results[0].promotion is None and results[2].promotion is not None


def test_a_live_model_follows_what_a_training_loop_promotes(zoo: Zoo) -> None:
    """qlib's online loop: one process trains and promotes, another serves what is promoted."""
    zoo.registry.set_gates("loop/m", "production", [no_worse])
    served = ServedModel()
    with served.follow("loop/m@production", zoo=Zoo(zoo.store), poll=0.02) as follower:
        trainer = Trainer(start=datetime(2024, 1, 1), zoo=zoo)
        for value, expected in ((1.0, 1.0), (3.0, 3.0), (2.0, 3.0), (5.0, 5.0)):
            trainer.train(lambda value=value: constant(value), save_as="loop/m",
                          promote_to="production")
            target = zoo.registry.target("loop/m", "production")
            assert served_version_becomes(served, target)
            assert served.predict(X)[0] == expected
        assert [e.version for e in follower.events] == [1, 2, 4]  # v3 was refused
