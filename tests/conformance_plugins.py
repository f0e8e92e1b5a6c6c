"""Toy adapters for tests/test_conformance.py: one that conforms and several broken ones.

Each is an instance of :class:`ToyAdapter`, registered by the conformance kit from its import
path (``"conformance_plugins:claims_everything"``), here and in the kit's fresh interpreters
(pytest puts tests/ on the import path, and the kit hands its path on to its children).
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np

import alphazoo
from alphazoo import FormatSpec, SavedPayload


class Toy:
    """A linear model: predictions are ``X @ coef``."""

    def __init__(self) -> None:
        self.coef: list[float] | None = None

    def fit(self, X: Any, y: Any) -> Toy:
        self.coef = np.linalg.lstsq(np.asarray(X, float), np.asarray(y, float),
                                    rcond=None)[0].tolist()
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(X, float) @ np.asarray(self.coef)


class ToyAdapter:
    """The adapter of :class:`Toy`: a safe JSON format and an unsafe pickle format; the
    keyword arguments break it in one way each."""

    def __init__(self, *, claim_all: bool = False, load_offset: float = 0.0,
                 pickle_safe: bool = False, two_defaults: bool = False,
                 portable_needs: str | None = None, model_types: tuple[str, ...] = ()
                 ) -> None:
        self.claim_all = claim_all
        self.load_offset = load_offset
        self.pickle_safe = pickle_safe
        self.two_defaults = two_defaults
        self.portable_needs = portable_needs
        self.model_types = model_types

    @alphazoo.hookimpl
    def alphazoo_model_types(self) -> list[str]:
        return list(self.model_types)

    @alphazoo.hookimpl
    def alphazoo_formats(self) -> list[FormatSpec]:
        formats = [FormatSpec("toy-json", "toy", True, "coefficients as JSON", True, ("numpy",)),
                   FormatSpec("toy-pickle", "toy", self.pickle_safe, "pickle",
                              self.two_defaults, ("numpy",))]
        if self.portable_needs:
            formats.append(FormatSpec("toy-portable", "toy", True, "JSON, loads anywhere",
                                      False, ()))
        return formats

    @alphazoo.hookimpl
    def alphazoo_save(self, request: Any) -> SavedPayload | None:
        model = request.model
        if not isinstance(model, Toy) and not self.claim_all:
            return None
        fmt = request.format or "toy-json"
        if fmt == "toy-pickle":
            (request.directory / "model.pkl").write_bytes(pickle.dumps(model))
            files = ["model.pkl"]
        else:
            coef = getattr(model, "coef", None)
            (request.directory / "model.json").write_text(json.dumps({"coef": coef}))
            files = ["model.json"]
        return SavedPayload(adapter="toy", format=fmt, files=files,
                            model_class="conformance_plugins.Toy",
                            libraries={"numpy": np.__version__})

    @alphazoo.hookimpl
    def alphazoo_load(self, request: Any) -> Any:
        if request.manifest["adapter"] != "toy":
            return None
        fmt = request.manifest["format"]
        if fmt == "toy-pickle":
            return pickle.loads(request.files["model.pkl"].read_bytes())
        if fmt == "toy-portable" and self.portable_needs:
            __import__(self.portable_needs)  # a "portable" format that needs the library
        model = Toy()
        model.coef = [value + self.load_offset
                      for value in json.loads(request.files["model.json"].read_text())["coef"]]
        return model


good = ToyAdapter()
claims_everything = ToyAdapter(claim_all=True)
drifting = ToyAdapter(load_offset=1e-3)
pickle_declared_safe = ToyAdapter(pickle_safe=True)
two_defaults = ToyAdapter(two_defaults=True)
portable_needs_sklearn = ToyAdapter(portable_needs="sklearn")
declares_its_class = ToyAdapter(model_types=("conformance_plugins.Toy",))
declares_another_class = ToyAdapter(model_types=("builtins.dict",))
