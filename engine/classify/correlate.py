"""Batched Fourier cross-correlation with SNID's band-pass filter, trimming and r-values.

Tonry & Davis (1979, AJ 84, 1511) cross-correlation as SNID 5.0 implements it (Blondin &
Tonry 2007, section 2): the correlation of the data ``d`` with a template ``t`` is
``c(m) = sum_i d(i + m) t(i)``, computed as ``irfft(B(k) D(k) T*(k))`` with ``B`` the
band-pass cosine bell over wavenumbers ``k1 <= k <= k4`` (rising until ``k2``, falling after
``k3``). The height-to-noise ratio is ``r = h / (sqrt(2) sigma_a)`` in Tonry & Davis' notation,
``h / (2 * arms)`` in SNID's, where ``arms`` is the rms of the antisymmetric part of the
filtered correlation about the peak. The overlap of data and template at the peak shift is
``lap`` (in ``ln lambda``); ``rlap = r * lap``.

All functions work on many rows (template epochs) at once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from engine.classify.prepare import APODIZE_PERCENT, apodize_length, cosine_bell


@dataclass(frozen=True)
class BandPass:
    """SNID's band-pass of the Fourier modes.

    Attributes
    ----------
    nw : int
        Transform length (1024).
    k1, k2, k3, k4 : int
        Wavenumbers: zero below ``k1`` and above ``k4``, rising cosine ``k1..k2``, falling
        ``k3..k4`` (SNID defaults 1, 4, ``nw // 12``, ``nw // 10``).
    """

    nw: int
    k1: int
    k2: int
    k3: int
    k4: int

    @classmethod
    def snid_default(cls, nw: int, k1: int = 0, k2: int = 0, k3: int = 0,
                     k4: int = 0) -> BandPass:
        """SNID's defaults for any wavenumber given as 0 (or out of range)."""
        k1 = k1 if 0 < k1 <= nw else 1
        k2 = k2 if 0 < k2 <= nw else 4
        k3 = k3 if 0 < k3 <= nw else nw // 12
        k4 = k4 if 0 < k4 <= nw else nw // 10
        if not k1 < k2 < k3 < k4:
            msg = f"band-pass wavenumbers must increase strictly, got {k1}, {k2}, {k3}, {k4}"
            raise ValueError(msg)
        return cls(nw=nw, k1=k1, k2=k2, k3=k3, k4=k4)

    def factor(self) -> np.ndarray:
        """Filter amplitude per ``rfft`` wavenumber, shape ``(nw // 2 + 1,)``."""
        k = np.arange(self.nw // 2 + 1, dtype=float)
        f = np.ones_like(k)
        rise = k < self.k2
        fall = k > self.k3
        f[rise] = 0.5 * (1.0 - np.cos(np.pi * (k[rise] - self.k1) / (self.k2 - self.k1)))
        f[fall] = 0.5 * (1.0 + np.cos(np.pi * (k[fall] - self.k3) / (self.k4 - self.k3)))
        f[(k < self.k1) | (k > self.k4)] = 0.0
        return f

    def antisym_weights(self, filtered: bool = False) -> np.ndarray:
        """Weights ``m_k B(k)^2`` of the antisymmetric rms over ``k1..k4`` (``m_k`` = 2 except
        at 0 and ``nw/2``), shape ``(k4 - k1 + 1,)``; with ``filtered``, the weights ``m_k``
        (0 where ``B(k) = 0``) for a cross-power that already carries the filter."""
        k = np.arange(self.k1, self.k4 + 1, dtype=float)
        f = np.ones_like(k)
        rise, fall = k < self.k2, k > self.k3
        f[rise] = 0.5 * (1.0 - np.cos(np.pi * (k[rise] - self.k1) / (self.k2 - self.k1)))
        f[fall] = 0.5 * (1.0 + np.cos(np.pi * (k[fall] - self.k3) / (self.k4 - self.k3)))
        mult = np.where((k == 0) | (k == self.nw // 2), 1.0, 2.0)
        return np.where(f > 0, mult, 0.0) if filtered else mult * f * f


def allowed_lags(nw: int, lz1: int, lz2: int) -> np.ndarray:
    """Lags searched for peaks, SNID's ``lz1 <= i <= lz2`` plus the wrapped negative lags.

    Parameters
    ----------
    nw : int
        Correlation length.
    lz1, lz2 : int
        ``nint(ln(1 + zmin) / dwlog)`` and ``nint(ln(1 + zmax) / dwlog)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(nw,)`` bool.
    """
    i = np.arange(nw)
    iz2 = nw + lz1 if lz1 < 0 else nw
    return ~((i < lz1) | ((i > lz2) & (i < iz2)))


def overlap_windows(shift: np.ndarray, tlo: np.ndarray, thi: np.ndarray, dlo: int,
                    dhi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bins where data and template overlap when the data sit ``shift`` bins to the right.

    Parameters
    ----------
    shift : numpy.ndarray
        Shape ``(n,)`` int: ``nint(ln(1 + z) / dwlog)``.
    tlo, thi : numpy.ndarray
        Shape ``(n,)`` int: first and last non-zero template bins.
    dlo, dhi : int
        First and last non-zero data bins.

    Returns
    -------
    tuple of numpy.ndarray
        ``(t1, t2, d1, d2, lap)``: template window, data window (inclusive bounds, 0-based)
        and the overlap length ``t2 - t1 + 1`` [bins], each shape ``(n,)``.
    """
    t1 = np.maximum(tlo, dlo - shift)
    t2 = np.minimum(thi, dhi - shift)
    d1 = np.maximum(dlo, tlo + shift)
    d2 = np.minimum(dhi, thi + shift)
    return t1, t2, d1, d2, t2 - t1 + 1


def _bell_table(nw: int, percent: float) -> np.ndarray:
    """``table[k, i]`` = i-th cosine-bell factor of a ``k``-bin taper (1 beyond ``k``)."""
    kmax = apodize_length(nw, 0, 10 * nw, percent)
    table = np.ones((kmax + 1, kmax))
    for k in range(1, kmax + 1):
        table[k, :k] = cosine_bell(k)
    return table


def window_weights(lo: np.ndarray, hi: np.ndarray, nw: int,
                   percent: float = APODIZE_PERCENT, dtype: type = np.float64) -> np.ndarray:
    """Trim-and-apodise weights of SNID's ``overlap``: zero outside ``lo < i < hi``, cosine
    tapers of ``apodize_length`` bins starting at ``lo`` and ending at ``hi``.

    A plain reference implementation; the classifier applies the same weights in place with
    :func:`engine.classify.trim.apply_windows`.

    Parameters
    ----------
    lo, hi : numpy.ndarray
        Shape ``(n,)`` int window bounds (the bounds themselves get weight 0).
    nw : int
        Row length.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, nw)``.
    """
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    i = np.arange(nw)
    w = ((i > lo[:, None]) & (i < hi[:, None])).astype(dtype)
    table = _bell_table(nw, percent)
    kmax = table.shape[1]
    half = np.trunc((hi - lo) / 2.0)
    ns = np.clip(np.minimum(np.float32(nw * 0.01 * percent), half), 0, kmax).astype(np.int64)
    bell = table[ns].astype(dtype)
    rows = np.arange(lo.size)[:, None]
    off = np.arange(kmax)
    left = np.clip(lo[:, None] + off, 0, nw - 1)
    right = np.clip(hi[:, None] - off, 0, nw - 1)
    ok = (off < ns[:, None]) & (left <= right)
    w[rows, left] *= np.where(ok, bell, 1.0)
    w[rows, right] *= np.where(ok, bell, 1.0)
    return w


def cross_correlate(dft: np.ndarray, tft: np.ndarray, filt: np.ndarray, nw: int) -> tuple[
        np.ndarray, np.ndarray]:
    """Filtered correlation functions of data and template transforms.

    Parameters
    ----------
    dft, tft : numpy.ndarray
        Shape ``(n, nw // 2 + 1)`` (or broadcastable): ``rfft`` of data and templates.
    filt : numpy.ndarray
        Shape ``(nw // 2 + 1,)`` band-pass amplitudes.
    nw : int
        Transform length.

    Returns
    -------
    cfn : numpy.ndarray
        Shape ``(n, nw)``: ``c(m) = sum_i d(i + m) t(i)`` after band-pass filtering.
    cft : numpy.ndarray
        Shape ``(n, nw // 2 + 1)``: the unfiltered cross-power ``D T*``.
    """
    cft = dft * np.conj(tft)
    cfn = sfft.irfft(cft * filt, n=nw, axis=-1)
    return cfn, cft


def antisym_rms(cft: np.ndarray, center: np.ndarray, band: BandPass) -> np.ndarray:
    """Rms of the antisymmetric part of the filtered correlation about ``center``.

    Parameters
    ----------
    cft : numpy.ndarray
        Shape ``(n, nw // 2 + 1)`` cross-power ``D T*``.
    center : numpy.ndarray
        Shape ``(n,)`` peak lag [bins, may be fractional].
    band : BandPass

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)``, in the units of the correlation function.

    Notes
    -----
    Shifting the correlation by ``center`` multiplies mode ``k`` by ``exp(2 pi i k c / nw)``;
    the imaginary part of the shifted transform is the antisymmetric part (SNID ``aspart``),
    weighted by the squared band-pass. Single-precision input is evaluated in single
    precision (used for the quick screening estimates).
    """
    return band_antisym_rms(cft[:, band.k1:band.k4 + 1], center, band)


def band_antisym_rms(cband: np.ndarray, center: np.ndarray, band: BandPass,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """:func:`antisym_rms` from the cross-power restricted to ``k1..k4``, shape ``(n, nk)``.

    ``weights`` is :meth:`BandPass.antisym_weights` (shape ``(nk,)``), computed when omitted
    (pass it to save the work on repeated calls).
    """
    sub = np.asarray(cband)
    if weights is None:
        weights = band.antisym_weights()
    if sub.dtype == np.complex64:
        k = np.arange(band.k1, band.k4 + 1, dtype=np.float32)
        turn = (np.asarray(center, dtype=float) % band.nw) * (2.0 * np.pi / band.nw)
        ang = np.multiply.outer(turn.astype(np.float32), k)
        im = sub.imag * np.cos(ang)
        im += sub.real * np.sin(ang)
        im *= im
        return np.sqrt(im @ weights.astype(np.float32)).astype(float) / band.nw
    rot = mode_phases(center, band.k1, band.k4 - band.k1 + 1, band.nw)
    rot *= sub
    im = rot.imag
    im = im * im
    return np.sqrt(im @ weights) / band.nw


SCREEN_SUBSTEPS = 4
"""Lags per bin of the screening phase table: screening centres are rounded to 1/4 bin."""


@functools.lru_cache(maxsize=4)
def _screen_phases(nw: int, nk: int, substeps: int) -> np.ndarray:
    """``exp(2 pi i k c / nw)`` for ``c = j / substeps``, ``j = 0 .. nw substeps - 1``, and
    ``k = 0 .. nk - 1``: shape ``(nw substeps, nk)`` complex64, read-only."""
    lags = np.arange(nw * substeps) / substeps
    table = np.exp((2j * np.pi / nw) * np.outer(lags, np.arange(nk))).astype(np.complex64)
    table.flags.writeable = False
    return table


def value_and_antisym_rms(cfilt: np.ndarray, center: np.ndarray, band: BandPass,
                          weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The filtered correlation's value at ``center`` and its antisymmetric rms about it, in
    single precision with ``center`` rounded to 1/4 bin (the screening estimates).

    Shifting by ``center`` multiplies mode ``k`` by ``exp(2 pi i k c / nw)`` (rows of a
    table): the real parts of the shifted modes sum to the value there, the imaginary parts
    give the antisymmetric rms (as :func:`band_antisym_rms`). One product serves both.

    Parameters
    ----------
    cfilt : numpy.ndarray
        Shape ``(n, k4 + 1)`` filtered cross-power ``B D T*`` for ``k = 0..k4``.
    center : numpy.ndarray
        Shape ``(n,)`` lags [bins, may be fractional].
    band : BandPass
    weights : numpy.ndarray
        Shape ``(k4 - k1 + 1,)``: :meth:`BandPass.antisym_weights` (``filtered=True``).

    Returns
    -------
    value, arms : numpy.ndarray
        Shape ``(n,)`` each, float64, in the units of the correlation function.
    """
    nw = band.nw
    table = _screen_phases(nw, band.k4 + 1, SCREEN_SUBSTEPS)
    j = np.rint(np.asarray(center, dtype=float) * SCREEN_SUBSTEPS).astype(np.int64)
    shifted = table[j % table.shape[0]]
    shifted *= cfilt
    re = shifted.real
    value = (2.0 * re.sum(axis=1, dtype=np.float32) - re[:, 0]).astype(float) / nw
    im = shifted.imag[:, band.k1:]
    im = im * im
    return value, np.sqrt(im @ weights.astype(np.float32)).astype(float) / nw


def mode_phases(center: np.ndarray, k1: int, nk: int, nw: int) -> np.ndarray:
    """``exp(2 pi i c k / nw)`` for ``k = k1 .. k1 + nk - 1``, shape ``(n, nk)`` complex128.

    Built by doubling (``z^k`` times ``z^(2^j)`` fills the next ``2^j`` columns) from two
    exponentials per row: about eight times faster than evaluating ``cos`` and ``sin`` at every
    mode, with a relative error of a few 1e-15 (``log2(nk)`` products per element).

    Parameters
    ----------
    center : numpy.ndarray
        Shape ``(n,)`` lags ``c`` [bins, may be fractional].
    k1, nk : int
        First mode and number of modes.
    nw : int
        Transform length.
    """
    theta = (2.0 * np.pi / nw) * np.asarray(center, dtype=float)
    out = np.empty((theta.size, nk), dtype=np.complex128)
    out[:, 0] = np.exp(1j * k1 * theta)
    step = np.exp(1j * theta)[:, None]
    filled = 1
    while filled < nk:
        m = min(filled, nk - filled)
        np.multiply(out[:, :m], step, out=out[:, filled:filled + m])
        filled += m
        step = step * step
    return out


def lag_segments(allowed: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs ``[start, stop)`` of allowed lags, in increasing order."""
    a = np.concatenate([[False], np.asarray(allowed, dtype=bool), [False]])
    edges = np.flatnonzero(a[1:] != a[:-1])
    return [(int(edges[i]), int(edges[i + 1])) for i in range(0, edges.size, 2)]


def masked_argmax(cfn: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First index and value of each row's maximum over the allowed lags.

    Parameters
    ----------
    cfn : numpy.ndarray
        Shape ``(n, nw)``.
    allowed : numpy.ndarray
        Shape ``(nw,)`` bool.

    Returns
    -------
    imax : numpy.ndarray
        Shape ``(n,)`` int.
    cmax : numpy.ndarray
        Shape ``(n,)`` float.
    """
    rows = np.arange(cfn.shape[0])
    imax = np.zeros(cfn.shape[0], dtype=np.int64)
    cmax = np.full(cfn.shape[0], -np.inf)
    for a, b in lag_segments(allowed):
        i = cfn[:, a:b].argmax(axis=1)
        v = cfn[rows, a + i].astype(float)
        better = v > cmax
        imax[better], cmax[better] = a + i[better], v[better]
    return imax, cmax


def local_peaks(cfn: np.ndarray, allowed: np.ndarray, npeak: int) -> np.ndarray:
    """The ``npeak`` highest positive local maxima of each row in the allowed lags
    (SNID ``allpeaks``; neighbours are cyclic).

    Parameters
    ----------
    cfn : numpy.ndarray
        Shape ``(n, nw)``.
    allowed : numpy.ndarray
        Shape ``(nw,)`` bool.
    npeak : int

    Returns
    -------
    numpy.ndarray
        Shape ``(n, npeak)`` int lags, highest first, -1 where fewer peaks exist.
    """
    n, nw = cfn.shape
    segs = lag_segments(allowed)
    lag = np.concatenate([np.arange(a, b) for a, b in segs])
    score = np.empty((n, lag.size), dtype=cfn.dtype)
    off = 0
    for a, b in segs:
        mid = cfn[:, a:b]
        ok = np.empty(mid.shape, dtype=bool)
        ok[:, 1:] = mid[:, 1:] >= mid[:, :-1]
        ok[:, 0] = mid[:, 0] >= cfn[:, (a - 1) % nw]
        right = np.empty(mid.shape, dtype=bool)
        right[:, :-1] = mid[:, :-1] >= mid[:, 1:]
        right[:, -1] = mid[:, -1] >= cfn[:, b % nw]
        ok &= right
        ok &= mid > 0
        dst = score[:, off:off + b - a]
        dst.fill(-np.inf)
        np.copyto(dst, mid, where=ok)
        off += b - a
    rows = np.arange(n)
    out = np.full((n, npeak), -1, dtype=np.int64)
    for j in range(min(npeak, lag.size)):
        best = score.argmax(axis=1)
        found = score[rows, best] > -np.inf
        out[found, j] = lag[best[found]]
        score[rows, best] = -np.inf
    return out


def parabola_peaks(cfn: np.ndarray, imax: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and height of the 3-point parabola through each row's samples ``imax - 1``,
    ``imax``, ``imax + 1`` (cyclic; the offset kept within half a sample).

    Parameters
    ----------
    cfn : numpy.ndarray
        Shape ``(n, nw)``.
    imax : numpy.ndarray
        Shape ``(n,)`` int sample of each row's peak.

    Returns
    -------
    center, height : numpy.ndarray
        Shape ``(n,)`` each [samples; units of ``cfn``].
    """
    n, nw = cfn.shape
    rows = np.arange(n)
    h = cfn[rows, imax].astype(float)
    a = cfn[rows, (imax - 1) % nw].astype(float)
    c = cfn[rows, (imax + 1) % nw].astype(float)
    den = a - 2.0 * h + c
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(den < 0, 0.5 * (a - c) / den, 0.0)
    off = np.clip(off, -0.5, 0.5)
    return imax + off, h - 0.25 * (a - c) * off


def runner_up_peaks(cfn: np.ndarray, allowed: np.ndarray, imax: np.ndarray) -> np.ndarray:
    """The highest allowed local maximum of each row other than the one at ``imax`` (a sample
    next to a lag that is not allowed counts as a maximum on that side: the peak fit takes a
    peak cut by the lag range at its edge).

    Parameters
    ----------
    cfn : numpy.ndarray
        Shape ``(n, nw)`` (cyclic).
    allowed : numpy.ndarray
        Shape ``(nw,)`` bool.
    imax : numpy.ndarray
        Shape ``(n,)`` int: each row's highest sample.

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)`` int sample, -1 where the row has no other local maximum.
    """
    n = cfn.shape[0]
    rows = np.arange(n)
    allowed = np.asarray(allowed, dtype=bool)
    peak = (cfn >= np.roll(cfn, 1, axis=1)) | ~np.roll(allowed, 1)
    peak &= (cfn >= np.roll(cfn, -1, axis=1)) | ~np.roll(allowed, -1)
    peak &= allowed
    peak[rows, imax] = False
    score = np.where(peak, cfn, -np.inf)
    best = score.argmax(axis=1)
    return np.where(peak[rows, best], best, -1)


def half_max_center(cfn: np.ndarray, imax: np.ndarray, height: np.ndarray,
                    reach: int = 32) -> np.ndarray:
    """Mid-point of the half-maximum crossings around ``imax`` (linear interpolation; capped at
    ``reach`` samples). A robust centre for broad, asymmetric peaks.

    Parameters
    ----------
    cfn : numpy.ndarray
        Shape ``(n, m)`` (cyclic) correlation samples.
    imax : numpy.ndarray
        Shape ``(n,)`` int peak positions [samples].
    height : numpy.ndarray
        Shape ``(n,)`` peak values.
    reach : int
        Largest distance searched on each side [samples].

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)`` centres [samples].
    """
    n, m = cfn.shape
    rows = np.arange(n)
    half = (np.asarray(height) / 2.0).astype(cfn.dtype)
    padded = np.concatenate([cfn[:, m - reach:], cfn, cfn[:, :reach]], axis=1)
    around = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1, axis=1)
    around = around[rows, np.asarray(imax) % m]
    dist = []
    for v in (around[:, reach:], around[:, reach::-1]):
        below = v[:, 1:] < half[:, None]
        i = np.where(below.any(axis=1), below.argmax(axis=1) + 1, reach)
        v1 = v[rows, i].astype(float)
        v0 = v[rows, i - 1].astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(v0 > v1, (v0 - half) / (v0 - v1), 0.0)
        dist.append(i - 1 + np.clip(frac, 0.0, 1.0))
    return imax + 0.5 * (dist[0] - dist[1])
