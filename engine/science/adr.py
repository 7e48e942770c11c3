"""Atmospheric differential refraction (ADR): the physical model and its fit.

Refraction ``R = A tan z + B tan^3 z`` with ERFA's refraction constants (Green 1987, through
``erfa.refco``) for the exposure's pressure, temperature and humidity at each wavelength.
Blue light is displaced towards the zenith, i.e. along the parallactic angle ``q`` (East of
North); in the spaxel frame (+x West, +y North, rotated by the IFU rotation) the displacement
of wavelength ``lambda`` relative to 7000 A is ``(R(lambda) - R(7000)) (-sin q, cos q)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import erfa
import numpy as np
from scipy.optimize import least_squares

from engine.instrument import sedm
from engine.instrument.sky import ARCSEC_PER_RAD


@dataclass(frozen=True)
class Meteo:
    """Conditions of the refraction model."""

    pressure_hpa: float = sedm.SITE_PRESSURE_HPA
    temp_c: float = 10.0
    rh_pct: float = 30.0

    @classmethod
    def from_header(cls, header) -> Meteo:
        """Pressure from BARPRESS (sea level, reduced to the site), IN_AIR, IN_HUM (defaults otherwise)."""
        def get(key, default):
            try:
                return float(header[key])
            except (KeyError, TypeError, ValueError):
                return default

        bar = get("BARPRESS", None)
        pressure = bar * math.exp(-sedm.SITE_ALTITUDE_M / sedm.SCALE_HEIGHT_M) if bar else sedm.SITE_PRESSURE_HPA
        return cls(pressure_hpa=pressure, temp_c=get("IN_AIR", 10.0), rh_pct=get("IN_HUM", 30.0))


def refraction_arcsec(wave_aa: np.ndarray, airmass: float, meteo: Meteo) -> np.ndarray:
    """Refraction at each wavelength [arcsec].

    Parameters
    ----------
    wave_aa : numpy.ndarray
        Wavelengths [Angstrom].
    airmass : float
        Airmass.
    meteo : Meteo
        Pressure, temperature, humidity.
    """
    a, b = erfa.refco(meteo.pressure_hpa, meteo.temp_c, meteo.rh_pct / 100.0, np.asarray(wave_aa, float) / 1e4)
    tz = math.sqrt(max(airmass**2 - 1.0, 0.0))
    return (a * tz + b * tz**3) * ARCSEC_PER_RAD


def adr_offsets(wave_aa: np.ndarray, airmass: float, parallactic_deg: float, rotation_deg: float, meteo: Meteo,
                ref_aa: float = sedm.REFERENCE_WAVELENGTH_AA) -> np.ndarray:
    """Displacement relative to ``ref_aa``; shape ``(m, 2)`` [spaxel unit].

    Parameters
    ----------
    wave_aa : numpy.ndarray
        Shape ``(m,)``: wavelengths [Angstrom].
    airmass : float
        Airmass.
    parallactic_deg : float
        Parallactic angle [degree].
    rotation_deg : float
        Rotation of the IFU on the sky [degree].
    meteo : Meteo
        Pressure, temperature, humidity.
    ref_aa : float
        Reference wavelength (zero offset) [Angstrom].
    """
    r = refraction_arcsec(np.append(np.asarray(wave_aa, float), ref_aa), airmass, meteo)
    d = (r[:-1] - r[-1]) / sedm.SPAXEL_UNIT_ARCSEC
    q, t = math.radians(parallactic_deg), math.radians(rotation_deg)
    vec = np.array([-math.sin(q), math.cos(q)])
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return d[:, None] * (rot @ vec)[None, :]


@dataclass(frozen=True)
class AdrFit:
    """Fitted ADR: the source at 7000 A and the effective atmosphere."""

    x_ref: float
    y_ref: float
    parallactic_deg: float
    airmass: float
    chi2_dof: float
    ok: bool

    def position(self, wave_aa: np.ndarray, rotation_deg: float, meteo: Meteo) -> np.ndarray:
        """Source position at each wavelength; shape ``(m, 2)``."""
        off = adr_offsets(wave_aa, self.airmass, self.parallactic_deg, rotation_deg, meteo)
        return np.array([self.x_ref, self.y_ref])[None, :] + off


def fit_adr(wave: np.ndarray, xy: np.ndarray, err: np.ndarray, *, airmass: float, parallactic_deg: float,
            rotation_deg: float, meteo: Meteo) -> AdrFit:
    """Fit the ADR model to metaslice centroids.

    Free: the 7000-A position, the parallactic angle (within +-20 deg of the header's, with a
    10-deg Gaussian prior) and the airmass (within [1, 1.4 x header], 0.1 prior).

    Parameters
    ----------
    wave : numpy.ndarray
        Shape ``(m,)`` metaslice wavelengths.
    xy, err : numpy.ndarray
        Shape ``(m, 2)`` centroids and their errors [spaxel unit].
    """
    err = np.hypot(err, 0.02)

    def resid(p):
        model = np.array([p[0], p[1]])[None, :] + adr_offsets(wave, p[3], p[2], rotation_deg, meteo)
        r = ((xy - model) / err).ravel()
        prior = [(p[2] - parallactic_deg) / 10.0, (p[3] - airmass) / 0.1]
        return np.concatenate([r, prior])

    x0 = [float(np.average(xy[:, 0], weights=1 / err[:, 0] ** 2)), float(np.average(xy[:, 1], weights=1 / err[:, 1] ** 2)),
          parallactic_deg, max(airmass, 1.0001)]
    lo = [-60.0, -60.0, parallactic_deg - 20.0, 1.0]
    hi = [60.0, 60.0, parallactic_deg + 20.0, max(1.4 * airmass, 1.01)]
    x0 = list(np.clip(x0, np.array(lo) + 1e-6, np.array(hi) - 1e-6))
    res = least_squares(resid, x0, bounds=(lo, hi), x_scale=[0.5, 0.5, 5.0, 0.05])
    dof = max(2 * len(wave) - 4, 1)
    chi2 = float(np.sum(res.fun[:-2] ** 2) / dof)
    return AdrFit(x_ref=float(res.x[0]), y_ref=float(res.x[1]), parallactic_deg=float(res.x[2]),
                  airmass=float(res.x[3]), chi2_dof=chi2, ok=bool(res.success))
