"""map_train: many trainings on a thread pool, a process pool and a real Dask cluster, each
saving into one shared folder store."""

from __future__ import annotations

import multiprocessing
import os
import threading
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime

import numpy as np
import pytest

from alphazoo import ObjectStore, Zoo
from alphazoo.datasets import load_prices, symbols
from alphazoo.example_features import make_features
from alphazoo.training import JobError, Trainer, TrainJob, map_train
from alphazoo.training.model_versions import LATEST, latest_version, save_version

PARAMS = {"n_estimators": 15, "max_depth": 4}


@pytest.fixture(scope="module")
def datasets():
    return {symbol: make_features(load_prices(symbol))[:2] for symbol in symbols()}


@pytest.fixture(scope="module")
def reference(datasets):
    """The same zoo model trained here, per symbol: what every worker must reproduce."""
    zoo = Zoo("memory://fanout-reference")
    return {s: zoo.train(zoo.build("random_forest", **PARAMS), X, y)
            for s, (X, y) in datasets.items()}


def _jobs(datasets, prefix, format):
    return [TrainJob.zoo_model("random_forest", X, y, params=PARAMS, save_as=f"{prefix}/{s}",
                               format=format, metadata={"symbol": s})
            for s, (X, y) in datasets.items()]


def _check(results, store_path, datasets, reference, prefix):
    # Worker processes save pickle bundles: importing skl2onnx or skops in each fresh worker
    # would cost seconds; the thread-pool test covers ONNX.
    assert [r.name for r in results] == [f"{prefix}/{s}" for s in datasets]
    assert all(r.ok for r in results), [r.traceback for r in results if not r.ok]
    reader = Zoo(ObjectStore(store_path))  # a fresh reader of the shared folder
    for result, (symbol, (X, _)) in zip(results, datasets.items()):
        assert result.key == f"{prefix}/{symbol}/v000001" and result.version == 1
        assert reader.store.read_json(f"{prefix}/{symbol}/{LATEST}")["version"] == 1
        manifest = reader.inspect(result.key)
        assert manifest["metadata"]["symbol"] == symbol
        assert manifest["training"]["rows"] == len(X)  # trained and saved by the worker's zoo
        expected = reference[symbol].predict(X[-60:])
        loaded = reader.load(result.key, trusted=manifest["format"] == "pickle")
        np.testing.assert_array_equal(loaded.predict(X[-60:]), expected)
        np.testing.assert_array_equal(result.model.predict(X[-60:]), expected)
    return {r.worker for r in results}


@pytest.mark.slow
def test_thread_pool(datasets, reference, tmp_path):
    progress = []
    with ThreadPoolExecutor(2) as pool:
        results = map_train(_jobs(datasets, "threads", "onnx"), pool, store=ObjectStore(tmp_path),
                            progress=lambda done, total, r: progress.append((done, total)))
    workers = _check(results, tmp_path, datasets, reference, "threads")
    assert all(w.split(":")[1] == str(os.getpid()) for w in workers)
    assert progress == [(k, len(datasets)) for k in range(1, len(datasets) + 1)]


@pytest.mark.slow
def test_process_pool(datasets, reference, tmp_path):
    with ProcessPoolExecutor(2) as pool:
        results = map_train(_jobs(datasets, "procs", "pickle"), pool,
                            store=ObjectStore(tmp_path))
    workers = _check(results, tmp_path, datasets, reference, "procs")
    assert all(w.split(":")[1] != str(os.getpid()) for w in workers)


@pytest.mark.slow
def test_dask_local_cluster(datasets, reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        results = map_train(_jobs(datasets, "dask", "pickle"), client.get_executor(),
                            store=ObjectStore(tmp_path), return_models=True)
    workers = _check(results, tmp_path, datasets, reference, "dask")
    assert all(w.split(":")[1] != str(os.getpid()) for w in workers)


def _explode(message):
    raise RuntimeError(message)


def _constant(value):
    from sklearn.dummy import DummyRegressor

    return DummyRegressor(strategy="constant", constant=value).fit([[0.0]], [value])


def test_failures_are_reported_per_job_and_versions_are_consecutive(tmp_path):
    store = ObjectStore(tmp_path)
    jobs = [TrainJob(_constant, (1,), save_as="same", format="pickle"),
            TrainJob(_explode, ("bad data",), name="broken", save_as="same"),
            TrainJob(_constant, (3,), save_as="same", format="pickle")]
    results = map_train(jobs, store=store)
    assert [r.ok for r in results] == [True, False, True]
    assert "bad data" in str(results[1].error) and "_explode" in results[1].traceback
    assert [r.key for r in results] == ["same/v000001", None, "same/v000003"]
    assert latest_version(store, "same") == 3
    assert Zoo(store).load("same/v000003", trusted=True).predict([0]).tolist() == [3]
    with pytest.raises(RuntimeError, match="bad data"):
        map_train([TrainJob(_explode, ("bad data",))], raise_errors=True)


def test_trainer_map_train_uses_its_store_and_guards_memory_stores(tmp_path):
    trainer = Trainer(start=datetime(2024, 1, 1), zoo=Zoo(tmp_path))
    results = trainer.map_train([TrainJob(_constant, (k,), save_as=f"k/{k}", format="pickle")
                                 for k in range(3)])
    assert [r.key for r in results] == [f"k/{k}/v000001" for k in range(3)]
    assert all(r.worker.split(":")[2] != threading.current_thread().name for r in results)
    with ProcessPoolExecutor(1) as pool, pytest.raises(ValueError, match="cannot reach"):
        map_train([TrainJob(_constant, (1,), save_as="m")], pool,
                  store=ObjectStore("memory://fanout-guard"))
    with pytest.raises(ValueError, match="need a store"):
        map_train([TrainJob(_constant, (1,), save_as="m")])
    with pytest.raises(TypeError, match="TrainJob"):
        map_train([_constant])


@pytest.mark.slow
def test_s3_store_with_client_kwargs(moto_s3):
    # S3 storage options hold a dict (client_kwargs): the worker must still open the store.
    url = f"s3://{moto_s3.bucket}/fanout-{uuid.uuid4().hex[:8]}"
    store = ObjectStore(url, storage_options=moto_s3.storage_options)
    with ThreadPoolExecutor(2) as pool:
        results = map_train([TrainJob(_constant, (k,), save_as=f"s3/{k}", format="pickle")
                             for k in (1, 2)], pool, store=store)
    assert all(r.ok for r in results), [r.traceback for r in results]
    reader = Zoo(ObjectStore(url, storage_options=moto_s3.storage_options))
    for k, result in zip((1, 2), results):
        assert result.key == f"s3/{k}/v000001"
        assert reader.load(result.key, trusted=True).predict([[0.0]]).tolist() == [k]


class _TwoPartError(Exception):
    """Pickles, but cannot be rebuilt from its args: unpickling calls __init__(message)."""

    def __init__(self, column, reason):
        super().__init__(f"{column}: {reason}")


def _raise_two_part():
    raise _TwoPartError("close", "has gaps")


@pytest.mark.slow
def test_an_exception_that_cannot_travel_back_fails_only_its_job():
    jobs = [TrainJob(_constant, (1,)), TrainJob(_raise_two_part, name="odd"),
            TrainJob(_constant, (3,)), TrainJob(_constant, (4,))]
    # spawned workers: forked ones would inherit tblib's exception reducers once Dask has
    # been imported (the Dask test), and those make this exception round-trip
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = map_train(jobs, pool)
    assert [r.ok for r in results] == [True, False, True, True]
    assert [r.model.predict([[0.0]]).tolist() for r in results if r.ok] == [[1], [3], [4]]
    error = results[1].error
    assert isinstance(error, JobError) and "_TwoPartError: close: has gaps" in str(error)
    assert "_raise_two_part" in results[1].traceback


def test_versions_continue_past_ones_the_pointer_missed(tmp_path):
    store = ObjectStore(tmp_path)
    zoo = Zoo(store)
    save_version(zoo, _constant(1), "gap", format="pickle")                       # v1, latest
    save_version(zoo, _constant(2), "gap", format="pickle", update_latest=False)  # v2, orphan
    results = map_train([TrainJob(_constant, (3,), save_as="gap", format="pickle")], store=store)
    assert results[0].key == "gap/v000003" and latest_version(store, "gap") == 3
    assert zoo.load("gap/v000002", trusted=True).predict([[0.0]]).tolist() == [2]
