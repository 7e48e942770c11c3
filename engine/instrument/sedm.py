"""Nominal constants of the SED Machine on the Palomar 60-inch telescope.

These are the numbers a pipeline at Palomar knows before it looks at a night's frames: the
detector layouts, the nominal lenslet lattice on the CCD, the nominal prism dispersion law,
the spaxel (sky) frame, the cube wavelength grid, the site and the guider geometry. Every
night's true values differ slightly (flexure, temperature); the calibration measures them.

Conventions
-----------
* CCD pixel coordinates are 0-based, ``x`` = column (dispersion axis, "i"), ``y`` = row
  (cross-dispersion axis, "j"); pixel ``(x, y)`` covers ``[x-0.5, x+0.5) x [y-0.5, y+0.5)``.
* Wavelengths are **vacuum** Angstrom throughout the engine (as pysedm's line lists).
* Spaxel coordinates ``(x, y)`` are in units of 0.55 arcsec with ``+y`` = North and
  ``+x`` = West (East to the left, a sky image with North up), origin at lenslet ``(q, r) = (0, 0)``.
* Lenslets are indexed by axial hexagonal coordinates ``(q, r)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------------------
# Detector
# --------------------------------------------------------------------------------------
CCD_SHAPE: tuple[int, int] = (2048, 2048)
"""Shape ``(ny, nx)`` of the trimmed IFU detector image [pixel]."""

USABLE_CENTER_PX: tuple[float, float] = (950.0, 950.0)
"""Centre ``(x, y)`` of the circle that bounds the usable trace region [pixel]."""

USABLE_RADIUS_PX: float = 1090.0
"""Radius of the usable circle [pixel]; traces must also lie inside ``USABLE_BOX_PX``."""

USABLE_BOX_PX: tuple[float, float] = (40.0, 2000.0)
"""Usable square ``[lo, hi]`` on both axes [pixel]."""

SATURATION_ADU: int = 65535
"""Digital saturation of the 16-bit readout [ADU]."""

PIXIS_OVERSCAN_COLUMNS: tuple[int, int] = (2045, 2048)
"""PIXIS camera: columns ``[2045, 2048)`` of the (untrimmed) raw image are overscan."""

PIXIS_READ_SPEEDS_MHZ: tuple[float, float] = (0.1, 2.0)
ANDOR_READ_SPEEDS_MHZ: tuple[float, ...] = (1.0,)

GAIN_FALLBACK_E_PER_ADU: dict[str, float] = {"pixis": 1.8, "andor": 0.9}
"""Gain used when the raw header has no ``GAIN`` [e-/ADU]."""

READ_NOISE_E: float = 5.0
"""Nominal read noise after conversion to electrons [e-] (the cosmic-ray step assumes it)."""

NOMINAL_RAW_FILE_BYTES: int = 8_400_960
"""Size of a complete PIXIS raw IFU file (2917 FITS blocks) [byte]."""

# --------------------------------------------------------------------------------------
# Lenslet lattice on the CCD and the prism dispersion law
# --------------------------------------------------------------------------------------
REFERENCE_WAVELENGTH_AA: float = 7000.0
"""Wavelength at which a trace's position ``(x_ref, y_ref)`` is quoted [Angstrom]."""

CCD_LATTICE_PITCH_PX: float = 47.0
"""Nominal distance between neighbouring lenslet images on the CCD [pixel]."""

CCD_LATTICE_ANGLE_DEG: float = 25.3
"""Nominal angle of the lattice ``q`` axis from the CCD ``x`` axis [degree].

The lattice is rotated so that spectra of lenslets that overlap in ``x`` are separated by
at least ~6.7 pixels in ``y``.
"""

CCD_LATTICE_ORIGIN_PX: tuple[float, float] = (895.0, 950.0)
"""Nominal CCD position ``(x, y)`` of lenslet ``(0, 0)`` at ``REFERENCE_WAVELENGTH_AA``."""

CCD_LATTICE_PITCH_RANGE_PX: tuple[float, float] = (38.0, 62.0)
"""Pitches the calibration accepts when it measures the lattice from the traces [pixel]."""

CCD_LATTICE_ANGLE_TOLERANCE_DEG: float = 30.0
"""The measured ``q`` axis is taken within this angle of ``CCD_LATTICE_ANGLE_DEG`` [degree]
(a hexagonal lattice looks the same every 60 degrees; the prior picks which axis is ``q``)."""

DISPERSION_D_PX: float = 38900.0
"""Nominal prism dispersion constant ``D`` [pixel Angstrom^0.5].

The nominal trace position along the dispersion axis is
``x(lambda) = x_ref + D * (lambda**-0.5 - REFERENCE_WAVELENGTH_AA**-0.5)``,
blue towards larger ``x``: ~14 A/px at 4200 A, ~33 A/px at 7000 A, ~236 px over 3700-9300 A.
"""

TRACE_SIGMA_PX: float = 1.2
"""Nominal Gaussian sigma of the cross-dispersion trace profile [pixel]."""

LSF_SIGMA_PX: float = 1.1
"""Nominal Gaussian sigma of a monochromatic lenslet image along the dispersion [pixel]."""

TRACE_LAMBDA_RANGE_AA: tuple[float, float] = (3550.0, 9800.0)
"""Wavelength span of a trace that is illuminated on the detector [Angstrom]."""

# --------------------------------------------------------------------------------------
# Spaxel (sky) frame
# --------------------------------------------------------------------------------------
SPAXEL_UNIT_ARCSEC: float = 0.55
"""Size of one spaxel-coordinate unit on the sky [arcsec]."""

LENSLET_PITCH_UNITS: float = 2.0 / math.sqrt(3.0)
"""Distance between neighbouring lenslets in spaxel units (0.635 arcsec)."""

SKY_GRID_ANGLE_DEG: float = 103.0
"""Rotation of the lattice ``q`` axis from the spaxel ``+x`` axis [degree] (SEDM_ROT)."""

MLA_RADIUS_UNITS: float = 25.0
"""A target is inside the IFU when it is within this distance of the origin [spaxel unit]."""

MLA_ROWS: tuple[int, int] = (-26, 25)
"""Lattice rows ``r`` of the microlens array (52 rows; Lezmy et al. 2022: 52 x 45 lenslets)."""

MLA_ROW_HALF_LENGTH: tuple[float, float] = (-22.5, 22.0)
"""Extent of a row along the ``q`` axis, in lenslets from the array's centre: a lenslet exists
when ``lo <= q + r/2 <= hi`` (45 lenslets in every row). The array is a lattice-aligned
square of 45 x 52 * sqrt(3)/2 = 45 x 45 pitches (28 arcsec), centred on lenslet ``(0, 0)``,
whose sky position is the IFU centre of the guider table."""

HEX_CIRCUMRADIUS_UNITS: float = 2.0 / 3.0
"""Circumradius of a lenslet's hexagonal outline [spaxel unit] (flat-to-flat 1.155)."""

# --------------------------------------------------------------------------------------
# Cube wavelength grid
# --------------------------------------------------------------------------------------
CUBE_WAVE_AA: np.ndarray = np.linspace(3700.0, 9300.0, 220)
"""Centres of the 220 cube wavelength samples [Angstrom] (step 25.5708 A)."""
CUBE_WAVE_AA.flags.writeable = False

CUBE_DWAVE_AA: float = float(CUBE_WAVE_AA[1] - CUBE_WAVE_AA[0])
EDGE_CUT_SAMPLES: int = 3
"""Samples cut at each end of delivered spectra (214 remain, 3776.7-9223.3 A)."""

# --------------------------------------------------------------------------------------
# Site and telescope
# --------------------------------------------------------------------------------------
SITE_LATITUDE_DEG: float = 33.3563
SITE_LONGITUDE_DEG: float = -116.8650
SITE_ALTITUDE_M: float = 1706.0
SITE_PRESSURE_HPA: float = 827.0
"""Station pressure assumed when the header gives none [hPa] (standard atmosphere at 1706 m;
pysedm uses 630 hPa, which underestimates refraction by a quarter)."""
SCALE_HEIGHT_M: float = 8400.0
"""Barometric scale height reducing the header's sea-level BARPRESS to the site [m]."""

# --------------------------------------------------------------------------------------
# Rainbow camera (guider)
# --------------------------------------------------------------------------------------
GUIDER_SHAPE: tuple[int, int] = (2048, 2048)
GUIDER_SCALE_ARCSEC: float = 0.378
"""Nominal guider pixel scale [arcsec/pixel] (astrometry.net searches 0.35-0.41)."""
GUIDER_PARITY: str = "neg"
"""Image parity of the Rainbow Camera frames in astrometry.net's terms: ``neg``, i.e. mirrored
(with North up, East is on the right: ``det CD > 0`` in FITS pixel order). SEDM's own
``solve-field`` call asks for negative parity; ``pos`` is an unmirrored sky image."""


@dataclass(frozen=True)
class IfuCentreEpoch:
    """Where the IFU centre falls on the guider detector, valid from ``start`` (UT date).

    Attributes
    ----------
    start : str
        First UT night ``YYYYMMDD`` of the epoch.
    x_px, y_px : float
        Guider pixel (0-based) that sees the IFU centre, i.e. spaxel ``(0, 0)``.
    rotation_deg : float
        Rotation of the spaxel frame relative to the guider's North-up frame [degree].
    """

    start: str
    x_px: float
    y_px: float
    rotation_deg: float


IFU_CENTRE_TABLE: tuple[IfuCentreEpoch, ...] = (
    IfuCentreEpoch("20190513", 1021.0, 983.0, 1.0),
    IfuCentreEpoch("20201004", 1039.5, 968.5, 1.0),
)
"""Dated IFU-centre table (latest last)."""


def ifu_centre_for(night: str) -> IfuCentreEpoch:
    """Return the IFU-centre epoch valid for a UT night ``YYYYMMDD``."""
    valid = [e for e in IFU_CENTRE_TABLE if e.start <= night]
    return valid[-1] if valid else IFU_CENTRE_TABLE[0]


# --------------------------------------------------------------------------------------
# Geometry helpers (pure functions)
# --------------------------------------------------------------------------------------
def lattice_basis_px(
    pitch_px: float = CCD_LATTICE_PITCH_PX, angle_deg: float = CCD_LATTICE_ANGLE_DEG
) -> np.ndarray:
    """CCD lattice basis vectors.

    Returns
    -------
    numpy.ndarray
        Shape ``(2, 2)``: row 0 is the CCD displacement of one step in ``q``, row 1 of one
        step in ``r`` [pixel].
    """
    a = math.radians(angle_deg)
    b = a + math.radians(60.0)
    return np.array([[math.cos(a), math.sin(a)], [math.cos(b), math.sin(b)]]) * pitch_px


def hex_to_spaxel_xy(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Spaxel coordinates of lenslets ``(q, r)``.

    Returns
    -------
    numpy.ndarray
        Shape ``(..., 2)`` positions ``(x, y)`` [spaxel unit].
    """
    q = np.asarray(q, dtype=float)
    r = np.asarray(r, dtype=float)
    u = LENSLET_PITCH_UNITS * (q + 0.5 * r)
    v = LENSLET_PITCH_UNITS * (math.sqrt(3.0) / 2.0) * r
    t = math.radians(SKY_GRID_ANGLE_DEG)
    return np.stack([u * math.cos(t) - v * math.sin(t), u * math.sin(t) + v * math.cos(t)], -1)


def in_mla(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """True for axial lattice coordinates ``(q, r)`` of lenslets that exist on the microlens array.

    Parameters
    ----------
    q, r : numpy.ndarray
        Axial coordinates relative to the array's centre lenslet (any matching shapes).
    """
    q = np.asarray(q, dtype=float)
    r = np.asarray(r, dtype=float)
    along = q + 0.5 * r
    lo, hi = MLA_ROW_HALF_LENGTH
    return (r >= MLA_ROWS[0]) & (r <= MLA_ROWS[1]) & (along >= lo) & (along <= hi)


def hexagon_vertices(xy: np.ndarray) -> np.ndarray:
    """Outline vertices of lenslets centred at ``xy``.

    Parameters
    ----------
    xy : numpy.ndarray
        Shape ``(n, 2)`` spaxel centres [spaxel unit].

    Returns
    -------
    numpy.ndarray
        Shape ``(n, 6, 2)`` vertices, rotated with the lattice [spaxel unit].
    """
    t0 = math.radians(SKY_GRID_ANGLE_DEG) + math.pi / 6.0
    ang = t0 + np.arange(6) * math.pi / 3.0
    off = HEX_CIRCUMRADIUS_UNITS * np.stack([np.cos(ang), np.sin(ang)], -1)
    return np.asarray(xy, dtype=float)[:, None, :] + off[None, :, :]


def nominal_trace_x(wave_aa: np.ndarray, x_ref: float | np.ndarray) -> np.ndarray:
    """Nominal CCD column of wavelength ``wave_aa`` on a trace whose 7000 A column is ``x_ref``."""
    u = np.asarray(wave_aa, dtype=float) ** -0.5 - REFERENCE_WAVELENGTH_AA**-0.5
    return np.asarray(x_ref, dtype=float) + DISPERSION_D_PX * u


def inside_usable_region(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True where CCD points ``(x, y)`` lie inside the usable circle and square."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    cx, cy = USABLE_CENTER_PX
    lo, hi = USABLE_BOX_PX
    in_circle = np.hypot(x - cx, y - cy) < USABLE_RADIUS_PX
    return in_circle & (x > lo) & (x < hi) & (y > lo) & (y < hi)


def trace_is_usable(x_ref: np.ndarray, y_ref: np.ndarray, tilt: np.ndarray | float = 0.0) -> np.ndarray:
    """True for traces whose whole 3700-9300 A span lies in the usable region.

    Parameters
    ----------
    x_ref, y_ref : numpy.ndarray
        Trace positions at 7000 A [pixel].
    tilt : numpy.ndarray or float
        Trace slope ``dy/dx``.
    """
    ends = nominal_trace_x(np.array([CUBE_WAVE_AA[0], CUBE_WAVE_AA[-1]]), np.asarray(x_ref)[..., None])
    ok = np.ones(np.shape(x_ref), dtype=bool)
    for k in range(2):
        xe = ends[..., k]
        ye = np.asarray(y_ref) + np.asarray(tilt) * (xe - np.asarray(x_ref))
        ok &= inside_usable_region(xe, ye)
    return ok
