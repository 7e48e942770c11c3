"""Finder charts: the image SEDM makes for each request before observing, shown in the guider pane.

A chart is looked for under the night's ``finders/`` directory (in the reduction directory, then
the raw one), by the object's name in the file name (``finder_ZTF26abcdefg_r.fits``,
``ZTF26abcdefg_finder.png``...). A FITS chart with a celestial WCS gets the target marked at the
exposure's coordinates and its north and east directions measured from the WCS; a PNG is shown
as drawn (its own marks and labels), north and east as the chart says.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FINDER_SUFFIXES = (".fits", ".fit", ".fits.gz", ".png")
"""Chart files recognised (FITS first: it carries a WCS)."""
MAX_PIXELS = 4_000_000
"""A larger chart is subsampled on reading (a terminal shows a few thousand cells)."""
ARROWS = {(0, 1): "↑", (0, -1): "↓", (1, 0): "→", (-1, 0): "←", (1, 1): "↗", (-1, 1): "↖", (1, -1): "↘", (-1, -1): "↙"}


@dataclass(frozen=True)
class FinderData:
    """A finder chart ready to draw.

    Attributes
    ----------
    image : numpy.ndarray
        Shape ``(ny, nx)`` grey image, row 0 at the bottom (as the guider view draws).
    target : tuple of float or None
        The target in image pixels ``(x, y)`` (FITS with a WCS), ``None`` for a PNG.
    north, east : str
        Arrow glyphs of north and east on the drawn image (``?`` when unknown).
    file : str
        The chart's file name.
    """

    image: np.ndarray
    target: tuple[float, float] | None
    north: str
    east: str
    file: str

    @property
    def orientation(self) -> str:
        """``N↑ E←``, or what is known of it."""
        if self.north == "?":
            return "orientation as drawn"
        return f"N{self.north} E{self.east}"


def finder_candidates(dirs: list[Path], object_name: str) -> list[Path]:
    """Chart files in ``dirs`` whose name holds ``object_name`` (case-insensitive; SEDM's
    ``[A]``/``[B]`` suffix ignored), FITS before PNG, newest first within each.

    Parameters
    ----------
    dirs : list of Path
        Directories to look in (missing ones are skipped).
    object_name : str
        The exposure's object.
    """
    name = re.sub(r"\s*\[[AB]\]\s*$", "", object_name or "").strip().lower()
    if len(name) < 3:
        return []
    found = []
    for d in dirs:
        try:
            files = [p for p in d.iterdir() if p.is_file()]
        except OSError:
            continue
        for p in files:
            low = p.name.lower()
            suffix = next((s for s in FINDER_SUFFIXES if low.endswith(s)), None)
            if suffix and name in low:
                found.append((FINDER_SUFFIXES.index(suffix) == len(FINDER_SUFFIXES) - 1, -p.stat().st_mtime, p))
    return [p for *_k, p in sorted(found)]


def arrow(dx: float, dy: float) -> str:
    """The arrow glyph nearest to the direction ``(dx, dy)`` (x right, y up)."""
    if not (math.isfinite(dx) and math.isfinite(dy)) or dx == dy == 0:
        return "?"
    angle = math.atan2(dy, dx)
    step = round(angle / (math.pi / 4)) % 8
    vec = [(1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1)][step]
    return ARROWS[vec]


def read_finder(path: Path, ra_deg: float | None, dec_deg: float | None) -> FinderData:
    """A finder chart (FITS with or without a WCS, or PNG).

    Parameters
    ----------
    path : Path
        The chart.
    ra_deg, dec_deg : float or None
        The target's coordinates [degree] (``None``: not marked).

    Raises
    ------
    ValueError
        No 2-D image in the file.
    """
    if path.name.lower().endswith(".png"):
        import matplotlib.image

        img = np.asarray(matplotlib.image.imread(path), dtype=np.float64)
        if img.ndim == 3:
            img = img[..., :3].mean(axis=2)
        if img.ndim != 2:
            raise ValueError(f"{path.name}: not an image ({img.shape})")
        return FinderData(image=_shrink(np.flipud(img)), target=None, north="?", east="?", file=path.name)
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        hdu = next((h for h in hdul if getattr(h, "data", None) is not None and np.ndim(h.data) >= 2), None)
        if hdu is None:
            raise ValueError(f"{path.name}: no image in the file")
        data = np.asarray(hdu.data, dtype=np.float64)
        header = hdu.header
    while data.ndim > 2:
        data = data[0]
    target, north, east = None, "?", "?"
    try:
        from astropy.wcs import WCS

        wcs = WCS(header).celestial
        if wcs.has_celestial and ra_deg is not None and dec_deg is not None:
            x, y = wcs.all_world2pix([[ra_deg, dec_deg]], 0)[0]
            d = 1.0 / 60.0
            xn, yn = wcs.all_world2pix([[ra_deg, dec_deg + d]], 0)[0]
            xe, ye = wcs.all_world2pix([[ra_deg + d / max(math.cos(math.radians(dec_deg)), 1e-3), dec_deg]], 0)[0]
            if np.isfinite([x, y]).all():
                target = (float(x), float(y))
            north, east = arrow(xn - x, yn - y), arrow(xe - x, ye - y)
    except Exception:  # noqa: BLE001 - a chart with a broken WCS is still a picture
        target, north, east = None, "?", "?"
    step = max(1, int(math.ceil(math.sqrt(data.size / MAX_PIXELS))))
    if target is not None:
        target = (target[0] / step, target[1] / step)
    return FinderData(image=data[::step, ::step], target=target, north=north, east=east, file=path.name)


def _shrink(img: np.ndarray) -> np.ndarray:
    step = max(1, int(math.ceil(math.sqrt(img.size / MAX_PIXELS))))
    return img[::step, ::step]


def sky_degrees(ra: str | float | None, dec: str | float | None) -> tuple[float | None, float | None]:
    """``(ra, dec)`` in degrees from the header's sexagesimal strings (``None`` when unreadable).

    Parameters
    ----------
    ra, dec : str or float or None
        ``"21:59:42.16"`` hours and ``"+26:25:57.6"`` degrees, or degrees.
    """
    try:
        import astropy.units as u
        from astropy.coordinates import SkyCoord

        if isinstance(ra, (int, float)) and isinstance(dec, (int, float)):
            return float(ra), float(dec)
        c = SkyCoord(str(ra), str(dec), unit=(u.hourangle, u.deg))
        return float(c.ra.deg), float(c.dec.deg)
    except Exception:  # noqa: BLE001 - no coordinates: the chart is shown unmarked
        return None, None


__all__ = ["FinderData", "arrow", "finder_candidates", "read_finder", "sky_degrees"]
