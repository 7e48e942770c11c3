"""Trimmed, re-apodised correlations of one spectrum with many template rows (SNID ``overlap``
followed by ``docorr``), streamed in cache-sized chunks.

For a shift ``s`` (data redshifted by ``s`` log bins) the template is cut to the bins that
overlap the shifted data and the data to the bins that overlap the shifted template; both are
re-apodised with SNID's 5 % cosine bell and correlated with the band-pass filter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from engine.classify.correlate import BandPass, overlap_windows
from engine.classify.prepare import APODIZE_PERCENT, apodize_length, cosine_bell

CHUNK = 384
"""Rows per batch: small enough that each batch's arrays stay in the CPU cache."""


def taper_profile(nw: int, dtype: type = np.float64,
                  percent: float = APODIZE_PERCENT) -> np.ndarray:
    """One-sided window profile ``p[j + nw]`` for ``j = -nw..nw``: 0 for ``j <= 0``, SNID's
    cosine bell for ``0 < j < kmax``, 1 beyond (``kmax`` the full taper length).

    Parameters
    ----------
    nw : int
        Row length [bins].
    dtype : type
        Element type (the bell is rounded to it exactly as :func:`apply_windows` does).
    percent : float
        Taper length, percent of ``nw``.

    Returns
    -------
    numpy.ndarray
        Shape ``(2 nw + 1,)``.
    """
    kmax = apodize_length(nw, 0, 10 * nw, percent)
    prof = np.ones(2 * nw + 1, dtype=dtype)
    prof[:nw + 1] = 0.0
    if kmax > 1:
        prof[nw + 1:nw + kmax] = cosine_bell(kmax).astype(dtype)[1:]
    return prof


def apply_windows(x: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                  percent: float = APODIZE_PERCENT) -> np.ndarray:
    """Zero ``x`` outside ``lo < i < hi`` and taper both ends with SNID's cosine bell, in place.

    Rows whose window holds both full tapers (the usual case) are multiplied by two shifted
    copies of :func:`taper_profile` (rising from ``lo``, falling to ``hi``); each factor is 0,
    1 or a bell value, so the result equals the general path bit for bit. Shorter windows take
    the general path (SNID shortens the taper to half the window).

    Parameters
    ----------
    x : numpy.ndarray
        Shape ``(n, nw)``, C-contiguous, modified in place.
    lo, hi : numpy.ndarray
        Shape ``(n,)`` int window bounds, ``0 <= lo``, ``hi < nw`` (the bounds become 0).
    percent : float
        Taper length, percent of ``nw`` (limited to half the window, as SNID's ``apodize``).

    Returns
    -------
    numpy.ndarray
        ``x``.
    """
    n, nw = x.shape
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    kmax = apodize_length(nw, 0, 10 * nw, percent)
    short = np.trunc((hi - lo) / 2.0) < kmax
    if short.all():
        return _apply_windows_general(x, lo, hi, percent)
    rise, fall = _profile_rows(taper_profile(nw, x.dtype.type, percent), nw)
    if short.any():
        full = np.flatnonzero(~short)
        sub = x[full]
        sub *= rise[nw - lo[full]]
        sub *= fall[nw - hi[full]]
        x[full] = sub
        part = np.flatnonzero(short)
        x[part] = _apply_windows_general(x[part], lo[part], hi[part], percent)
        return x
    x *= rise[nw - lo]
    x *= fall[nw - hi]
    return x


def _profile_rows(prof: np.ndarray, nw: int) -> tuple[np.ndarray, np.ndarray]:
    """Read-only ``(nw + 1, nw)`` views of all shifted copies of a :func:`taper_profile`:
    ``rise[nw - lo, i] = p(i - lo)`` and ``fall[nw - hi, i] = p(hi - i)``."""
    rev = np.ascontiguousarray(prof[::-1])
    step = prof.strides[0]
    strided = np.lib.stride_tricks.as_strided
    return (strided(prof, shape=(nw + 1, nw), strides=(step, step), writeable=False),
            strided(rev, shape=(nw + 1, nw), strides=(step, step), writeable=False))


def _apply_windows_general(x: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                           percent: float) -> np.ndarray:
    """:func:`apply_windows` for any window length (tapers limited to half the window)."""
    n, nw = x.shape
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    inside = (np.arange(nw, dtype=np.int16)[None, :] - (lo + 1).astype(np.int16)[:, None])
    inside = inside.view(np.uint16) < np.maximum(hi - lo - 1, 0).astype(np.uint16)[:, None]
    np.multiply(x, inside, out=x)
    kmax = apodize_length(nw, 0, 10 * nw, percent)
    ns = np.minimum(kmax, np.trunc((hi - lo) / 2.0)).astype(np.int64)
    bell = np.broadcast_to(cosine_bell(kmax).astype(x.dtype), (n, kmax))
    if (ns != kmax).any():
        bell = bell.copy()
        for k in np.unique(ns[ns != kmax]):
            sel = np.flatnonzero(ns == k)
            bell[sel] = 1.0
            if k > 0:
                bell[np.ix_(sel, np.arange(k))] = cosine_bell(int(k)).astype(x.dtype)
    flat = x.reshape(-1)
    base = (np.arange(n) * nw)[:, None]
    off = np.arange(kmax)[None, :]
    left = np.minimum(lo[:, None] + off, nw - 1) + base
    right = np.maximum(hi[:, None] - off, 0) + base
    flat[left.ravel()] *= bell.ravel()
    flat[right.ravel()] *= bell.ravel()
    return x


@dataclass(frozen=True)
class TrimmedChunk:
    """Correlations of one batch of rows, in Fourier space.

    The band-pass filter is zero above ``k4``, so the filtered cross-power up to ``k4``
    determines the correlation function exactly: ``irfft(cfilt, n=nw)`` is the full
    correlation and ``irfft(cfilt, n=nw // 2) / 2`` its values at the even lags (exact as long
    as ``k4 < nw / 4``).

    Attributes
    ----------
    sl : slice
        Position of the batch in the requested rows.
    cfilt : numpy.ndarray
        Shape ``(m, k4 + 1)`` filtered cross-power ``B D T*`` for ``k = 0..k4``.
    cband : numpy.ndarray
        Shape ``(m, k4 - k1 + 1)`` unfiltered cross-power ``D T*`` over ``k1..k4`` (for the
        antisymmetric rms).
    """

    sl: slice
    cfilt: np.ndarray
    cband: np.ndarray


def trimmed_correlations(flat: np.ndarray, flux: np.ndarray, rows: np.ndarray,
                         shift: np.ndarray, tlo: np.ndarray, thi: np.ndarray, dlo: int,
                         dhi: int, band: BandPass, filt: np.ndarray, *,
                         dtype: type = np.float64, chunk: int = CHUNK) -> Iterator[TrimmedChunk]:
    """Yield the trimmed correlations of ``flat`` with ``flux[rows]`` at ``shift``, by batch.

    Parameters
    ----------
    flat : numpy.ndarray
        Shape ``(nw,)`` prepared data (flattened, apodised).
    flux : numpy.ndarray
        Shape ``(n_epoch, nw)`` template rows.
    rows, shift : numpy.ndarray
        Shape ``(n,)`` template row and shift [bins] of each correlation.
    tlo, thi : numpy.ndarray
        Shape ``(n_epoch,)`` non-zero ranges of the template rows.
    dlo, dhi : int
        Non-zero range of the data.
    band : BandPass
    filt : numpy.ndarray
        Shape ``(nw // 2 + 1,)`` band-pass amplitudes.
    dtype : type
        ``numpy.float32`` (SNID's precision, faster) or ``numpy.float64``.
    chunk : int
        Rows per batch.

    Yields
    ------
    TrimmedChunk
    """
    nw = flat.size
    t1, t2, d1, d2, _ = overlap_windows(shift, tlo[rows], thi[rows], dlo, dhi)
    key = d1 * (4 * nw) + d2
    ukey, inv = np.unique(key, return_inverse=True)
    dwin = np.broadcast_to(flat.astype(dtype), (ukey.size, nw)).copy()
    apply_windows(dwin, ukey // (4 * nw), ukey % (4 * nw))
    dft = sfft.rfft(dwin, axis=1)[:, :band.k4 + 1]
    kb = slice(band.k1, band.k4 + 1)
    dband = dft[:, kb].copy()
    dft *= filt[:band.k4 + 1].astype(dtype)
    for s in range(0, rows.size, chunk):
        sl = slice(s, min(s + chunk, rows.size))
        tw = flux[rows[sl]]
        if tw.dtype != dtype:
            tw = tw.astype(dtype)
        apply_windows(tw, t1[sl], t2[sl])
        tft = sfft.rfft(tw, axis=1)[:, :band.k4 + 1]
        np.conjugate(tft, out=tft)
        yield TrimmedChunk(sl=sl, cfilt=dft[inv[sl]] * tft, cband=dband[inv[sl]] * tft[:, kb])


def correlation_functions(cfilt: np.ndarray, nw: int) -> np.ndarray:
    """Full correlation functions, shape ``(m, nw)``, from :attr:`TrimmedChunk.cfilt`."""
    return sfft.irfft(cfilt, n=nw, axis=1)


def even_lag_correlations(cfilt: np.ndarray, nw: int) -> np.ndarray:
    """The correlation functions at even lags ``0, 2, ...``, shape ``(m, nw // 2)``."""
    out = sfft.irfft(cfilt, n=nw // 2, axis=1)
    out *= 0.5
    return out
