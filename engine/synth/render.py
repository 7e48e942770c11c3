"""Render lenslet spectra into a detector image (electrons, before bias and noise).

For each lenslet the spectrum, tabulated per unit ``t = lambda**-0.5`` on the fine grid, is
integrated exactly between detector column edges (cumulative integral, piecewise linear),
blurred along the dispersion by the lenslet's line-spread function, and spread across rows with
its Gaussian cross-dispersion profile. Emission lines given separately (arc lamps) are rendered
analytically at their exact sub-pixel positions. Work is done in chunks of lenslets to bound
memory.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from engine.instrument import sedm
from engine.synth.instrument import REF_T, TrueInstrument
from engine.synth.spectra import FineGrid

N_COLS = 292
"""Columns spanned by a rendered trace (3500-10000 A plus the LSF wings) at the nominal
dispersion; a longer drawn law gets more (:func:`trace_columns`)."""

HALF_ROWS = 6
HALF_TAPS = 5


def _invert_dispersion(instr: TrueInstrument, idx: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Solve ``D t + C t^2 + E t^3 + F t^4 = dx`` for ``t - t_ref`` (Newton); shapes ``(k, m)``."""
    c = instr.disp[idx]
    d, cc, e, f = (c[:, i : i + 1] for i in range(4))
    t = dx / d
    for _ in range(4):
        val = d * t + cc * t**2 + e * t**3 + f * t**4 - dx
        der = d + 2 * cc * t + 3 * e * t**2 + 4 * f * t**3
        t = t - val / der
    return t


def trace_columns(instr: TrueInstrument) -> int:
    """Columns a rendered trace spans: ``N_COLS``, or more when a wide draw's law is longer.

    Nominal draws always get ``N_COLS`` (their frames are frozen; the few of their traces that
    would need a column more lie off the detector's edge).
    """
    if instr.draw.get("priors", "nominal") == "nominal":
        return N_COLS
    ends = instr.x_of_wave(np.array([10000.0, 3500.0]))
    need = int(np.ceil(np.max(ends[:, 1] - ends[:, 0]))) + 14  # 8 before the red end, 5 LSF taps + 1 after the blue
    return max(N_COLS, need)


def _column_counts(
    instr: TrueInstrument, idx: np.ndarray, spec: np.ndarray, grid: FineGrid, i0: np.ndarray, iflex: float,
    n_cols: int = N_COLS,
) -> np.ndarray:
    """Electrons per column for lenslets ``idx`` from continuum spectra ``spec`` (per unit t)."""
    cum = np.zeros((len(idx), spec.shape[1] + 1))
    np.cumsum(spec * grid.dt, axis=1, out=cum[:, 1:])
    edges = i0[:, None] + np.arange(n_cols + 1)[None, :] - 0.5
    t_edge = _invert_dispersion(instr, idx, edges - instr.x_ref[idx][:, None] - iflex) + REF_T
    # cum[j] is the integral up to grid node j - 1/2 (piecewise constant per node).
    pos = (t_edge - grid.t[0]) / grid.dt + 0.5
    pos = np.clip(pos, 0.0, spec.shape[1])
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, spec.shape[1])
    frac = pos - lo
    rows = np.arange(len(idx))[:, None]
    p = cum[rows, lo] * (1 - frac) + cum[rows, hi] * frac
    return np.diff(p, axis=1)


def _lsf_blur(counts: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Convolve each row of ``counts`` with its own pixel-integrated Gaussian of ``sigma``."""
    taps = np.arange(-HALF_TAPS, HALF_TAPS + 1)
    w = ndtr((taps[None, :] + 0.5) / sigma[:, None]) - ndtr((taps[None, :] - 0.5) / sigma[:, None])
    w /= w.sum(axis=1, keepdims=True)
    padded = np.pad(counts, ((0, 0), (HALF_TAPS, HALF_TAPS)))
    out = np.zeros_like(counts)
    for k, tap in enumerate(taps):
        out += w[:, k : k + 1] * padded[:, HALF_TAPS - tap : HALF_TAPS - tap + counts.shape[1]]
    return out


def _add_lines(
    instr: TrueInstrument, idx: np.ndarray, counts: np.ndarray, i0: np.ndarray,
    line_wave: np.ndarray, line_e: np.ndarray, iflex: float, n_cols: int = N_COLS,
) -> None:
    """Add analytic emission lines (electrons ``line_e``, shape ``(k, m)``) into ``counts``."""
    xl = instr.x_of_wave(line_wave, idx) + iflex
    sig = instr.lsf_sigma[idx][:, None, None]
    base = np.floor(xl).astype(int)
    offs = np.arange(-HALF_TAPS, HALF_TAPS + 1)
    cols = base[:, :, None] + offs[None, None, :]
    frac = ndtr((cols + 0.5 - xl[:, :, None]) / sig) - ndtr((cols - 0.5 - xl[:, :, None]) / sig)
    local = cols - i0[:, None, None]
    ok = (local >= 0) & (local < n_cols)
    rows = np.broadcast_to(np.arange(len(idx))[:, None, None], local.shape)
    np.add.at(counts, (rows[ok], local[ok]), (line_e[:, :, None] * frac)[ok])


def _spread_rows(
    instr: TrueInstrument, idx: np.ndarray, counts: np.ndarray, i0: np.ndarray, jflex: float, iflex: float,
    image: np.ndarray, n_cols: int = N_COLS,
) -> None:
    """Distribute column counts over rows with each trace's Gaussian profile into ``image``."""
    ny, nx = image.shape
    cols = i0[:, None] + np.arange(n_cols)[None, :]
    yc = instr.y_of_x(cols.astype(float) - iflex, idx) + jflex
    t_col = _invert_dispersion(instr, idx, cols - instr.x_ref[idx][:, None] - iflex) + REF_T
    wave = np.clip(t_col, 1e-3, None) ** -2.0
    sig = instr.sigma_y[idx][:, None] * (1.0 + instr.sigma_chroma[idx][:, None] * (wave / 6500.0 - 1.0))
    r0 = np.floor(yc).astype(int) - HALF_ROWS
    flat = image.ravel()
    for k in range(2 * HALF_ROWS + 2):
        r = r0 + k
        w = ndtr((r + 0.5 - yc) / sig) - ndtr((r - 0.5 - yc) / sig)
        ok = (r >= 0) & (r < ny) & (cols >= 0) & (cols < nx) & (counts != 0)
        np.add.at(flat, (r[ok] * nx + cols[ok]), (counts * w)[ok])


def render_traces(
    instr: TrueInstrument,
    grid: FineGrid,
    continuum: np.ndarray | None,
    *,
    line_wave: np.ndarray | None = None,
    line_electrons: np.ndarray | None = None,
    iflex: float = 0.0,
    jflex: float = 0.0,
    chunk: int = 400,
) -> np.ndarray:
    """Render every lenslet's spectrum into a detector image.

    Parameters
    ----------
    instr : TrueInstrument
        The night's true trace geometry.
    grid : FineGrid
        Fine spectral grid of ``continuum``.
    continuum : numpy.ndarray or None
        Shape ``(n_lenslet, n_grid)``: electrons per unit ``t`` collected by each lenslet.
    line_wave : numpy.ndarray, optional
        Shape ``(m,)``: vacuum wavelengths of analytic emission lines [Angstrom].
    line_electrons : numpy.ndarray, optional
        Shape ``(n_lenslet, m)``: electrons of each line on each trace.
    iflex, jflex : float
        Shifts of the whole pattern along x and y [pixel].

    Returns
    -------
    numpy.ndarray
        Shape ``CCD_SHAPE``, float32 electrons (pixel flat applied).
    """
    image = np.zeros(sedm.CCD_SHAPE, dtype=np.float64)
    x_red = instr.x_of_wave(np.array([10000.0]))[:, 0] + iflex
    i0_all = np.floor(x_red).astype(int) - 8
    n_cols = trace_columns(instr)
    for start in range(0, instr.n, chunk):
        idx = np.arange(start, min(start + chunk, instr.n))
        i0 = i0_all[idx]
        if continuum is not None:
            counts = _column_counts(instr, idx, continuum[idx], grid, i0, iflex, n_cols)
            counts = _lsf_blur(counts, instr.lsf_sigma[idx])
        else:
            counts = np.zeros((len(idx), n_cols))
        if line_wave is not None and line_electrons is not None:
            _add_lines(instr, idx, counts, i0, line_wave, line_electrons[idx], iflex, n_cols)
        _spread_rows(instr, idx, counts, i0, jflex, iflex, image, n_cols)
    return (image * instr.pixel_flat).astype(np.float32)
