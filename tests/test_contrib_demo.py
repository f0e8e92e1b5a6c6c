"""``alphazoo demo`` and the walk-forward comparison behind it, run as a user runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import alphazoo
from alphazoo.contrib.comparison import compare_models
from alphazoo.contrib.features import load_panel

from test_cli import cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The full default demo, once: the README's main job."""
    where = tmp_path_factory.mktemp("demo")
    result = cli("demo", "--store", str(where / "store"), "--chart", str(where / "eq.png"),
                 "--json", cwd=where)
    assert result.returncode == 0, result.stderr
    return {"report": json.loads(result.stdout), "dir": where, "stderr": result.stderr}


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
        assert manifest["format"] == "onnx" and manifest["adapter"] == "xgboost"
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


def test_demo_refuses_unknown_models(tmp_path: Path) -> None:
    result = cli("demo", "--models", "gbdt,nope", "--store", str(tmp_path), "--chart", "")
    assert result.returncode == 1
    assert "nope" in result.stderr and "random_forest" in result.stderr
    assert "Traceback" not in result.stderr


def test_compare_models_takes_any_factory_and_schedule(tmp_path: Path) -> None:
    from alphazoo.contrib.gbdt import GBDT

    zoo = alphazoo.Zoo(alphazoo.ObjectStore(tmp_path))
    panel = load_panel(["AAPL", "GOOGL", "TSLA"])
    result = compare_models(
        panel, zoo, models={"tiny": lambda d: GBDT(n_estimators=10, max_depth=2)},
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
        compare_models(panel, zoo, models={"tiny": lambda d: GBDT()}, start="2030-01-01")
