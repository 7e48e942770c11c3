"""Spaxels with a cosmic-ray-like spike: what region mode marks for the observer to exclude.

A spike is a sample far above its own spectrum's running median (in units of its noise), narrow
along wavelength (one or two slices), and absent from the neighbouring spaxels at that
wavelength. The last condition is what separates a cosmic ray (one lenslet, one slice) from an
emission line of the target or its host, which the PSF spreads over several spaxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPIKE_SIGMA = 8.0
"""A sample this many noise sigma above its spectrum's running median is a spike candidate."""
NEIGHBOUR_SIGMA = 3.0
"""...unless the median of the neighbouring spaxels at that wavelength is this high too (a line)."""
MAX_WIDTH = 2
"""A spike spans at most this many slices above half its threshold (a line or an edge is wider)."""
NEIGHBOUR_RADIUS = 1.2
"""Neighbouring spaxels are within this distance [spaxel unit] (the six around a lenslet)."""


@dataclass(frozen=True)
class Spikes:
    """The spiked spaxels of a cube, strongest spike of each.

    Attributes
    ----------
    index : numpy.ndarray
        Shape ``(k,)`` int: spaxel indices (rows of the cube).
    wave : numpy.ndarray
        Shape ``(k,)``: wavelength of the strongest spike [Angstrom].
    sigma : numpy.ndarray
        Shape ``(k,)``: its height over the running median [noise sigma].
    """

    index: np.ndarray
    wave: np.ndarray
    sigma: np.ndarray

    def of(self, spaxel: int) -> tuple[float, float] | None:
        """``(wave, sigma)`` of a spaxel's spike, ``None`` when it has none."""
        hit = np.flatnonzero(self.index == spaxel)
        return (float(self.wave[hit[0]]), float(self.sigma[hit[0]])) if hit.size else None


NO_SPIKES = Spikes(np.zeros(0, int), np.zeros(0), np.zeros(0))


def find_spikes(wave: np.ndarray, flux: np.ndarray, var: np.ndarray | None, xy: np.ndarray) -> Spikes:
    """The spaxels holding a cosmic-ray-like spike.

    Parameters
    ----------
    wave : numpy.ndarray
        Shape ``(n_wave,)`` [Angstrom].
    flux, var : numpy.ndarray
        Shape ``(n_spax, n_wave)`` cube and its variance (``None``: no noise to judge by, no spike).
    xy : numpy.ndarray
        Shape ``(n_spax, 2)`` spaxel positions [spaxel unit].

    Returns
    -------
    Spikes
        Brightest spike first.
    """
    if var is None or flux.size == 0 or flux.shape[1] < 5:
        return NO_SPIKES
    from scipy.ndimage import median_filter, uniform_filter1d  # here: the console starts without scipy
    from scipy.spatial import cKDTree

    f = np.asarray(flux, dtype=np.float64)
    v = np.asarray(var, dtype=np.float64)
    good = np.isfinite(f) & np.isfinite(v) & (v > 0)
    base = median_filter(np.where(good, f, 0.0), size=(1, 5), mode="nearest")
    z = np.where(good, (f - base) / np.sqrt(np.where(good, v, 1.0)), 0.0)
    above = z > SPIKE_SIGMA
    if not above.any():
        return NO_SPIKES
    span = 2 * MAX_WIDTH + 1
    width = np.rint(uniform_filter1d((z > SPIKE_SIGMA / 2).astype(np.float64), span, axis=1, mode="constant") * span)
    tree = cKDTree(xy)
    spax, slc = np.nonzero(above & (width <= MAX_WIDTH))
    best: dict[int, tuple[float, float]] = {}
    for i, k in zip(spax, slc):
        near = [j for j in tree.query_ball_point(xy[i], NEIGHBOUR_RADIUS) if j != i]
        if near and np.median(z[near, k]) >= NEIGHBOUR_SIGMA:
            continue  # the neighbours see it too: a line of the scene
        if i not in best or z[i, k] > best[i][1]:
            best[int(i)] = (float(wave[k]), float(z[i, k]))
    if not best:
        return NO_SPIKES
    order = sorted(best, key=lambda i: -best[i][1])
    return Spikes(np.array(order, int), np.array([best[i][0] for i in order]), np.array([best[i][1] for i in order]))


__all__ = ["NO_SPIKES", "Spikes", "find_spikes"]
