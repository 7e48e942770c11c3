"""Prepare an input spectrum as SNID does: select, rebin in log wavelength, flatten, apodise.

Follows SNID 5.0's ``getdata`` (Blondin & Tonry 2007, section 2; Tonry & Davis 1979):

1. keep the samples inside ``[wmin, wmax]``, optionally dropping the sky lines (5577, 6300.2,
   6364 Angstrom +- ``emwid``), the A band (7575-7675 Angstrom) and redshifted galaxy lines;
2. optionally median-filter the kept samples (``medlen`` samples wide);
3. rebin onto the 1024-bin log-wavelength grid, conserving the integrated flux of each sample
   (each sample spans half-way to its kept neighbours, so clipped gaps are bridged);
4. fit a natural cubic spline through 13 averaged knots in ``log10`` flux (linear
   extrapolation beyond the end knots), divide it out and subtract 1;
5. multiply 5 % of the grid (51 bins) at each end of the data by a cosine bell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.classify.lnw import N_BINS, W0_AA, W1_AA
from engine.errors import AlgorithmError

APODIZE_PERCENT = 5.0
"""SNID's apodisation, percent of the grid at each end (``percent`` in ``snid.f``)."""
KNOTNUM = 13
"""Number of continuum knots over the full grid (SNID ``meanzero``)."""
SKY_LINES_AA = (5577.0, 6300.2, 6364.0)
"""Night-sky emission lines clipped with ``skyclip`` [Angstrom]."""
GALAXY_LINES_AA = (3727.3, 4861.3, 4958.9, 5006.8, 6548.1, 6562.8, 6583.6, 6716.4, 6730.8)
"""Rest-frame galaxy lines clipped with ``emclip`` [Angstrom]."""
ABAND_AA = (7575.0, 7675.0)
"""Telluric A band dropped when ``aband`` is false [Angstrom]."""


def log_grid_dwlog(nw: int = N_BINS, w0: float = W0_AA, w1: float = W1_AA) -> float:
    """Log-wavelength step ``ln(w1/w0)/nw`` of the SNID grid."""
    return float(np.log(w1 / w0) / nw)


def log_grid_wave(nw: int = N_BINS, w0: float = W0_AA, w1: float = W1_AA) -> np.ndarray:
    """Centres of the SNID log bins, shape ``(nw,)`` [Angstrom]."""
    return w0 * np.exp((np.arange(nw) + 0.5) * log_grid_dwlog(nw, w0, w1))


def select_samples(wave: np.ndarray, flux: np.ndarray, *, wmin: float, wmax: float,
                   skyclip: bool, aband: bool, emclip_z: float | None = None,
                   emwid: float = 40.0) -> np.ndarray:
    """Boolean mask of the samples SNID keeps, shape ``(n,)``.

    Parameters
    ----------
    wave, flux : numpy.ndarray
        Shape ``(n,)``: wavelengths [Angstrom] and flux (any F_lambda unit).
    wmin, wmax : float
        Wavelength limits, inclusive [Angstrom].
    skyclip : bool
        Drop samples within ``emwid`` of the night-sky lines.
    aband : bool
        Keep the A band (SNID ``aband=1``); false drops 7575-7675 Angstrom.
    emclip_z : float or None
        Redshift at which to drop galaxy emission lines (None: no clipping).
    emwid : float
        Half-width of the clipped regions [Angstrom].
    """
    keep = np.isfinite(wave) & np.isfinite(flux) & (wave >= wmin) & (wave <= wmax)
    if not aband:
        keep &= ~((wave >= ABAND_AA[0]) & (wave <= ABAND_AA[1]))
    lines: list[float] = list(SKY_LINES_AA) if skyclip else []
    if emclip_z is not None:
        lines += [w * (1.0 + emclip_z) for w in GALAXY_LINES_AA]
    for w in lines:
        keep &= ~((wave >= w - emwid) & (wave <= w + emwid))
    return keep


def median_filter_samples(flux: np.ndarray, medlen: int) -> np.ndarray:
    """Running median over ``medlen`` samples (``medlen // 2`` each side, truncated at the ends).

    Parameters
    ----------
    flux : numpy.ndarray
        Shape ``(n,)``.
    medlen : int
        Window in samples; values below 2 return a copy.

    Notes
    -----
    This is what SNID's ``medlen`` option is documented to do. SNID 5.0 itself never applies
    it from the command line: its parser reads the real-valued option with an integer format
    and silently ignores it, so production SEDM runs with ``medlen=1``.
    """
    flux = np.asarray(flux, dtype=float)
    half = int(medlen) // 2
    if half < 1 or flux.size < 2:
        return flux.copy()
    padded = np.pad(flux, half, mode="constant", constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.nanmedian(windows, axis=1)


def rebin_log(wave: np.ndarray, flux: np.ndarray, nw: int = N_BINS, w0: float = W0_AA,
              dwlog: float | None = None) -> np.ndarray:
    """Rebin samples onto the log grid, conserving integrated flux (SNID ``rebin``).

    Each sample spans half-way to its neighbours (the end samples extend symmetrically); its
    flux times its width [Angstrom] is spread uniformly in log wavelength over the bins it
    covers.

    Parameters
    ----------
    wave, flux : numpy.ndarray
        Shape ``(n,)``, ``wave`` increasing [Angstrom].
    nw, w0, dwlog
        The log grid (``dwlog`` defaults to SNID's ``ln(4)/1024``).

    Returns
    -------
    numpy.ndarray
        Shape ``(nw,)``: flux integrated over each log bin [flux unit x Angstrom].
    """
    if dwlog is None:
        dwlog = log_grid_dwlog(nw, w0)
    wave = np.asarray(wave, dtype=float)
    flux = np.asarray(flux, dtype=float)
    if wave.size < 2:
        return np.zeros(nw)
    edges = np.empty(wave.size + 1)
    edges[1:-1] = 0.5 * (wave[1:] + wave[:-1])
    edges[0] = 0.5 * (3.0 * wave[0] - wave[1])
    edges[-1] = 0.5 * (3.0 * wave[-1] - wave[-2])
    u = np.log(edges / w0) / dwlog
    cum = np.concatenate([[0.0], np.cumsum(flux * np.diff(edges))])
    at = np.interp(np.arange(nw + 1, dtype=float), u, cum)
    return np.diff(at)


@dataclass(frozen=True)
class Continuum:
    """SNID's continuum spline through averaged knots (in ``log10`` flux).

    Attributes
    ----------
    xknot, yknot : numpy.ndarray
        Shape ``(nknot,)``: knot positions [bin units, bin ``j`` centred at ``j + 0.5``] and
        ``log10`` of the mean flux in each knot interval.
    second : numpy.ndarray
        Shape ``(nknot,)``: second derivatives of the natural spline at the knots.
    """

    xknot: np.ndarray
    yknot: np.ndarray
    second: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Evaluate the spline (linear beyond the end knots) at bin positions ``x``."""
        return _spline_eval(self.xknot, self.yknot, self.second, np.asarray(x, dtype=float))


def _natural_second_derivatives(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Second derivatives of the natural cubic spline through ``(x, y)``."""
    n = x.size
    m = np.zeros(n)
    if n < 3:
        return m
    h = np.diff(x)
    r = np.diff(y) / h
    # the tridiagonal system of the interior knots, solved densely: a dozen knots at most
    # (a banded solver would import scipy.linalg, 20 ms of every classification process's start)
    a = np.diag(2.0 * (h[1:] + h[:-1])) + np.diag(h[1:-1], 1) + np.diag(h[1:-1], -1)
    m[1:-1] = np.linalg.solve(a, 6.0 * np.diff(r))
    return m


def _spline_eval(x: np.ndarray, y: np.ndarray, m: np.ndarray, xp: np.ndarray) -> np.ndarray:
    """Natural cubic spline value, extrapolated linearly with the end slopes."""
    n = x.size
    if n == 1:
        return np.full_like(xp, y[0])
    h = np.diff(x)
    loc = np.clip(np.searchsorted(x, xp, side="left") - 1, 0, n - 2)
    a, b, hl = x[loc], x[loc + 1], h[loc]
    tb, ta = b - xp, xp - a
    val = (m[loc] * tb**3 + m[loc + 1] * ta**3) / (6.0 * hl) \
        + (y[loc] / hl - m[loc] * hl / 6.0) * tb + (y[loc + 1] / hl - m[loc + 1] * hl / 6.0) * ta
    slope0 = (y[1] - y[0]) / h[0] - h[0] * (2.0 * m[0] + m[1]) / 6.0
    slope1 = (y[-1] - y[-2]) / h[-1] + h[-1] * (m[-2] + 2.0 * m[-1]) / 6.0
    val = np.where(xp < x[0], y[0] + slope0 * (xp - x[0]), val)
    return np.where(xp > x[-1], y[-1] + slope1 * (xp - x[-1]), val)


def data_range(flog: np.ndarray, nedge: int = 1) -> tuple[int, int]:
    """First and last usable bins (0-based) of a rebinned spectrum (SNID ``meanzero``).

    Skips non-positive bins at each end and ``nedge`` further positive (partial) bins.
    """
    pos = np.flatnonzero(flog > 0)
    if pos.size <= 2 * nedge:
        return 0, -1
    return int(pos[nedge]), int(pos[-1 - nedge])


def fit_continuum(flog: np.ndarray, l1: int, l2: int, izoff: int,
                  knotnum: int = KNOTNUM) -> Continuum:
    """SNID's continuum knots: the mean flux over ``nw // knotnum``-bin chunks strictly
    inside ``(l1, l2)``, chunk boundaries offset by ``izoff`` bins (the mid-range redshift).

    Parameters
    ----------
    flog : numpy.ndarray
        Shape ``(nw,)`` rebinned flux.
    l1, l2 : int
        Usable bin range (0-based, from :func:`data_range`).
    izoff : int
        ``nint(ln(1 + (zmin + zmax)/2) / dwlog)``; chunk boundaries move with it.
    knotnum : int
        Nominal number of knots over the whole grid.

    Returns
    -------
    Continuum
    """
    nw = flog.size
    kwidth = nw // knotnum
    istart = (izoff % kwidth) - kwidth if izoff > 0 else 0
    i = np.arange(1, nw + 1)
    inside = (i - 1 > l1) & (i - 1 < l2)
    chunk = np.floor_divide(i - istart - 1, kwidth)
    ids = chunk[inside]
    close = (i - istart) % kwidth == 0
    closable = np.unique(chunk[close])
    ok = np.isin(ids, closable)
    ids, idx = ids[ok], (i - 1)[inside][ok]
    uniq, inv, cnt = np.unique(ids, return_inverse=True, return_counts=True)
    xs = np.bincount(inv, weights=idx + 0.5) / cnt
    fs = np.bincount(inv, weights=flog[idx]) / cnt
    good = fs > 0
    x, y = xs[good], np.log10(fs[good])
    if x.size < 2:
        msg = "too few continuum knots: the spectrum covers too little of the wavelength range"
        raise AlgorithmError(msg, {"n_knots": int(x.size), "l1": l1, "l2": l2})
    return Continuum(xknot=x, yknot=y, second=_natural_second_derivatives(x, y))


def cosine_bell(nsquash: int) -> np.ndarray:
    """SNID's apodisation factors ``0.5 (1 - cos(pi i / (nsquash - 1)))``, shape ``(nsquash,)``."""
    if nsquash < 1:
        return np.ones(0)
    if nsquash == 1:
        return np.zeros(1)
    i = np.arange(nsquash)
    return 0.5 * (1.0 - np.cos(np.pi * i / (nsquash - 1)))


def apodize_length(n: int, n1: int, n2: int, percent: float = APODIZE_PERCENT) -> int:
    """Number of bins tapered at each end: ``int(min(n percent/100, (n2 - n1) // 2))``."""
    half = int((n2 - n1) / 2)
    return int(min(np.float32(n) * np.float32(0.01) * np.float32(percent), float(half)))


def apodize(data: np.ndarray, n1: int, n2: int, percent: float = APODIZE_PERCENT) -> np.ndarray:
    """Taper ``data[n1:n1+k]`` and ``data[n2-k+1:n2+1]`` with a cosine bell (copy returned)."""
    out = np.array(data, dtype=float)
    k = apodize_length(out.size, n1, n2, percent)
    if k < 1:
        return out
    bell = cosine_bell(k)
    out[n1:n1 + k] *= bell
    out[n2 - np.arange(k)] *= bell
    return out


@dataclass(frozen=True)
class PreparedSpectrum:
    """A spectrum ready for correlation.

    Attributes
    ----------
    flat : numpy.ndarray
        Shape ``(nw,)``: flattened, apodised flux on the SNID log grid (0 outside the data).
    flog : numpy.ndarray
        Shape ``(nw,)``: rebinned flux [input flux unit x Angstrom per bin].
    l1, l2 : int
        Usable bin range (0-based, inclusive).
    continuum : Continuum
        The fitted continuum (``log10`` of ``flog``).
    wave : numpy.ndarray
        Shape ``(n_kept,)``: the input wavelengths used [Angstrom].
    """

    flat: np.ndarray
    flog: np.ndarray
    l1: int
    l2: int
    continuum: Continuum
    wave: np.ndarray


def prepare_spectrum(wave: np.ndarray, flux: np.ndarray, *, wmin: float, wmax: float,
                     skyclip: bool, aband: bool, medlen: int, zmin: float, zmax: float,
                     emclip_z: float | None = None, emwid: float = 40.0) -> PreparedSpectrum:
    """Run SNID's input-spectrum preparation (module docstring, steps 1-5).

    Parameters
    ----------
    wave, flux : numpy.ndarray
        Shape ``(n,)``: wavelengths [Angstrom, sorted or not] and F_lambda.
    wmin, wmax, skyclip, aband, emclip_z, emwid
        Sample selection, see :func:`select_samples`.
    medlen : int
        Median filter width [samples]; 1 = none (SEDM production behaviour).
    zmin, zmax : float
        Redshift search range; its mid-point offsets the continuum knots as in SNID.

    Returns
    -------
    PreparedSpectrum

    Raises
    ------
    AlgorithmError
        If fewer than 40 usable log bins remain.
    """
    wave = np.asarray(wave, dtype=float)
    flux = np.asarray(flux, dtype=float)
    order = np.argsort(wave, kind="stable")
    wave, flux = wave[order], flux[order]
    keep = select_samples(wave, flux, wmin=wmin, wmax=wmax, skyclip=skyclip, aband=aband,
                          emclip_z=emclip_z, emwid=emwid)
    w, f = wave[keep], flux[keep]
    if medlen > 1:
        f = median_filter_samples(f, medlen)
    dwlog = log_grid_dwlog()
    flog = rebin_log(w, f, dwlog=dwlog)
    l1, l2 = data_range(flog)
    if l2 - l1 < 3 * KNOTNUM:
        msg = (f"only {max(l2 - l1, 0)} usable log-wavelength bins between {wmin:g} and "
               f"{wmax:g} A (need {3 * KNOTNUM}): is the spectrum empty or negative?")
        raise AlgorithmError(msg, {"n_samples": int(w.size), "l1": l1, "l2": l2})
    z0 = 0.5 * (zmin + zmax)
    izoff = int(np.rint(np.log(z0 + 1.0) / dwlog)) if z0 > -1 else -1
    cont = fit_continuum(flog, l1, l2, izoff)
    flat = np.zeros_like(flog)
    j = np.arange(l1, l2 + 1)
    flat[j] = flog[j] / 10.0 ** cont(j + 0.5) - 1.0
    flat = apodize(flat, l1, l2)
    return PreparedSpectrum(flat=flat, flog=flog, l1=l1, l2=l2, continuum=cont, wave=w)
