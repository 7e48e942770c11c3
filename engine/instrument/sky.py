"""The spaxel frame on the sky: definitions shared by the engine and its tests.

The spaxel frame is the gnomonic tangent plane at the IFU centre (the sky position seen by
lenslet ``(0, 0)``), in units of 0.55 arcsec, with ``+y`` North and ``+x`` West (East left),
rotated by the IFU rotation ``rot`` (from the dated IFU-centre table):

``(x, y) = R(rot) @ (-xi, eta) / 0.55``, with ``xi`` (East) and ``eta`` (North) the standard
coordinates in arcsec and ``R`` the counter-clockwise rotation matrix.
"""

from __future__ import annotations

import math

import numpy as np

from engine.instrument.sedm import SPAXEL_UNIT_ARCSEC

ARCSEC_PER_RAD = 206264.80624709636


def sky_to_standard(ra_deg, dec_deg, ra0_deg: float, dec0_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic standard coordinates (xi East, eta North) of sky positions [arcsec]."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    ra0, dec0 = math.radians(ra0_deg), math.radians(dec0_deg)
    cosc = math.sin(dec0) * np.sin(dec) + math.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    xi = np.cos(dec) * np.sin(ra - ra0) / cosc
    eta = (math.cos(dec0) * np.sin(dec) - math.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cosc
    return xi * ARCSEC_PER_RAD, eta * ARCSEC_PER_RAD


def standard_to_sky(xi_arcsec, eta_arcsec, ra0_deg: float, dec0_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`sky_to_standard` [degree]."""
    xi = np.asarray(xi_arcsec, dtype=float) / ARCSEC_PER_RAD
    eta = np.asarray(eta_arcsec, dtype=float) / ARCSEC_PER_RAD
    ra0, dec0 = math.radians(ra0_deg), math.radians(dec0_deg)
    denom = math.cos(dec0) - eta * math.sin(dec0)
    ra = ra0 + np.arctan2(xi, denom)
    dec = np.arctan2(math.sin(dec0) + eta * math.cos(dec0), np.hypot(xi, denom))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def _rot(deg: float) -> np.ndarray:
    t = math.radians(deg)
    return np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])


def standard_to_spaxel(xi_arcsec, eta_arcsec, rotation_deg: float) -> np.ndarray:
    """Spaxel-frame position(s) of standard coordinates; shape ``(..., 2)`` [spaxel unit]."""
    v = np.stack([-np.asarray(xi_arcsec, float), np.asarray(eta_arcsec, float)], -1) / SPAXEL_UNIT_ARCSEC
    return v @ _rot(rotation_deg).T


def spaxel_to_standard(xy, rotation_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Standard coordinates (xi East, eta North) of spaxel-frame positions [arcsec]."""
    v = np.asarray(xy, dtype=float) @ _rot(-rotation_deg).T * SPAXEL_UNIT_ARCSEC
    return -v[..., 0], v[..., 1]


def sexagesimal_ra(ra_deg: float) -> str:
    """``HH:MM:SS.ssss`` of a right ascension in degrees."""
    h = (ra_deg % 360.0) / 15.0
    hh = int(h)
    mm = int((h - hh) * 60)
    ss = ((h - hh) * 60 - mm) * 60
    if ss >= 59.99995:
        ss, mm = 0.0, mm + 1
    if mm == 60:
        mm, hh = 0, (hh + 1) % 24
    return f"{hh:02d}:{mm:02d}:{ss:07.4f}"


def sexagesimal_dec(dec_deg: float) -> str:
    """``+DD:MM:SS.sss`` of a declination in degrees."""
    sign = "-" if dec_deg < 0 else "+"
    d = abs(dec_deg)
    dd = int(d)
    mm = int((d - dd) * 60)
    ss = ((d - dd) * 60 - mm) * 60
    if ss >= 59.9995:
        ss, mm = 0.0, mm + 1
    if mm == 60:
        mm, dd = 0, dd + 1
    return f"{sign}{dd:02d}:{mm:02d}:{ss:06.3f}"


def parse_ra(text: str | float) -> float:
    """Right ascension from ``HH:MM:SS.s`` (hours) or decimal degrees [degree]."""
    if isinstance(text, (int, float)):
        return float(text)
    parts = str(text).strip().replace(" ", ":").split(":")
    if len(parts) == 1:
        return float(parts[0])
    h, m, s = (float(p) for p in (parts + ["0", "0"])[:3])
    return 15.0 * (h + m / 60.0 + s / 3600.0)


def parse_dec(text: str | float) -> float:
    """Declination from ``+DD:MM:SS.s`` or decimal degrees [degree]."""
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip().replace(" ", ":")
    sign = -1.0 if s.startswith("-") else 1.0
    parts = s.lstrip("+-").split(":")
    if len(parts) == 1:
        return sign * float(parts[0])
    d, m, sec = (float(p) for p in (parts + ["0", "0"])[:3])
    return sign * (d + m / 60.0 + sec / 3600.0)
