"""The Trainer in backtest mode: the issue's snippet, LEAN's scheduling cases, quotas on the
simulated clock, stoppable child-process trainings and versioned persistence."""

from __future__ import annotations

import functools
import logging
import multiprocessing
import pickle
import time
from datetime import datetime, timedelta

import numpy as np
import pytest
from _child import HANG_TIMEOUT

from alphazoo import AlphazooError, Zoo
from alphazoo.datasets import load_prices
from alphazoo.example_features import make_features
from alphazoo.training import (
    DateRules,
    DayOfWeek,
    LeakyBucket,
    ModelNotReadyError,
    TimeRules,
    Trained,
    Trainer,
    TrainingProcessError,
    TrainingQuotaExceeded,
)
from alphazoo.training.model_versions import LATEST, latest_version, versions


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    X, y, _ = make_features(load_prices("AAPL"))
    return X, y


# -- the issue's snippet, as written ------------------------------------------------------------
@pytest.mark.slow
def test_issue_snippet_as_written(data, tmp_path, monkeypatch):
    monkeypatch.setenv("ALPHAZOO_STORE", str(tmp_path / "storage"))
    X, y = data
    X_new = X[-10:]

    from datetime import datetime

    from alphazoo import Zoo
    from alphazoo.training import DateRules, DayOfWeek, LeakyBucket, TimeRules, Trainer  # noqa: F401

    zoo = Zoo()
    trainer = Trainer(mode="backtest", start=datetime(2013, 10, 7))
    runs = []

    def fit():
        runs.append(trainer.now)
        return zoo.train(zoo.build("random_forest"), X, y)   # a returned model goes into service
    trainer.train(fit)                                                          # now
    trainer.train(DateRules.every(DayOfWeek.SUNDAY), TimeRules.at(8, 0), fit)  # every Sunday 08:00
    trainer.advance(datetime(2013, 10, 14))          # runs everything due up to that time, in order
    assert runs == [datetime(2013, 10, 7), datetime(2013, 10, 13, 8, 0)]
    assert trainer.model.ready
    predicted = trainer.model.predict(X_new)                     # the model in service

    assert trainer.model.version == 2
    assert trainer.now == datetime(2013, 10, 14)
    served = trainer.model.model
    assert served.__class__.__name__ == "RandomForestClassifier"
    np.testing.assert_array_equal(predicted, served.predict(X_new))
    assert [r.status for r in trainer.history] == ["served", "served"]
    assert all(r.charged == 1 for r in trainer.history)  # fast trainings cost one unit


# -- scheduling (LEAN's ScheduledEvent cases, through the trainer) ------------------------------
def _recorder(trainer, log, label):
    def fn():
        log.append((label, trainer.now))
    fn.__qualname__ = label
    return fn


def test_events_fire_in_time_order_then_registration_order():
    trainer = Trainer(start=datetime(2024, 1, 1), bucket=False)
    log: list[tuple[str, datetime]] = []
    trainer.train(DateRules.every_day(), TimeRules.at(9, 0), _recorder(trainer, log, "b9"))
    trainer.train(DateRules.every_day(), TimeRules.at(8, 0), _recorder(trainer, log, "a8"))
    trainer.train(DateRules.every_day(), TimeRules.at(9, 0), _recorder(trainer, log, "c9"))
    trainer.advance(datetime(2024, 1, 2, 23, 0))
    assert log == [
        ("a8", datetime(2024, 1, 1, 8)), ("b9", datetime(2024, 1, 1, 9)),
        ("c9", datetime(2024, 1, 1, 9)), ("a8", datetime(2024, 1, 2, 8)),
        ("b9", datetime(2024, 1, 2, 9)), ("c9", datetime(2024, 1, 2, 9)),
    ]


def test_advance_in_steps_fires_each_event_once():
    def run(steps):
        trainer = Trainer(start=datetime(2024, 3, 1), bucket=False)
        log: list[tuple[str, datetime]] = []
        trainer.train(DateRules.every_day(), TimeRules.every(timedelta(hours=6)),
                      _recorder(trainer, log, "six"))
        for step in steps:
            trainer.advance(step)
        return log

    end = datetime(2024, 3, 3)
    whole = run([end])
    pieces = run([datetime(2024, 3, 1, 6), datetime(2024, 3, 1, 6), datetime(2024, 3, 2, 11),
                  end])
    assert whole == pieces
    # midnight of the start fires too (LEAN keeps an event at the current time), then 6-hourly
    assert [t for _, t in whole] == [datetime(2024, 3, 1) + timedelta(hours=6 * k)
                                     for k in range(9)]


def test_every_day_at_noon_for_a_week_and_today_now():
    trainer = Trainer(start=datetime(2024, 5, 6, 10, 30), bucket=False)
    log: list[tuple[str, datetime]] = []
    trainer.train(DateRules.every_day(), TimeRules.noon, _recorder(trainer, log, "noon"))
    trainer.train(DateRules.today(), TimeRules.now, _recorder(trainer, log, "once"))
    trainer.advance(datetime(2024, 5, 13))
    assert ("once", datetime(2024, 5, 6, 10, 30)) == log[0]
    assert [t for name, t in log if name == "noon"] == [datetime(2024, 5, 6 + k, 12)
                                                        for k in range(7)]
    assert sum(name == "once" for name, _ in log) == 1


def test_schedules_added_or_cancelled_while_advancing():
    trainer = Trainer(start=datetime(2024, 1, 1), bucket=False)
    log: list[tuple[str, datetime]] = []
    late = _recorder(trainer, log, "late")
    handle = {}

    def first():
        log.append(("first", trainer.now))
        if "late" not in handle:
            handle["late"] = trainer.train(DateRules.every_day(), TimeRules.at(18, 0), late)
        else:
            handle["late"].cancel()

    trainer.train(DateRules.every_day(), TimeRules.at(12, 0), first)
    trainer.advance(datetime(2024, 1, 3))
    assert log == [("first", datetime(2024, 1, 1, 12)), ("late", datetime(2024, 1, 1, 18)),
                   ("first", datetime(2024, 1, 2, 12))]
    assert len(trainer.schedules) == 1


def test_market_schedule_skips_holidays():
    trainer = Trainer(start=datetime(2024, 7, 1), bucket=False)
    log: list[tuple[str, datetime]] = []
    trainer.train(DateRules.every_day(market="NYSE"),
                  TimeRules.before_market_close("NYSE", 10), _recorder(trainer, log, "close"))
    trainer.advance(datetime(2024, 7, 6))
    # July 3 closes early (13:00) and July 4 is a holiday, per the exchange calendar.
    assert [t for _, t in log] == [datetime(2024, 7, 1, 15, 50), datetime(2024, 7, 2, 15, 50),
                                   datetime(2024, 7, 3, 12, 50), datetime(2024, 7, 5, 15, 50)]


def test_bad_calls():
    trainer = Trainer(start=datetime(2024, 1, 1))
    with pytest.raises(TypeError, match="train\\(fn\\)"):
        trainer.train()
    with pytest.raises(TypeError, match="date_rule"):
        trainer.train("daily", TimeRules.noon, lambda: None)
    with pytest.raises(ValueError, match="backwards"):
        trainer.advance(datetime(2023, 12, 31))
    with pytest.raises(ValueError, match="mode"):
        Trainer(mode="paper")
    with pytest.raises(ModelNotReadyError, match="no model is in service"):
        trainer.model.predict([[0.0]])
    with pytest.raises(RuntimeError, match="wall clock"):
        Trainer(mode="live").advance(datetime(2030, 1, 1))


def test_aware_datetimes_are_converted_to_the_trainer_zone():
    from zoneinfo import ZoneInfo

    trainer = Trainer(start=datetime(2024, 1, 1, 14, tzinfo=ZoneInfo("UTC")))
    assert trainer.now == datetime(2024, 1, 1, 9)  # New York, winter


# -- outcomes ------------------------------------------------------------------------------------
def test_none_keeps_the_model_and_trained_carries_a_window():
    trainer = Trainer(start=datetime(2024, 1, 1))
    first = trainer.train(lambda: Trained(_Constant(1), window={"start": "2023-01-01",
                                                                 "end": "2023-12-31"}))
    kept = trainer.train(lambda: None)
    assert (first.status, first.version) == ("served", 1)
    assert (kept.status, kept.version) == ("kept", None)
    assert trainer.model.version == 1
    assert trainer.model.snapshot().window == {"start": "2023-01-01", "end": "2023-12-31"}


def test_failure_raises_in_backtests_by_default_and_the_model_stays(caplog):
    trainer = Trainer(start=datetime(2024, 1, 1))
    trainer.train(lambda: _Constant(1))

    def broken():
        raise ArithmeticError("diverged")

    with pytest.raises(ArithmeticError, match="diverged"):
        trainer.train(broken)
    assert trainer.model.predict([[0]]).tolist() == [1]

    seen = []
    quiet = Trainer(start=datetime(2024, 1, 1), raise_errors=False, on_error=seen.append)
    quiet.train(lambda: _Constant(7))
    quiet.train(DateRules.every_day(), TimeRules.noon, broken)
    with caplog.at_level(logging.ERROR, logger="alphazoo.training"):
        records = quiet.advance(datetime(2024, 1, 3))
    assert [r.status for r in records] == ["failed", "failed"]
    assert seen == quiet.errors == records
    assert "diverged" in caplog.text and "version 1 stays in service" in caplog.text
    assert quiet.model.version == 1 and quiet.model.predict([[0]]).tolist() == [7]


# -- quota ---------------------------------------------------------------------------------------
def test_default_bucket_is_leans():
    trainer = Trainer(start=datetime(2024, 1, 1))
    bucket = trainer.bucket
    assert (bucket.capacity, bucket.refill_amount, bucket.interval) == (120, 18,
                                                                         timedelta(days=1))
    assert trainer.quota_unit == timedelta(minutes=1)


def test_bucket_refills_on_the_simulated_clock():
    # capacity 2, one unit back per simulated day, two trainings a day: the second training
    # of day two finds the bucket empty.
    trainer = Trainer(start=datetime(2024, 1, 1), raise_errors=False,
                      bucket={"capacity": 2, "refill_amount": 1, "interval": timedelta(days=1)})
    trainer.train(lambda: _Constant(0), name="initial")
    assert trainer.bucket.available == 1
    trainer.train(DateRules.every_day(), TimeRules.at(8, 0), lambda: _Constant(8), name="at8")
    trainer.train(DateRules.every_day(), TimeRules.at(9, 0), lambda: _Constant(9), name="at9")
    trainer.advance(datetime(2024, 1, 1, 12))  # 08:00 takes the last unit, 09:00 is refused
    pass_one = [r.status for r in trainer.history]
    assert pass_one == ["served", "served", "quota_exceeded"]
    assert trainer.model.predict([[0]]).tolist() == [8]  # the 09:00 refusal kept version 2
    error = trainer.errors[-1].error
    assert isinstance(error, TrainingQuotaExceeded) and isinstance(error, AlphazooError)
    assert "'at9' was refused" in str(error) and "0 minute(s) available" in str(error)


def test_quota_error_raises_out_of_advance_and_advance_continues():
    trainer = Trainer(start=datetime(2024, 1, 1), bucket={
        "scheduled-event-leaky-bucket-capacity": 1,
        "scheduled-event-leaky-bucket-refill-amount": 1,
        "scheduled-event-leaky-bucket-time-interval-minutes": 1440})
    trainer.train(DateRules.every_day(), TimeRules.at(8, 0), lambda: _Constant(8))
    trainer.train(DateRules.every_day(), TimeRules.at(9, 0), lambda: _Constant(9))
    with pytest.raises(TrainingQuotaExceeded):
        trainer.advance(datetime(2024, 1, 5))
    assert trainer.now == datetime(2024, 1, 1, 9)
    with pytest.raises(TrainingQuotaExceeded):
        trainer.advance(datetime(2024, 1, 5))  # day 2: one refill, 08:00 runs, 09:00 refused
    assert trainer.now == datetime(2024, 1, 2, 9)
    assert [r.at.hour for r in trainer.history if r.status == "served"] == [8, 8]


def test_a_long_backtest_is_not_starved():
    # LEAN refills on the wall clock, so a backtest of years that runs in minutes sees no
    # refills. Here the simulated clock refills it: a year of daily trainings, capacity 2.
    # The bucket is made as a user (and the README) makes one, without a clock: the
    # backtest trainer puts it on the simulated clock.
    bucket = LeakyBucket(2, 1, timedelta(days=1))
    trainer = Trainer(start=datetime(2023, 1, 1), bucket=bucket)
    assert trainer.bucket is bucket and bucket.next_refill == datetime(2023, 1, 2)
    trainer.train(DateRules.every_day(), TimeRules.at(7, 0), lambda: _Constant(1))
    records = trainer.advance(datetime(2024, 1, 1))
    assert len(records) == 365 and all(r.status == "served" for r in records)


def test_a_bucket_with_its_own_clock_keeps_it():
    clock = {"now": datetime(2000, 1, 1)}
    bucket = LeakyBucket(2, 1, timedelta(days=1), clock=lambda: clock["now"])
    trainer = Trainer(start=datetime(2023, 1, 1), bucket=bucket, raise_errors=False)
    trainer.train(DateRules.every_day(), TimeRules.at(7, 0), lambda: _Constant(1))
    statuses = [r.status for r in trainer.advance(datetime(2023, 1, 5))]
    assert statuses == ["served", "served", "quota_exceeded", "quota_exceeded"]
    clock["now"] += timedelta(days=1)  # its own clock, not the trainer's, refills it
    assert bucket.available == 1


def test_in_process_overrun_is_measured_and_discarded():
    trainer = Trainer(start=datetime(2024, 1, 1), quota_unit=timedelta(milliseconds=20))
    trainer.bucket = LeakyBucket(3, 1, timedelta(days=1), clock=lambda: trainer.now)
    trainer.train(lambda: _Constant(1))

    def slow():
        time.sleep(0.3)  # 15 units, the bucket holds 2 more
        return _Constant(2)

    with pytest.raises(TrainingQuotaExceeded, match="result was discarded") as caught:
        trainer.train(slow, name="slow")
    assert not caught.value.stopped and caught.value.seconds >= 0.3
    assert trainer.model.version == 1 and trainer.model.predict([[0]]).tolist() == [1]
    assert trainer.bucket.available == 0  # drained, as a stopped training would have


def _sleep_then_constant(seconds: float, value: int) -> _Constant:
    time.sleep(seconds)
    return _Constant(value)


def _raise_in_child() -> None:
    raise KeyError("no such column 'close'")


@pytest.mark.slow
def test_child_process_training_is_stopped_at_the_limit():
    trainer = Trainer(start=datetime(2024, 1, 1), quota_unit=timedelta(seconds=0.5),
                      isolate=True)
    trainer.bucket = LeakyBucket(2, 1, timedelta(days=1), clock=lambda: trainer.now)
    trainer.model.publish(_Constant(5))
    started = time.monotonic()
    with pytest.raises(TrainingQuotaExceeded, match="was stopped after running") as caught:
        trainer.train(functools.partial(_sleep_then_constant, 60.0, 6), name="endless")
    elapsed = time.monotonic() - started
    assert caught.value.stopped and caught.value.charged == 2
    assert caught.value.seconds >= 1.0  # it had its two units of half a second
    assert elapsed < 30  # and was stopped long before its 60 s sleep ended
    assert multiprocessing.active_children() == []
    assert trainer.model.predict([[0]]).tolist() == [5]
    restored = pickle.loads(pickle.dumps(caught.value))
    assert str(restored) == str(caught.value)


@pytest.mark.slow
def test_child_process_training_returns_a_real_model(data):
    X, y = data
    trainer = Trainer(start=datetime(2024, 1, 1), isolate=True)
    record = trainer.train(functools.partial(_fit_forest, X, y))
    assert record.status == "served" and record.charged == 1
    here = _fit_forest(X, y)
    np.testing.assert_array_equal(trainer.model.predict(X[-50:]), here.predict(X[-50:]))


@pytest.mark.slow
def test_an_unpicklable_isolated_training_is_refused_before_it_costs_anything():
    import os

    trainer = Trainer(start=datetime(2024, 1, 1), isolate=True, raise_errors=False)
    fds = len(os.listdir("/proc/self/fd"))
    record = trainer.train(lambda: _Constant(1), name="closure")
    assert record.status == "failed" and isinstance(record.error, TrainingProcessError)
    assert "'closure'" in str(record.error) and "must be picklable" in str(record.error)
    assert record.charged == 0 and trainer.bucket.available == 120  # nothing was drawn
    assert multiprocessing.active_children() == []
    assert len(os.listdir("/proc/self/fd")) == fds  # no pipe left open
    # fork copies the function instead of pickling it: a closure is fine there
    forked = Trainer(start=datetime(2024, 1, 1), isolate="fork").train(lambda: _Constant(2))
    assert forked.status == "served"


@pytest.mark.slow
def test_child_process_error_carries_its_traceback():
    trainer = Trainer(start=datetime(2024, 1, 1), isolate="spawn", raise_errors=False)
    record = trainer.train(_raise_in_child)
    assert record.status == "failed"
    assert isinstance(record.error, TrainingProcessError)
    assert "no such column 'close'" in str(record.error) and "_raise_in_child" in str(
        record.error)
    assert isinstance(record.error.__cause__, KeyError)


# -- persistence ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_save_as_writes_versions_with_their_window_and_latest(data, tmp_path):
    X, y = data
    zoo = Zoo(tmp_path / "store")
    trainer = Trainer(start=datetime(2016, 1, 4, 12), zoo=zoo)
    cut = {"n": 300}

    def fit():
        n = cut["n"]
        cut["n"] += 100
        return zoo.train(zoo.build("random_forest", n_estimators=20), X[:n], y[:n])

    trainer.train(fit, save_as="spy/rf", format="onnx")
    trainer.train(DateRules.every(DayOfWeek.MONDAY), TimeRules.at(9, 0), fit,
                  save_as="spy/rf", format="onnx")
    trainer.advance(datetime(2016, 1, 12))
    store = zoo.store
    assert versions(store, "spy/rf") == [1, 2]
    assert latest_version(store, "spy/rf") == 2
    assert store.read_json(f"spy/rf/{LATEST}")["key"] == "spy/rf/v000002"
    assert trainer.model.key == "spy/rf/v000002"
    manifest = zoo.inspect("spy/rf/v000002")
    facts = manifest["metadata"]["training"]
    assert facts == {"series": "spy/rf", "version": 2,
                     "window": {"start": None, "end": "2016-01-11T09:00:00"}}
    assert manifest["format"] == "onnx" and manifest["training"]["rows"] == 400

    loaded = trainer.load_latest("spy/rf")
    np.testing.assert_array_equal(loaded.predict(X[-50:]), trainer.model.predict(X[-50:]))
    fresh = Trainer(start=datetime(2016, 2, 1), zoo=Zoo(tmp_path / "store"))
    assert fresh.serve_latest("spy/rf") == 1 and fresh.model.key == "spy/rf/v000002"
    np.testing.assert_array_equal(fresh.model.predict(X[-50:]), loaded.predict(X[-50:]))


def test_a_new_version_never_overwrites_one_the_pointer_missed(tmp_path):
    # A walk-forward or fan-out that saved v2 but failed before moving latest.json leaves
    # the pointer at v1; the next save must take v3, not overwrite v2.
    from alphazoo.training.model_versions import next_version, save_version

    zoo = Zoo(tmp_path / "store")
    trainer = Trainer(start=datetime(2024, 1, 1), zoo=zoo)
    trainer.train(functools.partial(_dummy, 1.0), save_as="s", format="pickle")
    save_version(zoo, _dummy(2.0), "s", format="pickle", update_latest=False)
    assert latest_version(zoo.store, "s") == 1 and next_version(zoo.store, "s") == 3
    record = trainer.train(functools.partial(_dummy, 3.0), save_as="s", format="pickle")
    assert record.key == "s/v000003" and versions(zoo.store, "s") == [1, 2, 3]
    assert zoo.load("s/v000002", trusted=True).predict([[0.0]]).tolist() == [2.0]
    assert latest_version(zoo.store, "s") == 3


def test_the_next_version_is_found_without_listing_the_store(tmp_path, monkeypatch):
    # Saving a version must cost the same in a big store as in an empty one: with a pointer,
    # next_version reads it and probes forward instead of listing every key.
    from alphazoo.training.model_versions import next_version, save_version, write_latest

    zoo = Zoo(tmp_path / "store")
    for number in (1, 2, 3, 5):  # v4 missing: a fan-out that failed on it
        save_version(zoo, _dummy(float(number)), "s", version=number, format="pickle",
                     update_latest=False)
    write_latest(zoo.store, "s", 1)

    def no_listing() -> list[str]:
        raise AssertionError("next_version listed the whole store")

    monkeypatch.setattr(zoo.store, "keys", no_listing)
    assert next_version(zoo.store, "s") == 4  # past v2 and v3, into the free v4
    save_version(zoo, _dummy(4.0), "s", format="pickle")
    assert next_version(zoo.store, "s") == 6  # past the pointer (v4) and v5


def test_logs_name_the_served_model_by_its_store_key(tmp_path, caplog):
    # The served counter also counts unsaved trainings; a log that printed it beside the
    # series' keys would read "version 2" for what the store calls v000001.
    trainer = Trainer(start=datetime(2024, 1, 1), zoo=Zoo(tmp_path / "store"))
    with caplog.at_level(logging.INFO, logger="alphazoo.training"):
        trainer.train(functools.partial(_dummy, 1.0))
        trainer.train(functools.partial(_dummy, 2.0), save_as="s", format="pickle")
    assert trainer.model.version == 2 and trainer.model.key == "s/v000001"
    assert "version 1 in service" in caplog.text  # unsaved: only the counter names it
    assert "s/v000001 in service" in caplog.text and "version 2" not in caplog.text


@pytest.mark.slow
def test_importing_the_training_package_imports_no_ml_framework():
    import subprocess
    import sys

    code = ("import sys, alphazoo.training\n"
            "heavy = {'torch', 'tensorflow', 'keras', 'xgboost', 'sklearn', 'hmmlearn', 'onnx',"
            " 'onnxruntime', 'pandas', 'exchange_calendars'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=HANG_TIMEOUT, check=True)
    assert done.stdout.strip() == "[]"


def test_a_failed_save_still_serves_the_model(tmp_path):
    zoo = Zoo(tmp_path / "store")
    zoo.store.save("taken", "an object, so taken/v000001 cannot be written")
    trainer = Trainer(start=datetime(2024, 1, 1), zoo=zoo)
    record = trainer.train(lambda: _Constant(3), save_as="taken")
    assert record.status == "served" and record.key is None
    assert record.save_error is not None and trainer.errors == [record]
    assert trainer.model.predict([[0]]).tolist() == [3]


# -- helpers -------------------------------------------------------------------------------------
class _Constant:
    """A model that predicts one value: enough to see which training is in service."""

    def __init__(self, value: int) -> None:
        self.value = value

    def predict(self, X):
        return np.full(len(X), self.value)


def _dummy(value: float):
    from sklearn.dummy import DummyRegressor

    return DummyRegressor(strategy="constant", constant=value).fit([[0.0]], [value])


def _fit_forest(X, y):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=20, max_depth=4, random_state=0).fit(X, y)
