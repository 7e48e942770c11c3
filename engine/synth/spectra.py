"""Spectra for the synthetic instrument: targets, standards, sky, lamps, atmosphere.

Spectra are tabulated on one fine grid uniform in ``t = lambda**-0.5`` (0.1 detector pixel
per step at the nominal dispersion), so that the renderer integrates them exactly into
detector columns. All wavelengths are vacuum Angstrom.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

from engine import refdata
from engine.instrument import sedm

H_CGS = 6.62607015e-27
C_AA_S = 2.99792458e18
SPAXEL_AREA_ARCSEC2 = math.sqrt(3.0) / 2.0 * (sedm.LENSLET_PITCH_UNITS * sedm.SPAXEL_UNIT_ARCSEC) ** 2
SEDM_SPECTRA_DIR = Path(str(resources.files("engine.synth") / "data" / "sedm_spectra"))

WAVE_MIN_AA, WAVE_MAX_AA = 3500.0, 10000.0


@dataclass(frozen=True)
class FineGrid:
    """The renderer's spectral grid, uniform in ``t = lambda**-0.5``.

    Attributes
    ----------
    t : numpy.ndarray
        Shape ``(n,)``, increasing (i.e. wavelength decreasing) [Angstrom^-0.5].
    wave : numpy.ndarray
        Shape ``(n,)`` wavelengths [Angstrom].
    dt : float
        Step in ``t``.
    dwave_dt : numpy.ndarray
        ``|d lambda / d t| = 2 lambda**1.5`` [Angstrom per unit t].
    """

    t: np.ndarray
    wave: np.ndarray
    dt: float
    dwave_dt: np.ndarray


@lru_cache(maxsize=1)
def fine_grid(step_px: float = 0.1) -> FineGrid:
    """The fine grid with ``step_px`` detector pixels per step at the nominal dispersion."""
    dt = step_px / sedm.DISPERSION_D_PX
    t = np.arange(WAVE_MAX_AA**-0.5, WAVE_MIN_AA**-0.5 + dt, dt)
    wave = t**-2.0
    return FineGrid(t=t, wave=wave, dt=float(dt), dwave_dt=2.0 * wave**1.5)


def photons_per_aa(flam: np.ndarray, wave_aa: np.ndarray) -> np.ndarray:
    """Photon flux [photon s-1 cm-2 A-1] of an energy flux density F_lambda [erg s-1 cm-2 A-1]."""
    return flam * wave_aa / (H_CGS * C_AA_S)


def ab_mag_to_flam(mag: float, wave_aa: np.ndarray) -> np.ndarray:
    """F_lambda of a flat-F_nu source of AB magnitude ``mag`` [erg s-1 cm-2 A-1]."""
    fnu = 10 ** (-0.4 * (mag + 48.6))
    return fnu * C_AA_S / np.asarray(wave_aa, dtype=float) ** 2


def r_band_mag(wave_aa: np.ndarray, flam: np.ndarray) -> float:
    """Approximate AB magnitude over 5600-6900 A (a box r band)."""
    m = (wave_aa > 5600) & (wave_aa < 6900)
    fnu = np.mean(flam[m] * wave_aa[m] ** 2 / C_AA_S)
    return float(-2.5 * np.log10(max(fnu, 1e-40)) - 48.6)


def scale_to_r_mag(wave_aa: np.ndarray, flam: np.ndarray, mag: float) -> np.ndarray:
    """Scale a spectrum to AB magnitude ``mag`` in the box r band."""
    return flam * 10 ** (-0.4 * (mag - r_band_mag(wave_aa, flam)))


# ------------------------------------------------------------------------- real SEDM spectra
@dataclass(frozen=True)
class SedmSpectrum:
    """A real SEDM spectrum usable as a target SED (typed, with SNID's redshift)."""

    path: Path
    sn_type: str
    redshift: float
    snid_subtype: str


@lru_cache(maxsize=1)
def sedm_spectra() -> tuple[SedmSpectrum, ...]:
    """The packaged real SEDM spectra with their SNID type and redshift."""
    ref = {}
    with open(SEDM_SPECTRA_DIR / "snid-reference.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            ref[row["file"]] = row
    out = []
    for path in sorted(SEDM_SPECTRA_DIR.glob("*/*.txt")):
        row = ref.get(path.name)
        z = float(row["zmed"]) if row else float("nan")
        sub = row["snid_type"] if row else ""
        out.append(SedmSpectrum(path=path, sn_type=path.parent.name, redshift=z, snid_subtype=sub))
    return tuple(out)


def read_sedm_text_spectrum(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Wavelength [A] and flux [erg s-1 cm-2 A-1] columns of a SEDM ``.txt`` spectrum."""
    data = np.loadtxt(path, comments="#")
    return data[:, 0], data[:, 1]


def extend_to_grid(wave_aa: np.ndarray, flam: np.ndarray, grid_wave: np.ndarray, smooth: int = 3) -> np.ndarray:
    """Resample a spectrum onto ``grid_wave``, extending its ends with their mean level.

    Negative or non-finite samples (noise in real spectra) are floored at 2 % of the median.
    """
    good = np.isfinite(flam)
    w, f = wave_aa[good], flam[good]
    f = uniform_filter1d(f, smooth) if smooth > 1 else f
    floor = 0.02 * np.median(f[f > 0]) if np.any(f > 0) else 1e-19
    f = np.maximum(f, floor)
    lo, hi = np.mean(f[:8]), np.mean(f[-8:])
    return np.interp(grid_wave, w, f, left=lo, right=hi)


# ------------------------------------------------------------------------------- simple SEDs
def blackbody_flam(wave_aa: np.ndarray, temperature_k: float) -> np.ndarray:
    """Blackbody shape (arbitrary normalisation) per unit wavelength."""
    lam_cm = np.asarray(wave_aa, dtype=float) * 1e-8
    x = 1.4387769 / (lam_cm * temperature_k)
    return 1.0 / (lam_cm**5 * np.expm1(np.minimum(x, 700.0)))


def galaxy_flam(wave_aa: np.ndarray, redshift: float) -> np.ndarray:
    """A host-galaxy SED shape: an old population with a 4000 A break, plus H-alpha/[NII]."""
    lam = np.asarray(wave_aa, dtype=float)
    rest = lam / (1.0 + redshift)
    cont = blackbody_flam(lam, 4200.0)
    cont = cont / np.median(cont)
    cont *= np.where(rest < 4000.0, 0.55 + 0.45 / (1 + np.exp(-(rest - 3950.0) / 40.0)), 1.0)
    lines = 0.0
    for w0, amp in ((6564.6, 1.2), (6585.3, 0.5), (6549.9, 0.17), (4862.7, 0.3), (5008.2, 0.25), (3728.5, 0.4)):
        lw = w0 * (1 + redshift)
        lines = lines + amp * np.exp(-0.5 * ((lam - lw) / 3.0) ** 2) * 3.0 / 30.0
    return cont + lines


# ---------------------------------------------------------------------------------- sky model
def sky_flam_per_arcsec2(grid_wave: np.ndarray, brightness: float = 1.0) -> np.ndarray:
    """Night-sky F_lambda per arcsec^2 [erg s-1 cm-2 A-1 arcsec-2] (dark Palomar sky).

    Continuum ~21 mag/arcsec^2 at 5500 A rising to the red; [OI] 5577/6300/6364, Na D and
    mercury street-lamp lines; the OH forest from the York (1991) list with band strengths
    rising to the red. Lines are narrow Gaussians (sigma 1 A) on the fine grid.
    """
    lam = np.asarray(grid_wave, dtype=float)
    cont = ab_mag_to_flam(21.0, 5500.0) * (1.0 + 1.5 / (1 + np.exp(-(lam - 7600.0) / 700.0)))
    cont = cont * (1.0 + 0.3 * np.exp(-0.5 * ((lam - 5900.0) / 150.0) ** 2))
    waves, labels = refdata.sky_lines()
    rayleigh = np.full(waves.size, 0.0)
    for i, label in enumerate(labels):
        lab = str(label)
        if "[OI]" in lab:
            rayleigh[i] = 0.0  # added below with their own strengths
        elif lab.startswith("Hg"):
            rayleigh[i] = 25.0
        elif "Na I" in lab and "HP" not in lab:
            rayleigh[i] = 60.0
        elif "HP" in lab:
            rayleigh[i] = 4.0
        elif "DN" in lab:
            rayleigh[i] = 0.0
        elif any(ch.isdigit() for ch in lab[:2]):  # OH band "9-2 R1"
            rayleigh[i] = 2.0 + 18.0 / (1 + np.exp(-(waves[i] - 7200.0) / 500.0))
    # The strong atomic lines, whatever the list calls them ([OI] 5577 sits on OH 7-1 Q1 there).
    extra_w = refdata.air_to_vacuum(np.array([5577.338, 5889.95, 5895.92, 6300.304, 6363.78]))
    extra_r = np.array([180.0, 40.0, 30.0, 60.0, 20.0])
    waves = np.concatenate([waves, extra_w])
    rayleigh = np.concatenate([rayleigh, extra_r])
    photons = rayleigh * 1e6 / (4 * math.pi) / 4.2545e10  # photon s-1 cm-2 arcsec-2
    energy = photons * H_CGS * C_AA_S / waves
    sigma = 1.0
    lines = np.zeros_like(lam)
    for w0, e0 in zip(waves, energy):
        if e0 <= 0:
            continue
        m = np.abs(lam - w0) < 6 * sigma
        lines[m] += e0 * np.exp(-0.5 * ((lam[m] - w0) / sigma) ** 2) / (math.sqrt(2 * math.pi) * sigma)
    return brightness * (cont + lines)


# ------------------------------------------------------------------------------ lamps
def dome_lamp_shape(grid_wave: np.ndarray) -> np.ndarray:
    """Relative photon rate of the dome lamp (a 3100 K halogen with a blue-boost filter)."""
    lam = np.asarray(grid_wave, dtype=float)
    bb = blackbody_flam(lam, 3100.0) * lam
    boost = 1.0 + 2.5 * np.exp(-0.5 * ((lam - 4000.0) / 700.0) ** 2)
    shape = bb * boost
    return shape / np.max(shape)


def arc_lamp_lines(lamp: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Lines of one lamp as rendered: vacuum wavelength [A] and relative photon amplitude.

    Catalogue amplitudes are perturbed by 15 % (lamp ageing); lines with no catalogue
    amplitude are rendered weak (2-5 % of the lamp's brightest), as unknown contaminants.
    """
    lines = refdata.arc_lines(lamp)
    waves = np.array([ln.wave_aa for ln in lines])
    amps = np.array([ln.amplitude for ln in lines])
    top = np.nanmax(amps)
    unknown = ~np.isfinite(amps)
    amps = np.where(unknown, top * rng.uniform(0.02, 0.05, amps.size), amps)
    amps = amps * rng.lognormal(0.0, 0.15, amps.size)
    return waves, amps / top


# ------------------------------------------------------------------------------ atmosphere
def atmosphere_transmission(
    grid_wave: np.ndarray, airmass: float, *, o2_scale: float = 1.0, h2o_scale: float = 1.0
) -> np.ndarray:
    """Extinction (Hayes & Latham) times telluric absorption at ``airmass``.

    The KPNO O2 and H2O components are scaled as ``T**(X**0.58 * o2_scale)`` and
    ``T**(X**0.4 * h2o_scale)`` and averaged over the grid steps.
    """
    lam = np.asarray(grid_wave, dtype=float)
    ext = 10 ** (-0.4 * refdata.extinction_mag(lam) * airmass)
    w, t_o2, t_h2o = refdata.telluric_components()
    tel = t_o2 ** (airmass**0.58 * o2_scale) * t_h2o ** (airmass**0.4 * h2o_scale)
    step = np.gradient(lam)
    n_avg = max(1, int(round(np.median(np.abs(step)) / (w[1] - w[0]))))
    tel = uniform_filter1d(tel, n_avg) if n_avg > 1 else tel
    return ext * np.interp(lam, w, tel, left=1.0, right=tel[-1])
