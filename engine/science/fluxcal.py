"""Flux calibration from standard stars, with a fitted telluric model.

A standard's extracted spectrum (electrons s-1 A-1, flat-fielded, extinction-corrected) divided
by its reference spectrum *seen at the instrument's resolution* (the reference convolved with
the line-spread function and averaged over each 25.6-A cube bin, as the extraction does to the
sky) is ``S(lambda) T(lambda; X)``: a smooth sensitivity times the telluric transmission at
the standard's airmass. ``T = T_O2^(X^0.58 a_O2) T_H2O^(X^0.4 a_H2O)`` from the KPNO atlas,
computed at full resolution and then smoothed and binned like the data. ``ln S`` is a cubic
spline (knots every ~250 A) fitted by linear least squares with the stellar absorption lines
masked; ``a_O2, a_H2O`` and the line-spread width are fitted around it (variable projection).

The width matters: at 7600 A a detector pixel spans ~34 A, more than a cube bin, so the O2
A-band (~100 A) is only three pixels wide and its binned shape depends on the kernel. The data
are seen through the optical LSF, the pixel (detector integration) and the pixel again (the
resampler spreads each column uniformly over its wavelength interval): variances add,
``sigma_eff^2 = sigma_LSF^2 + 2/12`` px^2. With the kernel fixed at a guess that omits the
pixel terms the spline absorbed part of the band and ``a_O2`` came out 0.84-0.87 where it is
1 (the science spectra's 7600-A bin then scattered by +-3 %); the LSF width is now measured
on the standard (``TELLLSF``) and used for every spectrum it calibrates.

A science spectrum is divided by ``S T(X_science)`` with the standard's telluric strengths,
at the science exposure's mean airmass (pysedm mixed start and mean airmasses).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from astropy.io import fits
from scipy.interpolate import BSpline
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import least_squares

from engine import refdata
from engine.errors import AlgorithmError
from engine.instrument import sedm
from engine.io.fitsio import write_atomic
from engine.provenance import Provenance

FLUXCAL_SCHEMA = "sedmtui.fluxcal"
FLUXCAL_VERSION = 1
LSF_SIGMA_PX = sedm.LSF_SIGMA_PX
"""Optical line-spread sigma [pixel]: the starting guess of the fit on each standard."""
LSF_BOUNDS_PX = (0.5, 2.5)
"""Range of the fitted optical LSF sigma [pixel]."""
PIXEL_VAR_PX2 = 2.0 / 12.0
"""Variance the detector pixel and the resampler's uniform spreading of each column add [pixel^2]."""
STELLAR_MASKS_AA = ((3860.0, 3920.0), (3950.0, 4000.0), (4080.0, 4130.0), (4310.0, 4370.0), (4830.0, 4890.0),
                    (6530.0, 6600.0))
"""Balmer-line cores masked in the sensitivity fit (vacuum) [Angstrom]."""
FIT_RANGE_AA = (3750.0, 9250.0)
KNOT_SPACING_AA = 250.0
FINE_STEP_AA = 1.0


def _fine_grid(wave: np.ndarray) -> np.ndarray:
    return np.arange(wave[0] - 200.0, wave[-1] + 200.0, FINE_STEP_AA)


def instrument_view(fine_wave: np.ndarray, fine_flux: np.ndarray, wave: np.ndarray,
                    lsf_sigma_px: float = LSF_SIGMA_PX) -> np.ndarray:
    """A high-resolution spectrum as the extraction delivers it: LSF-smoothed, bin-averaged.

    The smoothing is a Gaussian of ``sqrt(lsf_sigma_px^2 + PIXEL_VAR_PX2)`` pixels (optical LSF,
    detector pixel, resampling) converted to Angstrom with the nominal dispersion
    (``d lambda / dx = 2 lambda^1.5 / D``), then the average over each cube bin.
    """
    sig_px = float(np.sqrt(lsf_sigma_px**2 + PIXEL_VAR_PX2))
    sig_aa = sig_px * 2.0 * fine_wave**1.5 / sedm.DISPERSION_D_PX
    out = np.empty_like(fine_flux)
    # Piecewise smoothing with the local sigma (8 segments; sigma varies slowly).
    edges = np.linspace(0, fine_wave.size, 9).astype(int)
    for a, b in zip(edges[:-1], edges[1:]):
        s = float(np.median(sig_aa[a:b])) / FINE_STEP_AA
        sm = gaussian_filter1d(fine_flux, s, mode="nearest")
        out[a:b] = sm[a:b]
    dw = wave[1] - wave[0]
    cum = np.concatenate([[0.0], np.cumsum(out) * FINE_STEP_AA])
    grid_edges = np.concatenate([[fine_wave[0] - 0.5 * FINE_STEP_AA], fine_wave + 0.5 * FINE_STEP_AA])
    lo = np.interp(wave - 0.5 * dw, grid_edges, cum)
    hi = np.interp(wave + 0.5 * dw, grid_edges, cum)
    return (hi - lo) / dw


def reference_at_resolution(name: str, wave: np.ndarray, lsf_sigma_px: float = LSF_SIGMA_PX) -> np.ndarray:
    """Reference F_lambda of a standard on the cube grid [erg s-1 cm-2 A-1]."""
    w, f = refdata.standard_spectrum(name)
    fine = _fine_grid(wave)
    return instrument_view(fine, np.interp(fine, w, f), wave, lsf_sigma_px)


def telluric_at_resolution(wave: np.ndarray, airmass: float, a_o2: float, a_h2o: float,
                           lsf_sigma_px: float = LSF_SIGMA_PX) -> np.ndarray:
    """Telluric transmission on the cube grid (computed at full resolution, then smoothed)."""
    w, t_o2, t_h2o = refdata.telluric_components()
    fine = _fine_grid(wave)
    t = np.interp(fine, w, t_o2, left=1.0, right=t_o2[-1]) ** (airmass**0.58 * a_o2)
    t = t * np.interp(fine, w, t_h2o, left=1.0, right=t_h2o[-1]) ** (airmass**0.4 * a_h2o)
    return instrument_view(fine, t, wave, lsf_sigma_px)


def _spline_basis(wave: np.ndarray) -> np.ndarray:
    lo, hi = FIT_RANGE_AA
    n_int = max(int((hi - lo) / KNOT_SPACING_AA), 4)
    inner = np.linspace(lo, hi, n_int + 1)
    k = 3
    t = np.concatenate([[wave[0] - 1] * (k + 1), inner[1:-1], [wave[-1] + 1] * (k + 1)])
    n_basis = len(t) - k - 1
    return np.stack([BSpline(t, np.eye(n_basis)[i], k, extrapolate=True)(wave) for i in range(n_basis)], 1)


@dataclass(frozen=True)
class Sensitivity:
    """A standard star's calibration.

    Attributes
    ----------
    wave : numpy.ndarray
        Cube wavelengths [Angstrom].
    sens : numpy.ndarray
        Telluric-free sensitivity [(e- s-1 A-1) / (erg s-1 cm-2 A-1)].
    a_o2, a_h2o : float
        Fitted telluric strengths (1 = the KPNO atlas at airmass 1).
    airmass : float
        Mean airmass of the standard.
    standard : str
    mjd : float
        Start of the standard's exposure.
    selfcheck_rms_pct : float
        Rms of (calibrated standard / reference - 1) over 4000-9000 A.
    source : str
        File it was read from (or will be written to).
    lsf_px : float
        Optical LSF sigma measured on the standard [pixel] (the telluric model's kernel).
    """

    wave: np.ndarray
    sens: np.ndarray
    a_o2: float
    a_h2o: float
    airmass: float
    standard: str
    mjd: float
    selfcheck_rms_pct: float = float("nan")
    source: str = ""
    extra: dict = field(default_factory=dict)
    lsf_px: float = LSF_SIGMA_PX

    def response(self, airmass: float) -> np.ndarray:
        """Sensitivity times the telluric transmission at ``airmass``."""
        return self.sens * telluric_at_resolution(self.wave, airmass, self.a_o2, self.a_h2o, self.lsf_px)


def fit_sensitivity(wave: np.ndarray, counts: np.ndarray, var: np.ndarray, standard: str, airmass: float,
                    mjd: float) -> Sensitivity:
    """Sensitivity and telluric strengths from a standard's extracted spectrum.

    Raises
    ------
    CalibrationNotFoundError
        The standard is not in the reference list.
    AlgorithmError
        Too few valid samples.
    """
    good = np.isfinite(counts) & (counts > 0) & np.isfinite(var) & (wave >= FIT_RANGE_AA[0]) & (wave <= FIT_RANGE_AA[1])
    for lo, hi in STELLAR_MASKS_AA:
        good &= ~((wave >= lo) & (wave <= hi))
    if good.sum() < 60:
        raise AlgorithmError(f"standard {standard}: only {int(good.sum())} usable samples", {"n": int(good.sum())})
    sig = np.sqrt(np.where(good, var, 1.0)) / np.where(good, counts, 1.0)  # relative error (good: counts > 0)
    w = np.where(good, 1.0 / np.maximum(sig, 0.002) ** 2, 0.0)
    basis = _spline_basis(wave)
    log_counts = np.log(np.where(good, counts, 1.0))

    def solve(params):
        a_o2, a_h2o, lsf = params
        ref = reference_at_resolution(standard, wave, lsf)
        lt = np.log(np.clip(telluric_at_resolution(wave, airmass, a_o2, a_h2o, lsf), 1e-3, None))
        target = log_counts - np.log(np.where(good, ref, 1.0)) - lt
        bw = basis * w[:, None]
        coef = np.linalg.lstsq(bw.T @ basis + 1e-9 * np.eye(basis.shape[1]), bw.T @ target, rcond=None)[0]
        return coef, target - basis @ coef

    def resid(params):
        return np.sqrt(w) * solve(params)[1]

    res = least_squares(resid, [1.0, 1.0, LSF_SIGMA_PX], bounds=([0.05, 0.05, LSF_BOUNDS_PX[0]], [5.0, 5.0, LSF_BOUNDS_PX[1]]),
                        x_scale=[0.1, 0.1, 0.1])
    coef, _ = solve(res.x)
    sens = np.exp(basis @ coef)
    cal = Sensitivity(wave=wave, sens=sens, a_o2=float(res.x[0]), a_h2o=float(res.x[1]), airmass=airmass,
                      standard=standard, mjd=mjd, lsf_px=float(res.x[2]))
    check = counts / cal.response(airmass) / reference_at_resolution(standard, wave, cal.lsf_px)
    sel = (wave >= 4000) & (wave <= 9000) & np.isfinite(check)
    rms = float(100 * np.std(check[sel] / np.median(check[sel]) - 1))
    return Sensitivity(**{**cal.__dict__, "selfcheck_rms_pct": rms})


def apply_sensitivity(counts: np.ndarray, var: np.ndarray, cal: Sensitivity, airmass: float) -> tuple[np.ndarray, np.ndarray]:
    """Flux-calibrated spectrum [erg s-1 cm-2 A-1] and its variance."""
    resp = cal.response(airmass)
    return counts / resp, var / resp**2


def write_sensitivity(path: str | os.PathLike, cal: Sensitivity, header: fits.Header, provenance: Provenance) -> None:
    """``fluxcal_...fits``: SENS (primary), with the telluric parameters in the header."""
    hdr = header.copy()
    provenance.stamp(hdr)
    hdr["SCHEMA"], hdr["SCHVER"] = FLUXCAL_SCHEMA, FLUXCAL_VERSION
    hdr["CRVAL1"], hdr["CDELT1"], hdr["CRPIX1"] = float(cal.wave[0]), float(cal.wave[1] - cal.wave[0]), 1.0
    hdr["CTYPE1"], hdr["CUNIT1"] = "WAVE", "Angstrom"
    hdr["BUNIT"] = ("(electron/s/A)/(erg/s/cm2/A)", "sensitivity, telluric-free")
    hdr["STDNAME"] = (cal.standard, "reference spectrum: Oke 1990")
    hdr["TELLAO2"] = (round(cal.a_o2, 5), "O2 strength (x KPNO atlas, X^0.58 scaling)")
    hdr["TELLAH2O"] = (round(cal.a_h2o, 5), "H2O strength (x KPNO atlas, X^0.4 scaling)")
    hdr["TELLAIRM"] = (round(cal.airmass, 4), "airmass of the standard (mean)")
    hdr["TELLLSF"] = (round(cal.lsf_px, 4), "optical LSF sigma of the telluric model [pixel]")
    hdr["STDMJD"] = (cal.mjd, "MJD of the standard")
    hdr["SELFCHK"] = (round(cal.selfcheck_rms_pct, 4), "rms of calibrated standard / reference - 1 [%]")
    write_atomic(fits.HDUList([fits.PrimaryHDU(cal.sens.astype(np.float64), header=hdr), provenance.hdu()]), path)


def read_sensitivity(path: str | os.PathLike) -> Sensitivity:
    """Read a ``fluxcal_`` product."""
    with fits.open(path) as hdul:
        h = hdul[0].header
        sens = np.asarray(hdul[0].data, dtype=float)
    wave = h["CRVAL1"] + h["CDELT1"] * np.arange(sens.size)
    return Sensitivity(wave=wave, sens=sens, a_o2=h["TELLAO2"], a_h2o=h["TELLAH2O"], airmass=h["TELLAIRM"],
                       standard=h["STDNAME"], mjd=h["STDMJD"], selfcheck_rms_pct=h.get("SELFCHK", float("nan")),
                       source=str(path), lsf_px=float(h.get("TELLLSF", LSF_SIGMA_PX)))
