"""The plugin host: discovery through real entry points, blocking, broken plugins, the
register hook and decorator, isolated hosts, and the promise that nothing heavy is imported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from _child import HANG_TIMEOUT

import alphazoo
from alphazoo import FormatSpec, ModelNotFoundError, SavedPayload, UnsupportedModelError, Zoo

HEAVY = ("torch", "tensorflow", "keras", "sklearn", "xgboost", "hmmlearn", "lightgbm", "catboost",
         "onnxruntime", "skops", "stable_baselines3", "gymnasium")
EXAMPLE_DIST = Path(__file__).parent / "plugins" / "alphazoo-example"


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plugin distribution, built and installed with pip into its own folder."""
    source = tmp_path_factory.mktemp("example-src") / "alphazoo-example"
    shutil.copytree(EXAMPLE_DIST, source)  # building in place would litter the repository
    site = tmp_path_factory.mktemp("example-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(source)],
        check=True, capture_output=True, text=True,
    )
    assert list(site.glob("alphazoo_example-0.3.1.dist-info")), "pip did not install the dist"
    return site


def run_python(
    code: str, site: Path | None = None, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -c code *args`` in a fresh interpreter, with ``site`` on its path."""
    environment = {**os.environ, **env}
    if site is not None:
        paths = [str(site), environment.get("PYTHONPATH")]
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=environment, timeout=HANG_TIMEOUT)


def run_alphazoo(
    args: list[str], site: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """The ``alphazoo`` command line in a fresh interpreter, with ``site`` on its path."""
    main = "import sys; from alphazoo.cli import main; sys.exit(main(sys.argv[1:]))"
    return run_python(main, site, *args, **env)


# -- discovery through entry points --------------------------------------------------------------
@pytest.mark.slow
def test_installed_plugin_is_discovered_and_broken_one_is_reported(example_site: Path) -> None:
    result = run_alphazoo(["plugins", "--json"], example_site)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    example = rows["example"]
    assert example["status"] == "loaded"
    assert (example["distribution"], example["version"]) == ("alphazoo-example", "0.3.1")
    assert "alphazoo_save" in example["hooks"] and "alphazoo_register_models" in example["hooks"]
    assert example["requires"][0]["name"] == "alphazoo" and example["requires"][0]["ok"] is True
    broken = rows["broken"]
    assert broken["status"] == "failed"
    assert "alphazoo_example_missing_dependency" in broken["error"]
    assert rows["sklearn"]["status"] == "loaded"  # one broken plugin does not stop the others
    # One readable line for the shell user, pointing at `alphazoo plugins`: not Python's
    # warning with alphazoo's file, line number and source text.
    lines = [line for line in result.stderr.splitlines() if "'broken'" in line]
    assert len(lines) == 1 and "failed to load" in lines[0], result.stderr
    assert "alphazoo plugins" in lines[0] and "alphazoo_example_missing_dependency" in lines[0]
    assert "PluginLoadWarning" not in result.stderr and ".py:" not in result.stderr


@pytest.mark.slow
def test_plugin_whose_library_is_missing_is_not_called_loaded(example_site: Path) -> None:
    result = run_alphazoo(["plugins", "--json"], example_site)
    assert result.returncode == 0, result.stderr
    row = {row["name"]: row for row in json.loads(result.stdout)}["needs_library"]
    assert row["status"] == "library missing"
    assert row["install"] == row["error"] == "pip install alphazoo-example-absent-library"
    table = run_alphazoo(["plugins"], example_site, COLUMNS="200")
    line = next(line for line in table.stdout.splitlines() if "needs_library" in line)
    assert "library missing" in line and "loaded" not in line


def test_install_hint_names_alphazoos_own_extra() -> None:
    from alphazoo.discovery import PluginInfo, settle_status

    # alphazoo's hmmlearn adapter on a machine without its library: the row as discovery
    # makes it, with a requirement that is surely absent standing in for hmmlearn.
    row = PluginInfo("hmmlearn", "alphazoo", "0", "alphazoo.adapters.hmmlearn", "loaded",
                     requires=["hmmlearn-absent-for-this-test>=0.3"])
    settle_status(row)
    assert row.status == "library missing"
    assert row.install == "pip install hmmlearn-absent-for-this-test"
    row = PluginInfo("sklearn", "alphazoo", "0", "alphazoo.adapters.sklearn", "loaded",
                     requires=["scikit-learn>=1.5", "onnxruntime-absent>=1"])
    settle_status(row)
    assert row.status == "loaded" and "onnxruntime-absent" in row.error
    # What a user without hmmlearn, or without the ONNX tools, is told to run: the extra.
    from alphazoo.discovery import _install_command

    hmm = PluginInfo("hmmlearn", "alphazoo", "0", "alphazoo.adapters.hmmlearn", "loaded")
    assert _install_command(hmm, ["hmmlearn"]) == 'pip install "alphazoo[hmmlearn]"'
    sklearn = PluginInfo("sklearn", "alphazoo", "0", "alphazoo.adapters.sklearn", "loaded")
    assert _install_command(sklearn, ["skl2onnx", "onnxruntime"]) == \
        'pip install "alphazoo[onnx]"'


@pytest.mark.slow
def test_later_errors_name_the_plugin_that_failed(example_site: Path, tmp_path: Path) -> None:
    saved = run_python(f"""
import warnings; warnings.simplefilter("ignore")
from alphazoo import Zoo
zoo = Zoo({str(tmp_path)!r})
zoo.save(zoo.train(zoo.build("example_mean"), [[1]], [1.0]), "m")
""", example_site)
    assert saved.returncode == 0, saved.stderr
    # The adapter's plugin is installed but blocked: the error says so by name.
    blocked = run_python(f"""
import warnings; warnings.simplefilter("ignore")
from alphazoo import Zoo
Zoo({str(tmp_path)!r}).load("m")
""", example_site, ALPHAZOO_DISABLE_PLUGINS="example")
    assert blocked.returncode == 1
    assert "install or enable the 'example' adapter" in blocked.stderr
    assert "plugin 'example' is blocked" in blocked.stderr
    # A model nobody registered: the broken plugin may be the one that would have.
    unknown = run_python("""
import warnings; warnings.simplefilter("ignore")
from alphazoo import Zoo
Zoo().build("mean_forecast")
""", example_site)
    assert "ModelNotFoundError" in unknown.stderr
    assert "plugin 'broken' is installed but failed to load" in unknown.stderr


@pytest.mark.slow
def test_third_party_adapter_round_trip(example_site: Path, tmp_path: Path) -> None:
    code = f"""
import warnings; warnings.simplefilter("ignore")
from alphazoo import Zoo
zoo = Zoo({str(tmp_path)!r})
model = zoo.train(zoo.build("example_mean", scale=2.0), [[1], [2], [3]], [1.0, 2.0, 6.0])
manifest = zoo.save(model, "third/party")
loaded = Zoo({str(tmp_path)!r}).load("third/party")
print(manifest["adapter"], manifest["format"], manifest["name"], loaded.predict([[0], [0]]))
"""
    result = run_python(code, example_site)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["example", "mean-json", "example_mean", "[6.0,", "6.0]"]


@pytest.mark.slow
def test_models_command_lists_plugin_models(example_site: Path) -> None:
    result = run_alphazoo(["models", "--json"], example_site)
    assert result.returncode == 0, result.stderr
    models = {row["name"]: row for row in json.loads(result.stdout)}
    assert models["example_mean"]["plugin"] == "example"
    assert {"random_forest", "svm", "gradient_boosting", "logistic_regression"} <= set(models)


@pytest.mark.slow
def test_disabled_plugins_are_blocked(example_site: Path) -> None:
    result = run_alphazoo(["plugins", "--json"], example_site,
                          ALPHAZOO_DISABLE_PLUGINS="example, sklearn")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["example"]["status"] == "blocked" and rows["example"]["hooks"] == []
    assert rows["sklearn"]["status"] == "blocked"
    models = run_alphazoo(["models", "--json"], example_site,
                          ALPHAZOO_DISABLE_PLUGINS="example,sklearn")
    names = {row["name"] for row in json.loads(models.stdout)}
    assert names.isdisjoint({"random_forest", "svm", "gradient_boosting", "logistic_regression"})
    assert not any(row["plugin"] in ("example", "sklearn") for row in json.loads(models.stdout))


@pytest.mark.slow
@pytest.mark.parametrize("work", [
    "zoo = alphazoo.Zoo(); zoo.plugins(); zoo.models(); zoo.formats()",
    "from alphazoo.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()): main(['plugins'])",
], ids=["discovery", "plugins-command"])
def test_discovery_imports_no_ml_framework(work: str) -> None:
    code = (
        "import sys, json, contextlib, io, alphazoo\n"
        f"{work}\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


# -- in-process hosts ----------------------------------------------------------------------------
class Doubler:
    """A user model with scikit-learn style fit/predict and no adapter."""

    def fit(self, X, y):
        self.factor_ = 2.0
        return self

    def predict(self, X):
        return [x[0] * self.factor_ for x in X]


class DoublerPlugin:
    """An in-process plugin object (what a test or a notebook would register)."""

    @alphazoo.hookimpl
    def alphazoo_register_models(self, register):
        register("doubler", Doubler, library="tests")

    @alphazoo.hookimpl
    def alphazoo_formats(self):
        return [FormatSpec("doubler-json", "doubler", True, "nothing to store", True)]

    @alphazoo.hookimpl
    def alphazoo_save(self, request):
        if not isinstance(request.model, Doubler):
            return None
        (request.directory / "state.json").write_text(json.dumps({"factor": request.model.factor_}))
        return SavedPayload("doubler", "doubler-json", ["state.json"], "tests.Doubler")

    @alphazoo.hookimpl
    def alphazoo_load(self, request):
        if request.manifest["adapter"] != "doubler":
            return None
        model = Doubler()
        model.factor_ = json.loads(request.files["state.json"].read_text())["factor"]
        return model


def test_isolated_host_has_only_given_plugins(tmp_path: Path) -> None:
    zoo = Zoo(alphazoo.ObjectStore(tmp_path), plugins=[DoublerPlugin()], discover=False)
    assert [spec.name for spec in zoo.models()] == ["doubler"]
    assert [row.status for row in zoo.plugins()] == ["builtin", "loaded"]
    model = zoo.train(zoo.build("doubler"), [[1.0], [2.0]], [0, 0])
    manifest = zoo.save(model, "user/doubler")
    assert manifest["name"] == "doubler" and manifest["training"]["rows"] == 2
    assert zoo.load("user/doubler").predict([[3.0]]) == [6.0]
    assert zoo.predict(model, [[4.0]]) == [8.0]


def test_model_without_adapter_trains_but_cannot_be_saved(tmp_path: Path) -> None:
    zoo = Zoo(alphazoo.ObjectStore(tmp_path), discover=False)
    model = zoo.train(Doubler(), [[1.0]], [1.0])  # the host's fallback calls fit()
    assert zoo.predict(model, [[2.0]]) == [4.0]
    with pytest.raises(UnsupportedModelError, match="no loaded adapter handles .*Doubler"):
        zoo.save(model, "user/nope")
    assert not zoo.store.contains_key("user/nope")


def test_register_model_decorator_is_seen_by_existing_hosts() -> None:
    zoo = Zoo(discover=False)
    assert zoo.models() == []

    @alphazoo.register_model("tmp_linear", library="tests")
    def tmp_linear(slope: float = 1.0):
        """A decorated builder."""
        return ("linear", slope)

    try:
        spec = {s.name: s for s in zoo.models()}["tmp_linear"]
        assert spec.description == "A decorated builder." and spec.plugin == "@register_model"
        assert zoo.build("tmp_linear", slope=3.0) == ("linear", 3.0)
    finally:
        assert alphazoo.unregister_model("tmp_linear")
    with pytest.raises(ModelNotFoundError, match="no zoo model named 'tmp_linear'"):
        zoo.build("tmp_linear")


def test_register_rejects_bad_names() -> None:
    with pytest.raises(ValueError, match="identifier"):
        alphazoo.register_model("not a name")(lambda: None)


def test_duplicate_model_from_second_plugin_warns_and_keeps_first() -> None:
    class Again(DoublerPlugin):
        pass

    zoo = Zoo(plugins=[DoublerPlugin(), Again()], discover=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = [spec.name for spec in zoo.models()]
    assert names == ["doubler"]
    assert any("already registered" in str(w.message) for w in caught)


def test_unknown_model_error_lists_known_models() -> None:
    zoo = Zoo(plugins=[DoublerPlugin()], discover=False)
    with pytest.raises(ModelNotFoundError) as info:
        zoo.build("random_forrest")
    assert "doubler" in str(info.value)
    assert isinstance(info.value, KeyError) and isinstance(info.value, alphazoo.AlphazooError)


def test_bundle_from_unavailable_adapter_names_what_is_missing(tmp_path: Path) -> None:
    writer = Zoo(alphazoo.ObjectStore(tmp_path), plugins=[DoublerPlugin()], discover=False)
    writer.save(writer.train(Doubler(), [[1.0]], [1.0]), "m")
    reader = Zoo(alphazoo.ObjectStore(tmp_path), discover=False)
    with pytest.raises(alphazoo.UnsupportedFormatError, match="adapter 'doubler'"):
        reader.load("m")


class RaisingPlugin:
    """Loads fine, then fails inside its hooks, as a plugin with a version clash would."""

    @alphazoo.hookimpl
    def alphazoo_register_models(self, register):
        raise RuntimeError("registry exploded")

    @alphazoo.hookimpl
    def alphazoo_formats(self):
        raise RuntimeError("formats exploded")


def test_plugin_failing_inside_a_hook_is_reported_not_fatal() -> None:
    zoo = Zoo(plugins=[DoublerPlugin(), RaisingPlugin()], discover=False)
    with pytest.warns(alphazoo.PluginLoadWarning, match="registry exploded"):
        assert [spec.name for spec in zoo.models()] == ["doubler"]
    with pytest.warns(alphazoo.PluginLoadWarning, match="formats exploded"):
        assert [spec.name for spec in zoo.formats()] == ["doubler-json"]
    row = {row.name: row for row in zoo.plugins()}["RaisingPlugin-1"]
    assert row.status == "failed" and "exploded" in row.error


def test_threads_sharing_a_zoo_discover_plugins_once() -> None:
    from concurrent.futures import ThreadPoolExecutor

    zoo = Zoo()
    with ThreadPoolExecutor(8) as pool:
        managers = list(pool.map(lambda _: zoo.pm, range(32)))
    assert all(manager is managers[0] for manager in managers)


class TersePlugin:
    """pluggy lets an implementation take fewer arguments than its spec."""

    @alphazoo.hookimpl
    def alphazoo_register_models(self):
        self.called = True


def test_hook_implementation_with_fewer_arguments_is_called() -> None:
    plugin = TersePlugin()
    zoo = Zoo(plugins=[plugin], discover=False)
    assert zoo.models() == [] and plugin.called
    assert {row.name: row.status for row in zoo.plugins()}["TersePlugin-0"] == "loaded"


class CarelessPlugin(DoublerPlugin):
    """Writes its own format whatever was asked for."""


def test_host_refuses_a_payload_in_another_format_than_requested(tmp_path: Path) -> None:
    zoo = Zoo(alphazoo.ObjectStore(tmp_path), plugins=[CarelessPlugin()], discover=False)
    model = zoo.train(Doubler(), [[1.0]], [1.0])
    with pytest.raises(alphazoo.UnsupportedFormatError, match="'onnx' was asked for.*doubler-json"):
        zoo.save(model, "m", format="onnx")
    assert not zoo.store.contains_key("m")


# -- hook implementations no spec defines --------------------------------------------------------
@pytest.mark.slow
def test_installed_plugin_with_a_misspelt_hook_fails_and_others_load(example_site: Path) -> None:
    result = run_alphazoo(["plugins", "--json"], example_site)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    misspelt = rows["misspelt"]
    assert misspelt["status"] == "failed" and misspelt["hooks"] == []
    assert "'alphazoo_sav'" in misspelt["error"]
    assert "did you mean alphazoo_save?" in misspelt["error"]
    assert rows["example"]["status"] == "loaded" and rows["sklearn"]["status"] == "loaded"


class MisspeltPlugin:
    __name__ = "misspelt"

    @alphazoo.hookimpl
    def alphazoo_formats(self):
        return [FormatSpec("never", "misspelt", True, "never registered", True)]

    @alphazoo.hookimpl
    def alphazoo_predikt(self, model, X):
        return "never called"


class FutureHookPlugin(DoublerPlugin):
    __name__ = "future"

    @alphazoo.hookimpl(optionalhook=True)
    def alphazoo_hook_of_a_later_alphazoo(self):
        return None


def test_plugin_with_an_unknown_hook_is_a_failed_row_and_not_registered() -> None:
    zoo = Zoo(plugins=[MisspeltPlugin(), FutureHookPlugin()], discover=False)
    with pytest.warns(alphazoo.PluginLoadWarning, match="'alphazoo_predikt'"):
        rows = {row.name: row for row in zoo.plugins()}
    assert rows["misspelt"].status == "failed"
    assert "did you mean alphazoo_predict?" in rows["misspelt"].error
    assert zoo.pm.get_plugin("misspelt") is None
    assert "misspelt" not in {spec.adapter for spec in zoo.formats()}
    # An optional hook is a plugin's own business: the plugin loads and works.
    assert rows["future"].status == "loaded"
    assert zoo.predict(zoo.train(zoo.build("doubler"), [[1.0]], [0]), [[2.0]]) == [4.0]


# -- the host's own plugin -----------------------------------------------------------------------
def test_host_plugin_does_not_import_the_host() -> None:
    import ast

    source = Path(alphazoo.host_plugin.__file__).read_text()
    imported = {node.module for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.ImportFrom)}
    assert "host" not in imported and "alphazoo.host" not in imported
    assert alphazoo.host_plugin.HostPlugin is alphazoo.host.HostPlugin


def test_old_builtins_module_still_imports_with_a_deprecation_warning() -> None:
    result = run_python(
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n    import alphazoo.builtins\nexcept DeprecationWarning as w:\n    print(w)\n"
        "warnings.simplefilter('ignore')\n"
        "from alphazoo.builtins import HostPlugin\n"
        "from alphazoo.host_plugin import HostPlugin as New\n"
        "print(HostPlugin is New)"
    )
    assert result.returncode == 0, result.stderr
    warning, same = result.stdout.strip().splitlines()
    assert "alphazoo.host_plugin" in warning and "next release" in warning
    assert same == "True"


class NotingPlugin(DoublerPlugin):
    """Saves doublers with a note for the user, as an adapter reports a lossy export."""

    __name__ = "noting"

    @alphazoo.hookimpl
    def alphazoo_save(self, request):
        payload = super().alphazoo_save(request)
        if payload is not None:
            payload.warnings.append("the factor was rounded")
        return payload


def test_adapter_notes_on_save_are_alphazoo_save_warnings(tmp_path: Path) -> None:
    zoo = Zoo(tmp_path, plugins=[NotingPlugin()], discover=False)
    model = zoo.train(zoo.build("doubler"), [[1.0]], [0])
    with pytest.warns(alphazoo.SaveWarning, match="'noted': the factor was rounded") as caught:
        zoo.save(model, "noted")
    assert issubclass(caught[0].category, alphazoo.AlphazooWarning)
    assert caught[0].filename == __file__  # shown at the caller's line, not inside the host
