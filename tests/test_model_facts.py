"""Facts about a model (its zoo model, parameters, training) travel with the model object, not
with the Zoo that recorded them."""

from __future__ import annotations

import gc
import json
import weakref
from pathlib import Path

from _child import run_python

from alphazoo import ObjectStore, Zoo, model_facts


class Model:
    """A plain model object; equal to every other, as some libraries' objects are."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model)

    __hash__ = None  # type: ignore[assignment]  # unhashable, as equal-comparing objects are


class Slotted:
    """An object that cannot be weakly referenced."""

    __slots__ = ("value",)


def test_facts_die_with_their_model() -> None:
    model = Model()
    gc.collect()  # models earlier tests left in reference cycles must not die mid-count
    before = model_facts.tracked()
    assert model_facts.record(model, zoo_model="m", params={"a": 1})
    assert model_facts.facts_of(model) == {"zoo_model": "m", "params": {"a": 1}}
    assert model_facts.tracked() == before + 1
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None
    assert model_facts.tracked() == before


def test_equal_models_keep_their_own_facts() -> None:
    first, second = Model(), Model()
    model_facts.record(first, zoo_model="first")
    assert model_facts.facts_of(second) == {}
    model_facts.record(second, zoo_model="second")
    assert model_facts.facts_of(first)["zoo_model"] == "first"


def test_objects_without_weak_references_get_no_facts() -> None:
    thing = Slotted()
    assert model_facts.record(thing, zoo_model="slotted") is False
    assert model_facts.facts_of(thing) == {}


def test_a_model_built_by_one_zoo_keeps_its_facts_in_another(tmp_path: Path) -> None:
    builder_zoo = Zoo(tmp_path / "a")
    model = builder_zoo.train(builder_zoo.build("random_forest", n_estimators=3),
                              [[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
    manifest = Zoo(ObjectStore(tmp_path / "b")).save(model, "rf")
    assert manifest["name"] == "random_forest" and manifest["params"] == {"n_estimators": 3}
    assert manifest["training"]["rows"] == 3


def test_zoo_built_torch_module_saved_by_another_zoo_reloads_by_itself(tmp_path: Path) -> None:
    model = Zoo().build("torch_mlp", in_features=6, out_features=2)
    manifest = Zoo(store=ObjectStore(tmp_path)).save(model, "mlp")
    assert manifest["name"] == "torch_mlp"
    code = f"""
import json
from alphazoo import ObjectStore, Zoo
model = Zoo(store=ObjectStore({str(tmp_path)!r})).load("mlp")
print(json.dumps([type(model).__name__, sum(p.numel() for p in model.parameters())]))
"""
    result = run_python(code, cwd=tmp_path)
    name, size = json.loads(result.stdout.strip().splitlines()[-1])
    assert size == sum(p.numel() for p in model.parameters()) and name == type(model).__name__
