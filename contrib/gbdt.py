"""``gbdt``: qlib's LightGBM GBDT (``qlib.contrib.model.gbdt.LGBModel``) in the zoo.

The defaults and the training are qlib's: ``loss="mse"`` (or ``"binary"``), at most
``num_boost_round=1000`` rounds, early stopping after ``early_stopping_rounds=50`` rounds without
improvement on the dataset's ``valid`` segment, and every other keyword a LightGBM parameter
passed to ``lightgbm.train`` as given (qlib's ``**kwargs``). The estimator is the
``lightgbm.Booster`` that ``lightgbm.train`` returns, saved by the LightGBM adapter.

Where the zoo adds to qlib:

- ``loss="binary"`` learns "label > 0", so ``label_return`` works as well as
  ``label_direction`` (qlib passes the label through; LightGBM refuses anything but 0/1).
- ``valid_fraction`` holds out the last rows of the training segment for early stopping when the
  dataset has no ``valid`` rows. Its default, 0, is qlib's behaviour: no validation rows, no
  early stopping, all ``num_boost_round`` rounds.
- nothing is printed: qlib logs the metrics every 20 rounds to its recorder.

Up to alphazoo 0.1 the zoo's ``gbdt`` was xgboost; that model is now ``xgboost_gbdt``
(:class:`alphazoo.contrib.xgboost_gbdt.XGBoostGBDT`), and an old bundle saved as ``gbdt`` still
loads as it. The old model's parameter names are LightGBM aliases (``n_estimators`` is
``num_iterations``, ``subsample`` is ``bagging_fraction``, which acts only with
``bagging_freq`` > 0; ``colsample_bytree`` is ``feature_fraction``, ``random_state`` is ``seed``,
``n_jobs`` is ``num_threads``), so ``zoo.build("gbdt", n_estimators=300)`` builds LightGBM with
LightGBM's meaning of each. A parameter only xgboost knows (``tree_method``, ``gamma``...),
which LightGBM would silently ignore, is refused with
:class:`~alphazoo.contrib.model.ModelParameterError`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alphazoo.errors import warn_renamed

from .model import Model, ModelParameterError, hold_out_tail

__all__ = ["LightGBMGBDT", "XGBOOST_ONLY_PARAMS"]

#: xgboost's parameter names that are no LightGBM parameter or alias (LightGBM 4.7 would
#: ignore them without a word at qlib's ``verbosity=-1``): a user of the old xgboost ``gbdt``.
XGBOOST_ONLY_PARAMS = frozenset({
    "base_score", "booster", "callbacks", "colsample_bylevel", "enable_categorical",
    "eval_metric", "feature_types", "feature_weights", "gamma", "grow_policy", "importance_type",
    "missing", "multi_strategy", "num_parallel_tree", "sampling_method", "tree_method",
    "validate_parameters",
})

#: The LightGBM kwargs of qlib's benchmark configurations (examples/benchmarks/LightGBM/
#: workflow_config_lightgbm_Alpha158.yaml and ..._Alpha360.yaml), without their
#: ``num_threads: 20``, which is the benchmark machine's.
_QLIB_BENCHMARK = {"colsample_bytree": 0.8879, "subsample": 0.8789, "lambda_l1": 205.6999,
                   "lambda_l2": 580.9768, "max_depth": 8, "num_leaves": 210}


class LightGBMGBDT(Model):
    """qlib's ``LGBModel``: LightGBM gradient-boosted trees, early stopping on ``valid``.

    Parameters
    ----------
    loss:
        ``"mse"`` (regression of the label; LightGBM's ``objective``) or ``"binary"``
        (P(label > 0)).
    early_stopping_rounds:
        Stop when no validation metric has improved for this many rounds (0 = never).
    num_boost_round:
        Boosting rounds at most.
    valid_fraction:
        Share of the training rows (the latest) held out for early stopping when the dataset
        (or the ``fit(X, y)`` call) gives no validation rows; 0 (qlib's way) trains on all of
        them without early stopping.
    **lgb_params:
        LightGBM parameters, as in qlib: ``{"objective": loss, "verbosity": -1, **lgb_params}``
        is what ``lightgbm.train`` receives (an ``objective`` here wins over ``loss``).

    Presets: ``"qlib_alpha158"`` and ``"qlib_alpha360"``, the parameters of qlib's LightGBM
    benchmarks (tuned for CSI300's few hundred stocks: their L1/L2 penalties of 206 and 581
    flatten a model of a handful of symbols).

    ``fit`` takes qlib's ``fit`` overrides ``num_boost_round=`` and ``early_stopping_rounds=``;
    other keywords go to ``lightgbm.train`` (``feval=``, ``init_model=``...), as in qlib.
    """

    name = "gbdt"
    library = "lightgbm"
    PRESETS = {
        "qlib_alpha158": {"loss": "mse", "learning_rate": 0.2, **_QLIB_BENCHMARK},
        "qlib_alpha360": {"loss": "mse", "learning_rate": 0.0421, **_QLIB_BENCHMARK},
    }

    def __init__(self, loss: str = "mse", early_stopping_rounds: int = 50,
                 num_boost_round: int = 1000, valid_fraction: float = 0.0,
                 **lgb_params: Any) -> None:
        if loss not in ("mse", "binary"):
            raise ModelParameterError(f"loss must be 'mse' or 'binary' (qlib's two), got {loss!r}")
        if not 0 <= valid_fraction < 1:
            raise ModelParameterError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
        xgboost_only = sorted(XGBOOST_ONLY_PARAMS & set(lgb_params))
        if xgboost_only:
            raise ModelParameterError(
                f"gbdt is LightGBM (qlib's LGBModel), which has no parameter "
                f"{', '.join(map(repr, xgboost_only))}: that is xgboost's. Build "
                "'xgboost_gbdt' for the xgboost model (gbdt's name until alphazoo 0.1), or use "
                "LightGBM's parameters (https://lightgbm.readthedocs.io/en/latest/Parameters.html)"
            )
        super().__init__(loss=loss, early_stopping_rounds=early_stopping_rounds,
                         num_boost_round=num_boost_round, valid_fraction=valid_fraction,
                         **lgb_params)

    @property
    def classifier(self) -> bool:  # type: ignore[override]
        return self.params["loss"] == "binary"

    @property
    def lgb_params(self) -> dict[str, Any]:
        """The parameters ``lightgbm.train`` receives, built as qlib's ``LGBModel`` builds them."""
        own = ("loss", "early_stopping_rounds", "num_boost_round", "valid_fraction")
        return {"objective": self.params["loss"], "verbosity": -1,
                **{k: v for k, v in self.params.items() if k not in own}}

    @property
    def best_iteration(self) -> int | None:
        """Boosting rounds early stopping kept (LightGBM's ``best_iteration``, counted from 1;
        None before fit or when nothing stopped early)."""
        return self.state.get("best_iteration")

    def _fit(self, X: np.ndarray, y: np.ndarray | None, X_valid: np.ndarray | None,
             y_valid: np.ndarray | None, **fit_params: Any) -> None:
        import lightgbm

        if y is None:
            raise ValueError("gbdt learns a label: pass y or a dataset with labels")
        p = self.params
        rounds = fit_params.pop("num_boost_round", None) or p["num_boost_round"]
        stop = fit_params.pop("early_stopping_rounds", None)
        stop = p["early_stopping_rounds"] if stop is None else stop
        fraction = p["valid_fraction"] if stop else 0.0
        X, y, X_valid, y_valid = hold_out_tail(X, y, X_valid, y_valid, fraction)
        if self.classifier:
            # Up or not: the same target from label_direction (0/1) or label_return.
            y = (y > 0).astype(np.int32)
            y_valid = None if y_valid is None else (y_valid > 0).astype(np.int32)
        # As qlib's LGBModel.fit: the training set is evaluated too (early stopping skips it),
        # and the validation set is built alone (lightgbm.train bins it like the training set).
        train = lightgbm.Dataset(X, label=y, free_raw_data=False)
        sets, names = [train], ["train"]
        if X_valid is not None:
            sets.append(lightgbm.Dataset(X_valid, label=y_valid, free_raw_data=False))
            names.append("valid")
        # With the training set alone LightGBM disables early stopping (with a warning): the
        # same model as no callback, which is what qlib gets without a valid segment.
        curves: dict[str, Any] = {}
        callbacks = [lightgbm.record_evaluation(curves)]
        if stop and len(sets) > 1:
            callbacks.append(lightgbm.early_stopping(stop, verbose=False))
        booster = lightgbm.train(self.lgb_params, train, num_boost_round=rounds,
                                 valid_sets=sets, valid_names=names,
                                 callbacks=callbacks + list(fit_params.pop("callbacks", [])),
                                 **fit_params)
        self.estimator = booster
        # An early-stopped booster keeps only its best rounds' trees: the rounds trained are
        # the recorded curve's length.
        trained = [len(curve) for curve in curves.get("train", {}).values()]
        self.state = {"best_iteration": int(booster.best_iteration) or None,
                      "rounds": trained[0] if trained else int(booster.current_iteration())}

    def _predict_native(self, X: np.ndarray) -> np.ndarray:
        # Booster.predict stops at best_iteration; for "binary" it is P(label > 0).
        return self.estimator.predict(X)


def __getattr__(name: str) -> Any:
    # alphazoo.contrib.gbdt.GBDT was the xgboost model; it keeps meaning that for one release.
    if name == "GBDT":
        warn_renamed("alphazoo.contrib.gbdt.GBDT (xgboost)",
                     "alphazoo.contrib.xgboost_gbdt.XGBoostGBDT, zoo name 'xgboost_gbdt' "
                     "('gbdt' is now LightGBM: LightGBMGBDT)")
        from .xgboost_gbdt import XGBoostGBDT

        return XGBoostGBDT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
