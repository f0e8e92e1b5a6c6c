"""A complete third-party adapter: a model class, a zoo model and a safe JSON format."""

from __future__ import annotations

import json

import alphazoo
from alphazoo import FormatSpec, SavedPayload


class MeanForecast:
    """Predicts the training mean of y, scaled by a factor."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.mean_: float | None = None

    def fit(self, X, y):
        values = list(y)
        self.mean_ = sum(values) / len(values)
        return self

    def predict(self, X):
        if self.mean_ is None:
            raise RuntimeError("MeanForecast is not fitted")
        return [self.mean_ * self.scale for _ in range(len(X))]


@alphazoo.hookimpl
def alphazoo_register_models(register):
    register("example_mean", MeanForecast, library="alphazoo-example",
             description="Training mean of y (example plugin)")


@alphazoo.hookimpl
def alphazoo_formats():
    return [FormatSpec("mean-json", "example", True, "scale and mean as JSON", True)]


@alphazoo.hookimpl
def alphazoo_requirements():
    return ["alphazoo>=0.1"]


@alphazoo.hookimpl
def alphazoo_save(request):
    if not isinstance(request.model, MeanForecast):
        return None
    if request.format not in (None, "mean-json"):
        raise alphazoo.UnsupportedFormatError(
            f"the example adapter writes mean-json, not {request.format!r}"
        )
    (request.directory / "mean.json").write_text(
        json.dumps({"scale": request.model.scale, "mean": request.model.mean_})
    )
    return SavedPayload(adapter="example", format="mean-json", files=["mean.json"],
                        model_class="alphazoo_example.plugin.MeanForecast")


@alphazoo.hookimpl
def alphazoo_load(request):
    if request.manifest["adapter"] != "example":
        return None
    state = json.loads(request.files["mean.json"].read_text())
    model = MeanForecast(state["scale"])
    model.mean_ = state["mean"]
    return model
