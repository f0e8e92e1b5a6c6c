"""The Trainer in live mode: wall-clock schedules, a training worker, atomic hot swap under
concurrent predictions, failures that leave the previous model serving.

No assertion here is about speed: waits have generous timeouts and only bound a hang.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import numpy as np
import pytest

from alphazoo.training import DateRule, DateRules, TimeRules, Trainer, TrainingQuotaExceeded

WAIT = 60.0  # seconds; only reached if something hangs


class _Layered:
    """A model built in many steps; predicting from a partly built one would be detectable.

    ``predict`` returns, per row, ``(tag, layers seen, checksum ok)``.
    """

    LAYERS = 50

    def __init__(self, tag: int) -> None:
        self.tag = tag
        self.layers: list[int] = []
        self.checksum = -1

    def build(self, pause: float) -> _Layered:
        for k in range(self.LAYERS):
            self.layers.append(self.tag * 1000 + k)
            if k % 10 == 0:
                time.sleep(pause)  # let predicting threads run while this is half built
        self.checksum = sum(self.layers)
        return self

    def predict(self, X):
        layers = list(self.layers)
        ok = len(layers) == self.LAYERS and sum(layers) == self.checksum
        return np.array([(self.tag, len(layers), ok)] * len(X))


def test_train_now_runs_in_a_worker_and_model_wait():
    with Trainer(mode="live") as trainer:
        assert not trainer.model.ready and trainer.model.wait(0.01) is False
        gate = threading.Event()
        caller = threading.get_ident()
        ran_in = []

        def fit():
            ran_in.append(threading.get_ident())
            gate.wait(WAIT)
            return _Layered(1).build(0)

        future = trainer.train(fit)
        assert not trainer.model.ready  # train() returned while the training waits
        gate.set()
        record = future.result(WAIT)
        assert trainer.model.wait(WAIT) and trainer.model.version == 1
        assert record.status == "served" and ran_in and ran_in[0] != caller


@pytest.mark.slow
def test_schedule_fires_on_the_wall_clock():
    fired = []
    with Trainer(mode="live") as trainer:
        def fit():
            fired.append(trainer.now)
            return _Layered(len(fired)).build(0)

        schedule = trainer.train(DateRules.every_day(), TimeRules.every(timedelta(seconds=1)),
                                 fit)
        assert trainer.model.wait_for_version(2, WAIT)
        schedule.cancel()
    assert len(fired) >= 2
    # every(1 s) fires on whole seconds from midnight; the worker runs it at or after that
    times = [r.at for r in trainer.history]
    assert all(t.microsecond == 0 for t in times) and times == sorted(set(times))
    assert all(r.at <= ran for r, ran in zip(trainer.history, fired))


def test_predictions_never_see_a_half_built_model():
    trainer = Trainer(mode="live", bucket=False)
    versions = 8
    try:
        trainer.train(lambda: _Layered(1).build(0.001)).result(WAIT)
        stop = threading.Event()
        started = threading.Barrier(5)
        seen: list[list[tuple[int, int, bool]]] = [[] for _ in range(4)]

        def hammer(out):
            out.append(tuple(trainer.model.predict([0])[0]))
            started.wait(WAIT)
            while not stop.is_set():
                out.extend(tuple(row) for row in trainer.model.predict([0, 0]))
                time.sleep(0)  # yield the GIL so the training thread makes progress
            out.append(tuple(trainer.model.predict([0])[0]))

        threads = [threading.Thread(target=hammer, args=(out,)) for out in seen]
        for thread in threads:
            thread.start()
        started.wait(WAIT)
        futures = [trainer.train(lambda tag=tag: _Layered(tag).build(0.001))
                   for tag in range(2, versions + 1)]
        for future in futures:
            future.result(WAIT)
        stop.set()
        for thread in threads:
            thread.join(WAIT)
    finally:
        trainer.stop()
    rows = [row for out in seen for row in out]
    assert len(rows) > 8
    assert all(count == _Layered.LAYERS and ok for _, count, ok in rows)
    tags = {tag for tag, _, _ in rows}
    assert {1, versions} <= tags <= set(range(1, versions + 1))
    for out in seen:  # each thread saw versions in order: a swap never goes back
        order = [tag for tag, _, _ in out]
        assert order == sorted(order)
    assert trainer.model.version == versions


@pytest.mark.slow
def test_a_real_forest_is_swapped_while_predicting():
    from alphazoo import Zoo
    from alphazoo.datasets import load_prices
    from alphazoo.example_features import make_features

    X, y, _ = make_features(load_prices("GOOGL"))
    zoo = Zoo("memory://live-forest")
    sizes = [200, 400, 600]
    with Trainer(mode="live", zoo=zoo) as trainer:
        models = []

        def fit(n):
            model = zoo.train(zoo.build("random_forest", n_estimators=15), X[:n], y[:n])
            models.append(model)
            return model

        trainer.train(lambda: fit(sizes[0])).result(WAIT)
        answers: list[np.ndarray] = []
        done = threading.Event()

        def predict_loop():
            while not done.is_set():
                answers.append(trainer.model.predict(X[-40:]))
                time.sleep(0.002)  # leave the trainings some CPU on a 2-core machine

        thread = threading.Thread(target=predict_loop)
        thread.start()
        for n in sizes[1:]:
            trainer.train(lambda n=n: fit(n), save_as="live/rf", format="onnx").result(WAIT)
        done.set()
        thread.join(WAIT)
    expected = [m.predict(X[-40:]) for m in models]
    assert answers and all(any(np.array_equal(a, e) for e in expected) for a in answers)
    assert trainer.model.key == "live/rf/v000002"
    np.testing.assert_array_equal(zoo.load("live/rf/v000002").predict(X[-40:]), expected[-1])


def test_a_failing_training_is_logged_reported_and_the_old_model_stays(caplog):
    reported = []
    with Trainer(mode="live", on_error=reported.append) as trainer:
        trainer.train(lambda: _Layered(1).build(0)).result(WAIT)

        def broken():
            raise FloatingPointError("loss is nan")

        with caplog.at_level(logging.ERROR, logger="alphazoo.training"):
            future = trainer.train(broken)
            with pytest.raises(FloatingPointError, match="loss is nan"):
                future.result(WAIT)
        assert trainer.model.version == 1
        assert tuple(trainer.model.predict([0])[0]) == (1, _Layered.LAYERS, True)
        assert reported == trainer.errors and reported[0].status == "failed"
        assert "loss is nan" in caplog.text and "version 1 stays in service" in caplog.text
        assert "FloatingPointError" in reported[0].traceback


def test_quota_refusal_live_keeps_serving():
    with Trainer(mode="live", bucket={"capacity": 1, "interval": timedelta(days=1)},
                 quota_unit=timedelta(hours=1)) as trainer:
        trainer.train(lambda: _Layered(1).build(0)).result(WAIT)
        refused = trainer.train(lambda: _Layered(2).build(0))
        assert isinstance(refused.exception(WAIT), TrainingQuotaExceeded)
        assert trainer.model.version == 1 and trainer.errors[0].status == "quota_exceeded"


def test_stop_ends_the_threads_and_refuses_new_work():
    trainer = Trainer(mode="live")
    trainer.train(lambda: _Layered(1).build(0)).result(WAIT)
    trainer.train(DateRules.every_day(), TimeRules.every(timedelta(hours=1)),
                  lambda: _Layered(2).build(0))
    threads = list(trainer._live.threads)
    trainer.close()
    assert threads and not any(thread.is_alive() for thread in threads)
    with pytest.raises(RuntimeError, match="stopped"):
        trainer.train(lambda: None)


@pytest.mark.slow
def test_a_schedule_whose_rule_raises_is_dropped_and_the_others_keep_firing(caplog):
    def broken_days(start, end):
        raise LookupError("no calendar for that year")

    reported = []
    with caplog.at_level(logging.ERROR, logger="alphazoo.training"), \
            Trainer(mode="live", on_error=reported.append) as trainer:
        # registered first, so the scheduler meets it before the healthy schedule
        bad = trainer.train(DateRule("broken", broken_days), TimeRules.midnight,
                            lambda: _Layered(9).build(0), name="bad")
        trainer.train(DateRules.every_day(), TimeRules.every(timedelta(seconds=1)),
                      lambda: _Layered(1).build(0), name="good")
        assert trainer.model.wait(WAIT)  # the scheduler thread outlived the broken rule
    assert bad.cancelled and bad not in trainer.schedules
    assert [r.name for r in reported] == ["bad"] and reported == trainer.errors
    assert isinstance(reported[0].error, LookupError)
    assert "schedule 'bad' was cancelled" in caplog.text and "no calendar" in caplog.text
    assert {r.name for r in trainer.history} == {"good"}


@pytest.mark.slow
def test_train_racing_stop_never_leaves_a_future_pending():
    # stop() runs exactly while train() is between its stopped-check and its enqueue: the
    # job must then be run or cancelled, never queued behind the worker's end-of-work mark.
    trainer = Trainer(mode="live", bucket=False)
    trainer.train(lambda: _Layered(1).build(0)).result(WAIT)
    real_put = trainer._live.queue.put
    stopper = threading.Thread(target=trainer.stop)

    def put_while_stopping(job, *args, **kwargs):
        if job is not None and not stopper.is_alive() and stopper.ident is None:
            stopper.start()
            stopper.join(1.0)  # returns at once unless train() holds the trainer's lock
        real_put(job, *args, **kwargs)

    trainer._live.queue.put = put_while_stopping
    future = trainer.train(lambda: _Layered(2).build(0))
    stopper.join(WAIT)
    assert not stopper.is_alive()  # stop() joined the worker: the job's fate is settled
    assert future.done()
    assert future.cancelled() or future.result().status == "served"
