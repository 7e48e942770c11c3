"""The batched solvers agree with numpy's one-at-a-time answers: Cholesky solves of many small
systems, grouped medians and grouped robust polynomials (degree per group, rejection, groups
left with too few points)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.calib.batched import cholesky_batched, cholesky_solve, grouped_median, grouped_robust_poly


def _nested(a):
    n = a.shape[1]
    return [[a[:, i, j].copy() for j in range(i + 1)] for i in range(n)]


@pytest.mark.parametrize("n", [1, 3, 4])
def test_cholesky_solves_like_numpy_and_flags_singular_systems(n):
    rng = np.random.default_rng(n)
    m = 500
    j = rng.normal(size=(m, 7, n))
    a = np.einsum("mki,mkj->mij", j, j)
    a[:5] = 0.0  # singular: no light in the window
    a[5:10, :, 0] = a[5:10, 0, :] = 0.0
    b = rng.normal(size=(m, n))
    chol, ok = cholesky_batched(_nested(a))
    x = np.stack(cholesky_solve(chol, [b[:, i] for i in range(n)]), axis=1)
    assert not ok[:10].any() and ok[10:].all()
    np.testing.assert_allclose(x[10:], np.linalg.solve(a[10:], b[10:, :, None])[..., 0], rtol=1e-9, atol=1e-12)
    assert np.isfinite(x).all()  # identity factors where not positive definite: finite, ignorable


def test_grouped_median_matches_numpy_on_odd_even_and_empty_groups():
    rng = np.random.default_rng(2)
    group = rng.integers(0, 40, 3000)
    values = rng.normal(size=group.size)
    use = rng.random(group.size) < 0.7
    use[group == 7] = False
    got = grouped_median(group, values, use, 41)
    for k in range(41):
        sel = use & (group == k)
        if sel.any():
            assert got[k] == pytest.approx(np.median(values[sel]), abs=1e-15)
        else:
            assert np.isnan(got[k])


def _reference(x, y, w, deg, n_iter=3):
    """One group the slow way: numpy's polyfit, the same rejection rule."""
    keep = np.isfinite(y) & np.isfinite(w) & (w > 0)
    coef, rms = np.zeros(deg + 1), np.nan
    for _ in range(n_iter):
        if keep.sum() <= deg + 2:
            return np.r_[coef, np.zeros(2 - deg)], np.nan
        coef = np.polynomial.polynomial.polyfit(x[keep], y[keep], deg, w=np.sqrt(w[keep]))
        res = y - np.polynomial.polynomial.polyval(x, coef)
        mad = 1.4826 * np.median(np.abs(res[keep]))
        rms = float(np.sqrt(np.mean(res[keep] ** 2)))
        keep &= np.abs(res) < max(4 * mad, 1e-3)
    return np.r_[coef, np.zeros(2 - deg)], rms


def test_grouped_robust_poly_matches_a_per_group_fit_with_rejection():
    rng = np.random.default_rng(3)
    n_groups = 60
    sizes = rng.integers(2, 300, n_groups)
    group = np.repeat(np.arange(n_groups), sizes)
    x = rng.uniform(-1.5, 1.5, group.size)
    deg = rng.integers(0, 3, n_groups)
    truth = rng.normal(size=(n_groups, 3)) * (np.arange(3)[None, :] <= deg[:, None])
    y = truth[group, 0] + truth[group, 1] * x + truth[group, 2] * x * x + 0.01 * rng.normal(size=x.size)
    outlier = rng.random(x.size) < 0.05
    y[outlier] += rng.choice([-1, 1], outlier.sum()) * rng.uniform(0.5, 3, outlier.sum())
    y[rng.random(x.size) < 0.05] = np.nan
    w = rng.uniform(0.5, 2.0, x.size)
    w[rng.random(x.size) < 0.05] = 0.0
    coef, rms = grouped_robust_poly(group, x, y, w, deg, n_groups)
    n_dead = 0
    for k in range(n_groups):
        sel = group == k
        ref_coef, ref_rms = _reference(x[sel], y[sel], w[sel], int(deg[k]))
        if np.isnan(ref_rms):
            n_dead += 1
            assert np.isnan(rms[k]), k
            continue
        np.testing.assert_allclose(coef[k], ref_coef, atol=1e-9, err_msg=str(k))
        assert rms[k] == pytest.approx(ref_rms, rel=1e-9)
        if sel.sum() > 100:  # the outliers are rejected: the truth comes back
            np.testing.assert_allclose(coef[k, : deg[k] + 1], truth[k, : deg[k] + 1], atol=0.02)
    assert 0 < n_dead < n_groups  # the sizes from 2 px leave some groups with too few points
