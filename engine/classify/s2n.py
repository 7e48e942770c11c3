"""Median signal-to-noise of a spectrum, as SEDM records it (sedmpy ``CalcS2N.py``).

``S2NMED`` is the median of ``flux / error`` over the samples strictly inside
``(max(4000, first λ), min(8000, last λ))``; NaN samples are ignored and a non-finite result
becomes 1.0. ``S2NWL0``/``S2NWHI`` record the range actually used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

S2N_WAVE_MIN_AA = 4000.0
"""Default blue limit [Angstrom]."""
S2N_WAVE_MAX_AA = 8000.0
"""Default red limit [Angstrom]."""


@dataclass(frozen=True)
class SignalToNoise:
    """Median S/N and the range it was measured over.

    Attributes
    ----------
    median : float
        Median ``flux / error`` (1.0 when undefined).
    wave_start, wave_end : float
        Range used [Angstrom].
    """

    median: float
    wave_start: float
    wave_end: float


def median_s2n(wave: np.ndarray, flux: np.ndarray, err: np.ndarray | None, *,
               wave_min: float = S2N_WAVE_MIN_AA,
               wave_max: float = S2N_WAVE_MAX_AA) -> SignalToNoise:
    """Median S/N of a spectrum over ``(wave_min, wave_max)`` clipped to its coverage.

    Parameters
    ----------
    wave : numpy.ndarray
        Shape ``(n,)`` wavelengths [Angstrom].
    flux : numpy.ndarray
        Shape ``(n,)`` flux (any unit).
    err : numpy.ndarray or None
        Shape ``(n,)`` 1-sigma errors in the flux unit (for SEDM ``.txt``/FITS files, the
        square root of the stored variance). None gives S/N 1.0.
    wave_min, wave_max : float
        Requested range [Angstrom].

    Returns
    -------
    SignalToNoise
    """
    wave = np.asarray(wave, dtype=float)
    lo = max(wave_min, float(np.nanmin(wave))) if wave.size else wave_min
    hi = min(wave_max, float(np.nanmax(wave))) if wave.size else wave_max
    if err is None:
        return SignalToNoise(1.0, lo, hi)
    flux = np.asarray(flux, dtype=float)
    err = np.asarray(err, dtype=float)
    sel = (wave > lo) & (wave < hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = flux[sel] / err[sel]
    ratio = ratio[~np.isnan(ratio)]
    value = float(np.median(ratio)) if ratio.size else math.nan
    return SignalToNoise(value if math.isfinite(value) else 1.0, lo, hi)


def s2n_header_cards(s2n: SignalToNoise) -> list[tuple[str, float, str]]:
    """SEDM FITS cards ``S2NMED``, ``S2NWL0``, ``S2NWHI`` as ``(key, value, comment)``."""
    return [("S2NMED", s2n.median, "Median S/N"),
            ("S2NWL0", s2n.wave_start, "Start wave for S/N Calc"),
            ("S2NWHI", s2n.wave_end, "End wave for S/N Calc")]


def s2n_text_lines(s2n: SignalToNoise) -> list[tuple[str, str]]:
    """SEDM text-header lines ``S2N_MEDIAN``, ``S2N_WL_START``, ``S2N_WL_END``."""
    return [("S2N_MEDIAN", str(s2n.median)), ("S2N_WL_START", str(s2n.wave_start)),
            ("S2N_WL_END", str(s2n.wave_end))]
