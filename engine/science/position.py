"""Where to extract: astrometry, brightest spaxel or a manual centroid; which spaxels to fit.

``SRCPOS`` records the origin: ``astrom`` (guider WCS), ``auto`` (brightest spaxel: standards
always; science targets when the astrometry failed -> quality 5) or ``manual`` (a console or
``redex`` centroid, which clears quality 5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import RequestError
from engine.instrument import sedm
from engine.science.cube import Cube

GUESS_ERR = {"astrom": 3.0, "auto": 5.0, "manual": 2.0}
"""How far (spaxel units) the PSF fit may move from each kind of starting position."""


@dataclass(frozen=True)
class Position:
    """The starting position of the PSF fit and the evidence for it."""

    x: float
    y: float
    srcpos: str
    astrom: tuple[float, float] | None
    brightest: tuple[float, float] | None
    manual: tuple[float, float] | None
    astrometry_reason: str = ""

    @property
    def xy(self) -> tuple[float, float]:
        """``(x, y)``."""
        return (self.x, self.y)

    @property
    def inside(self) -> bool:
        """Inside the 25-spaxel IFU radius."""
        return bool(np.hypot(self.x, self.y) <= sedm.MLA_RADIUS_UNITS)


def brightest_position(cube: Cube, lo: float = 5000.0, hi: float = 7000.0, smooth_units: float = 1.2) -> tuple[float, float]:
    """Position of the brightest compact source of the 5000-7000 A image.

    The spaxel image (median background removed) is smoothed with a Gaussian of
    ``smooth_units`` (a point source spreads over several spaxels, a noisy or cosmic-hit
    spaxel does not), the maximum is taken, and the result is the flux-weighted centroid of
    the spaxels within 1.6 units of it. pysedm's median of the spaxels above the 99.5th
    percentile picks single hot spaxels when the target is faint.

    Parameters
    ----------
    cube : Cube
        The cube.
    lo, hi : float
        Wavelength range of the image [Angstrom].
    smooth_units : float
        Gaussian smoothing sigma [spaxel unit].
    """
    from scipy.spatial import cKDTree

    img = cube.slice_mean(lo, hi)
    finite = np.isfinite(img)
    xy = cube.xy[finite]
    val = img[finite] - np.median(img[finite])
    tree = cKDTree(xy)
    pairs = tree.sparse_distance_matrix(tree, 3.0 * smooth_units, output_type="coo_matrix")
    w = np.exp(-0.5 * (pairs.data / smooth_units) ** 2)
    num = np.bincount(pairs.row, weights=w * val[pairs.col], minlength=xy.shape[0])
    den = np.bincount(pairs.row, weights=w, minlength=xy.shape[0])
    smooth = num / np.maximum(den, 1e-12)
    peak = xy[int(np.argmax(smooth))]
    near = np.hypot(*(xy - peak).T) < 1.6
    wts = np.clip(val[near], 0.0, None)
    if wts.sum() <= 0:
        return float(peak[0]), float(peak[1])
    return float(np.sum(wts * xy[near, 0]) / wts.sum()), float(np.sum(wts * xy[near, 1]) / wts.sum())


def choose_position(kind: str, cube: Cube, *, astrom: tuple[float, float] | None, astrometry_reason: str,
                    manual: tuple[float, float] | None) -> Position:
    """The position to start from, by priority: manual, astrometry (science), brightest.

    Parameters
    ----------
    kind : {"science", "standard"}
        Standards always start at the brightest spaxel.
    cube : Cube
        The cube.
    astrom : tuple of float or None
        The guider astrometry's position [spaxel unit].
    astrometry_reason : str
        Why there is none.
    manual : tuple of float or None
        An observer's centroid [spaxel unit].
    """
    bright = brightest_position(cube)
    if manual is not None:
        x, y, src = manual[0], manual[1], "manual"
    elif kind == "science" and astrom is not None:
        x, y, src = astrom[0], astrom[1], "astrom"
    else:
        x, y, src = bright[0], bright[1], "auto"
    return Position(x=float(x), y=float(y), srcpos=src, astrom=astrom, brightest=bright, manual=manual,
                    astrometry_reason=astrometry_reason)


def fit_region(cube: Cube, centre: tuple[float, float], region: dict | None,
               default_radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Spaxels to fit and spaxels excluded by the user.

    ``region`` is ``None`` (a circle of ``default_radius``), ``{"radius": r}``,
    ``{"include": [ids]}`` (exactly those, by trace id) or ``{"exclude": [ids]}`` (the default
    circle minus those; e.g. a cosmic-ray spaxel). Ids are the calibration's trace indices
    (``Cube.spaxel_id``).

    Parameters
    ----------
    cube : Cube
        The cube.
    centre : tuple of float
        Centre of the default circle [spaxel unit].
    region : dict or None
        The manual region, as above.
    default_radius : float
        Radius of the default circle [spaxel unit].

    Raises
    ------
    RequestError
        The region holds no spaxel of the cube.
    """
    region = region or {}
    dist = np.hypot(*(cube.xy - np.asarray(centre)).T)
    radius = float(region.get("radius", default_radius))
    excluded = np.zeros(cube.n_spax, bool)
    if "include" in region:
        mask = np.isin(cube.spaxel_id, np.asarray(region["include"], dtype=int))
    else:
        mask = dist <= radius
        if "exclude" in region:
            excluded = np.isin(cube.spaxel_id, np.asarray(region["exclude"], dtype=int))
            mask &= ~excluded
    if mask.sum() == 0:
        raise RequestError("the extraction region contains no spaxel of the cube")
    return mask, excluded
