"""Column windows of the traces: for the arcs (before the wavelength solution), without overlap
between traces of the same row, and which traces are usable (no I/O)."""

from __future__ import annotations

import logging

import numpy as np

from engine.calib.extraction import TraceGeometry
from engine.calib.tracefind import TraceFit
from engine.instrument import sedm

log = logging.getLogger(__name__)

ARC_PAD_RED, ARC_PAD_BLUE, ARC_WINDOW = 75, 110, 430


def clip_same_row(tf: TraceFit, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clip column windows so no two traces of the same row overlap (they sit end to end).

    A window stops half-way into the gap between its trace's dome-lit range and the next
    trace's in the same row (same centre row within 3 px).

    Parameters
    ----------
    tf : TraceFit
        The traces.
    lo, hi : numpy.ndarray
        Shape ``(n_traces,)``: first and last column of each window [pixel].
    """
    lo, hi = lo.copy(), hi.copy()
    y_mid = tf.y_at(tf.x_mid[:, None])[:, 0]
    order = np.argsort(y_mid)
    ys = y_mid[order]
    for k in range(tf.n):
        a, b = np.searchsorted(ys, [y_mid[k] - 15, y_mid[k] + 15])
        for j in order[a:b]:
            if j == k or abs(tf.x_mid[j] - tf.x_mid[k]) > 500:
                continue
            yj = tf.y_at(np.array([[tf.x_mid[k]]]), np.array([j]))[0, 0]
            if abs(yj - y_mid[k]) > 3.0:
                continue
            if tf.x_mid[j] < tf.x_mid[k]:
                lo[k] = max(lo[k], int(0.5 * (tf.x_hi[j] + tf.x_lo[k])) + 1)
            else:
                hi[k] = min(hi[k], int(0.5 * (tf.x_lo[j] + tf.x_hi[k])) - 1)
    return lo, hi


def arc_windows(tf: TraceFit) -> tuple[np.ndarray, int, np.ndarray]:
    """Windows for arc extraction before the wavelength solution is known: the dome-lit
    range, padded, clipped against the traces of the same row."""
    lo, hi = clip_same_row(tf, tf.x_lo - ARC_PAD_RED, tf.x_hi + ARC_PAD_BLUE)
    x0 = lo
    cols = x0[:, None] + np.arange(ARC_WINDOW)[None, :]
    col_ok = (cols <= hi[:, None]) & (cols >= 0) & (cols < sedm.CCD_SHAPE[1])
    return x0, ARC_WINDOW, col_ok


def trace_geometry(tf: TraceFit, x0: np.ndarray, n_cols: int, col_ok: np.ndarray) -> TraceGeometry:
    """The geometry of extraction windows ``x0 .. x0 + n_cols`` (``col_ok``: usable columns).

    Parameters
    ----------
    tf : TraceFit
        The traces.
    x0 : numpy.ndarray
        Shape ``(n_traces,)``: first column of each window [pixel].
    n_cols : int
        Window length [pixel].
    col_ok : numpy.ndarray
        Shape ``(n_traces, n_cols)`` bool.
    """
    cols = x0[:, None] + np.arange(n_cols)[None, :]
    return TraceGeometry(x0=x0, n_cols=n_cols, y_centre=tf.y_at(cols), sigma=tf.sigma_at(cols), col_ok=col_ok)


def usable_traces(tf: TraceFit, wave) -> np.ndarray:
    """True for traces whose measured 3700-9300 A span lies inside the usable detector region.

    Parameters
    ----------
    tf : TraceFit
        The traces.
    wave : WaveSolution
        The night's wavelength solution.
    """
    ends = wave.x_of_wave(np.array([sedm.CUBE_WAVE_AA[0], sedm.CUBE_WAVE_AA[-1]]))
    ok = np.ones(tf.n, bool)
    for k in range(2):
        ok &= sedm.inside_usable_region(ends[:, k], tf.y_at(ends[:, k : k + 1])[:, 0])
    return ok & wave.ok
