"""The sky scene seen by the IFU: PSF, atmospheric differential refraction, sources.

Positions are in the spaxel frame (units of 0.55 arcsec, +x West, +y North). A point source's
light at wavelength ``lambda`` falls at ``p_ref + ADR(lambda)``; ``p_ref`` is its position at
7000 A (the truth ``position``). The PSF is an elliptical Moffat (beta 2.5) plus a Gaussian core
whose widths scale as ``lambda**-0.2``. Each spaxel collects the PSF integrated over its
hexagonal lenslet (sub-sampled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.instrument import sedm

ARCSEC_PER_RAD = 206264.806


@dataclass(frozen=True)
class Psf:
    """PSF of one exposure.

    Attributes
    ----------
    fwhm_arcsec : float
        FWHM of the Moffat component at 5000 A [arcsec].
    beta : float
        Moffat exponent.
    eta : float
        Peak of the Gaussian core relative to the Moffat peak.
    core_ratio : float
        Gaussian sigma as a fraction of the Moffat-equivalent sigma (FWHM/2.355).
    ab : float
        Minor/major axis ratio.
    theta_rad : float
        Major-axis angle from +x [rad].
    chroma : float
        Width exponent: widths scale as ``(lambda/5000)**chroma``.
    """

    fwhm_arcsec: float
    beta: float = 2.5
    eta: float = 0.6
    core_ratio: float = 0.75
    ab: float = 0.93
    theta_rad: float = 0.3
    chroma: float = -0.2

    def widths_units(self, wave_aa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moffat alpha and Gaussian sigma at ``wave_aa`` [spaxel unit]."""
        fwhm = self.fwhm_arcsec / sedm.SPAXEL_UNIT_ARCSEC * (np.asarray(wave_aa) / 5000.0) ** self.chroma
        alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / self.beta) - 1.0))
        sigma = self.core_ratio * fwhm / 2.3548
        return alpha, sigma

    def profile(self, dx: np.ndarray, dy: np.ndarray, alpha: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Surface density (integral 1) at offsets ``(dx, dy)`` [per spaxel unit^2]."""
        c, s = math.cos(self.theta_rad), math.sin(self.theta_rad)
        u = c * dx + s * dy
        v = (-s * dx + c * dy) / self.ab
        r2 = u * u + v * v
        moffat = (1.0 + r2 / alpha**2) ** (-self.beta)
        gauss = self.eta * np.exp(-0.5 * r2 / sigma**2)
        norm = self.ab * (math.pi * alpha**2 / (self.beta - 1.0) + self.eta * 2.0 * math.pi * sigma**2)
        return (moffat + gauss) / norm

    def measured_fwhm_arcsec(self, wave_aa: float = 5000.0) -> float:
        """FWHM of the combined (circularised) profile at ``wave_aa`` [arcsec]."""
        alpha, sigma = self.widths_units(np.array([wave_aa]))
        r = np.linspace(0.0, 10.0, 20001)
        c0 = self.profile(np.zeros(1), np.zeros(1), alpha, sigma)[0]
        prof = (1.0 + r**2 / alpha[0] ** 2) ** (-self.beta) + self.eta * np.exp(-0.5 * r**2 / sigma[0] ** 2)
        prof = prof / prof[0] * c0
        half = r[np.argmax(prof < 0.5 * c0)]
        return float(2.0 * half * sedm.SPAXEL_UNIT_ARCSEC)


def hexagon_subsamples(step: float = 0.12) -> np.ndarray:
    """Points filling one lenslet hexagon uniformly; shape ``(m, 2)`` [spaxel unit]."""
    r = sedm.HEX_CIRCUMRADIUS_UNITS
    g = np.arange(-r, r + step / 2, step)
    xx, yy = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), yy.ravel()], 1)
    # Hexagon test in the lattice's own orientation: rotate back by the grid angle.
    t = -math.radians(sedm.SKY_GRID_ANGLE_DEG)
    rot = pts @ np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    apothem = r * math.sqrt(3.0) / 2.0
    inside = np.ones(len(pts), bool)
    for k in range(3):
        ang = k * math.pi / 3.0
        inside &= np.abs(rot[:, 0] * math.cos(ang) + rot[:, 1] * math.sin(ang)) <= apothem
    return pts[inside]


def point_source_fractions(
    spaxel_xy: np.ndarray, centres: np.ndarray, psf: Psf, wave_aa: np.ndarray
) -> np.ndarray:
    """Fraction of a point source's flux collected by each spaxel.

    Parameters
    ----------
    spaxel_xy : numpy.ndarray
        Shape ``(n, 2)`` lenslet centres [spaxel unit].
    centres : numpy.ndarray
        Shape ``(n_wave, 2)`` source position at each wavelength [spaxel unit].
    psf : Psf
        The exposure's PSF.
    wave_aa : numpy.ndarray
        Shape ``(n_wave,)`` wavelengths [Angstrom].

    Returns
    -------
    numpy.ndarray
        Shape ``(n, n_wave)`` fractions (sum < 1: flux falls outside the IFU too).
    """
    sub = hexagon_subsamples()
    area = math.sqrt(3.0) / 2.0 * sedm.LENSLET_PITCH_UNITS**2
    alpha, sigma = psf.widths_units(wave_aa)
    out = np.empty((spaxel_xy.shape[0], len(wave_aa)))
    for j in range(len(wave_aa)):
        dx = spaxel_xy[:, 0:1] + sub[None, :, 0] - centres[j, 0]
        dy = spaxel_xy[:, 1:2] + sub[None, :, 1] - centres[j, 1]
        out[:, j] = psf.profile(dx, dy, alpha[j], sigma[j]).mean(axis=1) * area
    return out


def extended_source_fractions(
    spaxel_xy: np.ndarray,
    centres: np.ndarray,
    scale_units: float,
    ab: float,
    theta: float,
    psf: Psf,
    wave_aa: np.ndarray,
    step: float = 0.15,
) -> np.ndarray:
    """Fraction of an extended (galaxy) source's flux collected by each spaxel.

    The intrinsic profile is two concentric elliptical Gaussians (sigma 0.6 and 1.8 times the
    scale length, equal flux), an approximation of an exponential disk. Its light goes through
    the same atmosphere as a point source's: at each wavelength it is convolved with the
    exposure's PSF (chromatic widths) and displaced by refraction (``centres`` carries the ADR
    track). The convolution is done numerically on a square grid of ``step`` and the result
    averaged over each lenslet hexagon, like :func:`point_source_fractions`.

    Parameters
    ----------
    spaxel_xy : numpy.ndarray
        Shape ``(n, 2)`` lenslet centres [spaxel unit].
    centres : numpy.ndarray
        Shape ``(n_wave, 2)`` profile centre at each wavelength [spaxel unit].
    scale_units : float
        Scale length [spaxel unit].
    ab, theta : float
        Minor/major axis ratio; major-axis angle from +x [rad].
    psf : Psf
        The exposure's PSF.
    wave_aa : numpy.ndarray
        Shape ``(n_wave,)`` wavelengths [Angstrom].
    step : float
        Grid spacing of the numerical convolution [spaxel unit].

    Returns
    -------
    numpy.ndarray
        Shape ``(n, n_wave)`` fractions (sum < 1: light falls outside the IFU too).
    """
    from scipy.ndimage import map_coordinates
    from scipy.signal import fftconvolve

    area = math.sqrt(3.0) / 2.0 * sedm.LENSLET_PITCH_UNITS**2
    sub = hexagon_subsamples()
    pts = (spaxel_xy[:, None, :] + sub[None, :, :]).reshape(-1, 2)
    lo = pts.min(axis=0) - 1.0
    hi = pts.max(axis=0) + 1.0
    gx = np.arange(lo[0], hi[0] + step, step)
    gy = np.arange(lo[1], hi[1] + step, step)
    xx, yy = np.meshgrid(gx, gy)
    n_half = int(round(9.0 / step))  # PSF kernel +-9 spaxel units; the wings beyond are lost
    half = np.arange(-n_half, n_half + 1) * step
    kx, ky = np.meshgrid(half, half)
    alpha, sigma = psf.widths_units(wave_aa)
    c, s = math.cos(theta), math.sin(theta)
    coords = np.stack([(pts[:, 1] - gy[0]) / step, (pts[:, 0] - gx[0]) / step])
    out = np.empty((spaxel_xy.shape[0], len(wave_aa)))
    for j in range(len(wave_aa)):
        dx, dy = xx - centres[j, 0], yy - centres[j, 1]
        u, v = c * dx + s * dy, -s * dx + c * dy
        disk = np.zeros_like(xx)
        for k in (0.6, 1.8):
            su, sv = k * scale_units, k * scale_units * ab
            disk += 0.5 * np.exp(-0.5 * ((u / su) ** 2 + (v / sv) ** 2)) / (2 * math.pi * su * sv)
        kernel = psf.profile(kx, ky, alpha[j], sigma[j]) * step**2
        seen = fftconvolve(disk, kernel, mode="same")
        vals = map_coordinates(seen, coords, order=1, mode="constant")
        out[:, j] = vals.reshape(len(spaxel_xy), -1).mean(axis=1) * area
    return out


def refraction_arcsec(wave_aa: np.ndarray, airmass: float, temp_c: float, pressure_hpa: float, rh_pct: float) -> np.ndarray:
    """Atmospheric refraction at ``wave_aa`` (Filippenko 1982, plane-parallel) [arcsec]."""
    sig2 = (1e4 / np.asarray(wave_aa, dtype=float)) ** 2
    n15 = 1e-6 * (64.328 + 29498.1 / (146.0 - sig2) + 255.4 / (41.0 - sig2))
    p_mmhg = pressure_hpa * 0.750062
    n_tp = n15 * p_mmhg * (1.0 + (1.049 - 0.0157 * temp_c) * 1e-6 * p_mmhg) / (720.883 * (1.0 + 0.003661 * temp_c))
    es = 6.1078 * 10 ** (7.5 * temp_c / (237.3 + temp_c))  # saturation pressure [hPa]
    f_mmhg = rh_pct / 100.0 * es * 0.750062
    n_tp -= 1e-6 * f_mmhg * (0.0624 - 0.000680 * sig2) / (1.0 + 0.003661 * temp_c)
    tan_z = math.sqrt(max(airmass**2 - 1.0, 0.0))
    return ARCSEC_PER_RAD * n_tp * tan_z


def adr_offsets(
    wave_aa: np.ndarray,
    airmass: float,
    parallactic_deg: float,
    rotation_deg: float,
    temp_c: float,
    pressure_hpa: float,
    rh_pct: float,
    ref_aa: float = sedm.REFERENCE_WAVELENGTH_AA,
) -> np.ndarray:
    """Displacement of the source at ``wave_aa`` relative to ``ref_aa`` [spaxel unit].

    Blue light is displaced towards the zenith, i.e. along the parallactic angle (East of
    North). In a North-up, East-left frame that direction is ``(-sin q, cos q)``; the spaxel
    frame is rotated by ``rotation_deg`` from it.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_wave, 2)``.
    """
    r = refraction_arcsec(wave_aa, airmass, temp_c, pressure_hpa, rh_pct)
    r0 = refraction_arcsec(np.array([ref_aa]), airmass, temp_c, pressure_hpa, rh_pct)[0]
    d = (r - r0) / sedm.SPAXEL_UNIT_ARCSEC
    q = math.radians(parallactic_deg)
    vec = np.array([-math.sin(q), math.cos(q)])
    rot = math.radians(rotation_deg)
    rmat = np.array([[math.cos(rot), -math.sin(rot)], [math.sin(rot), math.cos(rot)]])
    return (d[:, None] * vec[None, :]) @ rmat.T
