"""Overscan levels of the two SEDM cameras (pure functions over raw arrays)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter

from engine.errors import FrameError
from engine.instrument import sedm


def camera_of(header, raw_shape: tuple[int, int]) -> str:
    """``andor`` when the header carries pre/over-scan keywords, else ``pixis``.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The raw header.
    raw_shape : tuple of int
        Shape of the raw image [pixel].
    """
    if all(k in header for k in ("PSCANX0", "PSCANX1", "OSCANX0", "OSCANX1")):
        return "andor"
    if raw_shape[1] != sedm.CCD_SHAPE[1]:
        raise FrameError(f"raw width {raw_shape[1]} without PSCANX/OSCANX keywords: unknown camera layout")
    return "pixis"


def scan_columns(header) -> tuple[slice, slice, slice]:
    """Andor pre-scan, image and over-scan column slices (0-based, half-open)."""
    p0, p1, o0, o1 = (int(header[k]) for k in ("PSCANX0", "PSCANX1", "OSCANX0", "OSCANX1"))
    if not (0 <= p0 < p1 <= o0 < o1) or o0 - p1 != sedm.CCD_SHAPE[1]:
        raise FrameError(f"inconsistent scan keywords PSCANX0..OSCANX1 = {p0}, {p1}, {o0}, {o1}")
    return slice(p0, p1), slice(p1, o0), slice(o0, o1)


def andor_scan_level(raw: np.ndarray, header) -> float:
    """Andor: one scalar, the smaller of the pre-scan and over-scan medians [ADU].

    Parameters
    ----------
    raw : numpy.ndarray
        The raw Andor frame [ADU].
    header : astropy.io.fits.Header
        Its header (the scan-column keywords).
    """
    pre, _img, over = scan_columns(header)
    return float(min(np.median(raw[:, pre]), np.median(raw[:, over])))


def pixis_row_overscan(image: np.ndarray, window: int = 50) -> np.ndarray:
    """PIXIS: per-row overscan level of a (bias-subtracted) image.

    Median of columns 2045-2047 in each row, then a running median of ``window`` rows.

    Parameters
    ----------
    image : numpy.ndarray
        The bias-subtracted PIXIS frame [ADU].
    window : int
        Running-median length [rows].

    Returns
    -------
    numpy.ndarray
        Shape ``(ny,)`` [same unit as ``image``].
    """
    lo, hi = sedm.PIXIS_OVERSCAN_COLUMNS
    per_row = np.median(image[:, lo:hi], axis=1)
    return median_filter(per_row, size=window, mode="nearest")
