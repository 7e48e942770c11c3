"""The synthetic instrument's true state for one night: lenslet traces, dispersion, flat.

Every lenslet whose spectrum touches the detector is described by its axial hexagonal
coordinates ``(q, r)``, its sky position, and its trace on the CCD:

* ``x(lambda) = x_ref + D t + C t**2 + E t**3 + F t**4`` with ``t = lambda**-0.5 - 7000**-0.5``
  (a prism-like law: blue towards larger x), plus the exposure's i-flexure;
* ``y(x) = y_ref + tilt (x - x_ref) + curv (x - x_ref)**2``, plus the j-flexure;
* a Gaussian cross-dispersion profile of sigma ``sigma_y * (1 + sigma_chroma (lambda/6500 - 1))``;
* a Gaussian line-spread function of sigma ``lsf_sigma`` along the dispersion;
* a throughput ``flat * (1 + flat_chroma (lambda - 6500)/3000)`` relative to the median lenslet.

:func:`engine.synth.draw.draw_instrument` draws it either narrowly around the nominal constants (``"nominal"``) or
from the wide priors of :mod:`engine.synth.priors` (``"wide"``, :mod:`engine.synth.wide`).

Only tests and benchmarks read this truth; the reduction code never does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine.instrument import sedm
from engine.synth import priors as pr

REF_T = sedm.REFERENCE_WAVELENGTH_AA**-0.5


@dataclass(frozen=True)
class TrueInstrument:
    """True trace geometry and throughput of every lenslet imaged on the detector.

    All arrays have shape ``(n_lenslet,)`` unless said otherwise.
    """

    q: np.ndarray
    r: np.ndarray
    sky_xy: np.ndarray
    """Shape ``(n, 2)``: spaxel coordinates [spaxel unit]."""
    x_ref: np.ndarray
    y_ref: np.ndarray
    disp: np.ndarray
    """Shape ``(n, 4)``: coefficients ``D, C, E, F`` of the dispersion polynomial in ``t``."""
    tilt: np.ndarray
    curv: np.ndarray
    sigma_y: np.ndarray
    sigma_chroma: np.ndarray
    lsf_sigma: np.ndarray
    flat: np.ndarray
    flat_chroma: np.ndarray
    usable: np.ndarray
    """True where the 3700-9300 A trace lies in the usable detector region."""
    pixel_flat: np.ndarray = field(repr=False)
    """Shape ``CCD_SHAPE``: pixel-to-pixel response (mean 1)."""
    draw: dict = field(default_factory=dict, repr=False, compare=False)
    """The drawn instrument parameters (``truth.json``'s ``instrument_draw``)."""

    @property
    def n(self) -> int:
        """Number of lenslets."""
        return int(self.q.size)

    def x_of_wave(self, wave_aa: np.ndarray, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """CCD column of ``wave_aa`` on traces ``idx``; shape ``(n_idx, n_wave)`` [pixel]."""
        t = np.asarray(wave_aa, dtype=float) ** -0.5 - REF_T
        c = self.disp[idx]
        poly = c[:, 0:1] * t + c[:, 1:2] * t**2 + c[:, 2:3] * t**3 + c[:, 3:4] * t**4
        return self.x_ref[idx][:, None] + poly

    def y_of_x(self, x: np.ndarray, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """CCD row of the trace centre at columns ``x`` (shape ``(n_idx, m)``) [pixel]."""
        dx = x - self.x_ref[idx][:, None]
        return self.y_ref[idx][:, None] + self.tilt[idx][:, None] * dx + self.curv[idx][:, None] * dx**2

    def throughput(self, wave_aa: np.ndarray, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Relative lenslet throughput at ``wave_aa``; shape ``(n_idx, n_wave)``."""
        lam = np.asarray(wave_aa, dtype=float)
        return self.flat[idx][:, None] * (1.0 + self.flat_chroma[idx][:, None] * (lam - 6500.0) / 3000.0)


def _field_poly(xn: np.ndarray, yn: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Smooth field variation: quadratic polynomial in normalised CCD coordinates."""
    a = coeffs
    return a[0] * xn + a[1] * yn + a[2] * xn * yn + a[3] * xn**2 + a[4] * yn**2


def draw_nominal_instrument(rng: np.random.Generator) -> TrueInstrument:
    """The narrow draw around the nominal constants (unchanged since SYNTH_FORMAT 2)."""
    # Lattice: nominal pitch/angle/origin, perturbed for the night.
    pitch = sedm.CCD_LATTICE_PITCH_PX * (1.0 + rng.normal(0.0, 0.0008))
    angle = sedm.CCD_LATTICE_ANGLE_DEG + rng.normal(0.0, 0.03)
    origin = np.array(sedm.CCD_LATTICE_ORIGIN_PX) + rng.normal(0.0, 2.0, 2)
    basis = sedm.lattice_basis_px(pitch, angle)
    n_side = 40
    qq, rr = np.meshgrid(np.arange(-n_side, n_side + 1), np.arange(-n_side, n_side + 1), indexing="ij")
    qq, rr = qq.ravel(), rr.ravel()
    pos = origin + qq[:, None] * basis[0] + rr[:, None] * basis[1]
    # Smooth optical distortion (a few pixels at the field edge) and tiny lenslet jitter.
    xn = (pos[:, 0] - 1024.0) / 1024.0
    yn = (pos[:, 1] - 1024.0) / 1024.0
    pos[:, 0] += _field_poly(xn, yn, rng.normal(0.0, 1.0, 5)) + 1.5 * xn**3
    pos[:, 1] += _field_poly(xn, yn, rng.normal(0.0, 1.0, 5)) - 1.0 * yn**3
    pos += rng.normal(0.0, 0.03, pos.shape)
    x_ref, y_ref = pos[:, 0], pos[:, 1]
    # Keep lenslets whose trace (3550-9800 A) touches the detector.
    lo, hi = sedm.nominal_trace_x(np.array(sedm.TRACE_LAMBDA_RANGE_AA[::-1]), x_ref[:, None]).T
    on = (hi > -5) & (lo < sedm.CCD_SHAPE[1] + 5) & (y_ref > -6) & (y_ref < sedm.CCD_SHAPE[0] + 6)
    qq, rr, x_ref, y_ref, xn, yn = qq[on], rr[on], x_ref[on], y_ref[on], xn[on], yn[on]
    n = qq.size
    # Dispersion: field-dependent scale, curvature; tiny per-lenslet scatter.
    scale = 1.0 + _field_poly(xn, yn, rng.normal(0.0, 0.002, 5)) + rng.normal(0.0, 2e-4, n)
    d = sedm.DISPERSION_D_PX * scale
    c = 2.0e5 * (1.0 + 0.05 * xn + rng.normal(0.0, 0.01, n))
    e = 8.0e6 * (1.0 + 0.05 * yn)
    f4 = 6.0e7 * np.ones(n)
    disp = np.stack([d, c, e, f4], axis=1)
    tilt = 0.004 + 0.0015 * xn - 0.001 * yn + rng.normal(0.0, 1e-4, n)
    curv = 2e-6 * (1.0 + 0.3 * yn)
    sigma_y = sedm.TRACE_SIGMA_PX * (1.0 + 0.04 * (xn**2 + yn**2) + rng.normal(0.0, 0.02, n))
    sigma_chroma = 0.06 + 0.02 * xn
    lsf = sedm.LSF_SIGMA_PX * (1.0 + 0.05 * (xn**2 + yn**2))
    # Throughput: lenslet-to-lenslet 4 %, smooth vignetting, a small chromatic slope.
    vignette = 1.0 - 0.06 * (xn**2 + yn**2)
    flat = vignette * (1.0 + rng.normal(0.0, 0.04, n))
    flat_chroma = rng.normal(0.0, 0.02, n) + 0.01 * xn
    sky_xy = sedm.hex_to_spaxel_xy(qq, rr)
    tilt_arr = np.asarray(tilt)
    usable = sedm.trace_is_usable(x_ref, y_ref, tilt_arr)
    norm = np.median(flat[usable])
    pixel_flat = (1.0 + rng.normal(0.0, 0.003, sedm.CCD_SHAPE)).astype(np.float32)
    draw = {
        "priors": "nominal", "pitch_px": pitch, "angle_deg": angle, "origin_px": [float(v) for v in origin],
        "mla_outline": {"shape": "unbounded", "note": "every lenslet whose trace touches the detector"},
        "min_trace_y_separation_px": pr.min_trace_y_separation(pitch, angle, 0.004, 236.0 * pr.TRACE_LENGTH_MARGIN)[0],
        "defects": None,
    }
    return TrueInstrument(
        q=qq, r=rr, sky_xy=sky_xy, x_ref=x_ref, y_ref=y_ref, disp=disp, tilt=tilt_arr, curv=curv,
        sigma_y=sigma_y, sigma_chroma=sigma_chroma, lsf_sigma=lsf, flat=flat / norm,
        flat_chroma=flat_chroma, usable=usable, pixel_flat=pixel_flat, draw=draw,
    )


def instrument_throughput(wave_aa: np.ndarray) -> np.ndarray:
    """Total efficiency of telescope + SEDM + CCD (photons in -> electrons) at ``wave_aa``.

    A smooth curve: ~6 % at 3700 A, ~25 % peak near 6000 A, ~9 % at 9300 A.
    """
    lam = np.asarray(wave_aa, dtype=float)
    x = np.log(lam / 6100.0)
    eff = 0.25 * np.exp(-0.5 * (x / 0.33) ** 2)
    blue_cut = 1.0 / (1.0 + np.exp(-(lam - 3650.0) / 120.0))
    return eff * blue_cut


TELESCOPE_AREA_CM2: float = math.pi / 4.0 * (152.4**2 - 50.0**2)
"""Collecting area of the P60 primary minus the secondary obstruction [cm^2]."""
