"""The guider product ``guider_crr_b_ifu….fits``: the stack, its WCS and the astrometry facts."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits

from engine.astrometry.locate import TargetLocation
from engine.errors import EngineError

PREFIX = "guider_crr_b_"


def guider_product_name(ifu_file: str | os.PathLike) -> str:
    """``guider_crr_b_ifuYYYYMMDD_HH_MM_SS.fits`` for an IFU raw file name (as pysedm)."""
    stem = Path(ifu_file).name
    for suffix in (".fits.gz", ".fits", ".fz"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    stem = stem.removeprefix("crr_b_")
    return f"{PREFIX}{stem}.fits"


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def astrometry_cards(location: TargetLocation) -> fits.Header:
    """Header cards of an astrometric solution or its failure (``*PX_*`` cards are 0-based)."""
    h = fits.Header()
    h["ASTROM"] = ("OK" if location.ok else "FAILED", "guider astrometry status")
    if location.reason:
        h["ASTRFAIL"] = location.reason  # long reasons continue on CONTINUE cards
    h["ASTRBACK"] = (location.backend, "WCS solver")
    h["NSTARS"] = (location.n_stars, "stars detected on the guider stack")
    h["NMATCH"] = (location.n_matched, "catalogue stars in the WCS fit")
    if _finite(location.rms_arcsec):
        h["ASTRMS"] = (round(location.rms_arcsec, 4), "[arcsec] rms of the WCS fit")
    h["IFUPX_X"] = (location.ifu_px[0], "[pixel] 0-based guider x of the IFU centre")
    h["IFUPX_Y"] = (location.ifu_px[1], "[pixel] 0-based guider y of the IFU centre")
    h["IFUROT"] = (location.rotation_deg, "[deg] spaxel-frame rotation (table)")
    if location.ifu_radec is not None:
        h["IFURA"] = (location.ifu_radec[0], "[deg] RA of the IFU centre")
        h["IFUDEC"] = (location.ifu_radec[1], "[deg] Dec of the IFU centre")
    if location.target_px is not None:
        h["TGTPX_X"] = (round(location.target_px[0], 3), "[pixel] 0-based guider x of the target")
        h["TGTPX_Y"] = (round(location.target_px[1], 3), "[pixel] 0-based guider y of the target")
    if location.ok:
        h["SRCPOS"] = ("astrom", "origin of the target position")
        h["TGT_X"] = (round(location.x, 4), "[spaxel] target x in the spaxel frame")
        h["TGT_Y"] = (round(location.y, 4), "[spaxel] target y in the spaxel frame")
    return h


def write_guider_product(
    path: str | os.PathLike,
    location: TargetLocation,
    extra_cards: Mapping | fits.Header | None = None,
) -> Path:
    """Write the guider stack with its WCS and astrometry cards.

    Parameters
    ----------
    path : path-like
        Output file (e.g. ``redux/YYYYMMDD/guider_crr_b_ifu….fits``); overwritten.
    location : TargetLocation
        Result of :func:`~engine.astrometry.locate.locate_target`; must hold a stack.
    extra_cards : mapping or astropy.io.fits.Header, optional
        Further cards (provenance, ENGVER...), written last.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    EngineError
        ``location`` holds no stack (no usable guider frames).
    """
    if location.stack is None:
        raise EngineError("no guider stack to write (no usable guider frames)")
    header = location.stack_header.copy() if location.stack_header is not None else fits.Header()
    if location.ok and location.wcs is not None:
        header.extend(location.wcs.to_header(relax=True), unique=True, update=True)
    header.extend(astrometry_cards(location), unique=True, update=True)
    if isinstance(extra_cards, fits.Header):
        header.extend(extra_cards, update=True)
    elif extra_cards:
        for key, value in extra_cards.items():
            header[key] = value
    hdu = fits.PrimaryHDU(np.asarray(location.stack, dtype=np.float32), header=header)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu.writeto(path, overwrite=True)
    return path


def read_guider_view(path: str | os.PathLike) -> dict:
    """The guider stack and the positions a figure or the console shows on it.

    Returns
    -------
    dict
        ``{"image", "ifu": (x, y), "target": (x, y) or None, "file", "ok"}`` (0-based pixels).
    """
    with fits.open(path) as hdul:
        h = hdul[0].header
        image = np.asarray(hdul[0].data, dtype=np.float32)
    target = (h["TGTPX_X"], h["TGTPX_Y"]) if "TGTPX_X" in h else None
    return {"image": image, "ifu": (h["IFUPX_X"], h["IFUPX_Y"]), "target": target,
            "file": os.path.basename(str(path)), "ok": h.get("ASTROM") == "OK"}
