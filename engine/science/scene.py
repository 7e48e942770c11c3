"""Point sources near the target (neighbouring stars) found in the PSF-fit residual.

After a first PSF fit of the target alone, the broad-band residual image (4000-8000 A, data
minus target model minus background plane) is lightly smoothed; local maxima more than
20 sigma, at least two FWHM from the target and holding at least 5 % of the target's flux are
neighbours. Each enters the metaslice fit and the forced photometry as another PSF (same
shape, same ADR track) with its own free spectrum, so its wings are not attributed to the
target. An extended host galaxy is a different component (:mod:`engine.science.host`), tried
after the neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class Companions:
    """Neighbouring point sources of the scene.

    Attributes
    ----------
    points : numpy.ndarray
        Shape ``(k, 2)`` neighbour positions (mean over metaslices) [spaxel unit].
    """

    points: np.ndarray

    @classmethod
    def none(cls) -> Companions:
        """No companion."""
        return cls(points=np.zeros((0, 2)))

    @property
    def n(self) -> int:
        """Number of extra components."""
        return int(self.points.shape[0])


def _smooth(xy: np.ndarray, values: np.ndarray, weights: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised Gaussian convolution on the spaxel positions: (smoothed, support)."""
    tree = cKDTree(xy)
    pairs = tree.sparse_distance_matrix(tree, 3.0 * sigma, output_type="coo_matrix")
    k = np.exp(-0.5 * (pairs.data / sigma) ** 2)
    num = np.bincount(pairs.row, weights=k * weights[pairs.col] * values[pairs.col], minlength=xy.shape[0])
    den = np.bincount(pairs.row, weights=k * weights[pairs.col], minlength=xy.shape[0])
    return num / np.maximum(den, 1e-30), den


def find_companions(
    xy: np.ndarray, residual: np.ndarray, variance: np.ndarray, target: np.ndarray, fwhm_units: float,
    *, region: np.ndarray, target_flux: float,
) -> Companions:
    """Neighbouring point sources in a broad-band residual image.

    Parameters
    ----------
    xy : numpy.ndarray
        Shape ``(n, 2)`` spaxel positions.
    residual, variance : numpy.ndarray
        Shape ``(n,)`` broad-band residual (data - target - plane) and its variance.
    target : numpy.ndarray
        ``(x, y)`` of the target.
    fwhm_units : float
        PSF FWHM [spaxel unit].
    region : numpy.ndarray
        Shape ``(n,)`` bool: spaxels where companions matter (the fit region).
    target_flux : float
        The target's broad-band flux: a neighbour must hold at least 5 % of it.
    """
    good = np.isfinite(residual) & np.isfinite(variance) & (variance > 0)
    r = np.where(good, residual, 0.0)
    noise = np.sqrt(np.where(good, variance, np.inf))
    core_r = max(2.0 * fwhm_units, 3.0)
    dist_t = np.hypot(*(xy - target).T)
    # Neighbours: compact, significant peaks outside the target's core.
    ker = 0.6 * fwhm_units / 2.355 + 0.5
    sm, _ = _smooth(xy, r, good.astype(float), ker)
    sm_noise = np.sqrt(_smooth(xy, noise**2, good.astype(float), ker)[0] / 5.0)
    points = []
    cand = good & region & (dist_t > core_r) & (sm > 20.0 * sm_noise)
    tree = cKDTree(xy)
    for k in np.argsort(-np.where(cand, sm, -np.inf)):
        if not cand[k]:
            break
        near = tree.query_ball_point(xy[k], 1.2)
        if sm[k] < np.max(sm[near]):
            continue  # not a local maximum
        if any(np.hypot(*(xy[k] - p)) < 2 * fwhm_units for p in points):
            continue
        w = np.clip(r[near], 0, None)
        if w.sum() <= 0 or np.sum(np.clip(r[tree.query_ball_point(xy[k], fwhm_units)], 0, None)) < 0.05 * target_flux:
            continue
        points.append((xy[near] * w[:, None]).sum(0) / w.sum())
        if len(points) >= 3:
            break
    return Companions(points=np.array(points).reshape(-1, 2))
