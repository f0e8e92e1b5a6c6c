"""``alphazoo demo`` and the walk-forward comparison behind it, run as a user runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli import cli

import alphazoo
from alphazoo.contrib.comparison import compare_models
from alphazoo.contrib.features import load_panel

# Trains real models or starts real processes and servers: deselect with -m 'not slow'.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The full default demo, once: the README's main job."""
    where = tmp_path_factory.mktemp("demo")
    result = cli("demo", "--store", str(where / "store"), "--chart", str(where / "eq.png"),
                 "--json", cwd=where)
    assert result.returncode == 0, result.stderr
    # Strict JSON: NaN or Infinity would break other tools' parsers.
    report = json.loads(result.stdout, parse_constant=_refuse)
    return {"report": report, "dir": where, "stderr": result.stderr}


def test_demo_runs_three_zoo_models_weekly_through_2017(demo) -> None:
    report = demo["report"]
    assert [row["model"] for row in report["models"]] == ["random_forest", "gbdt", "alstm"]
    mondays = pd.date_range("2017-01-01", "2017-12-29", freq="W-MON")
    for row in report["models"]:
        # One retrain per Monday (2 January is the first), every one a stored version.
        assert row["retrains"] == len(row["versions"]) == len(mondays)
        assert row["served_vs_trained"] < 1e-4  # ONNX serves what was trained
        assert row["predict_latency_us"] > 0 and row["train_seconds"] > 0
        for value in ("ic", "rank_ic", "annualised_return", "max_drawdown"):
            assert isinstance(row[value], float)
        equity = pd.Series(row["equity"])
        assert equity.iloc[0] == 1.0 and len(equity) > 240
    assert report["symbols"] == ["AAPL", "COKE", "GOOGL", "TSLA", "YHOO"]
    assert report["benchmark"]["model"] == "equal weight"
    assert "versions saved" in demo["stderr"]  # progress on stderr, JSON alone on stdout


def test_every_version_is_an_onnx_bundle_trained_before_its_week(demo) -> None:
    store = alphazoo.ObjectStore(demo["dir"] / "store")
    zoo = alphazoo.Zoo(store)
    versions = demo["report"]["models"][1]["versions"]  # gbdt
    assert versions[0] == "demo/gbdt/v000001" and versions[-1].endswith(f"{len(versions):06d}")
    previous_end = None
    for key in versions:
        manifest = zoo.inspect(key)
        assert manifest["format"] == "onnx" and manifest["adapter"] == "lightgbm"
        assert manifest["adapter_data"]["contrib"]["model"] == "gbdt"
        end = manifest["metadata"]["training"]["window"]["end"]
        if previous_end is not None:
            assert end > previous_end  # a rolling window moving forward week by week
        previous_end = end
    assert previous_end < "2017-12-29"
    served = zoo.load(versions[-1])
    assert "ONNX, predict only" in repr(served)


def test_demo_writes_a_png_chart(demo) -> None:
    chart = Path(demo["report"]["chart"])
    assert chart == demo["dir"] / "eq.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000


def test_demo_table_for_people(tmp_path: Path) -> None:
    result = cli("demo", "--models", "gbdt", "--store", str(tmp_path / "s"), "--chart", "",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(r"gbdt\s*│\s*-?\d\.\d{3}", result.stdout)
    assert "equal weight" in result.stdout and "Finished in" in result.stdout
    assert not list(tmp_path.glob("*.png"))  # --chart '' draws nothing
    # Off a terminal: a plain log, a line at once and lines that end where their text does.
    log = result.stderr.splitlines()
    assert log[0] == "alphazoo demo: gbdt; building features"
    assert any(line.endswith("gbdt: 52 versions saved; finishing") for line in log), log
    for line in [*log, *result.stdout.splitlines()]:
        assert line == line.rstrip(), repr(line)
    assert max(len(line) for line in result.stdout.splitlines()) <= 140
    assert not (tmp_path / "s").is_file() and (tmp_path / "s").is_dir()  # the demo made it


def _earlier_demo(where: Path) -> alphazoo.ObjectStore:
    store = alphazoo.ObjectStore(where)
    store.save("demo/gbdt/v000001/manifest.json", "{}")  # stands for an earlier run's versions
    return store


def test_demo_refuses_unknown_models(tmp_path: Path) -> None:
    store = _earlier_demo(tmp_path / "store")
    result = cli("demo", "--models", "gbdt,nope", "--store", str(tmp_path / "store"),
                 "--chart", "")
    assert result.returncode == 2  # a usage error, like argparse's own
    assert "nope" in result.stderr and "random_forest" in result.stderr
    assert "Traceback" not in result.stderr
    assert store.keys() == ["demo/gbdt/v000001/manifest.json"]  # a typo deletes nothing


@pytest.mark.parametrize("chart", ["a-file/eq.png", "a-folder"])
def test_demo_refuses_an_unwritable_chart_before_it_runs(tmp_path: Path, chart: str) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "a-folder").mkdir()
    store = _earlier_demo(tmp_path / "store")
    result = cli("demo", "--store", str(tmp_path / "store"), "--chart", str(tmp_path / chart))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "chart" in result.stderr and str(tmp_path / chart.split("/")[0]) in result.stderr
    assert "versions saved" not in result.stderr  # refused before a minute of training
    assert store.keys() == ["demo/gbdt/v000001/manifest.json"]


def test_demo_keeps_its_figures_when_the_chart_cannot_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import errno

    from alphazoo import cli as cli_module
    from alphazoo.contrib import demo as demo_module

    def disk_full(comparison, path):  # a full disk cannot be arranged here
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(demo_module, "draw_equity", disk_full)
    code = cli_module.main(["demo", "--models", "gbdt", "--store", str(tmp_path / "s"),
                            "--chart", str(tmp_path / "eq.png"), "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "No space left on device" in err and str(tmp_path / "eq.png") in err
    report = json.loads(out, parse_constant=_refuse)  # the run's figures, as strict JSON
    assert report["chart"] is None and "No space left" in report["chart_error"]
    (row,) = report["models"]
    assert row["model"] == "gbdt" and row["retrains"] == len(row["versions"]) > 50
    assert report["benchmark"]["ic"] is None  # NaN: not applicable, written as null


def _refuse(constant: str) -> None:
    raise AssertionError(f"{constant} is not JSON")


def test_demo_json_is_strict_even_for_infinities() -> None:
    # The demo's --json and the contrib state in manifests both go through this.
    from alphazoo.jsonable import strict_jsonable as _finite

    value = {"a": [1.5, float("inf"), -float("inf"), float("nan")], "b": {"c": np.float64("inf")},
             "d": "text", "e": 2}
    strict = json.dumps(_finite(value), allow_nan=False)
    assert json.loads(strict) == {"a": [1.5, None, None, None], "b": {"c": None}, "d": "text",
                                  "e": 2}


def _daily(equity: pd.Series) -> pd.Series:
    """Net return per decision date from an equity curve (its point t + 1 closes date t)."""
    values = equity.to_numpy()
    return pd.Series(values[1:] / values[:-1] - 1, index=equity.index[:-1])


def test_a_held_symbol_counts_each_day_once_through_a_gap_and_a_delisting(
        tmp_path: Path) -> None:
    from alphazoo.contrib.xgboost_gbdt import XGBoostGBDT

    panel = load_panel()  # YHOO's last bar is 2017-06-16; AAPL has no bar on 2017-08-07
    close = panel["close"].unstack("instrument")
    last_yhoo = close["YHOO"].last_valid_index()
    gap = close.index[close["AAPL"].isna() & close.index.to_series().gt(last_yhoo)][0]
    before, after = close.index[close.index.get_loc(gap) - 1], close.index[
        close.index.get_loc(gap) + 1]
    zoo = alphazoo.Zoo(alphazoo.ObjectStore(tmp_path))
    # Hold all five names, never sell: YHOO stays held past its last bar.
    result = compare_models(
        panel, zoo, models={"all": lambda d: XGBoostGBDT(n_estimators=5, max_depth=2)},
        start="2017-06-01", end="2017-08-31", every="MS", window=120, topk=5, n_drop=0,
        format="json", prefix="t")
    net = _daily(result.models[0].equity)
    bench = _daily(result.benchmark.equity)
    one_day = close.shift(-1) / close - 1  # next-bar return of names that trade every day
    others = ["COKE", "GOOGL", "TSLA"]

    # YHOO's fifth earns nothing from its last bar on (out at its last close, never sold).
    for day in net.index[(net.index >= last_yhoo) & (net.index < before)]:
        assert net[day] == pytest.approx(one_day.loc[day, [*others, "AAPL"]].sum() / 5, abs=1e-12)
    # AAPL's move over its missing day is earned once, by whoever holds it across the gap.
    gap_move = close.loc[after, "AAPL"] / close.loc[before, "AAPL"] - 1
    aapl = [5 * net[day] - one_day.loc[day, others].sum() for day in (before, gap)]
    assert (1 + aapl[0]) * (1 + aapl[1]) - 1 == pytest.approx(gap_move, abs=1e-12)
    held_in_bench = [4 * bench[day] - one_day.loc[day, others].sum() for day in (before, gap)]
    assert (1 + held_in_bench[0]) * (1 + held_in_bench[1]) - 1 == pytest.approx(gap_move,
                                                                                 abs=1e-12)
    # The benchmark drops YHOO after its last bar, not on it: no look-ahead.
    assert result.benchmark.equity.index[0] == pd.Timestamp("2017-06-01")
    on_last = one_day.loc[last_yhoo, [*others, "AAPL"]].sum() / 5
    assert bench[last_yhoo] == pytest.approx(on_last, abs=1e-12)


def test_models_and_benchmark_are_measured_over_the_same_dates(tmp_path: Path) -> None:
    from alphazoo.contrib.xgboost_gbdt import XGBoostGBDT

    zoo = alphazoo.Zoo(alphazoo.ObjectStore(tmp_path))
    panel = load_panel(["AAPL", "GOOGL", "TSLA"])
    # Started on a Wednesday, retrained on month starts: the first scores are on 3 July.
    result = compare_models(
        panel, zoo,
        models={"tiny": lambda d: XGBoostGBDT(n_estimators=5, max_depth=2)}, start="2017-06-07",
        end="2017-08-31", every="MS", window=120, topk=1, n_drop=1, format="json", prefix="t")
    (row,) = result.models
    first = pd.Timestamp("2017-07-03")
    assert row.equity.index[0] == result.benchmark.equity.index[0] == first
    assert row.equity.index[-1] == result.benchmark.equity.index[-1]
    assert result.start == "2017-07-03"
    dates = panel.index.get_level_values("datetime")
    assert result.rows == ((dates >= first) & (dates <= pd.Timestamp("2017-08-31"))).sum()

    from alphazoo.contrib.demo import draw_equity

    # A PNG at exactly the path given, whatever its name says (matplotlib alone would write
    # "chart" as "chart.png" and "chart.svg" as SVG).
    for name in ("chart", "chart.svg", "sub/dir/chart.png"):
        assert draw_equity(result, tmp_path / name) == str(tmp_path / name)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "chart.png").exists()


def test_compare_models_takes_any_factory_and_schedule(tmp_path: Path) -> None:
    from alphazoo.contrib.xgboost_gbdt import XGBoostGBDT

    zoo = alphazoo.Zoo(alphazoo.ObjectStore(tmp_path))
    panel = load_panel(["AAPL", "GOOGL", "TSLA"])
    result = compare_models(
        panel, zoo, models={"tiny": lambda d: XGBoostGBDT(n_estimators=10, max_depth=2)},
        start="2017-09-01", end="2017-11-30", every="MS", window=120, topk=1, n_drop=1,
        format="json", prefix="t")
    (row,) = result.models
    assert row.retrains == 3
    assert [k for k in zoo.store.keys() if "/v0" in k] == ["t/tiny/v000001", "t/tiny/v000002",
                                                           "t/tiny/v000003"]
    assert zoo.inspect("t/tiny/v000001")["format"] == "json"
    assert row.served_vs_trained == 0.0  # xgboost's own JSON reloads exactly
    assert result.start == "2017-09-01" and result.end <= "2017-11-30"
    # Holding one name at a time: the equity moves by that name's return less costs.
    assert np.isfinite(row.annualised_return) and row.turnover > 0
    with pytest.raises(ValueError, match="no rows on or after"):
        compare_models(panel, zoo, models={"tiny": lambda d: XGBoostGBDT()}, start="2030-01-01")


def test_compare_models_takes_every_schedule_walk_forward_takes(tmp_path: Path) -> None:
    from alphazoo.contrib.xgboost_gbdt import XGBoostGBDT
    from alphazoo.training import DateRules

    zoo = alphazoo.Zoo(alphazoo.ObjectStore(tmp_path))
    panel = load_panel(["AAPL", "GOOGL"])
    seen = []
    for number, every in enumerate([["2017-10-02", "2017-11-01"],
                                    DateRules.month_start(market="NYSE")]):
        result = compare_models(
            panel, zoo, models={"tiny": lambda d: XGBoostGBDT(n_estimators=5, max_depth=2)},
            start="2017-10-01", end="2017-11-30", every=every, window=60, topk=1, n_drop=1,
            format="json", prefix=f"s{number}",
            progress=lambda done, total, message: seen.append((done, total)))
        (row,) = result.models
        assert row.retrains == 2 and result.start == "2017-10-02"
    assert all(0 <= done <= total for done, total in seen) and seen


def test_information_ratio_is_measured_against_the_benchmark(tmp_path: Path) -> None:
    from alphazoo.contrib.xgboost_gbdt import XGBoostGBDT

    zoo = alphazoo.Zoo(alphazoo.ObjectStore(tmp_path))
    result = compare_models(
        load_panel(["AAPL", "GOOGL", "TSLA"]), zoo,
        models={"tiny": lambda d: XGBoostGBDT(n_estimators=10, max_depth=2)},
        start="2017-06-01", end="2017-09-29", every="MS", window=120, topk=1, n_drop=1,
        format="json", prefix="ir")
    (row,) = result.models
    model_net = row.equity.pct_change().dropna()
    bench_net = result.benchmark.equity.pct_change().dropna().reindex(model_net.index)
    excess = model_net - bench_net
    expected = excess.mean() / excess.std(ddof=1) * np.sqrt(252)
    assert row.information_ratio == pytest.approx(expected, rel=1e-6)
    assert row.sharpe_ratio == pytest.approx(
        model_net.mean() / model_net.std(ddof=1) * np.sqrt(252), rel=1e-6)
    assert np.isnan(result.benchmark.information_ratio)
