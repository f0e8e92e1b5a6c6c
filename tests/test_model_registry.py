"""The model registry (alphazoo.model_registry): aliases, promotion, rollback, history, references
(``name@alias``), the exclusive create under them, and what several writers see.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import threading
import traceback
import uuid
from pathlib import Path
from typing import Any

import pytest

import alphazoo
from alphazoo import AliasConflictError, AliasNotFoundError, InvalidKeyError, ModelRegistry

CTX = multiprocessing.get_context("spawn")
STARTUP_TIMEOUT = 120.0


def _fill(store: alphazoo.ObjectStore, name: str, count: int) -> None:
    """``count`` stand-in versions of ``name`` (the registry moves aliases between keys; it
    reads a bundle only for facts and gates)."""
    for version in range(1, count + 1):
        store.save_bytes(f"{name}/v{version:06d}", b"not a bundle %d" % version)


@pytest.fixture(params=["local", "memory"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> ModelRegistry:
    if request.param == "local":
        store = alphazoo.ObjectStore(tmp_path / "store")
    else:
        store = alphazoo.ObjectStore(f"memory://registry-{tmp_path.name}")
    _fill(store, "spy/gbdt", 5)
    return alphazoo.Zoo(store, discover=False).registry


# -- aliases, promotion, rollback, history ---------------------------------------------------

def test_promote_moves_an_alias_and_records_who_when_and_why(registry: ModelRegistry) -> None:
    assert registry.target("spy/gbdt", "production") is None
    entry = registry.promote("spy/gbdt", 2, "production", note="IC up", actor="ci-bot")
    assert (entry["from"], entry["to"], entry["note"], entry["who"]) == (None, 2, "IC up",
                                                                          "ci-bot")
    assert registry.target("spy/gbdt", "production") == 2
    second = registry.promote("spy/gbdt", 4, "production")
    assert (second["from"], second["to"]) == (2, 4)
    assert second["who"]  # the OS user by default
    assert [(e["seq"], e["from"], e["to"]) for e in registry.history("spy/gbdt", "production")] \
        == [(1, None, 2), (2, 2, 4)]
    assert registry.history("spy/gbdt", "production")[0]["when"] <= second["when"]
    assert registry.head("spy/gbdt", "production") == second
    assert registry.head("spy/gbdt", "staging") is None


def test_aliases_are_independent_and_latest_is_latest_json(registry: ModelRegistry) -> None:
    from alphazoo.training.model_versions import write_latest

    registry.promote("spy/gbdt", 1, "production")
    registry.promote("spy/gbdt", 3, "staging")
    assert registry.aliases("spy/gbdt") == {"production": 1, "staging": 3}
    write_latest(registry.store, "spy/gbdt", 5)
    assert registry.target("spy/gbdt", "latest") == 5
    assert registry.aliases("spy/gbdt") == {"latest": 5, "production": 1, "staging": 3}
    with pytest.raises(InvalidKeyError, match="latest"):
        registry.promote("spy/gbdt", 2, "latest")
    with pytest.raises(InvalidKeyError, match="latest"):
        registry.rollback("spy/gbdt", "latest")
    with pytest.raises(InvalidKeyError):
        registry.promote("spy/gbdt", 2, "v2")
    with pytest.raises(InvalidKeyError):
        registry.promote("spy/gbdt", 2, "prod/uction")


def test_rollback_steps_back_through_earlier_targets(registry: ModelRegistry) -> None:
    for version in (1, 2, 3):
        registry.promote("spy/gbdt", version, "production")
    entry = registry.rollback("spy/gbdt", "production", note="bad fills")
    assert (entry["action"], entry["from"], entry["to"]) == ("rollback", 3, 2)
    assert registry.rollback("spy/gbdt", "production")["to"] == 1
    with pytest.raises(AliasNotFoundError, match="no earlier one"):
        registry.rollback("spy/gbdt", "production")
    assert registry.target("spy/gbdt", "production") == 1
    # A promotion after a rollback can itself be rolled back to the rolled-back-to version.
    registry.promote("spy/gbdt", 5, "production")
    assert registry.rollback("spy/gbdt", "production")["to"] == 1
    actions = [e["action"] for e in registry.history("spy/gbdt", "production")]
    assert actions == ["promote"] * 3 + ["rollback"] * 2 + ["promote", "rollback"]


def test_promote_refuses_a_missing_version_and_a_stale_expectation(
        registry: ModelRegistry) -> None:
    with pytest.raises(alphazoo.ObjectNotFoundError):
        registry.promote("spy/gbdt", 9, "production")
    with pytest.raises(AliasNotFoundError):
        registry.rollback("spy/gbdt", "production")
    registry.promote("spy/gbdt", 1, "production", expect=None)
    with pytest.raises(AliasConflictError, match="not at no version"):
        registry.promote("spy/gbdt", 2, "production", expect=None)
    with pytest.raises(TypeError):
        registry.promote("spy/gbdt", 2, "production", expect=True)
    registry.promote("spy/gbdt", 2, "production", expect=1)
    assert registry.target("spy/gbdt", "production") == 2
    assert len(registry.history("spy/gbdt", "production")) == 2


def test_a_lost_create_is_a_conflict_and_changes_nothing(registry: ModelRegistry) -> None:
    registry.promote("spy/gbdt", 1, "production")
    # Another writer's entry 2 lands between this writer's read and its create.
    entry_key = "spy/gbdt/_registry/history/production/000002.json"
    assert registry.store.create_bytes(entry_key, json.dumps({"seq": 2}).encode())
    assert not registry.store.create_bytes(entry_key, b"{}")  # exclusive
    original = registry._settled
    registry._settled = lambda name, alias: {"seq": 1, "to": 1, "back": 0}  # type: ignore
    try:
        with pytest.raises(AliasConflictError, match="history entry 2"):
            registry.promote("spy/gbdt", 3, "production")
    finally:
        registry._settled = original  # type: ignore[method-assign]
    assert registry.store.read_json(entry_key) == {"seq": 2}


def test_a_head_left_behind_by_a_crashed_mover_is_repaired(registry: ModelRegistry) -> None:
    registry.promote("spy/gbdt", 1, "production")
    moved = registry.promote("spy/gbdt", 2, "production")
    # A mover killed between its two writes: entry 3 exists, the head still says entry 2.
    crashed = {**moved, "seq": 3, "from": 2, "to": 4, "back": 2, "note": "crashed"}
    registry.store.create_bytes("spy/gbdt/_registry/history/production/000003.json",
                                json.dumps(crashed).encode())
    assert registry.target("spy/gbdt", "production") == 2  # one read: the head as written
    assert [e["to"] for e in registry.history("spy/gbdt", "production")] == [1, 2, 4]
    assert registry.target("spy/gbdt", "production") == 4  # history repaired the head
    assert registry.promote("spy/gbdt", 5, "production")["seq"] == 4


def test_threads_racing_on_one_alias_lose_nothing(registry: ModelRegistry) -> None:
    wins: list[dict[str, Any]] = []
    conflicts: list[int] = []

    def mover(offset: int) -> None:
        for round_ in range(15):
            try:
                wins.append(registry.promote("spy/gbdt", 1 + (round_ + offset) % 5,
                                             "production", note=f"{offset}:{round_}"))
            except AliasConflictError:
                conflicts.append(offset)

    threads = [threading.Thread(target=mover, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    history = registry.history("spy/gbdt", "production")
    assert len(history) == len(wins) and len(wins) + len(conflicts) == 60
    assert [e["seq"] for e in history] == list(range(1, len(history) + 1))
    assert sorted(e["note"] for e in history) == sorted(w["note"] for w in wins)
    for before, after in zip(history, history[1:]):
        assert after["from"] == before["to"]  # every move starts where the last one ended
    assert registry.target("spy/gbdt", "production") == history[-1]["to"]


# -- references: name@alias, name@v3 ---------------------------------------------------------

def test_references_resolve_to_version_keys(registry: ModelRegistry) -> None:
    from alphazoo.training.model_versions import write_latest

    registry.promote("spy/gbdt", 3, "production")
    write_latest(registry.store, "spy/gbdt", 5)
    assert registry.resolve("spy/gbdt@production") == "spy/gbdt/v000003"
    assert registry.resolve("spy/gbdt@v2") == "spy/gbdt/v000002"
    assert registry.resolve("spy/gbdt@latest") == "spy/gbdt/v000005"
    assert registry.resolve("spy/gbdt/v000001") == "spy/gbdt/v000001"  # plain keys pass
    with pytest.raises(AliasNotFoundError, match="promote one first"):
        registry.resolve("spy/gbdt@staging")
    with pytest.raises(InvalidKeyError):
        registry.resolve("@production")
    with pytest.raises(InvalidKeyError):
        registry.resolve("spy/gbdt@prod.json")
    # "@" is no key character: no stored key can read as a reference.
    assert not alphazoo.keys.is_valid_key("spy/gbdt@production")


def test_zoo_load_and_inspect_take_references(tmp_path: Path) -> None:
    sklearn = pytest.importorskip("sklearn.linear_model")
    import numpy as np

    from alphazoo.training.model_versions import save_version

    zoo = alphazoo.Zoo(tmp_path / "store")
    X = np.arange(30, dtype=float).reshape(10, 3)
    for scale in (1.0, 2.0):
        model = zoo.train(sklearn.LinearRegression(), X, X.sum(axis=1) * scale)
        save_version(zoo, model, "spy/lr", metadata={"metrics": {"ic": scale / 10}})
    zoo.registry.promote("spy/lr", 1, "production")
    facts = zoo.registry.versions("spy/lr")
    assert [row["version"] for row in facts] == [1, 2]
    assert facts[0]["training"]["rows"] == 10 and facts[0]["adapter"] == "sklearn"
    assert facts[0]["libraries"]["scikit-learn"] and facts[0]["created"]
    assert facts[1]["metrics"] == {"ic": 0.2} == facts[1]["metadata"]["metrics"]
    assert zoo.inspect("spy/lr@production")["key"] == "spy/lr/v000001"
    assert zoo.inspect("spy/lr@latest")["key"] == "spy/lr/v000002"
    production = zoo.load("spy/lr@production", trusted=True)
    newest = zoo.load("spy/lr@v2", trusted=True)
    assert np.allclose(production.predict(X), X.sum(axis=1))
    assert np.allclose(newest.predict(X), 2 * X.sum(axis=1))
    assert zoo.check_target("spy/lr@production").target


# -- versions and the store primitives under the registry ------------------------------------

def test_versions_list_the_series_with_manifest_facts(registry: ModelRegistry) -> None:
    rows = registry.versions("spy/gbdt")
    assert [row["version"] for row in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["key"] == "spy/gbdt/v000001"
    assert rows[0]["error"] == "not a model bundle"  # stand-ins, reported, not fatal
    registry.promote("spy/gbdt", 1, "production")  # registry objects are no versions
    assert len(registry.versions("spy/gbdt", facts=False)) == 5


def test_create_bytes_is_exclusive_and_counted(registry: ModelRegistry) -> None:
    store = registry.store
    before = store.usage()
    assert store.create_bytes("made/once.json", b"first")
    assert not store.create_bytes("made/once.json", b"second")
    assert store.read_bytes("made/once.json") == b"first"
    after = store.usage(recount=False)
    assert (after.objects, after.bytes) == (before.objects + 1, before.bytes + 5)
    assert store.usage() == after  # the ledger agrees with a recount
    assert store.list_folder("made") == ["made/once.json"]
    assert store.list_folder("spy/gbdt")[:2] == ["spy/gbdt/v000001", "spy/gbdt/v000002"]
    assert store.list_folder("nothing/here") == []


def test_create_bytes_respects_the_limits(tmp_path: Path) -> None:
    store = alphazoo.ObjectStore(tmp_path / "small", max_files=1)
    assert store.create_bytes("a", b"1")
    with pytest.raises(alphazoo.StorageLimitError):
        store.create_bytes("b", b"2")
    assert store.keys() == ["a"]


# -- two processes racing on one alias (local store) -----------------------------------------

ROUNDS = 40


def _racer(root: str, me: int, barrier: Any, results: Any,
           options: dict[str, Any] | None = None, rounds: int = ROUNDS) -> None:
    try:
        store = alphazoo.ObjectStore(root, storage_options=options)
        registry = alphazoo.Zoo(store, discover=False).registry
        barrier.wait(timeout=STARTUP_TIMEOUT)
        mine = (1, 2) if me == 0 else (3, 4)
        outcomes = []
        for round_ in range(rounds):
            barrier.wait(timeout=60)  # nobody moves while both read
            current = registry.target("spy/gbdt", "production")
            barrier.wait(timeout=60)
            version = mine[0] if current != mine[0] else mine[1]
            try:
                entry = registry.promote("spy/gbdt", version, "production", expect=current,
                                         actor=f"racer-{me}", note=f"{me}:{round_}")
                outcomes.append((round_, "won", entry["seq"], version))
            except AliasConflictError:
                outcomes.append((round_, "lost", None, version))
        results.put({"me": me, "outcomes": outcomes})
    except BaseException:
        results.put({"me": me, "error": traceback.format_exc()})


def _race(root: str, options: dict[str, Any] | None = None, rounds: int = ROUNDS) -> None:
    """Two processes move one alias for ``rounds`` rounds; check that exactly one wins each
    round and that the history holds each winning move once, in order."""
    _fill(alphazoo.ObjectStore(root, storage_options=options), "spy/gbdt", 4)
    barrier = CTX.Barrier(2)
    results = CTX.Queue()
    racers = [CTX.Process(target=_racer, args=(root, me, barrier, results, options, rounds))
              for me in (0, 1)]
    try:
        for racer in racers:
            racer.start()
        reports = []
        for _ in racers:
            try:
                reports.append(results.get(timeout=STARTUP_TIMEOUT + rounds * 10))
            except queue.Empty:
                pytest.fail("a racing process did not report")
    finally:
        for racer in racers:
            racer.join(timeout=30)
            if racer.is_alive():
                racer.kill()
    errors = [report["error"] for report in reports if "error" in report]
    assert not errors, errors[0]
    by_round: dict[int, list[tuple[int, Any, int]]] = {}
    for report in reports:
        for round_, outcome, seq, _version in report["outcomes"]:
            by_round.setdefault(round_, []).append((report["me"], outcome, seq))
    assert sorted(by_round) == list(range(rounds))
    for round_, outcomes in by_round.items():
        assert sorted(outcome for _, outcome, _ in outcomes) == ["lost", "won"], round_
    store = alphazoo.ObjectStore(root, storage_options=options)
    history = ModelRegistry(store).history("spy/gbdt", "production")
    # No lost and no repeated entry: one per round, in order, each from the last one's target.
    assert [entry["seq"] for entry in history] == list(range(1, rounds + 1))
    winners = {seq: me for outcomes in by_round.values() for me, outcome, seq in outcomes
               if outcome == "won"}
    assert {entry["seq"]: int(entry["who"][-1]) for entry in history} == winners
    assert [entry["note"].split(":")[1] for entry in history] == [str(r) for r in range(rounds)]
    for before, after in zip(history, history[1:]):
        assert after["from"] == before["to"]
    assert ModelRegistry(store).target("spy/gbdt", "production") == history[-1]["to"]


@pytest.mark.slow
def test_two_processes_racing_exactly_one_wins_each_round(tmp_path: Path) -> None:
    _race(str(tmp_path / "store"), rounds=200)


# -- S3 (moto's server): conditional writes ---------------------------------------------------

def _s3_location(moto_s3: Any) -> tuple[str, dict[str, Any]]:
    return (f"s3://{moto_s3.bucket}/registry-{uuid.uuid4().hex}",
            dict(moto_s3.storage_options))


@pytest.mark.s3
def test_s3_alias_moves_use_conditional_writes(moto_s3: Any) -> None:
    import fsspec

    location, options = _s3_location(moto_s3)
    store = alphazoo.ObjectStore(location, storage_options=options)
    _fill(store, "spy/gbdt", 3)
    registry = ModelRegistry(store)
    registry.promote("spy/gbdt", 1, "production")
    registry.promote("spy/gbdt", 2, "production")
    assert registry.rollback("spy/gbdt", "production")["to"] == 1
    assert registry.aliases("spy/gbdt") == {"production": 1}
    assert registry.resolve("spy/gbdt@production") == "spy/gbdt/v000001"
    # Another machine (its own S3 client, no shared lock) creates entry 4 first: S3 itself
    # refuses this store's create (If-None-Match: *), which the registry reports as a conflict.
    fs, root = fsspec.core.url_to_fs(location, **options)
    entry = f"{root}/spy/gbdt/_registry/history/production/000004.json"
    fs.pipe_file(entry, b'{"seq": 4, "to": 3, "from": 1, "back": 3}', mode="create")
    assert not store._backend.create("spy/gbdt/_registry/history/production/000004.json",
                                     [b"{}"])
    original = registry._settled
    # This writer read the head before entry 4 existed.
    registry._settled = lambda name, alias: {"seq": 3, "to": 1, "back": 0}  # type: ignore
    try:
        with pytest.raises(AliasConflictError):
            registry.promote("spy/gbdt", 2, "production")
    finally:
        registry._settled = original  # type: ignore[method-assign]
    assert json.loads(fs.cat_file(entry))["to"] == 3  # the first writer's entry stands
    assert registry.target("spy/gbdt", "production") == 1  # head not yet moved ...
    assert [e["to"] for e in registry.history("spy/gbdt", "production")] == [1, 2, 1, 3]
    assert registry.target("spy/gbdt", "production") == 3  # ... until a reader settles it


@pytest.mark.s3
def test_s3_tells_a_failed_condition_by_its_code_never_by_its_text(
        moto_s3: Any, monkeypatch: Any) -> None:
    """A network error writing history entry 000412 is an error, not a lost race; S3's
    PreconditionFailed (HTTP 412) is a lost race whatever its message says."""
    import errno

    from botocore.exceptions import ClientError
    from s3fs.errors import translate_boto_error

    location, options = _s3_location(moto_s3)
    store = alphazoo.ObjectStore(location, storage_options=options)
    key = "spy/gbdt/_registry/history/production/000412.json"
    assert store.create_bytes(key, b"{}") and not store.create_bytes(key, b"{}")  # real S3 412
    fs = store._backend.fs  # type: ignore[attr-defined]

    def reset(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ECONNRESET, f"connection reset writing {args[0]} (412 bytes sent)")

    monkeypatch.setattr(fs, "pipe_file", reset)
    with pytest.raises(OSError, match="connection reset"):
        store.create_bytes(key.replace("000412", "000413"), b"{}")
    refused = ClientError({"Error": {"Code": "PreconditionFailed", "Message": "At least one "
                                     "of the pre-conditions you specified did not hold"},
                           "ResponseMetadata": {"HTTPStatusCode": 412}}, "PutObject")

    def precondition(*args: Any, **kwargs: Any) -> None:
        raise translate_boto_error(refused)  # s3fs's OSError(EINVAL) caused by ClientError

    monkeypatch.setattr(fs, "pipe_file", precondition)
    assert not store.create_bytes(key.replace("000412", "000414"), b"{}")


@pytest.mark.s3
@pytest.mark.slow
def test_two_processes_racing_on_s3(moto_s3: Any) -> None:
    location, options = _s3_location(moto_s3)
    _race(location, options)


# -- retention ---------------------------------------------------------------------------------

def test_prune_is_a_dry_run_by_default_and_spares_aliased_versions(
        registry: ModelRegistry) -> None:
    from alphazoo.training.model_versions import write_latest

    store = registry.store
    _fill(store, "spy/gbdt", 10)
    write_latest(store, "spy/gbdt", 10)
    registry.promote("spy/gbdt", 2, "production")
    registry.promote("spy/gbdt", 4, "production")
    registry.rollback("spy/gbdt", "production")  # production -> v2; v4 stays in its history
    registry.promote("spy/gbdt", 6, "staging")
    registry.pin("spy/gbdt", 4, note="rollback target")  # kept though no alias points at it
    report = registry.prune("spy/gbdt", keep=2)
    assert report["dry_run"] and report["deleted"] == [1, 3, 5, 7, 8]
    assert report["protected"][2] == ["production points at it"]
    assert report["protected"][4] == ["pinned"]
    assert len(store.list_folder("spy/gbdt")) == 11  # ten versions and latest.json: untouched
    done = registry.prune("spy/gbdt", keep=2, dry_run=False)
    assert done["deleted"] == [1, 3, 5, 7, 8] and done["kept"] == [2, 4, 6, 9, 10]
    assert [row["version"] for row in registry.versions("spy/gbdt", facts=False)] == \
        [2, 4, 6, 9, 10]
    assert registry.resolve("spy/gbdt@production") == "spy/gbdt/v000002"
    assert store.usage() == store.usage(recount=False)  # deletions were counted
    with pytest.raises(ValueError):
        registry.prune("spy/gbdt", keep=-1)
    with pytest.raises(alphazoo.RegistryUsageError, match="from 0 up"):
        registry.prune("spy/gbdt", keep=-1)


def test_prune_can_delete_what_history_names_unless_pinned(registry: ModelRegistry) -> None:
    """A retrain loop promoting every version (promote_to=) must not make every one of them
    unprunable: only current targets, the newest N and pinned versions are kept."""
    store = registry.store
    _fill(store, "spy/gbdt", 8)
    for version in range(1, 9):
        registry.promote("spy/gbdt", version, "production", pin=version == 3)
    assert registry.pins("spy/gbdt") == [3]
    done = registry.prune("spy/gbdt", keep=1, dry_run=False)
    assert done["deleted"] == [1, 2, 4, 5, 6, 7] and done["kept"] == [3, 8]
    with pytest.raises(AliasNotFoundError, match="v7, which is no longer stored"):
        registry.rollback("spy/gbdt", "production")  # its target was pruned
    assert registry.target("spy/gbdt", "production") == 8  # the refused rollback moved nothing
    assert registry.unpin("spy/gbdt", "v3") and not registry.unpin("spy/gbdt", 3)
    assert registry.prune("spy/gbdt", keep=1)["deleted"] == [3]


def test_prune_reads_the_aliases_once_whatever_it_deletes(tmp_path: Path) -> None:
    class Counting(alphazoo.ObjectStore):
        listings: list[str] = []

        def list_folder(self, folder: str) -> list[str]:
            self.listings.append(folder)
            return super().list_folder(folder)

    store = Counting(tmp_path / "store")
    _fill(store, "spy/gbdt", 30)
    registry = ModelRegistry(store)
    registry.promote("spy/gbdt", 30, "production")
    assert registry.prune("spy/gbdt", keep=1, dry_run=False)["deleted"] == list(range(1, 30))
    assert store.listings.count("spy/gbdt/_registry/aliases") == 1


def test_resolve_completes_a_move_a_crashed_mover_left_half_done(
        registry: ModelRegistry) -> None:
    registry.promote("spy/gbdt", 1, "production")
    # A mover created history entry 2 and died before writing the head.
    entry = {"format": "alphazoo-alias/1", "name": "spy/gbdt", "alias": "production",
             "seq": 2, "action": "promote", "from": 1, "to": 3, "back": 1,
             "when": "2026-01-01T00:00:00+00:00", "who": "crashed", "note": None}
    assert registry.store.create_bytes("spy/gbdt/_registry/history/production/000002.json",
                                       json.dumps(entry).encode())
    assert registry.target("spy/gbdt", "production") == 1  # a poll: one read, the old head
    assert registry.resolve("spy/gbdt@production") == "spy/gbdt/v000003"  # a load: repaired
    assert registry.target("spy/gbdt", "production") == 3  # the head was walked forward


def test_a_slow_mover_never_writes_a_superseded_head(tmp_path: Path) -> None:
    """Mover A created entry 2; before A writes its head, mover B created entry 3. A must go
    straight to entry 3, never set the head to entry 2 (a poll then would serve v2)."""
    heads: list[int] = []

    class Racing(alphazoo.ObjectStore):
        def create_bytes(self, key: str, data: bytes) -> bool:
            created = super().create_bytes(key, data)
            if created and key.endswith("/000002.json"):  # B sneaks in after A's create
                later = dict(json.loads(data), seq=3, to=4, back=2)
                super().create_bytes(key.replace("000002", "000003"),
                                     json.dumps(later).encode())
            return created

        def save_json(self, key: str, value: Any, **options: Any) -> Any:
            if key.endswith("aliases/production.json"):
                heads.append(value["seq"])
            return super().save_json(key, value, **options)

    store = Racing(tmp_path / "store")
    _fill(store, "spy/gbdt", 4)
    registry = ModelRegistry(store)
    registry.promote("spy/gbdt", 1, "production")
    registry.promote("spy/gbdt", 2, "production")
    assert heads == [1, 3]  # entry 2 was never the head
    assert registry.target("spy/gbdt", "production") == 4


def test_usage_mistakes_raise_typed_errors_that_say_what_to_do(
        registry: ModelRegistry) -> None:
    from alphazoo.training.model_versions import write_latest

    with pytest.raises(alphazoo.RegistryUsageError, match="from 1 up"):
        registry.resolve("spy/gbdt@v0")
    zoo = alphazoo.Zoo(registry.store, discover=False)
    with pytest.raises(alphazoo.RegistryUsageError, match="from 1 up"):
        zoo.load("spy/gbdt@v0")
    assert registry.promote("spy/gbdt", "v2", "production")["to"] == 2
    assert registry.promote("spy/gbdt", "3", "production")["to"] == 3
    with pytest.raises(alphazoo.RegistryUsageError, match="'two' is no model version"):
        registry.promote("spy/gbdt", "two", "production")
    with pytest.raises(AliasNotFoundError) as missing:
        registry.resolve("spy/gbdt@latest")
    assert "--alias latest" not in str(missing.value) and "latest.json" in str(missing.value)
    write_latest(registry.store, "spy/gbdt", 5)
    assert registry.resolve("spy/gbdt@latest") == "spy/gbdt/v000005"
    with pytest.raises(AliasConflictError) as stale:
        registry.promote("spy/gbdt", 4, "production", expect=5)
    assert "points at v3, not at v5 as expected" in str(stale.value)
    assert "another writer" not in str(stale.value) and not stale.value.raced
    for bad in (lambda: registry.promote("spy/gbdt", 1, ""),
                lambda: registry.resolve("spy/gbdt@")):
        with pytest.raises(alphazoo.InvalidAliasError) as empty:
            bad()
        assert "the alias is empty" in str(empty.value)
        assert "object store key" not in str(empty.value)
        assert isinstance(empty.value, InvalidKeyError)  # what callers caught before


def test_every_public_name_of_the_registry_module_is_in_all() -> None:
    import alphazoo.model_registry as module

    assert {"manifest_facts", "Gate", "parse_version"} <= set(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)


def test_a_folder_store_create_fsyncs_every_folder_it_made(tmp_path: Path,
                                                          monkeypatch: Any) -> None:
    """A power cut after a move must not lose the history folders made for its first entry."""
    import alphazoo.backends as backends

    synced: list[Path] = []
    real = backends._fsync_dir

    def spy(folder: Path) -> None:
        synced.append(Path(folder))
        real(folder)

    monkeypatch.setattr(backends, "_fsync_dir", spy)
    store = alphazoo.ObjectStore(tmp_path / "store")
    assert store.create_bytes("a/b/c/entry.json", b"{}")
    root = Path(tmp_path / "store")
    # the object's folder, then each created folder's parent, child before parent
    assert synced == [root / "a/b/c", root / "a/b", root / "a", root]


# -- gates -------------------------------------------------------------------------------------

@pytest.fixture
def onnx_zoo(tmp_path: Path) -> alphazoo.Zoo:
    """A zoo whose series ``spy/lr`` has two real ONNX versions."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    pytest.importorskip("onnxruntime")
    import numpy as np

    from alphazoo.training.model_versions import save_version

    zoo = alphazoo.Zoo(tmp_path / "store")
    X = np.random.default_rng(0).random((40, 3))
    for scale in (1.0, 2.0):
        save_version(zoo, sklearn.LinearRegression().fit(X, X.sum(axis=1) * scale), "spy/lr",
                     format="onnx", sample=X[:20])
    return zoo


def test_builtin_gates_pass_a_sound_version(onnx_zoo: alphazoo.Zoo) -> None:
    registry = onnx_zoo.registry
    registry.set_gates("spy/lr", "production", ["integrity", "compat", "onnx_parity"])
    assert registry.gates("spy/lr", "production") == ["integrity", "compat", "onnx_parity"]
    registry.promote("spy/lr", 1, "production")
    assert registry.target("spy/lr", "production") == 1


def test_a_refused_promotion_names_the_gate_and_leaves_the_alias(
        onnx_zoo: alphazoo.Zoo) -> None:
    registry = onnx_zoo.registry
    store = onnx_zoo.store
    registry.promote("spy/lr", 1, "production")
    # A damaged candidate: one payload byte flipped.
    data = bytearray(store.read_bytes("spy/lr/v000002"))
    data[-40] ^= 0xFF
    store.save_bytes("spy/lr/v000002", bytes(data))
    with pytest.raises(alphazoo.PromotionRefusedError, match="'integrity'") as refused:
        registry.promote("spy/lr", 2, "production", gates=["integrity"])
    assert refused.value.gate == "integrity" and refused.value.version == 2
    assert registry.target("spy/lr", "production") == 1
    assert len(registry.history("spy/lr", "production")) == 1


def test_user_gates_compare_candidate_and_current(onnx_zoo: alphazoo.Zoo) -> None:
    import numpy as np

    registry = onnx_zoo.registry
    X = np.ones((4, 3))
    seen: list[tuple[int, int | None]] = []

    def not_larger(candidate: Any, current: Any) -> Any:
        seen.append((candidate.version, None if current is None else current.version))
        if current is None:
            return True
        new, old = candidate.load().predict(X).mean(), current.load().predict(X).mean()
        return new <= old or f"mean prediction {new:.2f} above {old:.2f}"

    registry.set_gates("spy/lr", "production", [not_larger])
    registry.promote("spy/lr", 1, "production")
    with pytest.raises(alphazoo.PromotionRefusedError, match="not_larger.*mean prediction"):
        registry.promote("spy/lr", 2, "production")
    assert seen == [(1, None), (2, 1)]
    assert registry.target("spy/lr", "production") == 1
    # An exception in a gate refuses too; gates=[] skips the alias's gates deliberately.
    with pytest.raises(alphazoo.PromotionRefusedError, match="ZeroDivisionError"):
        registry.promote("spy/lr", 2, "production", gates=[lambda new, old: 1 / 0])
    registry.promote("spy/lr", 2, "production", gates=[])
    assert registry.target("spy/lr", "production") == 2
    registry.set_gates("spy/lr", "production", [])
    assert registry.gates("spy/lr", "production") == []
    with pytest.raises(ValueError, match="unknown gate"):
        registry.set_gates("spy/lr", "production", ["nope"])


def test_the_onnx_parity_gate_refuses_a_bundle_without_a_parity_record(
        onnx_zoo: alphazoo.Zoo) -> None:
    from alphazoo.registry_gates import Candidate, run_gates

    manifest = onnx_zoo.inspect("spy/lr@v1")
    assert manifest["adapter_data"]["parity"]["rows"] == 20
    candidate = Candidate(onnx_zoo.store, onnx_zoo, "spy/lr", 1)
    candidate._manifest = {**manifest, "adapter_data": {}}
    from alphazoo.registry_gates import BUILTIN_GATES

    assert "no ONNX parity check" in BUILTIN_GATES["onnx_parity"](candidate, None)
    run_gates(onnx_zoo.store, onnx_zoo, ["onnx_parity"], "spy/lr", "production", 1, None)


@pytest.mark.slow
def test_readme_registry_example_runs(tmp_path: Path) -> None:
    import ast
    import re
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    example = next(block for block in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
                   if "zoo.registry" in block)
    result = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, text=True,
                            capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "{'latest': 3, 'production': 1}"
    assert [pair[:2] for pair in ast.literal_eval(lines[1])] == [(None, 1), (1, 3), (3, 1)]
    assert "'deleted': [2]" in lines[2]


def test_a_damaged_record_is_a_typed_error(registry: ModelRegistry) -> None:
    registry.promote("spy/gbdt", 1, "production")
    head = "spy/gbdt/_registry/aliases/production.json"
    for damage in (b"not json", b"[1, 2]", b'{"seq": 1, "to": "one", "back": 0}'):
        registry.store.save_bytes(head, damage)
        with pytest.raises(alphazoo.RegistryRecordError, match="production.json"):
            registry.target("spy/gbdt", "production")
        with pytest.raises(alphazoo.RegistryRecordError):
            registry.resolve("spy/gbdt@production")
    registry.store.save_bytes("spy/gbdt/latest.json", b'{"key": "x"}')
    with pytest.raises(alphazoo.RegistryRecordError, match="latest.json"):
        registry.target("spy/gbdt", "latest")


def test_builtin_gates_are_kept_in_the_store_for_every_process(
        onnx_zoo: alphazoo.Zoo) -> None:
    def never(candidate: Any, current: Any) -> bool:
        return False

    onnx_zoo.registry.set_gates("spy/lr", "production", ["integrity", never])
    other = ModelRegistry(alphazoo.ObjectStore(onnx_zoo.store.url))  # another process's view
    assert other.gates("spy/lr", "production") == ["integrity"]  # callables stay in-process
    assert onnx_zoo.registry.gates("spy/lr", "production") == ["integrity", never]
    store = other.store
    data = bytearray(store.read_bytes("spy/lr/v000002"))
    data[-40] ^= 0xFF
    store.save_bytes("spy/lr/v000002", bytes(data))
    with pytest.raises(alphazoo.PromotionRefusedError, match="'integrity'"):
        other.promote("spy/lr", 2, "production")
    other.promote("spy/lr", 1, "production")  # integrity passes; `never` is not this one's
    with pytest.raises(alphazoo.PromotionRefusedError, match="'never'"):
        onnx_zoo.registry.promote("spy/lr", 1, "production")
    other.set_gates("spy/lr", "production", [])
    assert other.gates("spy/lr", "production") == []
    store.save_json("spy/lr/_registry/gates/production.json", {"gates": ["rm -rf"]})
    with pytest.raises(alphazoo.RegistryRecordError):
        other.gates("spy/lr", "production")


def test_exclusive_create_and_folder_listing_on_every_backend(
        object_store: alphazoo.ObjectStore) -> None:
    store = object_store
    store.save_bytes("series/v000001", b"one")
    store.save_bytes("series/sub/deeper", b"below")
    assert store.create_bytes("series/entry.json", b"first")
    assert not store.create_bytes("series/entry.json", b"second")
    assert store.read_bytes("series/entry.json") == b"first"
    assert store.list_folder("series") == ["series/entry.json", "series/v000001"]
    assert store.list_folder("series/sub") == ["series/sub/deeper"]
    assert store.list_folder("elsewhere") == []
    with pytest.raises(alphazoo.KeyConflictError):
        store.create_bytes("series/v000001/inside", b"x")  # an object is no folder
    assert store.usage() == store.usage(recount=False)


def test_readers_polling_an_alias_see_only_promoted_versions(registry: ModelRegistry) -> None:
    registry.promote("spy/gbdt", 1, "production")
    stop = threading.Event()
    seen: list[int | None] = []
    failures: list[BaseException] = []

    def poll() -> None:
        while not stop.is_set():
            try:
                seen.append(registry.target("spy/gbdt", "production"))
                key = registry.resolve("spy/gbdt@production")
                assert registry.store.contains_key(key)
            except BaseException as exc:  # reported below, with what was seen
                failures.append(exc)
                return

    readers = [threading.Thread(target=poll) for _ in range(3)]
    for reader in readers:
        reader.start()
    try:
        for move in range(60):
            registry.promote("spy/gbdt", 2 + move % 4, "production")
            if move % 5 == 4:
                registry.rollback("spy/gbdt", "production")
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert not failures, failures[0]
    assert len(seen) > 10 and set(seen) <= {1, 2, 3, 4, 5}  # never None, never garbage
    assert len(registry.history("spy/gbdt", "production")) == 1 + 60 + 12
