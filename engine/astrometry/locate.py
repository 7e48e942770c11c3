"""Where the target falls in the IFU: guider stack -> stars -> WCS -> spaxel frame.

The IFU centre's sky position is the solved guider WCS evaluated at the dated IFU-centre
pixel (:func:`engine.instrument.sedm.ifu_centre_for`); the target (OBJRA/OBJDEC) is then
projected onto the tangent plane at the IFU centre and rotated into the spaxel frame
(:mod:`engine.instrument.sky`). Every failure is returned as ``ok=False`` with a reason an
operator can act on; the pipeline then falls back to the brightest spaxel.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from engine.astrometry.catalog import RefCatalog, load_catalog, select_field
from engine.astrometry.detect import Detections, detect_stars
from engine.astrometry.guider import GuiderStack, stack_guider
from engine.astrometry.options import AstrometryOptions
from engine.astrometry.solve import WcsSolution, solve_wcs
from engine.astrometry.solvefield import solve_with_astrometry_net
from engine.errors import ConfigError, EngineError
from engine.instrument.sedm import ifu_centre_for
from engine.instrument.sky import parse_dec, parse_ra, sky_to_standard, standard_to_spaxel

log = logging.getLogger(__name__)

NO_FRAMES = "no guider frames during the exposure"
NON_SIDEREAL = "non-sidereal target: no guider solution"


@dataclass(frozen=True, eq=False)
class TargetLocation:
    """The target's position in the spaxel frame from the guider astrometry.

    Attributes
    ----------
    ok : bool
        True when a WCS was solved and ``x``, ``y`` are valid.
    x, y : float
        Target position at the spaxel frame (units of 0.55 arcsec, +x West, +y North
        rotated by ``rotation_deg``); NaN when not ok.
    reason : str
        Why not ok ("" when ok).
    n_frames : int
        Guider frames stacked.
    n_stars : int
        Stars detected on the stack.
    n_matched : int
        Catalogue stars in the final WCS fit.
    rms_arcsec : float
        Radial rms of the WCS fit [arcsec].
    ifu_radec : tuple of float or None
        Sky position of the IFU centre (WCS at ``ifu_px``) [degree].
    target_radec : tuple of float or None
        OBJRA/OBJDEC [degree].
    target_px : tuple of float or None
        0-based pixel of the target on the stack.
    ifu_px : tuple of float
        0-based guider pixel of the IFU centre (dated table).
    rotation_deg : float
        Spaxel-frame rotation of the table [degree].
    stack : numpy.ndarray or None
        Shape ``(ny, nx)`` guider stack [ADU].
    stack_header : astropy.io.fits.Header or None
        Header cards of the stack (``NSTACK``...).
    wcs : astropy.wcs.WCS or None
        Solved WCS of the stack.
    backend : str
        Solver used.
    frames : tuple of str
        Guider frames stacked.
    skipped : tuple of (str, str)
        Guider frames skipped and why.
    timing_s : tuple of (str, float)
        Wall time of each stage (stack, detect, solve) [second].
    """

    ok: bool
    x: float = math.nan
    y: float = math.nan
    reason: str = ""
    n_frames: int = 0
    n_stars: int = 0
    n_matched: int = 0
    rms_arcsec: float = math.nan
    ifu_radec: tuple[float, float] | None = None
    target_radec: tuple[float, float] | None = None
    target_px: tuple[float, float] | None = None
    ifu_px: tuple[float, float] = (math.nan, math.nan)
    rotation_deg: float = math.nan
    stack: np.ndarray | None = None
    stack_header: fits.Header | None = None
    wcs: WCS | None = None
    backend: str = "builtin"
    frames: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = field(default=())
    timing_s: tuple[tuple[str, float], ...] = ()


def target_in_spaxel_frame(
    wcs: WCS, ifu_px: tuple[float, float], target_radec: tuple[float, float], rotation_deg: float
) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Spaxel-frame position of a target given the guider WCS.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        Guider WCS.
    ifu_px : tuple of float
        0-based guider pixel of the IFU centre.
    target_radec : tuple of float
        Target RA, Dec [degree].
    rotation_deg : float
        Spaxel-frame rotation (IFU-centre table) [degree].

    Returns
    -------
    xy : numpy.ndarray
        Shape ``(2,)`` spaxel-frame position [spaxel unit].
    ifu_radec : tuple of float
        Sky position of the IFU centre [degree].
    target_px : tuple of float
        0-based guider pixel of the target.
    """
    ra0, dec0 = (float(v[0]) for v in wcs.all_pix2world([ifu_px[0]], [ifu_px[1]], 0))
    xi, eta = sky_to_standard(target_radec[0], target_radec[1], ra0, dec0)
    xy = standard_to_spaxel(xi, eta, rotation_deg)
    tx, ty = (float(v[0]) for v in wcs.all_world2pix([target_radec[0]], [target_radec[1]], 0))
    return np.asarray(xy, dtype=float), (ra0, dec0), (tx, ty)


def _radec(header, ra_keys: Sequence[str], dec_keys: Sequence[str]) -> tuple[float, float] | None:
    for rk, dk in zip(ra_keys, dec_keys):
        if header.get(rk) not in (None, "") and header.get(dk) not in (None, ""):
            try:
                return parse_ra(header[rk]), parse_dec(header[dk])
            except (TypeError, ValueError):
                continue
    return None


def is_non_sidereal(ifu_header) -> bool:
    """True when ``RA_RATE`` or ``DEC_RATE`` is non-zero (SEDM: no WCS solve)."""
    for key in ("RA_RATE", "DEC_RATE"):
        try:
            if float(ifu_header.get(key, 0.0) or 0.0) != 0.0:
                return True
        except (TypeError, ValueError):
            continue
    return False


def _timed(timing: list, name: str, fn: Callable, *args, **kwargs):
    t0 = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    finally:
        timing.append((name, time.perf_counter() - t0))


def _stars_reason(det: Detections, need: int) -> str:
    if det.n == 0:
        return "no stars detected in the guider stack (clouds?)"
    return f"only {det.n} stars detected in the guider stack (need {need}; clouds?)"


def _field(catalog: str | os.PathLike | RefCatalog, pointing, cfg: AstrometryOptions) -> RefCatalog:
    cat = catalog if isinstance(catalog, RefCatalog) else load_catalog(catalog)
    fld = select_field(cat, *pointing, cfg.catalog_radius_deg, cfg.catalog_mag_limit)
    if fld.n < cfg.min_matches:
        msg = (
            f"only {fld.n} reference-catalogue stars within {cfg.catalog_radius_deg:g} deg "
            "of the pointing "
            f"(catalogue: {', '.join(Path(s).name for s in cat.sources) or 'empty'})"
        )
        raise ConfigError(msg)
    return fld


def _solve(
    backend: str, stack: GuiderStack, det: Detections, fld: RefCatalog, ifu_px, pointing, cfg
) -> WcsSolution:
    if backend == "solve-field":
        return solve_with_astrometry_net(stack.image, pointing, ifu_px, cfg)
    return solve_wcs(det.xy, fld, ifu_px, pointing, stack.image.shape, cfg)


def locate_target(
    ifu_header,
    guider_paths: Sequence[str | os.PathLike],
    catalog_dir: str | os.PathLike | RefCatalog,
    night: str,
    *,
    backend: str | None = None,
    config: AstrometryOptions | None = None,
) -> TargetLocation:
    """Locate an IFU exposure's target in the spaxel frame from its guider frames.

    Parameters
    ----------
    ifu_header : astropy.io.fits.Header or Mapping
        IFU frame header: OBJRA/OBJDEC (or OBRA/OBDEC), TEL_RA/TEL_DEC (or RA/DEC),
        RA_RATE/DEC_RATE.
    guider_paths : sequence of path-like
        Guider frames of the exposure (:func:`~engine.astrometry.guider.select_guider_frames`).
    catalog_dir : path-like or RefCatalog
        Directory of reference-catalogue FITS tables, or an already loaded catalogue.
    night : str
        UT night ``YYYYMMDD`` (selects the IFU-centre table epoch).
    backend : {"builtin", "solve-field"}, optional
        WCS solver; ``None``: ``config.backend``.
    config : AstrometryOptions, optional
        Tunables; defaults when None.

    Returns
    -------
    TargetLocation
        ``ok=False`` with a reason on any failure (never raises for data problems).

    Raises
    ------
    ConfigError
        Unknown ``backend``.
    """
    cfg = config or AstrometryOptions()
    if backend is not None and backend != cfg.backend:
        cfg = replace(cfg, backend=backend)  # checked by AstrometryOptions
    backend = cfg.backend
    epoch = ifu_centre_for(night)
    base = {
        "ifu_px": (epoch.x_px, epoch.y_px),
        "rotation_deg": epoch.rotation_deg,
        "backend": backend,
    }
    target = _radec(ifu_header, ("OBJRA", "OBRA"), ("OBJDEC", "OBDEC"))
    base["target_radec"] = target
    if not guider_paths:
        return TargetLocation(False, reason=NO_FRAMES, **base)
    timing: list[tuple[str, float]] = []
    stack = _timed(timing, "stack", stack_guider, guider_paths, median_stride=cfg.median_stride)
    base.update(
        n_frames=stack.n_frames,
        stack=stack.image,
        stack_header=stack.header,
        frames=stack.used,
        skipped=stack.skipped,
    )
    if stack.image is None:
        return TargetLocation(
            False,
            reason=f"no usable guider frames ({len(stack.skipped)} unreadable)",
            timing_s=tuple(timing),
            **base,
        )
    if is_non_sidereal(ifu_header):
        return TargetLocation(False, reason=NON_SIDEREAL, timing_s=tuple(timing), **base)
    if target is None:
        return TargetLocation(
            False,
            reason="no target coordinates (OBJRA/OBJDEC) in the IFU header",
            timing_s=tuple(timing),
            **base,
        )
    pointing = (
        _radec(ifu_header, ("TEL_RA", "RA"), ("TEL_DEC", "DEC"))
        or _radec(stack.header, ("TEL_RA", "RA"), ("TEL_DEC", "DEC"))
        or target
    )
    return _locate_on_stack(stack, pointing, catalog_dir, backend, cfg, timing, base)


def _locate_on_stack(stack, pointing, catalog, backend, cfg, timing, base) -> TargetLocation:
    try:
        det = _timed(
            timing,
            "detect",
            detect_stars,
            stack.image,
            thresh_sigma=cfg.detect_thresh_sigma,
            minarea=cfg.detect_minarea,
            back_size_px=cfg.back_size_px,
            saturation_adu=cfg.saturation_adu,
            max_elongation=cfg.max_elongation,
            min_flux_radius_px=cfg.min_flux_radius_px,
            max_stars=cfg.max_stars,
        )
        base["n_stars"] = det.n
        if backend == "builtin" and det.n < cfg.min_matches:
            return TargetLocation(
                False, reason=_stars_reason(det, cfg.min_matches), timing_s=tuple(timing), **base
            )
        fld = _field(catalog, pointing, cfg)
        sol = _timed(
            timing, "solve", _solve, backend, stack, det, fld, base["ifu_px"], pointing, cfg
        )
    except EngineError as exc:
        meta = getattr(exc, "metadata", {})
        log.info("guider astrometry failed: %s", exc)
        return TargetLocation(
            False,
            reason=str(exc),
            n_matched=int(meta.get("n_matched", 0)),
            rms_arcsec=float(meta.get("rms_arcsec", math.nan)),
            timing_s=tuple(timing),
            **base,
        )
    xy, ifu_radec, target_px = target_in_spaxel_frame(
        sol.wcs, base["ifu_px"], base["target_radec"], base["rotation_deg"]
    )
    return TargetLocation(
        True,
        x=float(xy[0]),
        y=float(xy[1]),
        n_matched=sol.n_matched,
        rms_arcsec=sol.rms_arcsec,
        ifu_radec=ifu_radec,
        target_px=target_px,
        wcs=sol.wcs,
        timing_s=tuple(timing),
        **base,
    )
