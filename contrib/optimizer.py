"""Long-only, fully invested portfolio optimisation (qlib's ``PortfolioOptimizer`` methods).

>>> import numpy as np
>>> S = np.diag([0.04, 0.01])            # volatilities 20% and 10%
>>> PortfolioOptimizer("gmv")(S).round(3)
array([0.2, 0.8])
>>> PortfolioOptimizer("inv")(S).round(3)
array([0.333, 0.667])
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from alphazoo.errors import AlphazooError

__all__ = ["OptimizationError", "PortfolioOptimizer", "covariance"]

_METHODS = ("inv", "gmv", "mvo", "rp")
# Slack allowed when checking the solver's answer against the constraints.
_FEASIBILITY_TOL = 1e-6
# Weights below this count as zero when reading the solver's active set.
_SUPPORT = 1e-6


class OptimizationError(AlphazooError, RuntimeError):
    """The solver did not find a feasible optimum; the message carries scipy's reason."""


class PortfolioOptimizer:
    """Optimal weights for a covariance matrix, always with ``w >= 0`` and ``sum(w) == 1``.

    Methods (objectives minimised over the long-only simplex):

    * ``"inv"``: inverse volatility, ``w_i`` proportional to ``1 / sqrt(S_ii)`` (closed form).
    * ``"gmv"``: global minimum variance, ``w'Sw + alpha * |w|^2``.
    * ``"mvo"``: mean-variance, ``-r'w + lamb * w'Sw + alpha * |w|^2``; a large ``lamb``
      approaches ``gmv``, a tiny one puts everything on the highest ``r``.
    * ``"rp"``: risk parity, equal risk contributions ``w_i (Sw)_i`` for every asset.

    ``gmv`` and ``mvo`` are solved with scipy's SLSQP; without a turnover limit the answer is
    then made exact by solving the optimality conditions on the assets SLSQP holds, and
    checked (no excluded asset may have a smaller marginal cost). ``rp`` without a turnover limit or
    regulariser is solved exactly by Newton's method on the convex form
    ``min_y y'Sy/2 - sum(log y)/N``, ``w = y / sum(y)`` (Spinu, 2013); with ``delta`` or
    ``alpha`` it minimises ``sum_i (N * w_i (Sw)_i / w'Sw - 1)^2 + alpha * |w|^2`` with SLSQP,
    starting from the exact risk-parity weights.

    Parameters
    ----------
    method:
        ``"inv"``, ``"gmv"`` (default; qlib's default is ``"inv"``), ``"mvo"`` or ``"rp"``.
    lamb:
        Risk aversion of ``mvo`` (>= 0): the larger, the more weight on variance. (qlib's
        docstring says the opposite, but its objective is this one.)
    delta:
        Turnover limit ``sum |w - w0| <= delta`` when ``w0`` is given; 0 means no limit (in
        qlib: no trading). Ignored by ``inv``.
    alpha:
        L2 regularisation ``alpha * |w|^2`` added to the objective (>= 0); pulls weights
        toward equal.
    scale_return:
        Rescale ``r`` to ``r / std(r) * sqrt(mean(diag(S)))`` before ``mvo`` (as qlib does), so
        ``lamb`` has the same meaning whatever the scale of the scores. A constant ``r`` is
        left as it is.
    tol:
        Solver tolerance. ``gmv``/``mvo`` objectives are divided by ``mean(diag(S))`` first, so
        ``tol`` is relative to the portfolio variance rather than to its units.

    Where this deliberately differs from qlib's ``PortfolioOptimizer`` (qlib 0.9.7, checked by
    running both): alphazoo's answers are the exact optimum, or an error, where qlib's are
    SLSQP's last iterate from equal weights, returned with only a warning when it fails.

    * **Default method**: ``"gmv"`` here, ``"inv"`` in qlib. Pass ``method`` explicitly when
      porting a qlib config.
    * **delta = 0**: here "no turnover limit"; in qlib a ``w0`` with ``delta=0`` means
      ``sum |w - w0| <= 0``, i.e. no trading at all (qlib returns ``w0``). To freeze the
      portfolio here, do not call the optimizer.
    * **rp**: without ``alpha`` and turnover limit both find the equal-risk portfolio (alphazoo
      exactly, by Newton; qlib to SLSQP's tolerance). With ``alpha`` or ``delta`` the
      objectives differ: qlib minimises ``sum_i (w_i - w'Sw / (N (Sw)_i))^2 + alpha |w|^2``,
      alphazoo ``sum_i (N rc_i - 1)^2 + alpha |w|^2`` on the risk shares ``rc_i`` (scale-free,
      and defined where a ``(Sw)_i`` is 0), so the same ``alpha`` pulls differently.
    * **mvo with constant expected returns**: qlib's ``scale_return`` divides by
      ``std(r) = 0`` and returns equal weights after a failed solve; here ``r`` is left as is,
      ``r'w`` is then the same for every portfolio, and the answer is ``gmv``'s.
    * **Zero-variance assets**: qlib's ``inv`` returns NaN weights and its ``rp`` divides by
      zero; here ``inv`` and ``rp`` raise ValueError (no risk to spread), while ``gmv``/
      ``mvo`` may hold the riskless asset, exactly (qlib leaves 1e-6 dust elsewhere).
    * **Tolerance**: ``tol`` applies to objectives divided by ``mean(diag(S))`` (units-free),
      where qlib hands it to SLSQP on the raw objective.

    Call the optimizer as ``opt(S, r=None, w0=None)``: ``S`` is an ``(n, n)`` covariance
    (ndarray or DataFrame), ``r`` the expected returns (``mvo`` only), ``w0`` the current
    weights (turnover limit). The result is an ndarray, or a Series named by ``S``'s columns
    when ``S`` is a DataFrame. :class:`OptimizationError` is raised when the solver fails or
    returns a point outside the constraints or short of optimal (for instance a turnover
    limit that no fully invested portfolio meets); weights are never returned unchecked.
    """

    def __init__(
        self,
        method: str = "gmv",
        lamb: float = 0,
        delta: float = 0,
        alpha: float = 0.0,
        scale_return: bool = True,
        tol: float = 1e-8,
    ) -> None:
        if method not in _METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {_METHODS}")
        for name, value in (("lamb", lamb), ("delta", delta), ("alpha", alpha)):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if not tol > 0:
            raise ValueError(f"tol must be > 0, got {tol}")
        self.method = method
        self.lamb = float(lamb)
        self.delta = float(delta)
        self.alpha = float(alpha)
        self.scale_return = bool(scale_return)
        self.tol = float(tol)

    def __repr__(self) -> str:
        return (
            f"PortfolioOptimizer(method={self.method!r}, lamb={self.lamb}, delta={self.delta}, "
            f"alpha={self.alpha}, scale_return={self.scale_return}, tol={self.tol})"
        )

    def __call__(
        self,
        S: np.ndarray | pd.DataFrame,
        r: np.ndarray | pd.Series | None = None,
        w0: np.ndarray | pd.Series | None = None,
    ) -> np.ndarray | pd.Series:
        """Optimal weights for covariance ``S`` (see the class docstring)."""
        labels = None
        if isinstance(S, pd.DataFrame):
            if not S.index.equals(S.columns):
                raise ValueError("covariance DataFrame needs the same labels on rows and columns")
            labels = S.columns
        cov = _check_covariance(S)
        r = _vector("r", r, cov.shape[0], labels)
        w0 = _vector("w0", w0, cov.shape[0], labels)

        if self.method == "mvo" and r is None:
            raise ValueError("method 'mvo' needs expected returns r")
        if self.method != "mvo" and r is not None:
            warnings.warn(f"r is not used by method {self.method!r}", UserWarning, stacklevel=2)
        if self.method == "inv" and w0 is not None:
            warnings.warn("w0 is not used by method 'inv'", UserWarning, stacklevel=2)

        weights = self._optimize(cov, r, w0)
        if labels is not None:
            return pd.Series(weights, index=labels.copy(), name="weight")
        return weights

    # -- solvers -----------------------------------------------------------------------------------

    def _optimize(self, S: np.ndarray, r: np.ndarray | None, w0: np.ndarray | None) -> np.ndarray:
        n = S.shape[0]
        variances = np.diag(S)
        if self.method in ("inv", "rp") and np.any(variances <= 0):
            raise ValueError(f"method {self.method!r} needs positive variances on S's diagonal")
        if self.method == "inv":
            inverse_vol = 1.0 / np.sqrt(variances)
            return inverse_vol / inverse_vol.sum()
        turnover = w0 if (w0 is not None and self.delta > 0) else None
        if turnover is not None:
            self._check_reachable(turnover)
        if n == 1:
            return np.ones(1)

        if self.method == "rp":
            parity = _risk_parity(S / variances.mean())
            if turnover is None and self.alpha == 0:
                return parity
            start, gap = parity, np.abs(parity - turnover).sum() if turnover is not None else 0
            if gap > self.delta:
                # The objective is not convex: start from w0 moved toward parity as far as the
                # limit allows, rather than at a zero-weight corner's local minimum.
                start = turnover + self.delta / gap * (parity - turnover)
                start = np.clip(start, 0.0, None) / np.clip(start, 0.0, None).sum()
            return self._solve(_rp_objective(S, self.alpha), start, turnover)

        # Rescaled objectives, same argmin: dividing by the mean variance makes SLSQP's
        # absolute tolerance independent of the units of S, and dividing mvo by (1 + lamb)
        # keeps its gradient O(1) (unscaled, SLSQP "converged" at its start for lamb=1e6).
        scale = variances.mean() if variances.mean() > 0 else 1.0
        eye = np.eye(n)
        if self.method == "gmv":
            quad, linear = (S + self.alpha * eye) / scale, np.zeros(n)
        else:
            assert r is not None
            if self.scale_return and r.std() > 0:
                r = r / r.std() * np.sqrt(variances.mean())
            norm = scale * (1.0 + self.lamb)
            quad, linear = (self.lamb * S + self.alpha * eye) / norm, r / norm
        objective = _quadratic(quad, linear)
        weights = self._solve(objective, np.full(n, 1.0 / n), turnover)
        if turnover is None:
            weights = _polish(quad, linear, weights)
            self._check_optimal(quad, linear, weights)
        return weights

    def _check_reachable(self, w0: np.ndarray) -> None:
        """Refuse a turnover limit no long-only, fully invested portfolio meets.

        The nearest such portfolio is ``max(|1 - sum(w0)|, 2 * short + sum(w0) - 1)`` away
        from ``w0`` in ``sum |w - w0|`` (``short``: the sum of ``w0``'s negative parts), so
        SLSQP would only fail with a message about its line search.
        """
        total, short = float(w0.sum()), float(-w0[w0 < 0].sum())
        reach = max(abs(1.0 - total), 2.0 * short + total - 1.0)
        if reach > self.delta + _FEASIBILITY_TOL:
            raise OptimizationError(
                f"{self.method} optimisation: the turnover limit delta = {self.delta:g} cannot "
                f"be met; every long-only, fully invested portfolio is at least {reach:.6g} "
                f"away from w0 (sum(w0) = {total:.6g}); raise delta to {reach:.6g} or more"
            )

    def _check_optimal(self, Q: np.ndarray, c: np.ndarray, w: np.ndarray) -> None:
        """First-order optimality on the simplex: held assets share the smallest gradient."""
        grad = 2.0 * Q @ w - c
        gap = float(grad[w > _SUPPORT].max() - grad.min())
        if gap > max(1e-6, 10 * np.sqrt(self.tol)) * (1.0 + float(np.abs(grad).max())):
            raise OptimizationError(
                f"{self.method} optimisation stopped at a non-optimal point "
                f"(gradient gap {gap:.3g} between held and best assets)"
            )

    def _solve(
        self,
        objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
        start: np.ndarray,
        w0: np.ndarray | None,
    ) -> np.ndarray:
        """SLSQP on the long-only simplex, plus ``sum |w - w0| <= delta`` when ``w0`` is set."""
        n = len(start)
        extra = 0 if w0 is None else n
        sum_w = np.concatenate([np.ones(n), np.zeros(extra)])
        constraints: list[dict[str, Any]] = [
            {"type": "eq", "fun": lambda z: z[:n].sum() - 1.0, "jac": lambda z: sum_w},
        ]
        z0 = start
        if w0 is not None:
            # |w - w0| is not differentiable at w0: with slack variables t >= |w - w0| every
            # constraint is linear and SLSQP only sees smooth functions.
            eye = np.eye(n)
            sum_t = np.concatenate([np.zeros(n), -np.ones(n)])
            above, below = np.hstack([-eye, eye]), np.hstack([eye, eye])
            constraints += [
                {"type": "ineq", "fun": lambda z: z[n:] - (z[:n] - w0), "jac": lambda z: above},
                {"type": "ineq", "fun": lambda z: z[n:] + (z[:n] - w0), "jac": lambda z: below},
                {"type": "ineq", "fun": lambda z: self.delta - z[n:].sum(), "jac": lambda z: sum_t},
            ]
            z0 = np.concatenate([start, np.abs(start - w0)])

        def padded(z: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = objective(z[:n])
            return value, np.concatenate([grad, np.zeros(extra)])

        result = optimize.minimize(
            padded, z0, jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * n + [(0.0, 2.0)] * extra,
            constraints=constraints, tol=self.tol, options={"maxiter": 1000},
        )
        if not result.success:
            raise OptimizationError(
                f"{self.method} optimisation failed: {result.message} (status {result.status})"
            )
        return self._checked(result.x[:n], w0)

    def _checked(self, weights: np.ndarray, w0: np.ndarray | None) -> np.ndarray:
        """Refuse an answer outside the constraints; clean rounding dust otherwise."""
        if not np.all(np.isfinite(weights)):
            raise OptimizationError(f"{self.method} optimisation returned non-finite weights")
        if weights.min() < -_FEASIBILITY_TOL or abs(weights.sum() - 1.0) > _FEASIBILITY_TOL:
            raise OptimizationError(
                f"{self.method} optimisation returned infeasible weights "
                f"(min {weights.min():.3g}, sum {weights.sum():.9g})"
            )
        weights = np.clip(weights, 0.0, None)
        weights = weights / weights.sum()
        if w0 is not None and self.delta > 0:
            moved = np.abs(weights - w0).sum()
            if moved > self.delta + _FEASIBILITY_TOL:
                raise OptimizationError(
                    f"{self.method} optimisation broke the turnover limit: "
                    f"sum|w - w0| = {moved:.6g} > delta = {self.delta:.6g}"
                )
        return weights


def _quadratic(Q: np.ndarray, c: np.ndarray) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``w'Qw - c'w`` and its gradient."""

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        Qw = Q @ w
        return float(w @ Qw - c @ w), 2.0 * Qw - c

    return objective


def _polish(Q: np.ndarray, c: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact minimiser of ``w'Qw - c'w`` on the simplex, given the solver's active set.

    SLSQP stops once the objective changes by less than ``tol``, which leaves weights
    accurate to about ``sqrt(tol)``. On the assets it holds, the optimum solves a linear
    system (the KKT conditions with the other weights at zero); the solution is kept only
    if it is itself optimal (non-negative, and no excluded asset with a smaller gradient).
    """
    support = np.flatnonzero(w > _SUPPORT)
    k = len(support)
    kkt = np.block([
        [2.0 * Q[np.ix_(support, support)], -np.ones((k, 1))],
        [np.ones((1, k)), np.zeros((1, 1))],
    ])
    try:
        solution = np.linalg.solve(kkt, np.append(c[support], 1.0))
    except np.linalg.LinAlgError:
        return w
    candidate = np.zeros(len(w))
    candidate[support] = solution[:k]
    grad = 2.0 * Q @ candidate - c
    slack = 1e-9 * (1.0 + float(np.abs(grad).max()))
    if np.all(np.isfinite(candidate)) and candidate.min() >= 0:
        if np.all(grad >= solution[k] - slack):
            return candidate
    return w


def _rp_objective(
    S: np.ndarray, alpha: float
) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """``sum_i (N * rc_i - 1)^2 + alpha |w|^2`` with ``rc_i = w_i (Sw)_i / w'Sw``."""
    n = S.shape[0]
    S = S / np.diag(S).mean()

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        Sw = S @ w
        var = float(w @ Sw)
        if var <= 0:
            return float(n * n), np.zeros(n)
        rc = w * Sw / var
        err = n * rc - 1.0
        # d rc_i / d w_j = (delta_ij Sw_i + w_i S_ij) / var - 2 w_i Sw_i Sw_j / var^2
        jac = (np.diag(Sw) + w[:, None] * S) / var - 2.0 * np.outer(rc, Sw) / var
        value = float(err @ err) + alpha * float(w @ w)
        return value, 2.0 * n * (jac.T @ err) + 2.0 * alpha * w

    return objective


def _risk_parity(S: np.ndarray, max_iter: int = 100) -> np.ndarray:
    """Equal-risk-contribution weights by damped Newton on ``y'Sy/2 - sum(log y)/N``.

    The function is strictly convex on ``y > 0`` and its minimiser satisfies
    ``y_i (Sy)_i = 1/N`` for every ``i``: normalised, the risk-parity portfolio.
    """
    n = S.shape[0]
    b = 1.0 / n

    def value(y: np.ndarray) -> float:
        return 0.5 * float(y @ S @ y) - b * float(np.log(y).sum())

    y = 1.0 / np.sqrt(np.diag(S))
    y *= np.sqrt(b / float(y @ S @ y)) * np.sqrt(n)
    for _ in range(max_iter):
        grad = S @ y - b / y
        if np.max(np.abs(grad * y)) < 1e-13:
            break
        step = np.linalg.solve(S + np.diag(b / y**2), grad)
        decrement = float(grad @ step)
        t = 1.0
        while not np.all(y - t * step > 0):
            t *= 0.5
        # Far from the optimum, backtrack until the objective decreases enough (Armijo).
        # Near it, function values differ by rounding only, and full steps converge
        # quadratically, so the test would only stall the iteration.
        if decrement > 1e-10:
            current = value(y)
            while t > 1e-12 and value(y - t * step) > current - 1e-4 * t * decrement:
                t *= 0.5
        y = y - t * step
    else:
        raise OptimizationError(f"risk parity did not converge in {max_iter} Newton steps")
    contributions = y * (S @ y)
    if not np.allclose(contributions, b, rtol=1e-6, atol=0):
        raise OptimizationError("risk parity did not converge: risk contributions differ")
    return y / y.sum()


def _check_covariance(S: Any) -> np.ndarray:
    try:
        cov = np.asarray(S, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"covariance must be a numeric matrix: {exc}") from exc
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] == 0:
        raise ValueError(f"covariance must be a non-empty square matrix, got shape {cov.shape}")
    if not np.all(np.isfinite(cov)):
        raise ValueError("covariance contains NaN or infinite values")
    if np.any(np.diag(cov) < 0):
        bad = np.flatnonzero(np.diag(cov) < 0).tolist()
        raise ValueError(f"covariance has negative variances on the diagonal at {bad}")
    scale = max(float(np.abs(cov).max()), np.finfo(float).tiny)
    if not np.allclose(cov, cov.T, rtol=0, atol=1e-10 * scale):
        raise ValueError("covariance must be symmetric")
    cov = (cov + cov.T) / 2.0
    if np.linalg.eigvalsh(cov)[0] < -1e-10 * scale * cov.shape[0]:
        raise ValueError("covariance must be positive semi-definite")
    return cov


def _vector(name: str, value: Any, n: int, labels: pd.Index | None) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, pd.Series) and labels is not None:
        if set(value.index) != set(labels) or not value.index.is_unique:
            raise ValueError(f"{name}'s index must hold the covariance's labels exactly once")
        value = value.reindex(labels)
    vector = np.asarray(value, dtype=float)
    if vector.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {vector.shape}")
    if not np.all(np.isfinite(vector)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return vector


def covariance(
    returns: np.ndarray | pd.DataFrame, shrinkage: float | str | None = None
) -> np.ndarray | pd.DataFrame:
    """Sample covariance of asset returns, optionally shrunk toward a scaled identity.

    Parameters
    ----------
    returns:
        ``(T, N)`` returns, one column per asset (an ndarray or a DataFrame). Rows with any
        NaN are dropped, so every entry uses the same dates.
    shrinkage:
        ``None`` for the sample covariance ``S`` (``ddof=1``); a number ``d`` in ``[0, 1]``
        for ``(1 - d) * S + d * mu * I`` with ``mu = trace(S) / N`` (the average variance:
        the trace is kept, correlations shrink toward 0); or ``"ledoit-wolf"`` for that
        target with Ledoit and Wolf's (2004) estimate of the optimal ``d``.

    Returns
    -------
    ndarray or DataFrame
        ``(N, N)``; a DataFrame labelled by the columns when ``returns`` is a DataFrame.
    """
    labels = returns.columns if isinstance(returns, pd.DataFrame) else None
    try:
        X = np.asarray(returns, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"returns must be numeric: {exc}") from exc
    if X.ndim != 2:
        raise ValueError(f"returns must be 2-D (dates x assets), got shape {X.shape}")
    X = X[np.all(np.isfinite(X), axis=1)]
    if X.shape[0] < 2:
        raise ValueError("covariance needs at least two rows of returns without NaN")
    centred = X - X.mean(axis=0)
    T, N = centred.shape
    cov = centred.T @ centred / (T - 1)

    if shrinkage is not None:
        if isinstance(shrinkage, str):
            if shrinkage.lower().replace("_", "-") != "ledoit-wolf":
                raise ValueError(f"unknown shrinkage {shrinkage!r}; use a number or 'ledoit-wolf'")
            intensity = _ledoit_wolf_intensity(centred)
        else:
            intensity = float(shrinkage)
            if not 0.0 <= intensity <= 1.0:
                raise ValueError(f"shrinkage must be in [0, 1], got {shrinkage}")
        mu = np.trace(cov) / N
        cov = (1.0 - intensity) * cov + intensity * mu * np.eye(N)

    if labels is not None:
        return pd.DataFrame(cov, index=labels.copy(), columns=labels.copy())
    return cov


def _ledoit_wolf_intensity(centred: np.ndarray) -> float:
    """Ledoit-Wolf (2004) shrinkage toward ``mu * I`` for centred data ``(T, N)``."""
    T, N = centred.shape
    sample = centred.T @ centred / T
    mu = np.trace(sample) / N
    # d2: distance of the sample covariance to the target; b2: variance of its estimate.
    d2 = float(np.sum((sample - mu * np.eye(N)) ** 2))
    squares = centred**2
    b2 = float(np.sum(squares.T @ squares) / T - np.sum(sample**2)) / T
    if d2 == 0:
        return 0.0
    return min(b2, d2) / d2
