"""Point sources near the target (neighbouring stars): in the data image, then in the fit residual.

Before any fit, :func:`find_peaks` looks for compact, significant peaks of the broad-band data
image (4000-8000 A) away from the starting position: a neighbour one or two FWHM away merges
with the target in a fit of the target alone, so it must be in the model from the start.
After the fit, the broad-band residual image (data minus scene model minus background plane)
is lightly smoothed; local maxima more than 20 sigma, at least two FWHM from the target and
holding at least 5 % of the target's flux are further neighbours (:func:`find_companions`).
Each enters the metaslice fit (its position free within 1.5 spaxel units) and the forced
photometry as another PSF (same shape, same ADR track) with its own free spectrum, so its
wings are not attributed to the target. An extended host galaxy is a different component
(:mod:`engine.science.host`), tried after the neighbours.
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
    *, region: np.ndarray, target_flux: float, known: np.ndarray | None = None,
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
    known : numpy.ndarray, optional
        Shape ``(k, 2)`` neighbours already modelled: new ones must lie two FWHM from them.
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
    known = np.zeros((0, 2)) if known is None else np.asarray(known, dtype=float).reshape(-1, 2)
    cand = good & region & (dist_t > core_r) & (sm > 20.0 * sm_noise)
    tree = cKDTree(xy)
    for k in np.argsort(-np.where(cand, sm, -np.inf)):
        if not cand[k]:
            break
        near = tree.query_ball_point(xy[k], 1.2)
        if sm[k] < np.max(sm[near]):
            continue  # not a local maximum
        if any(np.hypot(*(xy[k] - p)) < 2 * fwhm_units for p in [*points, *known]):
            continue
        w = np.clip(r[near], 0, None)
        if w.sum() <= 0 or np.sum(np.clip(r[tree.query_ball_point(xy[k], fwhm_units)], 0, None)) < 0.05 * target_flux:
            continue
        points.append((xy[near] * w[:, None]).sum(0) / w.sum())
        if len(points) >= 3:
            break
    return Companions(points=np.array(points).reshape(-1, 2))


COMPACT_RATIO = 0.35
"""A peak is point-like when the faint side of its ring at ~1 FWHM is below this fraction of it."""


def find_peaks(
    xy: np.ndarray, image: np.ndarray, variance: np.ndarray, centre: np.ndarray, fwhm_units: float,
    *, exclude_radius: float, max_sources: int = 3, snr: float = 20.0,
) -> Companions:
    """Compact, significant peaks of a data image farther than ``exclude_radius`` from ``centre``.

    The image minus its median (sky) is smoothed with a Gaussian of ``0.6 fwhm / 2.355 + 0.5``;
    a peak is a local maximum (within 1.2 spaxel units) more than ``snr`` times its noise,
    point-like (the lower quartile of the ring 0.8-1.3 FWHM around it is below
    :data:`COMPACT_RATIO` of its height, so a host galaxy's broad bulge is left to the host
    model) and more than one FWHM from any brighter peak.

    Parameters
    ----------
    xy : numpy.ndarray
        Shape ``(n, 2)`` spaxel positions.
    image, variance : numpy.ndarray
        Shape ``(n,)`` broad-band image and its variance.
    centre : numpy.ndarray
        ``(x, y)`` where the target is expected.
    fwhm_units : float
        Expected PSF FWHM [spaxel unit].
    exclude_radius : float
        Peaks within this distance of ``centre`` belong to the target.

    Returns
    -------
    Companions
        Peak positions (flux-weighted centroids of the spaxels within 1.2 units), brightest first.
    """
    good = np.isfinite(image) & np.isfinite(variance) & (variance > 0)
    if good.sum() < 12:
        return Companions.none()
    r = np.where(good, image - np.median(image[good]), 0.0)
    ker = 0.6 * fwhm_units / 2.355 + 0.5
    sm, _ = _smooth(xy, r, good.astype(float), ker)
    sm_noise = np.sqrt(_smooth(xy, np.where(good, variance, 0.0), good.astype(float), ker)[0] / 5.0)
    dist_c = np.hypot(*(xy - np.asarray(centre, dtype=float)).T)
    tree = cKDTree(xy)
    found: list[np.ndarray] = []
    taken: list[np.ndarray] = []
    for k in np.argsort(-np.where(good, sm, -np.inf)):
        if not good[k] or not sm[k] > snr * sm_noise[k]:
            break
        near = tree.query_ball_point(xy[k], 1.2)
        if sm[k] < np.max(sm[near]) or any(np.hypot(*(xy[k] - p)) < fwhm_units for p in taken):
            continue
        taken.append(xy[k])
        if dist_c[k] <= exclude_radius:
            continue
        dk = np.hypot(*(xy - xy[k]).T)
        ring = good & (dk > 0.8 * fwhm_units) & (dk < 1.3 * fwhm_units)
        if ring.sum() < 3 or np.percentile(sm[ring], 25) > COMPACT_RATIO * sm[k]:
            continue
        w = np.clip(r[near], 0, None)
        found.append((xy[near] * w[:, None]).sum(0) / w.sum() if w.sum() > 0 else xy[k])
        if len(found) >= max_sources:
            break
    return Companions(points=np.array(found).reshape(-1, 2))
