"""Which plugin owns a model: decided from the classes plugins declare in
``alphazoo_model_types`` before any plugin's train, predict or save code runs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from alphazoo import PluginConflictError, SavedPayload, SaveRequest, Zoo, hookimpl

HERE = __name__


class Base:
    """A model class of an imaginary library."""

    def fit(self, X: Any, y: Any = None) -> Base:
        self.fitted_by = "fit"
        return self


class Sub(Base):
    """A subclass another imaginary library owns."""


class Recorder:
    """A plugin declaring ``classes`` that records which of its hooks ran."""

    def __init__(self, name: str, classes: list[str], answer: bool = True) -> None:
        self.__name__ = name
        self.classes = classes
        self.answer = answer
        self.calls: list[str] = []

    @hookimpl
    def alphazoo_model_types(self) -> list[str]:
        return self.classes

    @hookimpl
    def alphazoo_train(self, model: Any, X: Any, y: Any, params: dict[str, Any]) -> Any:
        self.calls.append("train")
        if self.answer:
            model.fitted_by = self.__name__
            return model
        return None

    @hookimpl
    def alphazoo_predict(self, model: Any, X: Any) -> Any:
        self.calls.append("predict")
        return [self.__name__] if self.answer else None

    @hookimpl
    def alphazoo_save(self, request: SaveRequest) -> SavedPayload | None:
        self.calls.append("save")
        if not self.answer:
            return None
        (request.directory / "model.txt").write_text(self.__name__)
        return SavedPayload(self.__name__, "txt", ["model.txt"], type(request.model).__name__)


@pytest.mark.parametrize("order", ["base-first", "sub-first"])
def test_most_specific_declared_class_owns_the_model(order: str, tmp_path: Path) -> None:
    base = Recorder("base-lib", [f"{HERE}.Base"])
    sub = Recorder("sub-lib", [f"{HERE}.Sub"])
    plugins = [base, sub] if order == "base-first" else [sub, base]
    zoo = Zoo(tmp_path, plugins=plugins, discover=False)
    assert zoo.owner_of(Sub()) == "sub-lib"
    assert zoo.owner_of(Base()) == "base-lib"
    assert zoo.owner_of(object()) is None
    model = zoo.train(Sub(), [[1.0]], [1.0])
    assert model.fitted_by == "sub-lib"
    assert zoo.predict(model, [[1.0]]) == ["sub-lib"]
    assert zoo.save(model, "m")["adapter"] == "sub-lib"
    # Only the owner's hooks ran: the base class's plugin was never asked.
    assert sub.calls == ["train", "predict", "save"] and base.calls == []


def test_two_plugins_declaring_one_class_is_an_error_naming_both() -> None:
    zoo = Zoo(plugins=[Recorder("one", [f"{HERE}.Base"]), Recorder("two", [f"{HERE}:Base"])],
              discover=False)
    with pytest.raises(PluginConflictError) as caught:
        zoo.owner_of(Sub())
    message = str(caught.value)
    assert "'one'" in message and "'two'" in message and f"{HERE}.Base" in message
    assert sorted(caught.value.plugins) == ["one", "two"]


def test_declared_classes_are_never_imported() -> None:
    absent = "alphazoo_test_never_imported_library"
    zoo = Zoo(plugins=[Recorder("absent", [f"{absent}.Model"])], discover=False)
    assert zoo.owner_of(Base()) is None
    assert absent not in sys.modules


def test_owner_answering_none_falls_back_to_the_hosts_fit() -> None:
    lazy = Recorder("lazy", [f"{HERE}.Base"], answer=False)
    other = Recorder("other", [])  # declares nothing: the fallback chain, not for Base models
    zoo = Zoo(plugins=[lazy, other], discover=False)
    model = zoo.train(Base(), [[1.0]], [1.0])
    assert model.fitted_by == "fit"
    assert lazy.calls == ["train"] and other.calls == []


def test_undeclaring_plugins_are_asked_for_undeclared_models() -> None:
    declared = Recorder("declared", [f"{HERE}.Sub"])
    legacy = Recorder("legacy", [])
    zoo = Zoo(plugins=[declared, legacy], discover=False)
    assert zoo.train(Base(), [[1.0]], [1.0]).fitted_by == "legacy"
    assert legacy.calls == ["train"] and declared.calls == []


def test_xgboost_regressor_is_owned_by_the_xgboost_declaration() -> None:
    xgboost = pytest.importorskip("xgboost")
    from sklearn.linear_model import LinearRegression

    sk = Recorder("sk", ["sklearn.base.BaseEstimator"])
    xgb = Recorder("xgb", ["xgboost.sklearn.XGBModel"])
    for plugins in ([sk, xgb], [xgb, sk]):
        zoo = Zoo(plugins=plugins, discover=False)
        assert zoo.owner_of(xgboost.XGBRegressor()) == "xgb"
        assert zoo.owner_of(LinearRegression()) == "sk"


def test_installed_adapters_own_their_models() -> None:
    xgboost = pytest.importorskip("xgboost")
    from sklearn.linear_model import LinearRegression

    zoo = Zoo()
    if zoo.owner_of(LinearRegression()) is None:
        pytest.skip("the built-in adapters do not declare alphazoo_model_types yet")
    assert zoo.owner_of(xgboost.XGBRegressor()) == "xgboost"
    assert zoo.owner_of(LinearRegression()) == "sklearn"


# -- a plugin that raises inside a hook ----------------------------------------------------------
class MissingLibraryPlugin:
    """Imports its library inside the hook, as the README invites, but the library is missing."""

    __name__ = "mylib"

    @hookimpl
    def alphazoo_save(self, request: SaveRequest) -> SavedPayload | None:
        import mylib_missing  # type: ignore[import-not-found]  # noqa: F401

        return None


def sklearn_declaring_its_classes() -> Any:
    """alphazoo's real scikit-learn adapter, declaring the class it owns, as the built-in
    adapters do once they implement ``alphazoo_model_types``."""
    import types

    from alphazoo.adapters import sklearn as adapter

    hooks = {name: value for name, value in vars(adapter).items() if name.startswith("alphazoo_")}
    plugin = types.ModuleType("sklearn")
    vars(plugin).update(hooks)
    plugin.alphazoo_model_types = hookimpl(lambda: ["sklearn.base.BaseEstimator"])
    return plugin


@pytest.mark.parametrize("broken_first", [True, False])
def test_a_broken_plugin_does_not_break_another_adapters_model(broken_first: bool,
                                                               tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    plugins = [MissingLibraryPlugin(), sklearn_declaring_its_classes()]
    zoo = Zoo(tmp_path, plugins=plugins if broken_first else plugins[::-1], discover=False)
    model = zoo.train(LinearRegression(), [[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
    assert zoo.save(model, "lr")["adapter"] == "sklearn"
    assert zoo.load("lr").predict([[3.0]])[0] == pytest.approx(3.0)


@pytest.mark.parametrize("registration", ["after-discovery", "before-hmmlearn",
                                          "after-hmmlearn"])
def test_a_broken_plugin_does_not_break_a_builtin_adapters_model(registration: str,
                                                                 tmp_path: Path) -> None:
    from alphazoo.adapters import hmmlearn

    broken = MissingLibraryPlugin()
    if registration == "after-discovery":
        zoo = Zoo(tmp_path, plugins=[broken])
    else:
        plugins = [broken, hmmlearn] if registration == "before-hmmlearn" else [hmmlearn, broken]
        zoo = Zoo(tmp_path, plugins=plugins, discover=False)
    model = zoo.build("gaussian_hmm", n_components=2, n_iter=5)
    if zoo.owner_of(model) is None:
        pytest.skip("the built-in adapters do not declare alphazoo_model_types yet")
    import numpy as np

    model = zoo.train(model, np.random.default_rng(0).normal(size=(60, 1)))
    assert zoo.save(model, "hmm")["adapter"] == "hmmlearn"


def test_a_broken_plugins_error_names_the_plugin_and_hook(tmp_path: Path) -> None:
    from alphazoo import PluginHookError, UnsupportedModelError

    zoo = Zoo(tmp_path, plugins=[MissingLibraryPlugin()])
    with pytest.raises(PluginHookError) as caught:
        zoo.save(object(), "thing")
    error = caught.value
    assert (error.plugin, error.hook) == ("mylib", "alphazoo_save")
    assert "'mylib'" in str(error) and "alphazoo_save" in str(error)
    assert "ALPHAZOO_DISABLE_PLUGINS=mylib" in str(error)
    assert isinstance(error.__cause__, ModuleNotFoundError)
    assert error.__cause__.name == "mylib_missing"
    # Without the broken plugin the same object gets the usual answer.
    with pytest.raises(UnsupportedModelError):
        Zoo(tmp_path).save(object(), "thing")


def test_resolving_a_declared_class_runs_no_lazy_module_getattr(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from alphazoo.ownership import resolve_class

    asked: list[str] = []
    lazy = types.ModuleType("alphazoo_test_lazy")

    def lazy_getattr(name: str) -> Any:  # as scikit-learn's imports a submodule on demand
        asked.append(name)
        raise AttributeError(name)

    lazy.__getattr__ = lazy_getattr  # type: ignore[method-assign]
    lazy.Base = Base  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "alphazoo_test_lazy", lazy)
    assert resolve_class("alphazoo_test_lazy.sub.Thing") is None
    assert resolve_class("alphazoo_test_lazy.Base") is Base
    assert resolve_class(f"{HERE}.Sub") is Sub and resolve_class(f"{HERE}:Sub") is Sub
    assert asked == []


def test_a_declared_class_is_found_once_its_library_is_imported(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    zoo = Zoo(plugins=[Recorder("late-lib", ["alphazoo_test_late.Late"])], discover=False)
    assert zoo.owner_of(Base()) is None  # the table is built while the library is absent
    late = types.ModuleType("alphazoo_test_late")
    late.Late = type("Late", (Base,), {"__module__": "alphazoo_test_late"})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "alphazoo_test_late", late)
    assert zoo.owner_of(late.Late()) == "late-lib"
    assert zoo.owner_of(Base()) is None
