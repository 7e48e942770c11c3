"""Priors of the synthetic instrument: the ranges a night's instrument is drawn from.

Two prior sets exist:

* ``"nominal"``: the narrow draw around the constants of :mod:`engine.instrument.sedm` that the
  generator has always made (pitch +-0.08 %, angle +-0.03 deg, origin +-2 px, an unbounded
  lenslet array, no detector defects). Kept bit-identical for the existing tests.
* ``"wide"``: every quantity drawn from the ranges of :data:`WIDE_PRIORS`, a finite microlens
  array (:data:`MLA_OUTLINE_SHAPE`) and the detector defects of
  :mod:`engine.synth.detector`. The real SEDM can lie anywhere in these ranges.

Not every pitch and rotation pair is allowed. SEDM was designed so that the spectra of two
lenslets which overlap along the dispersion (``x``) are separated across it (``y``); a wide draw
keeps that property (:func:`min_trace_y_separation`, :data:`TRACE_SEPARATION_MIN_PX`) and is
redrawn when it does not. The rule, for the lattice basis ``b0, b1`` (pitch, angle), the mean
trace slope ``tilt`` and the trace length ``L`` (3700-9300 A of the drawn dispersion law, plus
:data:`TRACE_LENGTH_MARGIN`)::

    min over lattice vectors v = i b0 + j b1 != 0 with |v_x| < L  of  |v_y - tilt v_x|  >= 5.5 px

(two traces whose ``x`` extents overlap are ``|v_y - tilt v_x|`` apart in ``y``). The field
distortion moves the trace slope with the lattice (the slope of every trace includes the
distortion's ``d f_y / d x``), so the rule evaluated with the mean slope holds across the field
to ~0.2 px; the separation measured on the drawn traces must be >= 5.3 px
(:data:`TRACE_SEPARATION_MEASURED_MIN_PX`), or the whole draw is made again. About a quarter
of uniform (pitch, angle, tilt) triples pass; the allowed set is a patchwork of angle windows
(the hexagonal lattice repeats every 60 deg) that widen with pitch and narrow with the trace
length: lattice rows within ~5 deg of CCD +x are never allowed, and a 40 px pitch needs a
trace shorter than ~240 px. The pitch is drawn first and kept for a few hundred draws of the
rest, so that it stays near uniform over 40-60 px.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from engine.instrument import sedm

PRIOR_SETS: tuple[str, ...] = ("nominal", "wide")
"""Names accepted by ``priors=`` in :func:`engine.synth.night.write_night`."""

DEFAULT_PRIORS: str = "wide"
"""Prior set used when none is given: the synth command, the demo and the sweep draw widely."""

TRACE_SEPARATION_MIN_PX: float = 5.5
"""Least ``y`` distance between two traces whose ``x`` extents overlap [pixel]."""

TRACE_SEPARATION_MEASURED_MIN_PX: float = 5.3
"""Least ``y`` distance of overlapping traces measured on a drawn instrument [pixel]: the analytic
rule's 5.5 px less what distortion, curvature and lenslet jitter may take (the draw is redone
below it)."""

TRACE_LENGTH_MARGIN: float = 1.03
"""Factor on the 3700-9300 A trace length in the separation rule (the field's stretch)."""

MLA_OUTLINE_SHAPE: str = "sedm-52x45"
"""Outline of the lenslets that exist (wide draws): SEDM's array of 52 rows of 45 lenslets
(``engine.instrument.sedm.in_mla``), centred on the drawn origin. Its image is about as large
as the detector, so its edge is often off the CCD: nothing in the dome tells which lenslet is
the array's centre, exactly as on the real instrument.

The spaxel frame is referenced to the detector, not to the array: lenslet ``(0, 0)`` is the one
imaged nearest ``sedm.CCD_LATTICE_ORIGIN_PX`` at 7000 A (the guider's IFU-centre table is
measured on the sky for that lenslet, and is measured again after a realignment moves the array).
"""

DETECTOR_CENTRE_PX: tuple[float, float] = (
    0.5 * (sedm.CCD_SHAPE[1] - 1), 0.5 * (sedm.CCD_SHAPE[0] - 1)
)
"""Centre ``(x, y)`` of the trimmed detector [pixel]; origin draws are relative to it."""


@dataclass(frozen=True)
class Prior:
    """One drawn quantity: uniform in ``[lo, hi]`` unless ``law`` says otherwise.

    Attributes
    ----------
    name : str
        Key in :data:`WIDE_PRIORS` and in ``truth.json``'s ``instrument_draw``.
    lo, hi : float
        Range of the draw [``unit``].
    unit : str
        Unit of ``lo`` and ``hi``.
    nominal : float or None
        Value of the nominal instrument (``engine.instrument.sedm``), when one exists.
    law : str
        ``"uniform"`` or ``"log-uniform"``.
    note : str
        What the quantity is and how it enters the frames.
    """

    name: str
    lo: float
    hi: float
    unit: str
    nominal: float | None
    law: str = "uniform"
    note: str = ""

    def draw(self, rng: np.random.Generator, size: int | None = None) -> float | np.ndarray:
        """One value (or ``size`` values) from this prior."""
        if self.law == "log-uniform":
            v = np.exp(rng.uniform(math.log(self.lo), math.log(self.hi), size))
        else:
            v = rng.uniform(self.lo, self.hi, size)
        return float(v) if size is None else v


_ANGLE = sedm.CCD_LATTICE_ANGLE_DEG
_OX, _OY = DETECTOR_CENTRE_PX

WIDE_PRIORS: tuple[Prior, ...] = (
    # Lenslet lattice on the CCD
    Prior("pitch_px", 40.0, 60.0, "px", sedm.CCD_LATTICE_PITCH_PX,
          note="distance between neighbouring lenslet images; (pitch, angle, tilt) must pass the "
               "trace-separation rule"),
    Prior("angle_deg", _ANGLE - 30.0, _ANGLE + 30.0, "deg", _ANGLE,
          note="angle of the lattice q axis from CCD +x (one full 60 deg period of the lattice)"),
    Prior("origin_x_px", _OX - 200.0, _OX + 200.0, "px", sedm.CCD_LATTICE_ORIGIN_PX[0],
          note="CCD x of the microlens array centre at 7000 A (the spaxel frame: lenslet nearest CCD_LATTICE_ORIGIN_PX)"),
    Prior("origin_y_px", _OY - 200.0, _OY + 200.0, "px", sedm.CCD_LATTICE_ORIGIN_PX[1],
          note="CCD y of the array centre"),
    Prior("distortion_px", 2.0, 10.0, "px", None,
          note="largest displacement of a lenslet image by the smooth (quadratic + cubic) field "
               "distortion over the lit field; traces tilt and stretch with it"),
    Prior("lenslet_jitter_px", 0.0, 0.05, "px", 0.03,
          note="rms random offset of each lenslet image"),
    # Dispersion law x = x_ref + D t + C t^2 + E t^3 + F t^4, t = lambda^-0.5 - 7000^-0.5
    Prior("disp_scale", 0.92, 1.08, "", 1.0, note="D / nominal D (38900 px A^0.5)"),
    Prior("disp_c_factor", -2.0, 5.0, "", 1.0,
          note="C / 2e5: up to -8..+20 px at 3700 A from the t^2 term alone"),
    Prior("disp_e_factor", -4.0, 6.0, "", 1.0, note="E / 8e6"),
    Prior("disp_f_factor", -5.0, 5.0, "", 1.0, note="F / 6e7"),
    Prior("disp_field_rms", 0.0, 0.004, "", 0.002,
          note="rms of the smooth field variation of D (besides the distortion's stretch)"),
    Prior("disp_c_gradient", -0.15, 0.15, "", 0.05, note="C varies as 1 + g x_n across the field"),
    # Trace geometry and widths
    Prior("tilt", -0.02, 0.02, "", 0.004,
          note="trace slope dy/dx: mean slope plus the distortion's d f_y/dx, |slope| <= 0.02 "
               "everywhere (the mean is drawn within the room the distortion leaves)"),
    Prior("curv_per_px", -6.0e-6, 6.0e-6, "1/px", 2.0e-6,
          note="trace curvature d2y/dx2 / 2 (plus the distortion's)"),
    Prior("sigma_y_px", 0.9, 1.6, "px", sedm.TRACE_SIGMA_PX,
          note="cross-dispersion Gaussian sigma at the field centre, 6500 A"),
    Prior("sigma_field", 0.0, 0.15, "", 0.04,
          note="sigma grows as 1 + a r_n^2 towards the field edge (r_n = 1 at the detector edge)"),
    Prior("sigma_gradient", -0.05, 0.05, "", 0.0, note="sigma varies as 1 + g x_n across the field"),
    Prior("sigma_chroma", 0.0, 0.12, "", 0.06,
          note="sigma scales as 1 + s (lambda / 6500 - 1)"),
    Prior("lsf_sigma_px", 0.8, 1.5, "px", sedm.LSF_SIGMA_PX,
          note="line-spread Gaussian sigma along x at the field centre"),
    Prior("lsf_field", 0.0, 0.15, "", 0.05, note="LSF sigma grows as 1 + a r_n^2"),
    # Throughput and flat
    Prior("flat_scatter", 0.02, 0.08, "", 0.04, note="rms lenslet-to-lenslet throughput scatter"),
    Prior("vignetting", 0.02, 0.20, "", 0.06,
          note="throughput falls as 1 - v rho^2 (rho = 1 at half the array width)"),
    Prior("flat_gradient", -0.05, 0.05, "", 0.0, note="throughput tilt across the field (per x_n, y_n)"),
    Prior("flat_chroma_scatter", 0.01, 0.04, "", 0.02,
          note="rms of each lenslet's chromatic throughput slope per 3000 A"),
    Prior("pixel_flat_rms", 0.002, 0.006, "", 0.003, note="pixel-to-pixel response rms"),
    # Sky, PSF and flexure (per night; each exposure scatters around them)
    Prior("seeing_median_arcsec", 1.0, 2.4, "arcsec", 1.95,
          note="median FWHM at 5000 A; each exposure: median x exp(N(0, 0.15)), within 0.8-3.0"),
    Prior("psf_beta", 2.0, 4.5, "", 2.5, note="Moffat exponent of the PSF family"),
    Prior("psf_eta", 0.2, 1.0, "", 0.6, note="Gaussian core peak / Moffat peak"),
    Prior("psf_core_ratio", 0.6, 0.9, "", 0.75, note="core sigma / (FWHM / 2.355)"),
    Prior("psf_chroma", -0.3, -0.1, "", -0.2, note="PSF widths scale as (lambda / 5000)^chroma"),
    Prior("psf_ab_min", 0.80, 0.92, "", 0.88, note="exposures' axis ratio uniform in [ab_min, 0.98]"),
    Prior("jflex_sigma_px", 0.3, 1.2, "px", 0.8, note="rms y flexure of exposures, clipped at 2.5 sigma (<= 3 px)"),
    Prior("iflex_sigma_px", 0.1, 0.6, "px", 0.3, note="rms x flexure of exposures, clipped at 2.5 sigma"),
    # Detector defects (the same on every frame of a night)
    Prior("n_bad_columns", 3, 6, "", None,
          note="bad columns (>= 1 dead and >= 1 hot across the lit traces), full height or from a "
               "trap to the top/bottom edge"),
    Prior("dead_column_response", 0.0, 0.3, "", None, note="response of a dead column"),
    Prior("hot_column_offset_e", 50.0, 500.0, "e-", None, note="charge added to every read of a hot column"),
    Prior("n_hot_pixels", 150, 600, "", None, note="hot pixels"),
    Prior("hot_pixel_rate_e_s", 1.0, 300.0, "e-/s", None, law="log-uniform", note="dark rate of a hot pixel"),
    Prior("bleed_rate_e_s", 2.0e4, 6.0e4, "e-/s", None,
          note="a very hot pixel in the lit field: saturates and bleeds along its column "
               "(charge / 150 ke- rows, at most 80)"),
    Prior("scatter_fraction", 0.005, 0.03, "", None,
          note="structured scattered light: this fraction of a frame's mean illumination, times a "
               "smooth 2D pattern (gradient + 1-3 broad blobs, mean 1)"),
)
"""The wide priors; :func:`describe_priors` returns them as a table."""

PRIORS: dict[str, Prior] = {p.name: p for p in WIDE_PRIORS}


def describe_priors() -> list[dict]:
    """The wide priors as table rows.

    Returns
    -------
    list of dict
        One row per drawn quantity: ``name, lo, hi, unit, nominal, law, note``.
    """
    return [asdict(p) for p in WIDE_PRIORS]


def priors_table_markdown() -> str:
    """The wide priors as a Markdown table (for the README)."""
    rows = ["| quantity | range | unit | nominal | note |", "|---|---|---|---|---|"]
    for p in WIDE_PRIORS:
        nominal = "" if p.nominal is None else f"{p.nominal:g}"
        law = " (log)" if p.law == "log-uniform" else ""
        rows.append(f"| `{p.name}` | {p.lo:g} to {p.hi:g}{law} | {p.unit} | {nominal} | {p.note} |")
    return "\n".join(rows)


def check_priors(priors: str) -> str:
    """Return ``priors`` if it names a prior set, else raise ``ValueError``."""
    if priors not in PRIOR_SETS:
        raise ValueError(f"unknown priors {priors!r}: expected one of {', '.join(PRIOR_SETS)}")
    return priors


def _lattice_vectors(pitch_px: float, angle_deg: float, n: int = 16) -> np.ndarray:
    """Non-zero lattice vectors ``i b0 + j b1`` with ``|i|, |j| <= n``; shape ``(m, 2)`` [pixel]."""
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    i, j = i.ravel(), j.ravel()
    keep = (i != 0) | (j != 0)
    basis = sedm.lattice_basis_px(pitch_px, angle_deg)
    return i[keep, None] * basis[0] + j[keep, None] * basis[1]


def min_trace_y_separation(
    pitch_px: float, angle_deg: float, tilt: float, trace_length_px: float
) -> tuple[float, np.ndarray]:
    """Least ``y`` distance between two traces whose ``x`` extents overlap.

    Parameters
    ----------
    pitch_px, angle_deg : float
        Lattice pitch [pixel] and angle of the ``q`` axis from CCD ``+x`` [degree].
    tilt : float
        Trace slope ``dy/dx``.
    trace_length_px : float
        Length of a trace along ``x`` [pixel]; traces ``v`` apart overlap when ``|v_x| < L``.

    Returns
    -------
    separation : float
        ``min |v_y - tilt v_x|`` over lattice vectors with ``|v_x| < L`` [pixel].
    vector : numpy.ndarray
        Shape ``(2,)``: the lattice vector that sets it [pixel].
    """
    v = _lattice_vectors(pitch_px, angle_deg, n=int(math.ceil(trace_length_px / (0.4 * pitch_px))) + 2)
    v = v[np.abs(v[:, 0]) < trace_length_px]
    sep = np.abs(v[:, 1] - tilt * v[:, 0])
    k = int(np.argmin(sep))
    return float(sep[k]), v[k]


def separation_ok(pitch_px: float, angle_deg: float, tilt: float, trace_length_px: float) -> bool:
    """True when the draw passes the trace-separation rule (:data:`TRACE_SEPARATION_MIN_PX`)."""
    return min_trace_y_separation(pitch_px, angle_deg, tilt, trace_length_px)[0] >= TRACE_SEPARATION_MIN_PX


def inside_mla_outline(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """True for lenslets ``(q, r)`` (relative to the array's centre) of the microlens array."""
    return sedm.in_mla(q, r)


def mla_outline() -> dict:
    """The microlens-array outline as recorded in ``truth.json``."""
    q, r = np.meshgrid(np.arange(-60, 61), np.arange(-60, 61))
    return {
        "shape": MLA_OUTLINE_SHAPE,
        "rows": list(sedm.MLA_ROWS),
        "row_extent": list(sedm.MLA_ROW_HALF_LENGTH),
        "rule": "lenslet (q, r) relative to the array centre exists when rows[0] <= r <= rows[1] and "
                "row_extent[0] <= q + r/2 <= row_extent[1]",
        "n_lenslets": int(inside_mla_outline(q, r).sum()),
    }
