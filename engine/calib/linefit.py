"""Vectorised fitting of emission-line blends in many spectra at once.

Model of one window of one spectrum (column ``c``)::

    f(c) = b0 + b1 u + sum_i a_i G(c; p_i + mu, sigma),   u = (c - c_mid) / L

with ``p_i`` the predicted columns of the components, ``mu`` a common shift and ``G`` a
pixel-integrated unit Gaussian. ``a_i, b0, b1`` enter linearly and are solved exactly at every
Gauss-Newton step on ``(mu, sigma)`` (variable projection), for all spectra at once with
batched normal equations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

SQRT2PI = np.sqrt(2.0 * np.pi)


@dataclass(frozen=True)
class BlendFit:
    """Results for ``n`` spectra (shape ``(n,)`` arrays).

    Attributes
    ----------
    mu, mu_err : numpy.ndarray
        Common shift of the components and its error [pixel].
    sigma : numpy.ndarray
        Gaussian sigma [pixel].
    amplitude : numpy.ndarray
        Shape ``(n, m)`` component fluxes.
    chi2 : numpy.ndarray
        Reduced chi-square.
    ok : numpy.ndarray
        bool: converged, positive total flux, shift within bounds.
    """

    mu: np.ndarray
    mu_err: np.ndarray
    sigma: np.ndarray
    amplitude: np.ndarray
    chi2: np.ndarray
    ok: np.ndarray


def _gauss(cols: np.ndarray, centre: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-integrated Gaussian and its derivatives w.r.t. centre and sigma."""
    hi = (cols + 0.5 - centre) / sigma
    lo = (cols - 0.5 - centre) / sigma
    g = ndtr(hi) - ndtr(lo)
    p_hi, p_lo = np.exp(-0.5 * hi * hi) / SQRT2PI, np.exp(-0.5 * lo * lo) / SQRT2PI
    return g, -(p_hi - p_lo) / sigma, -(p_hi * hi - p_lo * lo) / sigma


def fit_blends(
    data: np.ndarray,
    var: np.ndarray,
    cols: np.ndarray,
    pred: np.ndarray,
    *,
    sigma0: np.ndarray | float = 1.1,
    max_shift: float = 3.0,
    n_iter: int = 10,
    fix_sigma: bool = False,
    groups: np.ndarray | None = None,
) -> BlendFit:
    """Fit one blend in ``n`` spectra.

    Parameters
    ----------
    data, var : numpy.ndarray
        Shape ``(n, L)`` window data and variance.
    cols : numpy.ndarray
        Shape ``(n, L)`` column of each sample.
    pred : numpy.ndarray
        Shape ``(n, m)`` predicted column of each component.
    sigma0 : float or numpy.ndarray
        First guess of sigma [pixel].
    max_shift : float
        Fits moving further than this are flagged [pixel].
    fix_sigma : bool
        Keep sigma at ``sigma0``.
    groups : numpy.ndarray, optional
        Shape ``(m,)`` amplitude group of each component: components of one group share one
        amplitude (e.g. the lines of an OH band taken as equally bright). Default: one each.
    """
    n, L = data.shape
    groups = np.arange(pred.shape[1]) if groups is None else np.asarray(groups)
    gsum = (groups[:, None] == np.unique(groups)[None, :]).astype(float)  # (components, groups)
    m = gsum.shape[1]
    good = np.isfinite(data) & np.isfinite(var) & (var > 0)
    w = np.where(good, 1.0 / np.where(good, var, 1.0), 0.0)
    d = np.where(good, data, 0.0)
    u = (cols - cols.mean(axis=1, keepdims=True)) / L
    mu = np.zeros(n)
    sig = np.broadcast_to(np.asarray(sigma0, dtype=float), (n,)).copy()
    p = m + 2
    for _ in range(n_iter):
        centres = pred[:, None, :] + mu[:, None, None]  # (n, 1, m)
        g, dg_dc, dg_ds = (a @ gsum for a in _gauss(cols[:, :, None], centres, sig[:, None, None]))  # (n, L, m)
        basis = np.concatenate([g, np.ones((n, L, 1)), u[:, :, None]], axis=2)  # (n, L, p)
        coef = _batched_wls(basis, d, w)
        amp = coef[:, :m]
        resid = d - np.einsum("nlp,np->nl", basis, coef)
        j_mu = np.einsum("nlm,nm->nl", dg_dc, amp)
        j_s = np.einsum("nlm,nm->nl", dg_ds, amp)
        a11, a12, a22 = (w * j_mu * j_mu).sum(1), (w * j_mu * j_s).sum(1), (w * j_s * j_s).sum(1)
        b1, b2 = (w * j_mu * resid).sum(1), (w * j_s * resid).sum(1)
        if fix_sigma:
            dmu = np.where(a11 > 0, b1 / np.where(a11 > 0, a11, 1.0), 0.0)
            dsig = np.zeros(n)
        else:
            det = a11 * a22 - a12 * a12
            okd = det > 0
            dmu = np.where(okd, (a22 * b1 - a12 * b2) / np.where(okd, det, 1.0), 0.0)
            dsig = np.where(okd, (a11 * b2 - a12 * b1) / np.where(okd, det, 1.0), 0.0)
        mu = mu + np.clip(dmu, -0.7, 0.7)
        sig = np.clip(sig + np.clip(dsig, -0.2, 0.2), 0.6, 2.5)
    dof = np.maximum(good.sum(1) - p - (1 if fix_sigma else 2), 1)
    chi2 = (w * resid * resid).sum(1) / dof
    if fix_sigma:
        var_mu = np.where(a11 > 0, 1.0 / np.where(a11 > 0, a11, 1.0), np.inf)
    else:
        det = a11 * a22 - a12 * a12
        var_mu = np.where(det > 0, a22 / np.where(det > 0, det, 1.0), np.inf)
    mu_err = np.sqrt(var_mu * np.maximum(chi2, 1.0))
    total = amp.sum(1)
    ok = np.isfinite(mu) & (np.abs(mu) < max_shift) & (total > 0) & np.isfinite(mu_err) & (good.sum(1) > p + 2)
    return BlendFit(mu=mu, mu_err=mu_err, sigma=sig, amplitude=amp, chi2=chi2, ok=ok)


def _batched_wls(basis: np.ndarray, d: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least squares ``d ~ basis @ coef`` for every row; shapes (n,L,p),(n,L) -> (n,p)."""
    bw = basis * w[:, :, None]
    ata = np.einsum("nlp,nlq->npq", bw, basis)
    atb = np.einsum("nlp,nl->np", bw, d)
    ata += np.eye(ata.shape[1])[None] * 1e-9 * np.maximum(np.trace(ata, axis1=1, axis2=2), 1.0)[:, None, None]
    return np.linalg.solve(ata, atb[:, :, None])[:, :, 0]
