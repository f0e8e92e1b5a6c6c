"""``hmm_regime``: market regimes from daily returns and volatility (hmmlearn's GaussianHMM).

Each row is observed as two numbers, its daily return ``ret_1d`` and its 20-day volatility
``vol_20d`` (read by name from the dataset's features), standardised with the training rows'
mean and standard deviation (hmmlearn's ``min_covar`` floor of 0.001 would otherwise swamp
the variance of daily returns). One Gaussian HMM with ``n_regimes`` hidden states is fitted
on every instrument's sequence at once (hmmlearn's ``lengths=``), each in date order.

Regimes are numbered by volatility: regime 0 has the lowest mean ``vol_20d``, the last the
highest, whatever order the EM run found the states in, so labels are stable across refits;
the state order is kept in :attr:`Model.state`.

No look-ahead. hmmlearn's ``predict``/``predict_proba`` decode the whole sequence (Viterbi,
forward-backward smoothing): the regime it gives a row depends on the rows after it. This model
uses *filtered* probabilities instead, ``p(regime_t | obs_1..t)``, from the forward pass alone
(``startprob_``, ``transmat_`` and each row's emission log-likelihood), so a row's regime is
what could have been known at its close. On an instrument's last row filtering and smoothing
agree, which the tests check against hmmlearn.

Scores. Each regime's mean label is learned on the training rows, weighting every row by its
filtered probability of the regime; :meth:`HMMRegime.predict` returns the expected label under
a row's filtered regime probabilities, so the model plugs into the same evaluation as the
others (P(up) when the label is ``label_direction``). :meth:`HMMRegime.regimes` gives the most
likely filtered regime per row and :meth:`HMMRegime.regime_probabilities` all of them.

Prediction over a dataset filters each instrument from its first row, then reports the
requested segment's rows: earlier rows are history, known at the segment's dates.

Storage: the hmmlearn adapter's ``json`` (default, bit-exact) and ``pickle`` formats; hmmlearn
has no ONNX converter.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import Model, NotFittedError, fit_scaling, is_dataset

__all__ = ["OBSERVATIONS", "HMMRegime", "filtered_probabilities"]

#: The features a row is observed through, in this order.
OBSERVATIONS = ("ret_1d", "vol_20d")


class HMMRegime(Model):
    """Hidden market regimes (calm ... volatile) from returns and volatility.

    Parameters
    ----------
    n_regimes:
        Hidden states of the HMM (regime 0 = lowest volatility).
    covariance_type:
        ``"full"`` or ``"diag"`` covariance of each regime's (return, volatility).
    n_iter, tol:
        EM iterations and convergence threshold (hmmlearn's).
    seed:
        hmmlearn's ``random_state`` (the k-means initialisation).
    """

    name = "hmm_regime"
    library = "hmmlearn"

    def __init__(self, n_regimes: int = 3, covariance_type: str = "full", n_iter: int = 100,
                 tol: float = 1e-4, seed: int = 0) -> None:
        if int(n_regimes) < 1:
            raise ValueError(f"n_regimes must be >= 1, got {n_regimes}")
        if covariance_type not in ("full", "diag"):
            raise ValueError(f"covariance_type must be 'full' or 'diag', got {covariance_type!r}")
        if int(n_iter) < 1:
            raise ValueError(f"n_iter must be >= 1, got {n_iter}")
        super().__init__(n_regimes=int(n_regimes), covariance_type=covariance_type,
                         n_iter=int(n_iter), tol=float(tol), seed=int(seed))

    @property
    def classifier(self) -> bool:  # type: ignore[override]
        """True when the learned label was 0/1, so scores are probabilities of 1."""
        return bool(self.state.get("binary_label", False))

    # -- fit -----------------------------------------------------------------------------------
    # ``lengths`` in place of the base's **fit_params: hmmlearn's one fit option.
    def fit(self, data: Any, y: Any = None, lengths: Any = None,  # type: ignore[override]
            ) -> HMMRegime:
        """Fit on a Dataset (its ``train`` segment, every instrument) or on arrays.

        With arrays, ``X`` has exactly two columns, daily return and volatility, rows in date
        order; ``lengths`` splits it into several sequences (one per instrument), as in
        hmmlearn. ``y`` (optional) is the label whose mean per regime :meth:`predict` scores;
        without labels only :meth:`regimes` and :meth:`regime_probabilities` work.
        """
        if is_dataset(data):
            if y is not None or lengths is not None:
                raise TypeError("fit(dataset) takes labels and sequences from the dataset")
            columns = _observation_columns(data.feature_names)
            segment = _train_segment(data)
            X, _, index = data.prepare(segment, labels=False)
            obs, seq = X[:, columns], _sequences(index)
            # Training rows' regimes are filtered from each instrument's first row, as
            # predict() does; earlier rows are history, not look-ahead.
            X_all, _, full = data.prepare(None, labels=False)
            history = (X_all[:, columns], _sequences(full), full.get_indexer(index))
            labels = None
            if data.labels is not None:
                labels = data.labels.reindex(index).to_numpy(np.float64)
            feature_names: list[str] | None = data.feature_names
        else:
            obs = self._check_obs(data)
            seq = _array_sequences(len(obs), lengths)
            labels = None if y is None else np.asarray(y, dtype=np.float64).reshape(-1)
            if labels is not None and len(labels) != len(obs):
                raise ValueError(f"X has {len(obs)} rows but y has {len(labels)}")
            feature_names, history = None, (obs, seq, np.arange(len(obs)))
        if len(obs) < self.params["n_regimes"]:
            raise ValueError(f"{len(obs)} rows cannot fit {self.params['n_regimes']} regimes")
        self._fit_observations(obs, seq, labels, history)
        self.feature_names = feature_names
        self.sample = np.ascontiguousarray(self._transform(obs[:16]))
        return self

    def _fit_observations(self, obs: np.ndarray, seq: list[np.ndarray],
                          labels: np.ndarray | None,
                          history: tuple[np.ndarray, list[np.ndarray], np.ndarray]) -> None:
        """Fit the HMM on ``obs`` (sequences ``seq``) and each regime's mean label.

        ``history`` = (observations, their sequences, position of each ``obs`` row in them):
        the rows the training rows' regimes are filtered over.
        """
        from alphazoo.errors import require

        hmm: Any = require("hmmlearn.hmm", "hmmlearn", "the hmm_regime model")
        p = self.params
        scaling = fit_scaling(obs)
        # float64 on purpose (not scale()'s float32): EM on daily returns needs the precision.
        mean, std = np.asarray(scaling["mean"]), np.asarray(scaling["std"])
        scaled = (obs - mean) / std
        order = np.concatenate(seq)
        estimator = hmm.GaussianHMM(n_components=p["n_regimes"],
                                    covariance_type=p["covariance_type"], n_iter=p["n_iter"],
                                    tol=p["tol"], random_state=p["seed"])
        estimator.fit(scaled[order], lengths=[len(s) for s in seq])
        # Regime r is the HMM state with the r-th lowest mean volatility.
        states = np.argsort(estimator.means_[:, 1], kind="stable")
        past, past_seq, take = history
        probs = np.empty((len(past), p["n_regimes"]))
        for rows in past_seq:
            probs[rows] = filtered_probabilities(estimator, (past[rows] - mean) / std)[:, states]
        probs = probs[take]
        regime_label, binary = None, False
        if labels is not None:
            known = np.isfinite(labels)
            if known.any():
                weight = probs[known].sum(axis=0)
                overall = float(labels[known].mean())
                with np.errstate(invalid="ignore", divide="ignore"):
                    means = probs[known].T @ labels[known] / weight
                # A regime no training row was ever in scores the overall mean.
                regime_label = np.where(weight > 1e-9, means, overall).tolist()
                binary = bool(np.isin(labels[known], (0.0, 1.0)).all())
        # Assigned only now: a failed fit leaves a fitted model as it was.
        self.estimator = estimator
        self.state = {"observations": list(OBSERVATIONS), **scaling, "states": states.tolist(),
                      "regime_label": regime_label, "binary_label": binary,
                      "converged": bool(estimator.monitor_.converged)}

    # -- predict -------------------------------------------------------------------------------
    def predict(self, data: Any, segment: str | None = "test") -> Any:
        """Expected label per row under its filtered regime probabilities.

        A Series on the dataset's index for a Dataset segment (None = all rows), or an array
        for ``X`` (two columns, one sequence in date order).
        """
        probs = self.regime_probabilities(data, segment)
        labels = self.state.get("regime_label")
        if labels is None:
            raise ValueError(
                "this hmm_regime model was fitted without labels, so it has no score; use "
                "regimes() or regime_probabilities(), or fit it on a labelled dataset"
            )
        if is_dataset(data):
            scores = probs.to_numpy() @ np.asarray(labels)
            import pandas as pd

            return pd.Series(scores.astype(np.float32), index=probs.index, name="score")
        return (probs @ np.asarray(labels)).astype(np.float32)

    def regime_probabilities(self, data: Any, segment: str | None = "test") -> Any:
        """Filtered probability of each regime per row (no look-ahead).

        For a Dataset: a DataFrame on the segment's index with columns ``regime_0`` ...
        (each instrument filtered from its first row). For an array: ``(rows, n_regimes)``.
        """
        self._check_fitted()
        if not is_dataset(data):
            return self._filter(self._check_obs(data))
        import pandas as pd

        columns = _observation_columns(data.feature_names)
        X, _, full = data.prepare(None, labels=False)
        probs = np.empty((len(X), self.params["n_regimes"]))
        for rows in _sequences(full):
            probs[rows] = self._filter(X[rows][:, columns])
        index = full if segment is None or not data.segments else data.prepare(
            segment, labels=False)[2]
        names = [f"regime_{r}" for r in range(self.params["n_regimes"])]
        return pd.DataFrame(probs[full.get_indexer(index)], index=index, columns=names)

    def regimes(self, data: Any, segment: str | None = "test") -> Any:
        """The most likely filtered regime per row (0 = calmest): a Series or an array."""
        probs = self.regime_probabilities(data, segment)
        if is_dataset(data):
            import pandas as pd

            return pd.Series(probs.to_numpy().argmax(axis=1), index=probs.index, name="regime")
        return probs.argmax(axis=1)

    # -- Model hooks and helpers ---------------------------------------------------------------
    def _transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.state["mean"]) / self.state["std"]

    def _predict_native(self, X: np.ndarray) -> np.ndarray:
        return self.predict(X)

    def _filter(self, obs: np.ndarray) -> np.ndarray:
        if not len(obs):
            return np.empty((0, self.params["n_regimes"]))
        probs = filtered_probabilities(self.estimator, self._transform(obs))
        return probs[:, self.state["states"]]

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError(
                "this hmm_regime model is not fitted yet: call fit(dataset) or fit(X, y) "
                "first, or load a fitted one with zoo.load(key)"
            )

    def _check_obs(self, X: Any) -> np.ndarray:
        array = np.asarray(X, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != len(OBSERVATIONS):
            raise ValueError(
                f"hmm_regime takes X of shape (rows, 2): columns {', '.join(OBSERVATIONS)}; "
                f"got an array of shape {array.shape}"
            )
        if not np.isfinite(array).all():
            raise ValueError("X has NaN or infinite values; drop or fill them first")
        return array


def filtered_probabilities(estimator: Any, obs: np.ndarray) -> np.ndarray:
    """``p(state_t | obs_1..t)`` of a fitted hmmlearn model for one sequence, per row.

    The forward pass in log space: ``startprob_``, ``transmat_`` and the model's per-row
    emission log-likelihoods; row ``t`` depends on rows ``0..t`` only. Columns are the
    estimator's own states (not regimes ordered by volatility).
    """
    log_b = estimator._compute_log_likelihood(np.asarray(obs, dtype=np.float64))
    with np.errstate(divide="ignore"):  # a zero transition or start probability is -inf
        log_a = np.log(estimator.transmat_)
        log_alpha = np.log(estimator.startprob_) + log_b[0]
    out = np.empty_like(log_b)
    out[0] = log_alpha - _logsumexp(log_alpha)
    for t in range(1, len(log_b)):
        # A state no held state can move to (a zero column of transmat_, or zero start
        # probability and no way in) has a column of -inf: its prediction is -inf, not NaN.
        predicted = _logsumexp(out[t - 1][:, None] + log_a, axis=0)
        log_alpha = predicted + log_b[t]
        out[t] = log_alpha - _logsumexp(log_alpha)
    return np.exp(out)


def _logsumexp(values: np.ndarray, axis: int | None = None) -> Any:
    """``log(sum(exp(values)))`` along ``axis``; -inf where every term is -inf (no NaN)."""
    top = values.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):  # log(0) = -inf is the answer for an empty column
        total = np.log(np.exp(values - top).sum(axis=axis, keepdims=True)) + top
    return total.item() if axis is None else np.squeeze(total, axis=axis)


def _train_segment(data: Any) -> str | None:
    """``"train"``, or None (every row) for a dataset without segments."""
    # Fitting on every row of a segmented dataset would fit on its test rows.
    if data.segments and not data.has_segment("train"):
        raise KeyError(f"the dataset has segments {', '.join(data.segments)} but no 'train' "
                       "segment to fit on")
    return "train" if data.segments else None


def _observation_columns(feature_names: list[str]) -> list[int]:
    missing = [name for name in OBSERVATIONS if name not in feature_names]
    if missing:
        raise KeyError(
            f"hmm_regime observes features {list(OBSERVATIONS)}; the dataset lacks {missing} "
            f"(it has {feature_names}). Build it with Dataset.from_bars, whose feature set "
            "includes them"
        )
    return [feature_names.index(name) for name in OBSERVATIONS]


def _sequences(index: Any) -> list[np.ndarray]:
    """Row positions of each instrument, in date order (the index is date-major sorted)."""
    codes = np.asarray(index.codes[1])
    order = np.lexsort((index.get_level_values(0).to_numpy(), codes))
    groups = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
    return [g for g in groups if len(g)]


def _array_sequences(rows: int, lengths: Any) -> list[np.ndarray]:
    if lengths is None:
        return [np.arange(rows)]
    sizes = [int(n) for n in lengths]
    if min(sizes, default=0) < 1 or sum(sizes) != rows:
        raise ValueError(f"lengths {sizes} must be positive and add up to the {rows} rows of X")
    bounds = np.cumsum([0, *sizes])
    return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
