"""alphazoo.contrib.optimizer: long-only portfolio optimisation against closed-form answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alphazoo.contrib.optimizer import OptimizationError, PortfolioOptimizer, covariance


def _correlated_3x3() -> np.ndarray:
    vols = np.array([0.10, 0.20, 0.30])
    corr = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.4], [0.2, 0.4, 1.0]])
    return corr * np.outer(vols, vols)


def _assert_long_only(w: np.ndarray | pd.Series) -> None:
    w = np.asarray(w)
    assert np.all(w >= 0)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.fixture(scope="module")
def real_returns() -> pd.DataFrame:
    from alphazoo.datasets import load_prices, symbols

    closes = {}
    for symbol in symbols():
        bars = load_prices(symbol)
        closes[symbol] = pd.Series(bars.close, index=pd.DatetimeIndex(bars.dates))
    prices = pd.DataFrame(closes).sort_index()
    assert len(prices.columns) == 5
    return prices.pct_change(fill_method=None).iloc[1:]


# -- closed forms ------------------------------------------------------------------------------


def test_diagonal_covariance_gmv_is_inverse_variance_inv_and_rp_inverse_vol():
    sigma = np.array([0.1, 0.2, 0.25, 0.4])
    S = np.diag(sigma**2)
    inverse_variance = sigma**-2 / (sigma**-2).sum()
    inverse_vol = sigma**-1 / (sigma**-1).sum()
    np.testing.assert_allclose(PortfolioOptimizer("gmv")(S), inverse_variance, atol=1e-9)
    np.testing.assert_allclose(PortfolioOptimizer("inv")(S), inverse_vol, rtol=1e-12)
    np.testing.assert_allclose(PortfolioOptimizer("rp")(S), inverse_vol, rtol=1e-9)


@pytest.mark.parametrize("rho", [-0.6, 0.0, 0.3])
def test_two_asset_gmv_matches_formula(rho):
    s1, s2 = 0.2, 0.3
    S = np.array([[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]])
    w1 = (s2**2 - rho * s1 * s2) / (s1**2 + s2**2 - 2 * rho * s1 * s2)
    assert 0 < w1 < 1  # interior, so the long-only answer is the formula
    w = PortfolioOptimizer("gmv")(S)
    np.testing.assert_allclose(w, [w1, 1 - w1], atol=1e-9)


def test_long_only_gmv_zeroes_the_asset_the_unconstrained_answer_shorts():
    # Asset 1 is highly correlated with asset 0 and more volatile: the unconstrained
    # minimum-variance portfolio shorts it to hedge asset 0.
    vols = np.array([0.10, 0.15, 0.20])
    corr = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.1], [0.1, 0.1, 1.0]])
    S = corr * np.outer(vols, vols)
    unconstrained = np.linalg.solve(S, np.ones(3))
    unconstrained /= unconstrained.sum()
    assert unconstrained[1] < 0

    w = PortfolioOptimizer("gmv")(S)
    _assert_long_only(w)
    assert w[1] == 0.0
    # With asset 1 out, the answer is the two-asset formula on assets 0 and 2.
    s1, s2, rho = vols[0], vols[2], corr[0, 2]
    w0 = (s2**2 - rho * s1 * s2) / (s1**2 + s2**2 - 2 * rho * s1 * s2)
    np.testing.assert_allclose(w[[0, 2]], [w0, 1 - w0], atol=1e-9)


def test_mvo_with_large_lambda_is_gmv_and_with_tiny_lambda_the_best_return():
    S = _correlated_3x3()
    r = np.array([0.02, 0.05, 0.08])
    gmv = PortfolioOptimizer("gmv")(S)
    np.testing.assert_allclose(PortfolioOptimizer("mvo", lamb=1e7)(S, r), gmv, atol=1e-6)
    np.testing.assert_allclose(PortfolioOptimizer("mvo", lamb=1e-9)(S, r), [0, 0, 1], atol=1e-9)
    # In between, more return is bought with more variance.
    middle = PortfolioOptimizer("mvo", lamb=10.0)(S, r)
    _assert_long_only(middle)
    assert r @ gmv < r @ middle < r.max()
    assert gmv @ S @ gmv < middle @ S @ middle


def test_mvo_lambda_scale_does_not_depend_on_units_of_r():
    S = _correlated_3x3()
    r = np.array([0.02, 0.05, 0.08])
    opt = PortfolioOptimizer("mvo", lamb=2.0)
    np.testing.assert_allclose(opt(S, r), opt(S, 100 * r), atol=1e-8)


def test_risk_parity_contributions_are_equal_on_correlated_matrix():
    S = _correlated_3x3()
    w = PortfolioOptimizer("rp")(S)
    _assert_long_only(w)
    contributions = w * (S @ w)
    np.testing.assert_allclose(contributions, contributions.mean(), rtol=1e-9)
    # Not merely inverse volatility: correlation moves the answer.
    inverse_vol = PortfolioOptimizer("inv")(S)
    assert np.abs(w - inverse_vol).max() > 1e-3


@pytest.mark.parametrize("method", ["gmv", "mvo", "rp"])
def test_turnover_limit_is_respected(method):
    S = _correlated_3x3()
    r = np.array([0.02, 0.05, 0.08])
    w0 = np.array([0.0, 0.0, 1.0])
    opt = PortfolioOptimizer(method, lamb=10.0, delta=0.3)
    w = opt(S, r if method == "mvo" else None, w0=w0)
    _assert_long_only(w)
    moved = np.abs(w - w0).sum()
    assert moved <= 0.3 + 1e-6
    # The unconstrained optimum is far from w0, so the limit binds and the answer moves.
    free = PortfolioOptimizer(method, lamb=10.0)(S, r if method == "mvo" else None)
    assert np.abs(free - w0).sum() > 0.3
    assert moved == pytest.approx(0.3, abs=1e-5)


def test_turnover_limit_improves_variance_within_reach():
    S = _correlated_3x3()
    w0 = np.array([0.0, 0.0, 1.0])
    w = PortfolioOptimizer("gmv", delta=0.5)(S, w0=w0)
    assert w @ S @ w < w0 @ S @ w0
    # delta=0 means no limit, not "stay at w0".
    np.testing.assert_allclose(
        PortfolioOptimizer("gmv")(S, w0=w0), PortfolioOptimizer("gmv")(S), atol=1e-12
    )


def test_alpha_pulls_weights_toward_equal():
    S = _correlated_3x3()
    plain = PortfolioOptimizer("gmv")(S)
    regularised = PortfolioOptimizer("gmv", alpha=1.0)(S)
    _assert_long_only(regularised)
    equal = np.full(3, 1 / 3)
    assert np.abs(regularised - equal).sum() < np.abs(plain - equal).sum()
    # gmv with alpha is gmv of S + alpha * I.
    np.testing.assert_allclose(
        regularised, PortfolioOptimizer("gmv")(S + 1.0 * np.eye(3)), atol=1e-9
    )


# -- real data -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["inv", "gmv", "mvo", "rp"])
def test_real_covariance_gives_long_only_series(real_returns, method):
    S = covariance(real_returns)
    r = real_returns.mean() if method == "mvo" else None
    w = PortfolioOptimizer(method, lamb=10.0)(S, r)
    assert isinstance(w, pd.Series)
    assert list(w.index) == list(real_returns.columns)
    _assert_long_only(w)
    if method == "gmv":
        # No long-only portfolio has a lower variance than gmv: check against random ones.
        rng = np.random.default_rng(0)
        others = rng.dirichlet(np.ones(5), size=2000)
        variances = np.einsum("ij,jk,ik->i", others, S.to_numpy(), others)
        assert w @ S @ w <= variances.min() + 1e-12
    if method == "rp":
        contributions = w * (S @ w)
        np.testing.assert_allclose(contributions, contributions.mean(), rtol=1e-9)


def test_series_inputs_are_aligned_by_label(real_returns):
    S = covariance(real_returns)
    r = real_returns.mean()
    opt = PortfolioOptimizer("mvo", lamb=10.0)
    np.testing.assert_allclose(opt(S, r[::-1]), opt(S, r), atol=1e-12)
    with pytest.raises(ValueError, match="labels"):
        opt(S, r.rename(index={"AAPL": "MSFT"}))


# -- covariance helper ---------------------------------------------------------------------------


def test_covariance_matches_numpy_and_drops_rows_with_nan(real_returns):
    S = covariance(real_returns)
    complete = real_returns.dropna()
    np.testing.assert_allclose(S.to_numpy(), np.cov(complete.to_numpy(), rowvar=False))
    assert list(S.index) == list(S.columns) == list(real_returns.columns)
    assert isinstance(covariance(complete.to_numpy()), np.ndarray)


def test_covariance_shrinkage_formula(real_returns):
    sample = covariance(real_returns).to_numpy()
    shrunk = covariance(real_returns, shrinkage=0.25).to_numpy()
    mu = np.trace(sample) / 5
    np.testing.assert_allclose(shrunk, 0.75 * sample + 0.25 * mu * np.eye(5))
    assert np.trace(shrunk) == pytest.approx(np.trace(sample))
    np.testing.assert_allclose(covariance(real_returns, shrinkage=1.0), mu * np.eye(5))


def test_ledoit_wolf_intensity_matches_scikit_learn(real_returns):
    from sklearn.covariance import ledoit_wolf

    X = real_returns.dropna().to_numpy()
    n = len(X)
    ours = covariance(X, shrinkage="ledoit-wolf")
    # scikit-learn divides by n, we by n - 1; the shrinkage intensity is the same.
    np.testing.assert_allclose(ours * (n - 1) / n, ledoit_wolf(X)[0], rtol=1e-10)


@pytest.mark.parametrize(
    ("returns", "shrinkage", "message"),
    [
        (np.ones((1, 3)), None, "two rows"),
        (np.ones(5), None, "2-D"),
        (np.random.default_rng(0).normal(size=(20, 3)), 1.5, r"\[0, 1\]"),
        (np.random.default_rng(0).normal(size=(20, 3)), "oas", "unknown shrinkage"),
    ],
)
def test_covariance_bad_input(returns, shrinkage, message):
    with pytest.raises(ValueError, match=message):
        covariance(returns, shrinkage=shrinkage)


# -- errors ----------------------------------------------------------------------------------------


def test_mvo_without_returns_is_refused():
    with pytest.raises(ValueError, match="needs expected returns"):
        PortfolioOptimizer("mvo")(_correlated_3x3())


@pytest.mark.parametrize(
    ("S", "message"),
    [
        (np.ones((2, 3)), "square"),
        (np.array([[1.0, 0.5], [0.2, 1.0]]), "symmetric"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), "NaN"),
        (np.array([[-1.0, 0.0], [0.0, 1.0]]), "negative variances"),
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive semi-definite"),
    ],
)
def test_bad_covariance_is_refused(S, message):
    with pytest.raises(ValueError, match=message):
        PortfolioOptimizer("gmv")(S)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "sharpe"}, "unknown method"),
        ({"lamb": -1.0}, "lamb"),
        ({"delta": -0.1}, "delta"),
        ({"alpha": float("nan")}, "alpha"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PortfolioOptimizer(**kwargs)


def test_mismatched_vectors_are_refused():
    S = _correlated_3x3()
    with pytest.raises(ValueError, match="shape"):
        PortfolioOptimizer("mvo")(S, np.ones(2))
    with pytest.raises(ValueError, match="NaN"):
        PortfolioOptimizer("gmv", delta=0.1)(S, w0=np.array([1.0, np.nan, 0.0]))


def test_inv_and_rp_need_positive_variances():
    S = np.diag([0.04, 0.0])
    with pytest.raises(ValueError, match="positive variances"):
        PortfolioOptimizer("inv")(S)
    # gmv is well defined: everything goes to the riskless asset.
    np.testing.assert_allclose(PortfolioOptimizer("gmv")(S), [0.0, 1.0], atol=1e-9)


def test_unused_inputs_warn():
    S = _correlated_3x3()
    with pytest.warns(UserWarning, match="r is not used"):
        PortfolioOptimizer("gmv")(S, np.ones(3))
    with pytest.warns(UserWarning, match="w0 is not used"):
        PortfolioOptimizer("inv")(S, w0=np.full(3, 1 / 3))


def test_solver_failure_raises_with_scipys_message():
    # A tolerance far below machine precision: SLSQP gives up, and says why.
    S = _correlated_3x3()
    with pytest.raises(OptimizationError, match=r"gmv optimisation failed: .+\(status \d+\)"):
        PortfolioOptimizer("gmv", delta=0.3, tol=1e-30)(S, w0=np.array([0.0, 0.0, 1.0]))


@pytest.mark.parametrize("method", ["gmv", "mvo", "rp"])
@pytest.mark.parametrize("w0, reach", [
    ([0.2, 0.2, 0.2], 0.4),    # 60% invested: every fully invested portfolio is 0.4 away
    ([0.0, 0.0, 0.0], 1.0),    # all cash, e.g. before the first rebalance
    ([1.1, -0.1, 0.0], 0.2),   # a short: w >= 0 and w1 <= 1 are 0.1 + 0.1 away
])
def test_unreachable_turnover_limit_is_named(method, w0, reach):
    S, r = _correlated_3x3(), np.array([0.02, 0.05, 0.08])
    with pytest.raises(OptimizationError, match=rf"delta = 0\.1 .*at least {reach:g} "):
        PortfolioOptimizer(method, delta=0.1)(S, r if method == "mvo" else None, w0=np.array(w0))
    # At exactly that distance the limit is met.
    w = PortfolioOptimizer(method, delta=reach)(S, r if method == "mvo" else None,
                                                w0=np.array(w0))
    _assert_long_only(w)
    assert np.abs(w - np.array(w0)).sum() <= reach + 1e-6


def test_single_asset_is_fully_invested():
    np.testing.assert_array_equal(PortfolioOptimizer("gmv")(np.array([[0.04]])), [1.0])
    np.testing.assert_array_equal(PortfolioOptimizer("rp")(np.array([[0.04]])), [1.0])


def test_the_documented_differences_from_qlib_hold():
    # Each case is one the class docstring lists; qlib 0.9.7's answers, from running it on the
    # same matrices, are in the comments.
    S = np.array([[0.04, 0.01, 0.0], [0.01, 0.02, 0.0], [0.0, 0.0, 0.01]])
    w0 = np.array([0.5, 0.3, 0.2])
    gmv = PortfolioOptimizer("gmv")(S)
    np.testing.assert_allclose(gmv, [1 / 11, 3 / 11, 7 / 11], atol=1e-12)
    assert PortfolioOptimizer().method == "gmv"                     # qlib: "inv"
    # delta=0 with w0: no limit here; qlib returns w0 (no trading).
    np.testing.assert_allclose(PortfolioOptimizer("gmv", delta=0)(S, w0=w0), gmv, atol=1e-12)
    # mvo with constant r: every portfolio earns the same, so gmv's answer; qlib divides by
    # std(r) = 0 and returns equal weights with "optimization not success".
    np.testing.assert_allclose(PortfolioOptimizer("mvo", lamb=1)(S, r=np.ones(3)), gmv,
                               atol=1e-9)
    # A riskless asset: gmv holds it entirely (qlib: 2.5e-6 left on another); inv refuses
    # (qlib: NaN weights).
    riskless = np.diag([0.04, 0.0, 0.01])
    np.testing.assert_array_equal(PortfolioOptimizer("gmv")(riskless), [0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="positive variances"):
        PortfolioOptimizer("inv")(riskless)
    # rp without alpha is exact equal risk; qlib's SLSQP stops about 1e-6 short of it.
    rp = PortfolioOptimizer("rp")(S)
    np.testing.assert_allclose(rp * (S @ rp), np.full(3, rp @ S @ rp / 3), rtol=1e-9)
    np.testing.assert_allclose(rp, [0.21092295, 0.29829173, 0.49078531], rtol=0, atol=2e-6)
