"""Live models that follow an alias (alphazoo.training.follow): ServedModel.follow and
Trainer.follow hot-swap the version an alias points to, load it off the serving path, and never
serve a version that fails to load or verify."""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from _child import run_python
from sklearn.dummy import DummyRegressor

from alphazoo import InvalidKeyError, ObjectStore, Zoo
from alphazoo.training import (
    AliasFollower,
    ModelRejectedError,
    ServedModel,
    Trainer,
    save_version,
    version_key,
)
from alphazoo.training.follow import alias_target

WAIT = 30.0
X = np.zeros((3, 1))


def constant(version: int) -> DummyRegressor:
    """A model whose every prediction is its own version number."""
    return DummyRegressor(strategy="constant", constant=float(version)).fit(X[:2], [0, 0])


def move_latest(zoo: Zoo, name: str, version: int) -> None:
    """Point the ``latest`` alias anywhere, backwards too (a rollback of latest.json)."""
    zoo.store.save_json(f"{name}/latest.json",
                        {"version": version, "key": version_key(name, version)})


def corrupt(zoo: Zoo, key: str) -> None:
    data = bytearray(zoo.store.read_bytes(key))
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    zoo.store.save_bytes(key, bytes(data))


def until(condition: Any, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def follower_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("alphazoo-follow-")]


@pytest.fixture
def zoo(tmp_path: Any) -> Zoo:
    return Zoo(ObjectStore(tmp_path / "store"))


def test_follows_latest_and_serves_each_new_version(zoo: Zoo) -> None:
    served = ServedModel()
    with served.follow("spy/gbdt@latest", zoo=zoo, poll=0.02) as follower:
        time.sleep(0.1)
        assert not served.ready  # the alias points nowhere yet: the readiness flag stays False
        assert follower.target is None and follower.polls >= 1
        save_version(zoo, constant(1), "spy/gbdt")
        assert served.wait(WAIT)
        assert served.predict(X).tolist() == [1.0, 1.0, 1.0]
        save_version(zoo, constant(2), "spy/gbdt")
        assert served.wait_for_version(2, WAIT)
        snap = served.snapshot()
        assert snap is not None and snap.key == "spy/gbdt/v000002"
        assert snap.extra == {"alias": "latest", "registry_version": 2}
        assert snap.model.predict(X)[0] == 2.0
        assert [e.version for e in follower.events] == [1, 2]
        assert all(e.status == "served" for e in follower.events)
    assert follower_threads() == []


def test_a_rollback_to_the_previous_version_needs_no_load(zoo: Zoo) -> None:
    for version in (1, 2):
        save_version(zoo, constant(version), "m")
    move_latest(zoo, "m", 1)
    served = ServedModel()
    with served.follow("m", zoo=zoo, poll=0.02, keep=2):
        assert served.wait(WAIT)
        first = served.model
        move_latest(zoo, "m", 2)
        assert served.wait_for_version(2, WAIT)
        move_latest(zoo, "m", 1)
        assert served.wait_for_version(3, WAIT)
        assert served.model is first  # the same object: kept loaded, swapped back
        assert served.predict(X)[0] == 1.0
    assert follower_threads() == []


def test_a_corrupted_version_is_never_served_and_loaded_once(zoo: Zoo, caplog: Any) -> None:
    save_version(zoo, constant(1), "m")
    served = ServedModel()
    with served.follow("m", zoo=zoo, poll=0.02) as follower:
        assert served.wait(WAIT)
        key, _ = save_version(zoo, constant(2), "m", update_latest=False)
        corrupt(zoo, key)
        move_latest(zoo, "m", 2)
        assert until(lambda: follower.errors)
        polls = follower.polls
        assert until(lambda: follower.polls >= polls + 5)
        assert len(follower.errors) == 1  # not reloaded on every poll while the alias stays
        failure = follower.errors[0]
        assert failure.version == 2 and failure.status == "failed"
        assert type(failure.error).__name__ == "BundleIntegrityError"
        assert served.version == 1 and served.predict(X)[0] == 1.0
        assert "v000002 failed to load or verify" in caplog.text
        # The alias moves on to a good version: that one is served.
        save_version(zoo, constant(3), "m")
        assert served.wait_for_version(2, WAIT)
        assert served.predict(X)[0] == 3.0


def test_a_version_the_verify_check_refuses_is_not_served(zoo: Zoo) -> None:
    save_version(zoo, constant(1), "m")
    checked = []

    def verify(model: Any) -> bool:
        checked.append(threading.current_thread().name)
        return bool(model.predict(X)[0] < 2)

    served = ServedModel()
    with served.follow("m", zoo=zoo, poll=0.02, verify=verify) as follower:
        assert served.wait(WAIT)
        save_version(zoo, constant(2), "m")
        assert until(lambda: follower.errors)
        assert isinstance(follower.errors[0].error, ModelRejectedError)
        assert served.predict(X)[0] == 1.0
    # verified in the follower's thread, off the serving path
    assert checked and all(name.startswith("alphazoo-follow-m@latest") for name in checked)


class CountingStore(ObjectStore):
    """A local store that counts the calls that read it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def read_bytes(self, key: str) -> bytes:
        self.calls += 1
        return super().read_bytes(key)

    def contains_key(self, key: str) -> bool:
        self.calls += 1
        return super().contains_key(key)

    def keys(self) -> list[str]:
        self.calls += 1
        return super().keys()

    def size(self, key: str) -> int:
        self.calls += 1
        return super().size(key)


@pytest.mark.parametrize("alias", ["latest", "production"])
@pytest.mark.parametrize("count", [3, 150])
def test_a_poll_costs_one_small_read_whatever_the_number_of_versions(tmp_path: Any,
                                                                     count: int,
                                                                     alias: str) -> None:
    store = CountingStore(tmp_path / "store")
    zoo = Zoo(store)
    for version in range(1, count + 1):
        save_version(zoo, constant(1), "m", version=version, update_latest=False)
    move_latest(zoo, "m", count)
    if alias == "production":
        for version in range(1, count + 1):  # as many moves as versions: a long history
            zoo.registry.promote("m", version, "production")
    follower = AliasFollower(ServedModel(), zoo, f"m@{alias}", poll=60)
    assert follower.check() is not None  # the first poll loads the version
    store.calls = 0
    for _ in range(10):
        assert follower.check() is None
    assert store.calls == 10


def test_trainer_follow_reports_failures_in_errors_and_stop_ends_the_thread(zoo: Zoo) -> None:
    save_version(zoo, constant(1), "m")
    trainer = Trainer(mode="live", zoo=zoo)
    follower = trainer.follow("m", poll=timedelta(milliseconds=20))
    assert trainer.model.wait(WAIT)
    key, _ = save_version(zoo, constant(2), "m", update_latest=False)
    corrupt(zoo, key)
    move_latest(zoo, "m", 2)
    assert until(lambda: trainer.errors)
    record = trainer.errors[0]
    assert record.name == "follow m" and record.status == "failed" and record.key == key
    assert trainer.model.predict(X)[0] == 1.0
    assert follower_threads()
    trainer.stop()
    assert not follower.running and follower_threads() == []
    with pytest.raises(RuntimeError, match="stopped"):
        trainer.follow("m")


def test_a_backtest_trainer_as_context_manager_stops_its_followers(zoo: Zoo) -> None:
    save_version(zoo, constant(4), "m")
    with Trainer(zoo=zoo) as trainer:
        trainer.follow("m", poll=0.02)
        assert trainer.model.wait(WAIT) and trainer.model.predict(X)[0] == 4.0
    assert follower_threads() == []


def test_references() -> None:
    zoo = Zoo("memory://follow-refs")
    follower = AliasFollower(ServedModel(), zoo, "spy/gbdt@production")
    assert (follower.name, follower.alias) == ("spy/gbdt", "production")
    follower = AliasFollower(ServedModel(), zoo, "spy/gbdt")
    assert (follower.name, follower.alias) == ("spy/gbdt", "latest")
    for bad in ("@production", "spy/gbdt@", "spy/gbdt@prod uction"):
        with pytest.raises(InvalidKeyError):
            AliasFollower(ServedModel(), zoo, bad)
    with pytest.raises(ValueError, match="poll"):
        AliasFollower(ServedModel(), zoo, "m", poll=0)


def test_follows_promotions_and_rollbacks_of_a_registry_alias(zoo: Zoo) -> None:
    for version in (1, 2, 3):
        save_version(zoo, constant(version), "spy/gbdt")
    registry = zoo.registry
    served = ServedModel()
    with served.follow("spy/gbdt@production", zoo=zoo, poll=0.02) as follower:
        time.sleep(0.1)
        assert not served.ready  # nothing promoted yet; latest (v3) is not production
        registry.promote("spy/gbdt", 1, "production", note="first")
        assert served.wait(WAIT) and served.predict(X)[0] == 1.0
        first = served.model
        registry.promote("spy/gbdt", 2, "production")
        assert served.wait_for_version(2, WAIT) and served.predict(X)[0] == 2.0
        registry.rollback("spy/gbdt", "production")
        assert served.wait_for_version(3, WAIT) and served.predict(X)[0] == 1.0
        snap = served.snapshot()
        assert snap is not None and snap.extra == {"alias": "production", "registry_version": 1}
        assert [e.version for e in follower.events] == [1, 2, 1]
        assert served.model is first  # v1 was still loaded: swapped back without a load
    assert follower_threads() == []


def test_a_fixed_version_reference_is_served_without_reading_an_alias(zoo: Zoo) -> None:
    save_version(zoo, constant(1), "m")
    save_version(zoo, constant(2), "m")
    assert alias_target(zoo, "m", "v1") == 1
    served = ServedModel()
    with served.follow("m@v1", zoo=zoo, poll=0.02):
        assert served.wait(WAIT) and served.predict(X)[0] == 1.0


# -- acceptance: another process moves the alias while four threads predict --------------------
POLL = 0.05
#: How long each version stays in service before the next move (the predicting threads see it).
GAP = 0.1
VERSIONS = 100
CORRUPTED = {37, 73}

MOVER = """
import json, pathlib, sys, time
from alphazoo import ObjectStore, Zoo

registry = Zoo(ObjectStore(sys.argv[1])).registry
gap = float(sys.argv[2])
corrupted = set(json.loads(sys.argv[3]))
name = "stress/m"
moves = []
folder = pathlib.Path(sys.argv[4])


def settled(version):
    # Each move waits until the parent serves it (or refuses a corrupted one), so no move is
    # superseded before a poll sees it however busy the machine is; the lag is measured, and
    # the deadline only guards against a hang.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if version in corrupted:
            if (folder / f"failed-{version}").exists():
                return
        else:
            serving = folder / "serving"
            if serving.exists() and serving.read_text() == str(version):
                return
        time.sleep(0.005)


for version in range(1, %(versions)d + 1):
    entry = registry.promote(name, version, "production", note=f"round {version}")
    moves.append(("promote", entry["to"], time.time()))
    settled(version)
    time.sleep(gap)
    if version %% 5 == 0:  # 20 rollbacks: back to the target before
        entry = registry.rollback(name, "production", note="rollback")
        moves.append(("rollback", entry["to"], time.time()))
        settled(entry["to"])
        time.sleep(gap)
print(json.dumps(moves))
""" % {"versions": VERSIONS}


@pytest.mark.slow
def test_four_threads_predict_through_100_promotions_and_20_rollbacks(tmp_path: Any) -> None:
    zoo = Zoo(ObjectStore(tmp_path / "store"))
    for version in range(1, VERSIONS + 1):
        key, _ = save_version(zoo, constant(version), "stress/m", version=version,
                              update_latest=False)
        if version in CORRUPTED:
            corrupt(zoo, key)
    served = ServedModel()
    follower = served.follow("stress/m@production", zoo=zoo, poll=POLL,
                             on_error=lambda event: (tmp_path / f"failed-{event.version}").touch())
    stop = threading.Event()
    failures: list[BaseException] = []
    torn: list[tuple[Any, ...]] = []
    logs: list[list[tuple[float, int]]] = [[] for _ in range(4)]
    counts = [0] * 4

    def predict(n: int) -> None:
        served.wait(WAIT)
        last = None
        while not stop.is_set():
            try:
                snap = served.snapshot()
                assert snap is not None
                value = snap.model.predict(X)
                version = snap.extra["registry_version"]
                if (value.tolist() != [float(version)] * 3
                        or snap.key != version_key("stress/m", version)):
                    torn.append((snap.key, version, value.tolist()))
                plain = int(served.predict(X)[0])  # the one-call path too
                if plain in CORRUPTED:
                    torn.append(("served a corrupted version", plain))
            except BaseException as exc:  # noqa: BLE001 - every failure is the finding
                failures.append(exc)
                return
            counts[n] += 1
            if version != last:
                logs[n].append((time.time(), version))
                last = version

    def report_serving() -> None:
        # Tells the mover which version is in service (a file replaced whole).
        last = None
        while not stop.is_set():
            snap = served.snapshot()
            version = None if snap is None else snap.extra["registry_version"]
            if version != last:
                staged = tmp_path / "serving.tmp"
                staged.write_text(str(version))
                staged.replace(tmp_path / "serving")
                last = version
            time.sleep(0.005)

    threads = [threading.Thread(target=predict, args=(n,)) for n in range(4)]
    threads.append(threading.Thread(target=report_serving))
    for thread in threads:
        thread.start()
    try:
        done = run_python(MOVER, str(tmp_path / "store"), str(GAP),
                          json.dumps(sorted(CORRUPTED)), str(tmp_path), cwd=tmp_path)
    finally:
        stop.set()
        for thread in threads:
            thread.join(WAIT)
        follower.stop()
    moves = json.loads(done.stdout)
    assert len(moves) == 120
    assert sum(kind == "rollback" for kind, _, _ in moves) == 20
    assert [entry["to"] for entry in zoo.registry.history("stress/m", "production")] == [
        version for _, version, _ in moves]
    assert failures == [] and torn == []
    assert all(counts), counts
    # a corrupted version promoted fails once, is logged and kept in errors, never served
    assert [e.version for e in follower.errors] == sorted(CORRUPTED)
    assert all(type(e.error).__name__ == "BundleIntegrityError" for e in follower.errors)

    # A swap is visible from the moment it is published: every prediction that starts later
    # uses it (the threads above check each one). Measured from the end of each move.
    served_events = [(e.version, e.seen_at.timestamp(), e.seen_at.timestamp() + e.seconds,
                      e.seconds) for e in follower.events if e.status == "served"]
    # Every move but those to a corrupted version was served, by the poll after it. The lag
    # (end of the move to the swap: the wait for a poll plus the load) is measured and
    # printed, not asserted: it depends on the machine (pytest -s shows it).
    lags: list[float] = []
    loads = [seconds for *_, seconds in served_events]
    for (kind, version, moved), following in zip(moves, moves[1:] + [None]):
        if version in CORRUPTED:
            continue
        ends = following[2] if following else float("inf")
        match = [published for v, seen, published, _ in served_events
                 if v == version and moved - 0.01 <= seen < ends + 0.01]
        assert match, f"{kind} to v{version} was never served"
        lags.append(max(0.0, match[0] - moved))
    # and the predicting threads saw the versions come and go
    observed = {v for log in logs for _, v in log}
    assert observed == set(range(1, VERSIONS + 1)) - CORRUPTED
    print(f"\nfollow stress: {sum(counts)} predictions in 4 threads, {len(moves)} moves, poll "
          f"{POLL * 1000:.0f} ms; swap lag max {max(lags) * 1000:.0f} ms, median "
          f"{statistics.median(lags) * 1000:.0f} ms; load max {max(loads) * 1000:.0f} ms, "
          f"median {statistics.median(loads) * 1000:.0f} ms", file=sys.stderr)
    assert follower_threads() == []


def test_an_unreadable_alias_keeps_the_version_in_service_and_warns_once(zoo: Zoo,
                                                                         caplog: Any) -> None:
    for version in (1, 2):
        save_version(zoo, constant(version), "m")
    zoo.registry.promote("m", 1, "production")
    head = "m/_registry/aliases/production.json"
    good = zoo.store.read_bytes(head)
    served = ServedModel()
    with served.follow("m@production", zoo=zoo, poll=0.02) as follower:
        assert served.wait(WAIT)
        zoo.store.save_bytes(head, b"{not json")  # a hand-edited record
        assert until(lambda: follower.poll_errors >= 5)
        assert served.predict(X)[0] == 1.0 and follower.errors == []
        assert caplog.text.count("reading the alias failed") == 1
        zoo.store.save_bytes(head, good)
        zoo.registry.promote("m", 2, "production")
        assert served.wait_for_version(2, WAIT) and served.predict(X)[0] == 2.0
        assert "the alias reads again" in caplog.text


S3_MOVER = """
import json, sys
from alphazoo import ObjectStore, Zoo

registry = Zoo(ObjectStore(sys.argv[1], storage_options=json.loads(sys.argv[2]))).registry
if sys.argv[3] == "rollback":
    registry.rollback("s3/m", "production")
else:
    registry.promote("s3/m", int(sys.argv[3]), "production")
"""


@pytest.mark.slow
def test_follows_an_alias_another_process_moves_on_s3(moto_s3: Any, tmp_path: Any) -> None:
    """On S3 the poll reads the alias's head afresh each time: no listing or cache of the
    follower's own makes it miss a move another machine made."""
    location = f"s3://{moto_s3.bucket}/follow-{uuid.uuid4().hex}"
    options = dict(moto_s3.storage_options)
    zoo = Zoo(ObjectStore(location, storage_options=options))
    for version in (1, 2, 3):
        save_version(zoo, constant(version), "s3/m")
    served = ServedModel()
    with served.follow("s3/m@production", zoo=zoo, poll=0.05) as follower:
        swaps = 0
        for move, expected in (("1", 1.0), ("3", 3.0), ("2", 2.0), ("rollback", 3.0)):
            run_python(S3_MOVER, location, json.dumps(options), move, cwd=tmp_path)
            swaps += 1
            assert served.wait_for_version(swaps, WAIT), follower
            assert served.predict(X)[0] == expected
            zoo.registry.versions("s3/m")  # the follower's process lists the series too
        assert follower.errors == [] and follower.poll_errors == 0
    assert follower_threads() == []


class FlakyStore(ObjectStore):
    """A local store whose reads of the keys in ``down`` fail as a network blip would."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.down: set[str] = set()
        self.attempts = 0

    def _check(self, key: str) -> None:
        if key in self.down:
            self.attempts += 1
            raise ConnectionResetError(f"reading {key}: connection reset by peer")

    def open(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self._check(key)
        return super().open(key, *args, **kwargs)

    def read_bytes(self, key: str) -> bytes:
        self._check(key)
        return super().read_bytes(key)


def test_a_transient_load_error_is_retried_with_a_growing_wait(tmp_path: Any,
                                                               caplog: Any) -> None:
    from alphazoo.training import follow

    store = FlakyStore(tmp_path / "store")
    zoo = Zoo(store)
    for version in (1, 2):
        save_version(zoo, constant(version), "m")
    zoo.registry.promote("m", 1, "production")
    served = ServedModel()
    follower = AliasFollower(served, zoo, "m@production", poll=0.01)
    assert follower.check().status == "served"
    store.down.add(version_key("m", 2))
    zoo.registry.promote("m", 2, "production")
    assert follower.check().status == "failed"  # an S3 hiccup while loading v2
    for _ in range(3):
        time.sleep(0.005)
        follower.check()
    first = store.attempts
    assert 1 <= first <= 3  # retried, but not on every poll: the wait doubles
    deadline = time.monotonic() + WAIT
    while store.attempts < first + 2 and time.monotonic() < deadline:
        follower.check()
        time.sleep(0.005)
    assert store.attempts >= first + 2 and served.version == 1
    assert caplog.text.count("loading m/v000002 failed") == 1  # logged once per outage
    store.down.clear()  # the store answers again: v2 is served on a later poll
    deadline = time.monotonic() + WAIT
    while served.version != 2 and time.monotonic() < deadline:
        follower.check()
        time.sleep(0.005)
    assert served.version == 2 and served.predict(X)[0] == 2.0
    assert "loaded after" in caplog.text
    assert follow.MAX_RETRY_WAIT >= 60


def test_the_follower_completes_a_move_a_crashed_mover_left_half_done(zoo: Zoo) -> None:
    from alphazoo.training.follow import PROBE_EVERY

    for version in (1, 2):
        save_version(zoo, constant(version), "m")
    zoo.registry.promote("m", 1, "production")
    served = ServedModel()
    follower = AliasFollower(served, zoo, "m@production", poll=60)
    follower.check()
    assert served.version == 1
    entry = dict(zoo.registry.head("m", "production"), seq=2, to=2, back=1, **{"from": 1})
    assert zoo.store.create_bytes("m/_registry/history/production/000002.json",
                                  json.dumps(entry).encode())  # its mover died here
    for _ in range(PROBE_EVERY - 1):
        follower.check()
    assert served.version == 1  # plain polls read the head only
    follower.check()  # PROBE_EVERY polls after the first probe: the next one
    assert served.version == 2 and zoo.registry.target("m", "production") == 2


def test_model_rejected_error_is_an_alphazoo_error_importable_from_both_places() -> None:
    import alphazoo
    from alphazoo.training.follow import ModelRejectedError as from_follow

    assert alphazoo.ModelRejectedError is ModelRejectedError is from_follow
    assert issubclass(ModelRejectedError, alphazoo.AlphazooError)
    assert "ModelRejectedError" in alphazoo.__all__
