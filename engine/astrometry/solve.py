"""Built-in WCS solver of a guider image: offset voting, iterative matching, TAN fit.

The solution is a gnomonic (TAN) WCS whose reference pixel is fixed at the IFU-centre pixel
of the dated table, so that ``CRVAL`` *is* the sky position of the IFU centre.

Algorithm
---------
1. Project the catalogue onto the tangent plane at the telescope pointing (TEL_RA/TEL_DEC)
   and predict pixel positions with the nominal scale, for a grid of rotations about the
   nominal one (with the configured image parity: the Rainbow Camera's is mirrored).
2. For each rotation, histogram the offsets between the brightest detections and the
   brightest predicted stars (within ``max_offset_px``); the rotation whose offset peak
   holds the most pairs wins ("offset voting"). With the default 100-px search and a
   +-2 degree grid this tolerates the ~30-pixel pointing and ~1-degree rotation errors of
   the Rainbow Camera; scale-free triangle matching (Groth 1986, AJ 91, 1244; Valdes et
   al. 1995, PASP 107, 1119) is not needed because the scale is known to ~0.5 %.
3. Match predicted and detected stars (mutual nearest neighbours within a shrinking
   radius), fit ``(xi, eta) = CD (p - CRPIX) + c`` by linear least squares with sigma
   clipping, move ``CRVAL`` to ``c`` (so ``c`` -> 0) and repeat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from engine.astrometry.catalog import RefCatalog
from engine.astrometry.options import AstrometryOptions
from engine.errors import AlgorithmError
from engine.instrument.sedm import GUIDER_PARITY
from engine.instrument.sky import sky_to_standard, standard_to_sky


@dataclass(frozen=True, eq=False)
class WcsSolution:
    """A solved guider WCS and the facts of the fit.

    Attributes
    ----------
    wcs : astropy.wcs.WCS
        TAN WCS (FITS 1-based ``CRPIX``); use ``wcs.all_pix2world(x, y, 0)`` for 0-based pixels.
    crval : tuple of float
        RA, Dec at the reference pixel [degree].
    crpix : tuple of float
        Reference pixel ``(x, y)``, 0-based [pixel].
    n_matched : int
        Catalogue stars used in the final fit.
    rms_arcsec : float
        Radial rms of the fit residuals [arcsec].
    scale_arcsec : float
        ``sqrt(|det CD|)`` [arcsec/pixel].
    rotation_deg : float
        Rotation of the image as :func:`nominal_cd` defines it (for ``pos``: the angle of
        North from the ``+y`` axis, counter-clockwise positive, as the IFU table) [degree].
    backend : str
        ``builtin`` or ``solve-field``.
    """

    wcs: WCS
    crval: tuple[float, float]
    crpix: tuple[float, float]
    n_matched: int
    rms_arcsec: float
    scale_arcsec: float
    rotation_deg: float
    backend: str = "builtin"

    @property
    def parity(self) -> str:
        """``neg`` (mirrored) or ``pos``: the solved image parity (astrometry.net's terms)."""
        return cd_parity(self.wcs.pixel_scale_matrix)


def nominal_cd(scale_arcsec: float, rotation_deg: float, parity: str = GUIDER_PARITY) -> np.ndarray:
    """CD matrix of a guider image [arcsec/pixel].

    ``(xi, eta) = CD @ (dx, dy)`` with ``xi`` East and ``eta`` North standard coordinates.
    ``pos``: a North-up, East-left image rotated by ``rotation_deg``; ``neg`` (mirrored, as
    the Rainbow Camera): the same with the ``x`` axis reversed (``det CD > 0``).
    """
    t = math.radians(rotation_deg)
    cd = scale_arcsec * np.array([[-math.cos(t), math.sin(t)], [math.sin(t), math.cos(t)]])
    if parity == "neg":
        cd[:, 0] *= -1.0
    elif parity != "pos":
        raise ValueError(f"parity must be 'pos' or 'neg', got {parity!r}")
    return cd


def cd_parity(cd_arcsec: np.ndarray) -> str:
    """``neg`` (mirrored: ``det CD > 0``) or ``pos``, in astrometry.net's terms."""
    return "neg" if float(np.linalg.det(cd_arcsec)) > 0 else "pos"


def cd_scale_rotation(cd_arcsec: np.ndarray) -> tuple[float, float]:
    """Scale [arcsec/pixel] and rotation [degree] of a CD matrix of either parity (inverse of
    :func:`nominal_cd`)."""
    cd = np.array(cd_arcsec, dtype=float)
    scale = math.sqrt(abs(float(np.linalg.det(cd))))
    if cd_parity(cd) == "neg":
        cd[:, 0] *= -1.0
    rotation = math.degrees(math.atan2(cd[1, 0] + cd[0, 1], cd[1, 1] - cd[0, 0]))
    return scale, rotation


def tan_wcs(crval: tuple[float, float], crpix0: tuple[float, float], cd_arcsec: np.ndarray) -> WCS:
    """Build a RA---TAN/DEC--TAN ``WCS`` from 0-based ``crpix0`` and a CD [arcsec/pixel]."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [float(crval[0]), float(crval[1])]
    w.wcs.crpix = [float(crpix0[0]) + 1.0, float(crpix0[1]) + 1.0]
    w.wcs.cd = np.asarray(cd_arcsec, dtype=float) / 3600.0
    w.wcs.radesys = "ICRS"
    w.wcs.equinox = 2000.0
    return w


def vote_offset(
    det_xy: np.ndarray, cat_pred: np.ndarray, max_offset_px: float, bin_px: float
) -> tuple[np.ndarray, int]:
    """Most common detection - prediction offset.

    Parameters
    ----------
    det_xy, cat_pred : numpy.ndarray
        Shapes ``(n, 2)`` and ``(m, 2)``: detected and predicted positions [pixel].
    max_offset_px, bin_px : float
        Half-width of the searched offset square and histogram bin [pixel].

    Returns
    -------
    offset : numpy.ndarray
        Shape ``(2,)`` median offset of the pairs in the peak [pixel].
    votes : int
        Number of pairs within ``1.5 * bin_px`` of the peak.
    """
    off = (det_xy[:, None, :] - cat_pred[None, :, :]).reshape(-1, 2)
    off = off[(np.abs(off) < max_offset_px).all(axis=1)]
    if off.shape[0] == 0:
        return np.zeros(2), 0
    nb = math.ceil(2 * max_offset_px / bin_px)
    hist, ex, ey = np.histogram2d(
        off[:, 0], off[:, 1], bins=nb, range=[[-max_offset_px, max_offset_px]] * 2
    )
    padded = np.pad(hist, 1)
    smooth = sum(padded[i : i + nb, j : j + nb] for i in range(3) for j in range(3))
    ix, iy = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    centre = np.array([0.5 * (ex[ix] + ex[ix + 1]), 0.5 * (ey[iy] + ey[iy + 1])])
    near = np.hypot(*(off - centre).T) < 1.5 * bin_px
    if not near.any():
        return centre, 0
    return np.median(off[near], axis=0), int(near.sum())


def match_pairs(
    pred_xy: np.ndarray, det_xy: np.ndarray, radius_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours closer than ``radius_px``.

    Returns
    -------
    i_pred, i_det : numpy.ndarray
        Indices of matched predictions and detections.
    """
    if len(pred_xy) == 0 or len(det_xy) == 0:
        return np.empty(0, int), np.empty(0, int)
    dist, j = cKDTree(det_xy).query(pred_xy, distance_upper_bound=radius_px)
    _, back = cKDTree(pred_xy).query(det_xy)
    i = np.flatnonzero(np.isfinite(dist))
    i = i[back[j[i]] == i]
    return i, j[i]


def fit_tan(
    det_xy: np.ndarray,
    ra: np.ndarray,
    dec: np.ndarray,
    crpix0: tuple[float, float],
    crval: tuple[float, float],
    clip_sigma: float = 3.0,
) -> tuple[tuple[float, float], np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares TAN fit with a fixed reference pixel.

    Fits ``(xi, eta) = CD (p - crpix) + c`` about the current ``crval``, moves ``crval`` to
    the sky position of ``c`` and refits until ``|c|`` < 1e-6 arcsec; matches whose radial
    residual exceeds ``clip_sigma`` times the rms are rejected between passes.

    Parameters
    ----------
    det_xy : numpy.ndarray
        Shape ``(n, 2)`` 0-based pixel positions of matched stars.
    ra, dec : numpy.ndarray
        Shape ``(n,)`` catalogue positions [degree].
    crpix0 : tuple of float
        Fixed reference pixel, 0-based.
    crval : tuple of float
        Starting sky position of the reference pixel [degree].
    clip_sigma : float
        Rejection threshold in units of the radial rms.

    Returns
    -------
    crval : tuple of float
        Sky position of the reference pixel [degree].
    cd_arcsec : numpy.ndarray
        Shape ``(2, 2)`` [arcsec/pixel].
    resid : numpy.ndarray
        Shape ``(n, 2)`` catalogue minus model standard coordinates [arcsec].
    inlier : numpy.ndarray
        Shape ``(n,)`` bool.
    """
    d = det_xy - np.asarray(crpix0, dtype=float)
    design = np.column_stack([d, np.ones(len(d))])
    inlier = np.ones(len(d), dtype=bool)
    cd = np.eye(2)
    for _ in range(12):
        xi, eta = sky_to_standard(ra, dec, *crval)
        std = np.column_stack([xi, eta])
        coef, *_ = np.linalg.lstsq(design[inlier], std[inlier], rcond=None)
        cd, c = coef[:2].T, coef[2]
        resid = std - design @ coef
        crval = tuple(float(v) for v in standard_to_sky(c[0], c[1], *crval))
        r = np.hypot(*resid.T)
        rms = math.sqrt(float(np.mean(r[inlier] ** 2)))
        new = r <= max(clip_sigma * rms, 1e-3)
        if new.sum() < 3:
            new = inlier
        if math.hypot(*c) < 1e-6 and (new == inlier).all():
            break
        inlier = new
    return crval, cd, resid, inlier


def _rotation_grid(cfg: AstrometryOptions) -> np.ndarray:
    n = round(cfg.rotation_search_deg / cfg.rotation_step_deg)
    steps = np.arange(-n, n + 1) * cfg.rotation_step_deg
    return cfg.rotation_guess_deg + steps[np.argsort(np.abs(steps), kind="stable")]


def _predict(std: np.ndarray, crpix0, cd_arcsec: np.ndarray, offset=(0.0, 0.0)) -> np.ndarray:
    return np.asarray(crpix0) + std @ np.linalg.inv(cd_arcsec).T + np.asarray(offset)


def _parities(cfg: AstrometryOptions) -> tuple[str, ...]:
    if cfg.parity == "both":
        return (GUIDER_PARITY, "pos" if GUIDER_PARITY == "neg" else "neg")
    return (cfg.parity,)


def initial_guess(
    det_xy: np.ndarray, std: np.ndarray, crpix0, shape: tuple[int, int], cfg: AstrometryOptions
) -> tuple[np.ndarray, np.ndarray, int]:
    """Nominal CD matrix [arcsec/pixel] and pixel offset of the best offset vote, and its
    vote count, over the rotation grid and the configured parities.

    ``std`` (shape ``(m, 2)``, brightest first) holds the catalogue's standard coordinates
    about the pointing [arcsec].
    """
    ny, nx = shape
    det = det_xy[: cfg.n_vote_detections]
    best = (nominal_cd(cfg.scale_arcsec, cfg.rotation_guess_deg, _parities(cfg)[0]), np.zeros(2), -1)
    margin = cfg.max_offset_px
    for parity in _parities(cfg):
        for rot in _rotation_grid(cfg):
            cd = nominal_cd(cfg.scale_arcsec, rot, parity)
            pred = _predict(std, crpix0, cd)
            inside = (
                (pred[:, 0] > -margin)
                & (pred[:, 0] < nx + margin)
                & (pred[:, 1] > -margin)
                & (pred[:, 1] < ny + margin)
            )
            offset, votes = vote_offset(
                det, pred[inside][: cfg.n_vote_catalog], cfg.max_offset_px, cfg.vote_bin_px
            )
            if votes > best[2]:
                best = (cd, offset, votes)
    return best


def _fail(msg: str, **facts) -> AlgorithmError:
    return AlgorithmError(msg, facts)


def solve_wcs(
    det_xy: np.ndarray,
    catalog: RefCatalog,
    crpix0: tuple[float, float],
    pointing: tuple[float, float],
    shape: tuple[int, int],
    config: AstrometryOptions | None = None,
) -> WcsSolution:
    """Solve the TAN WCS of a guider image from its detections and a reference catalogue.

    Parameters
    ----------
    det_xy : numpy.ndarray
        Shape ``(n, 2)`` 0-based detected positions, brightest first [pixel].
    catalog : RefCatalog
        Stars around the pointing, brightest first.
    crpix0 : tuple of float
        Fixed reference pixel (the IFU-centre pixel), 0-based.
    pointing : tuple of float
        RA, Dec of the initial guess at ``crpix0`` (TEL_RA/TEL_DEC) [degree].
    shape : tuple of int
        Image shape ``(ny, nx)``.
    config : AstrometryOptions, optional
        Tunables; defaults when None.

    Returns
    -------
    WcsSolution

    Raises
    ------
    AlgorithmError
        No offset peak, too few matches, rms too large or an implausible scale/rotation;
        ``metadata`` holds ``n_matched``, ``rms_arcsec``, ``votes``.
    """
    cfg = config or AstrometryOptions()
    det_xy = np.asarray(det_xy, dtype=float).reshape(-1, 2)
    xi, eta = sky_to_standard(catalog.ra, catalog.dec, *pointing)
    std = np.column_stack([xi, eta])
    cd, offset, votes = initial_guess(det_xy, std, crpix0, shape, cfg)
    if votes < cfg.min_vote:
        raise _fail(
            f"no consistent catalogue offset (best vote {votes} < {cfg.min_vote})",
            n_matched=max(votes, 0),
            votes=votes,
            rms_arcsec=float("nan"),
        )
    crval = tuple(pointing)
    pred = _predict(std, crpix0, cd, offset)
    n, rms = 0, float("nan")
    for radius in cfg.match_radii_px:
        i_cat, i_det = match_pairs(pred, det_xy, radius)
        if i_cat.size < 3:
            raise _fail(
                f"only {i_cat.size} catalogue matches",
                n_matched=int(i_cat.size),
                votes=votes,
                rms_arcsec=rms,
            )
        crval, cd, resid, inl = fit_tan(
            det_xy[i_det], catalog.ra[i_cat], catalog.dec[i_cat], crpix0, crval, cfg.clip_sigma
        )
        n = int(inl.sum())
        rms = math.sqrt(float(np.mean(np.sum(resid[inl] ** 2, axis=1))))
        xi, eta = sky_to_standard(catalog.ra, catalog.dec, *crval)
        pred = _predict(np.column_stack([xi, eta]), crpix0, cd)
    ny, nx = shape
    on_image = int(np.sum((pred[:, 0] >= 0) & (pred[:, 0] < nx) & (pred[:, 1] >= 0) & (pred[:, 1] < ny)))
    return _checked(
        WcsSolution(
            tan_wcs(crval, crpix0, cd),
            crval,
            tuple(map(float, crpix0)),
            n,
            rms,
            *cd_scale_rotation(cd),
        ),
        cfg,
        votes,
        expected=min(len(det_xy), on_image),
    )


def _checked(sol: WcsSolution, cfg: AstrometryOptions, votes: int, expected: int) -> WcsSolution:
    """``sol`` if it passes every acceptance test; ``expected``: the fewer of the detections and
    the catalogue stars the solution puts on the image."""
    facts = {
        "n_matched": sol.n_matched,
        "n_expected": expected,
        "rms_arcsec": sol.rms_arcsec,
        "votes": votes,
        "scale_arcsec": sol.scale_arcsec,
        "rotation_deg": sol.rotation_deg,
    }
    if sol.n_matched < cfg.min_matches:
        raise _fail(f"only {sol.n_matched} catalogue matches (need {cfg.min_matches})", **facts)
    if sol.n_matched < cfg.min_match_fraction * expected:
        raise _fail(
            f"only {sol.n_matched} of {expected} stars matched the catalogue "
            f"(< {cfg.min_match_fraction:.0%}: a chance alignment, or the wrong image parity?)",
            **facts,
        )
    if not sol.rms_arcsec <= cfg.max_rms_arcsec:
        raise _fail(
            f"astrometric fit rms {sol.rms_arcsec:.2f} arcsec > {cfg.max_rms_arcsec} arcsec",
            **facts,
        )
    lo, hi = cfg.scale_range_arcsec
    if not lo <= sol.scale_arcsec <= hi:
        raise _fail(f"solved scale {sol.scale_arcsec:.4f} arcsec/px outside {lo}-{hi}", **facts)
    if abs(sol.rotation_deg - cfg.rotation_guess_deg) > cfg.rotation_search_deg + 1.0:
        raise _fail(f"solved rotation {sol.rotation_deg:.2f} deg is implausible", **facts)
    return sol
