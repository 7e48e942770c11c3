"""Flux-conserving resampling of extracted columns onto the cube wavelength grid.

A detector column ``c`` of a trace covers ``[c - 0.5, c + 0.5]`` and so the wavelength interval
between ``lambda(c + 0.5)`` and ``lambda(c - 0.5)``; its electrons are assumed spread uniformly
over that interval. A cube sample collects the fraction of every column's interval that falls
in its 25.57-A bin; dividing by the bin width gives electrons per Angstrom. Each column
overlaps at most ``MAX_BINS`` bins, so the operator is a small dense array per trace; variances
propagate with the squared fractions (columns independent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.instrument import sedm

MAX_BINS = 4


@dataclass(frozen=True)
class Rebinner:
    """Resampling from ``(n, n_cols)`` column sums to ``(n, n_wave)`` samples.

    Attributes
    ----------
    first_bin : numpy.ndarray
        Shape ``(n, n_cols)`` index of the first cube bin a column touches.
    frac : numpy.ndarray
        Shape ``(n, n_cols, MAX_BINS)`` fraction of the column in bins ``first_bin + k``.
    n_wave : int
    dwave : float
        Bin width [Angstrom].
    """

    first_bin: np.ndarray
    frac: np.ndarray
    n_wave: int
    dwave: float

    def apply(self, columns: np.ndarray, variance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Resample column sums (and their variances) to electrons per Angstrom per bin.

        Columns that are NaN make the bins they touch NaN.
        """
        n, m = columns.shape
        bins = self.first_bin[:, :, None] + np.arange(MAX_BINS)[None, None, :]
        ok = (bins >= 0) & (bins < self.n_wave) & (self.frac > 0)
        flat_idx = (np.arange(n)[:, None, None] * self.n_wave + np.clip(bins, 0, self.n_wave - 1))[ok]
        bad = ~np.isfinite(columns)
        vals = np.where(bad, 0.0, columns)[:, :, None] * self.frac
        out = np.bincount(flat_idx, weights=vals[ok], minlength=n * self.n_wave).reshape(n, self.n_wave)
        nanmask = np.bincount(flat_idx, weights=(bad[:, :, None] & (self.frac > 1e-6))[ok].astype(float),
                              minlength=n * self.n_wave).reshape(n, self.n_wave) > 0
        out = np.where(nanmask, np.nan, out / self.dwave)
        var_out = None
        if variance is not None:
            v = np.where(np.isfinite(variance), variance, 0.0)[:, :, None] * self.frac**2
            var_out = np.bincount(flat_idx, weights=v[ok], minlength=n * self.n_wave).reshape(n, self.n_wave)
            var_out = np.where(nanmask, np.nan, var_out / self.dwave**2)
        return out, var_out


def build_rebinner(column_wave_edges: np.ndarray, wave: np.ndarray = sedm.CUBE_WAVE_AA) -> Rebinner:
    """Rebinner from the wavelength of every column edge.

    Parameters
    ----------
    column_wave_edges : numpy.ndarray
        Shape ``(n, n_cols + 1)``: wavelength at column edges ``c - 0.5`` (index ``c``) [Angstrom];
        decreasing along the row (blue towards larger x). NaN edges give empty columns.
    wave : numpy.ndarray
        Shape ``(n_wave,)`` uniform bin centres.
    """
    dw = float(wave[1] - wave[0])
    e0 = wave[0] - 0.5 * dw
    left, right = column_wave_edges[:, :-1], column_wave_edges[:, 1:]
    lo = np.minimum(left, right)
    hi = np.maximum(left, right)
    width = hi - lo
    good = np.isfinite(width) & (width > 0)
    lo = np.where(good, lo, 0.0)
    hi = np.where(good, hi, 0.0)
    first = np.floor((lo - e0) / dw).astype(int)
    frac = np.zeros(lo.shape + (MAX_BINS,))
    for k in range(MAX_BINS):
        b_lo = e0 + (first + k) * dw
        b_hi = b_lo + dw
        overlap = np.clip(np.minimum(hi, b_hi) - np.maximum(lo, b_lo), 0.0, None)
        frac[:, :, k] = np.where(good, overlap / np.where(good, width, 1.0), 0.0)
    return Rebinner(first_bin=np.where(good, first, -10), frac=frac, n_wave=int(wave.size), dwave=dw)
