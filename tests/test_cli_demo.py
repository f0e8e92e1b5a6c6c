"""``alphazoo demo``'s own parts, without running the demo: its table in narrow terminals, its
cost-weighted progress, and its ``--models`` option."""

from __future__ import annotations

import io
import re

import pandas as pd
import pytest
from test_cli import cli

from alphazoo.cli_demo import MODEL_CHOICES, SECONDS_PER_VERSION, CostClock, demo_table
from alphazoo.cli_output import console, emit
from alphazoo.contrib.comparison import Comparison, ModelResult, default_models


def _result(model: str, **figures: float) -> ModelResult:
    base = dict(ic=-0.0543, rank_ic=-0.0571, annualised_return=-0.052, max_drawdown=-0.179,
                information_ratio=-3.04, sharpe_ratio=-0.3, turnover=0.4, retrains=52,
                train_seconds=124.3, save_load_seconds=21.9, predict_latency_us=1027.0,
                served_vs_trained=0.0)
    base.update(figures)
    equity = pd.Series([1.0, 1.01], index=pd.to_datetime(["2017-01-03", "2017-01-04"]))
    return ModelResult(model=model, versions=[f"demo/{model}/v000052"], equity=equity,
                       **base)  # type: ignore[arg-type]


def _comparison() -> Comparison:
    """A result shaped like the demo's, with figures as wide as the demo prints."""
    models = [_result("random_forest"),
              _result("gbdt", ic=0.0162, rank_ic=0.0203, annualised_return=0.052,
                      information_ratio=-2.3, train_seconds=10.9, save_load_seconds=4.2),
              _result("alstm", ic=0.0041, annualised_return=1.244, max_drawdown=-0.13,
                      information_ratio=-0.73, train_seconds=196.9, save_load_seconds=40.3,
                      predict_latency_us=109.0)]
    nan = float("nan")
    benchmark = _result("equal weight", ic=nan, rank_ic=nan, annualised_return=0.378,
                        max_drawdown=-0.093, information_ratio=nan, retrains=0,
                        train_seconds=0.0, save_load_seconds=0.0, predict_latency_us=nan)
    return Comparison(symbols=["AAPL", "COKE", "GOOGL", "TSLA", "YHOO"], start="2017-01-03",
                      end="2017-12-29", rows=1250, models=models, benchmark=benchmark,
                      seconds=211.0)


def _render(width: int) -> str:
    stream = io.StringIO()
    out = console(width=width, file=stream)
    emit(out, demo_table(out, _comparison()))
    return stream.getvalue()


@pytest.mark.parametrize("width", [80, 100, 140])
def test_demo_table_fits_the_terminal_with_every_number_whole(width: int) -> None:
    text = _render(width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in text
    body = [line for line in lines if line.startswith("│")]
    assert len(body) == 4  # one line per row: nothing wrapped
    by_model = {line.split("│")[1].strip(): line for line in body}
    assert set(by_model) == {"random_forest", "gbdt", "alstm", "equal weight"}
    # The figures a reader needs most are always there, each printed in full.
    for row in [*_comparison().models, _comparison().benchmark]:
        cells = [cell.strip() for cell in by_model[row.model].split("│")[2:-1]]
        assert f"{row.annualised_return:+.1%}" in cells
        assert f"{row.max_drawdown:.1%}" in cells
        if row.ic == row.ic:
            assert f"{row.ic:.3f}" in cells
    # Every cell that holds a number holds one whole number, nothing cut or wrapped.
    for line in body:
        for cell in line.split("│")[2:-1]:
            cell = cell.strip()
            assert cell == "" or re.fullmatch(r"[+-]?\d+(\.\d+)?%?", cell), (cell, line)


def test_narrow_tables_say_which_columns_they_left_out() -> None:
    narrow, wide = _render(80), _render(140)
    assert "predict µs/row" in wide and "too narrow" not in wide
    assert "too narrow for:" in narrow and "retrains" in narrow.split("too narrow for:")[1]


def test_demo_models_are_the_ones_it_can_run() -> None:
    assert list(MODEL_CHOICES) == list(default_models())
    assert set(SECONDS_PER_VERSION) == set(MODEL_CHOICES)
    page = cli("demo", "--help").stdout
    assert all(name in page for name in MODEL_CHOICES)


@pytest.mark.parametrize("models", ["svm", "gbdt,nope", ","])
def test_unknown_demo_models_are_a_usage_error(models: str) -> None:
    result = cli("demo", "--models", models, "--store", "/nonexistent/never-made")
    assert result.returncode == 2, result.stderr
    assert "the demo runs random_forest, gbdt, alstm" in result.stderr
    assert "Traceback" not in result.stderr


def test_progress_is_weighted_by_each_models_cost() -> None:
    now = [0.0]
    clock = CostClock(["random_forest", "gbdt", "alstm"], clock=lambda: now[0])
    per_model = 53  # compare_models: 52 versions and one summary step per model
    clock.update(1, 3 * per_model)
    assert clock.remaining() is not None
    # The forest and gbdt done: by count two thirds, by cost well under half.
    now[0] = 61.0
    clock.update(2 * per_model, 3 * per_model)
    share = clock.completed / clock.total
    assert share < 0.4
    # The estimate is the remaining cost at the speed seen so far: elapsed * left / done.
    expected = 61.0 * (clock.total - clock.completed) / clock.completed
    assert clock.remaining() == pytest.approx(expected)
    minutes, seconds = divmod(round(expected), 60)
    assert clock.describe_remaining() == f"about {minutes} min {seconds:02d} s left"
    clock.update(3 * per_model, 3 * per_model)
    assert clock.completed == pytest.approx(clock.total)
    assert clock.describe_remaining() == "finishing"
