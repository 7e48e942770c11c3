"""Trimmed, re-apodised correlations of one spectrum with many template rows (SNID ``overlap``
followed by ``docorr``), streamed in cache-sized chunks.

For a shift ``s`` (data redshifted by ``s`` log bins) the template is cut to the bins that
overlap the shifted data and the data to the bins that overlap the shifted template; both are
re-apodised with SNID's 5 % cosine bell and correlated with the band-pass filter.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from engine.classify.correlate import BandPass, overlap_windows
from engine.classify.prepare import APODIZE_PERCENT, apodize_length, cosine_bell

CHUNK = 384
"""Rows per batch: small enough that each batch's arrays stay in the CPU cache."""
SCREEN_STEP = 4
"""Sampling step [bins] of the screening pass: its correlations are computed at every fourth
lag, and the template side of trimmed rows comes from rows sampled every fourth bin."""
_OWN, _COARSE, _EXACT = 0, 1, 2
"""Where a row's template transform comes from: the per-library table of untrimmed windows,
the coarse screening estimate, the full computation."""


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


def decimated_rows(fft: np.ndarray, nw: int, step: int = SCREEN_STEP) -> np.ndarray:
    """Template rows band-limited to modes below ``nw / (2 step)`` and sampled every ``step``
    bins.

    Parameters
    ----------
    fft : numpy.ndarray
        Shape ``(n, nw // 2 + 1)``: ``rfft`` of the rows.
    nw : int
        Row length.
    step : int
        Sampling step [bins].

    Returns
    -------
    numpy.ndarray
        Shape ``(n, nw // step)`` float32, ``x(step j) * step`` of the band-limited rows ``x``
        (the factor makes a length ``nw / step`` ``rfft`` equal the length ``nw`` one).
    """
    return sfft.irfft(fft[:, :nw // (2 * step)], n=nw // step, axis=1).astype(np.float32)


def own_window_transforms(flux: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``rfft`` of each template row under its own trim window, in single precision.

    Parameters
    ----------
    flux : numpy.ndarray
        Shape ``(n, nw)`` template rows.
    lo, hi : numpy.ndarray
        Shape ``(n,)`` int first and last non-zero bins of each row.

    Returns
    -------
    numpy.ndarray
        Shape ``(n, nw // 2 + 1)`` complex64: what :func:`trimmed_correlations` computes for a
        row whose window is ``(lo, hi)``, i.e. whenever the shifted data cover the whole
        template.
    """
    out = np.empty((flux.shape[0], flux.shape[1] // 2 + 1), dtype=np.complex64)
    for s in range(0, flux.shape[0], CHUNK):
        sl = slice(s, min(s + CHUNK, flux.shape[0]))
        rows = np.array(flux[sl], dtype=np.float32)
        out[sl] = sfft.rfft(apply_windows(rows, lo[sl], hi[sl]), axis=1)
    return out


@functools.lru_cache(maxsize=4)
def _phase_table(nw: int, k4: int) -> tuple[np.ndarray, np.ndarray]:
    """``cos`` and ``sin`` of ``2 pi i k / nw``, each shape ``(nw, k4 + 1)`` (read-only)."""
    ang = np.outer(np.arange(nw), 2.0 * np.pi / nw * np.arange(k4 + 1))
    cos, sin = np.cos(ang), np.sin(ang)
    cos.flags.writeable = sin.flags.writeable = False
    return cos, sin


@dataclass(frozen=True)
class DataTransforms:
    """Band-passed transforms of the data under any trim window, from two tables.

    With ``p`` SNID's one-sided taper (:func:`taper_profile`), the window ``(lo, hi)`` is
    ``p(i - lo) p(hi - i)``; when it holds both full tapers (``hi - lo >= 2 kmax``) one of
    the two factors is 1 at every ``i``, so the window equals ``p(i - lo) + p(hi - i) - 1``
    and its transform is ``rise[lo] + fall[hi] - full``. The tables hold the data's transform
    under every one-sided window with its edge inside the data, built once per spectrum (in
    double precision) from prefix sums of ``d(i) exp(-2 pi i k i / nw)`` plus the
    ``kmax - 1`` taper terms.

    Attributes
    ----------
    rise : numpy.ndarray
        Shape ``(m, k4 + 1)``: ``B(k) F[d(i) p(i - lo)](k)`` for ``lo = start..start+m-1``.
    fall : numpy.ndarray
        Shape ``(m, k4 + 1)``: ``B(k) F[d(i) p(hi - i)](k)`` for ``hi = start..start+m-1``.
    full : numpy.ndarray
        Shape ``(k4 + 1,)``: ``B(k) F[d](k)``.
    start : int
        First window edge of the tables (the first non-zero data bin).
    kmax : int
        Full taper length [bins].
    """

    rise: np.ndarray
    fall: np.ndarray
    full: np.ndarray
    start: int
    kmax: int

    @classmethod
    def build(cls, flat: np.ndarray, filt: np.ndarray, k4: int, dtype: type = np.float32,
              percent: float = APODIZE_PERCENT) -> DataTransforms:
        """Tables of ``flat`` (shape ``(nw,)``) for modes ``0..k4`` with band-pass ``filt``."""
        nw = flat.size
        d = np.asarray(flat, dtype=float)
        nz = np.flatnonzero(d)
        lo, hi = (int(nz[0]), int(nz[-1])) if nz.size else (0, 0)
        kmax = apodize_length(nw, 0, 10 * nw, percent)
        cos, sin = _phase_table(nw, k4)
        # prefix sums of d(i) exp(-2 pi i k i / nw) (real, imaginary) over the data
        seg = slice(lo, hi + 1)
        pre_r = np.zeros((hi - lo + 2, k4 + 1))
        pre_i = np.zeros((hi - lo + 2, k4 + 1))
        np.cumsum(d[seg, None] * cos[seg], axis=0, out=pre_r[1:])
        np.cumsum(d[seg, None] * sin[seg], axis=0, out=pre_i[1:])
        np.negative(pre_i, out=pre_i)
        # taper sums: exp(-i w e) sum_j bell_j d(e +- j) exp(-+ i w j) at each edge e
        bell = cosine_bell(kmax)[1:]
        pad = np.concatenate([np.zeros(kmax), d, np.zeros(kmax)])
        view = np.lib.stride_tricks.sliding_window_view(pad, kmax - 1)
        ahead = view[lo + kmax + 1:hi + kmax + 2] * bell
        behind = view[lo + 1:hi + 2, ::-1] * bell
        ar, ai = ahead @ cos[1:kmax], ahead @ sin[1:kmax]
        br, bi = behind @ cos[1:kmax], behind @ sin[1:kmax]
        edge = np.arange(hi - lo + 1)
        up = np.minimum(edge + kmax, hi - lo + 1)
        down = np.maximum(edge - kmax + 1, 0)
        c, s = cos[seg], sin[seg]
        b = filt[:k4 + 1]
        ctype = np.complex64 if dtype == np.float32 else np.complex128
        rise = np.empty((hi - lo + 1, k4 + 1), dtype=ctype)
        rise.real = (pre_r[-1] - pre_r[up] + c * ar - s * ai) * b
        rise.imag = (pre_i[-1] - pre_i[up] - s * ar - c * ai) * b
        fall = np.empty((hi - lo + 1, k4 + 1), dtype=ctype)
        fall.real = (pre_r[down] + c * br + s * bi) * b
        fall.imag = (pre_i[down] + c * bi - s * br) * b
        full = ((pre_r[-1] + 1j * pre_i[-1]) * b).astype(ctype)
        return cls(rise=rise, fall=fall, full=full, start=lo, kmax=kmax)

    def usable(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Bool, shape ``(n,)``: windows the tables serve (both tapers complete, edges in the
        data)."""
        stop = self.start + self.rise.shape[0]
        return (hi - lo >= 2 * self.kmax) & (lo >= self.start) & (hi < stop)

    def window(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Band-passed transforms, shape ``(n, k4 + 1)``, of the data under windows that
        :meth:`usable` accepts."""
        out = self.rise[lo - self.start]
        out += self.fall[hi - self.start]
        out -= self.full
        return out


@dataclass(frozen=True)
class TrimmedChunk:
    """Correlations of one batch of rows, in Fourier space.

    The band-pass filter is zero above ``k4``, so the filtered cross-power up to ``k4``
    determines the correlation function exactly: ``irfft(cfilt, n=nw)`` is the full
    correlation and ``irfft(cfilt, n=nw // q) / q`` its values at the lags ``0, q, 2q, ...``
    (exact as long as ``k4 < nw / (2 q)``: :func:`sampled_correlations`).

    Attributes
    ----------
    at : numpy.ndarray
        Shape ``(m,)`` int: positions of the batch's rows among the requested rows (batches
        come grouped by where the template side was taken from, so not in order).
    cfilt : numpy.ndarray
        Shape ``(m, k4 + 1)`` filtered cross-power ``B D T*`` for ``k = 0..k4`` (its ``k1..k4``
        part, with weights :meth:`BandPass.antisym_weights` divided by ``B^2``, also gives the
        antisymmetric rms).
    """

    at: np.ndarray
    cfilt: np.ndarray


def trimmed_correlations(flat: np.ndarray, flux: np.ndarray, rows: np.ndarray,
                         shift: np.ndarray, tlo: np.ndarray, thi: np.ndarray, dlo: int,
                         dhi: int, band: BandPass, filt: np.ndarray, *,
                         dtype: type = np.float64, chunk: int = CHUNK,
                         data: DataTransforms | None = None,
                         own_fft: np.ndarray | None = None,
                         coarse: np.ndarray | None = None) -> Iterator[TrimmedChunk]:
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
    data : DataTransforms or None
        The data's window tables (built here when omitted).
    own_fft : numpy.ndarray or None
        Shape ``(n_epoch, nw // 2 + 1)``: :func:`own_window_transforms` of ``flux``, used for
        the rows that keep their whole template when ``dtype`` is ``numpy.float32``.
    coarse : numpy.ndarray or None
        Shape ``(n_epoch, nw // q)``: :func:`decimated_rows` of ``flux``. When given (with
        ``numpy.float32`` and ``k4 <= nw / 10``, SNID's default), rows that cut their template
        with complete tapers take it from these samples: a screening estimate (see
        :func:`_screen_transforms`), not SNID's exact numbers.

    Yields
    ------
    TrimmedChunk
    """
    nw = flat.size
    k4 = band.k4
    t1, t2, d1, d2, _ = overlap_windows(shift, tlo[rows], thi[rows], dlo, dhi)
    if data is None:
        data = DataTransforms.build(flat, filt, k4, dtype)
    # data windows the tables cannot serve (too short): transformed directly
    odd = np.flatnonzero(~data.usable(d1, d2))
    slot = np.full(rows.size, -1)
    if odd.size:
        slot[odd] = np.arange(odd.size)
        dwin = np.broadcast_to(flat.astype(dtype), (odd.size, nw)).copy()
        apply_windows(dwin, d1[odd], d2[odd])
        dodd = sfft.rfft(dwin, axis=1)[:, :k4 + 1] * filt[:k4 + 1].astype(dtype)
        d1, d2 = d1.copy(), d2.copy()
        d1[odd], d2[odd] = data.start, data.start + data.rise.shape[0] - 1
    source = np.full(rows.size, _EXACT)
    if dtype == np.float32:
        if own_fft is not None:
            source[(t1 == tlo[rows]) & (t2 == thi[rows])] = _OWN
        if coarse is not None and k4 <= nw // 10:
            kmax = apodize_length(nw, 0, 10 * nw, APODIZE_PERCENT)
            source[(source == _EXACT) & (np.trunc((t2 - t1) / 2.0) >= kmax)] = _COARSE
    for kind in (_OWN, _COARSE, _EXACT):
        group = np.flatnonzero(source == kind)
        for s in range(0, group.size, chunk):
            at = group[s:s + chunk]
            if kind == _OWN:
                tft = own_fft[rows[at], :k4 + 1]
            elif kind == _COARSE:
                tft = _screen_transforms(coarse, rows[at], t1[at], t2[at], k4, nw)
            else:
                tft = _template_transforms(flux, rows[at], t1[at], t2[at], k4, dtype)
            cfilt = data.window(d1[at], d2[at])
            fix = np.flatnonzero(slot[at] >= 0)
            if fix.size:
                cfilt[fix] = dodd[slot[at[fix]]]
            np.conjugate(tft, out=tft)
            cfilt *= tft
            yield TrimmedChunk(at=at, cfilt=cfilt)


@functools.lru_cache(maxsize=2)
def _coarse_profile_rows(nw: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_profile_rows` sampled every ``step`` bins, shape ``(nw + 1, nw // step)`` each,
    contiguous (gathering their rows is a plain copy) and read-only."""
    rise, fall = _profile_rows(taper_profile(nw, np.float32), nw)
    rise, fall = np.ascontiguousarray(rise[:, ::step]), np.ascontiguousarray(fall[:, ::step])
    rise.flags.writeable = fall.flags.writeable = False
    return rise, fall


def _screen_transforms(coarse: np.ndarray, rows: np.ndarray, t1: np.ndarray, t2: np.ndarray,
                       k4: int, nw: int) -> np.ndarray:
    """Modes ``0..k4`` of the template rows trimmed to ``t1..t2`` (both tapers complete) from
    their :func:`decimated_rows` samples: windowed at the sampled bins, ``rfft`` of length
    ``nw / step``.

    The windowed product's modes above the sampling's Nyquist mode ``nw / (2 step)`` fold back
    onto the kept ones; the window's spectrum is narrow enough that for ``k4 <= nw / 10`` and
    step 4 the kept modes match the full computation to a median 3e-4 of each row's largest
    mode (at most 2e-2, near ``k4`` where the band-pass tapers them) on the SNID templates.
    """
    step = nw // coarse.shape[1]
    rise, fall = _coarse_profile_rows(nw, step)
    x = coarse[rows]
    x *= rise[nw - t1]
    x *= fall[nw - t2]
    return sfft.rfft(x, axis=1)[:, :k4 + 1]


def _template_transforms(flux: np.ndarray, rows: np.ndarray, t1: np.ndarray, t2: np.ndarray,
                         k4: int, dtype: type) -> np.ndarray:
    """Modes ``0..k4`` of the template rows trimmed and re-apodised to ``t1..t2``."""
    tw = flux[rows]
    if tw.dtype != dtype:
        tw = tw.astype(dtype)
    apply_windows(tw, t1, t2)
    return sfft.rfft(tw, axis=1)[:, :k4 + 1]


def correlation_functions(cfilt: np.ndarray, nw: int) -> np.ndarray:
    """Full correlation functions, shape ``(m, nw)``, from :attr:`TrimmedChunk.cfilt`."""
    return sfft.irfft(cfilt, n=nw, axis=1)


def sampled_correlations(cfilt: np.ndarray, nw: int, step: int) -> np.ndarray:
    """The correlation functions at the lags ``0, step, 2 step, ...``, shape
    ``(m, nw // step)``: exact samples when ``k4 < nw / (2 step)`` (``cfilt`` has ``k4 + 1``
    modes)."""
    if cfilt.shape[1] > nw // (2 * step):
        raise ValueError(f"{cfilt.shape[1] - 1} modes do not fit a sampling step of {step}")
    out = sfft.irfft(cfilt, n=nw // step, axis=1)
    out *= 1.0 / step
    return out


def screen_step(nw: int, k4: int) -> int:
    """The largest lag step (4, 2 or 1) at which correlations band-limited to ``k4`` are
    sampled exactly by :func:`sampled_correlations`."""
    for step in (SCREEN_STEP, 2):
        if k4 < nw // (2 * step):
            return step
    return 1
