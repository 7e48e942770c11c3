"""The local reference star catalogue (a Gaia/PS1 extract): FITS tables of ra, dec, mag.

Every ``*.fits`` / ``*.fits.gz`` / ``*.fit`` table in the catalogue directory is read (first
table extension, columns ``ra``, ``dec`` [degree] and ``mag`` [r, AB], case-insensitive);
exact duplicates between files are removed; stars are then selected around a pointing.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from engine.errors import ConfigError

log = logging.getLogger(__name__)

CATALOG_PATTERNS = ("*.fits", "*.fits.gz", "*.fit")
DUPLICATE_TOL_DEG = 1.0e-6
"""Two entries closer than this in both ra and dec are one star [degree] (3.6 mas)."""


@dataclass(frozen=True, eq=False)
class RefCatalog:
    """Reference stars.

    Attributes
    ----------
    ra, dec : numpy.ndarray
        Shape ``(n,)`` ICRS coordinates [degree].
    mag : numpy.ndarray
        Shape ``(n,)`` r-band magnitudes [AB mag].
    sources : tuple of str
        Files the stars were read from.
    """

    ra: np.ndarray
    dec: np.ndarray
    mag: np.ndarray
    sources: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        """Number of stars."""
        return int(self.ra.size)


def _column(table, name: str) -> np.ndarray:
    names = {n.lower(): n for n in table.columns.names}
    if name not in names:
        raise KeyError(name)
    return np.asarray(table[names[name]], dtype=float)


def read_catalog_file(path: str | os.PathLike) -> RefCatalog:
    """Read one catalogue table (first HDU holding a table with ra, dec, mag).

    Raises
    ------
    ConfigError
        No table with the three columns, or the file cannot be read.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(path, memmap=False) as hdul:
                for hdu in hdul:
                    if not isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
                        continue
                    try:
                        ra, dec, mag = (_column(hdu.data, c) for c in ("ra", "dec", "mag"))
                    except KeyError:
                        continue
                    return RefCatalog(ra, dec, mag, (str(path),))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"reference catalogue {path.name} cannot be read ({exc})") from exc
    raise ConfigError(f"reference catalogue {path.name}: no table with columns ra, dec, mag")


def concatenate(parts: list[RefCatalog]) -> RefCatalog:
    """Merge catalogues, dropping entries duplicated to within ``DUPLICATE_TOL_DEG``."""
    if not parts:
        return RefCatalog(np.empty(0), np.empty(0), np.empty(0))
    ra = np.concatenate([p.ra for p in parts])
    dec = np.concatenate([p.dec for p in parts])
    mag = np.concatenate([p.mag for p in parts])
    finite = np.isfinite(ra) & np.isfinite(dec) & np.isfinite(mag)
    ra, dec, mag = ra[finite], dec[finite], mag[finite]
    key = np.column_stack([np.round(ra / DUPLICATE_TOL_DEG), np.round(dec / DUPLICATE_TOL_DEG)])
    _, first = np.unique(key, axis=0, return_index=True)
    first.sort()
    sources = tuple(s for p in parts for s in p.sources)
    return RefCatalog(ra[first], dec[first], mag[first], sources)


def load_catalog(catalog_dir: str | os.PathLike) -> RefCatalog:
    """Read every catalogue table in a directory.

    Unreadable files are logged and skipped.

    Raises
    ------
    ConfigError
        The directory does not exist or holds no readable catalogue.
    """
    d = Path(catalog_dir)
    if not d.is_dir():
        raise ConfigError(f"reference catalogue directory {d} not found (astrometry.catalog_dir)")
    files = sorted({p for pattern in CATALOG_PATTERNS for p in d.glob(pattern)})
    parts = []
    for path in files:
        try:
            parts.append(read_catalog_file(path))
        except ConfigError as exc:
            log.warning("%s", exc)
    if not parts:
        raise ConfigError(f"no readable reference catalogue (FITS table of ra, dec, mag) in {d}")
    return concatenate(parts)


def angular_distance_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance between points (haversine; arrays broadcast) [degree]."""
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, dtype=float)) for v in (ra1, dec1, ra2, dec2))
    h = (
        np.sin(0.5 * (dec1 - dec2)) ** 2
        + np.cos(dec1) * np.cos(dec2) * np.sin(0.5 * (ra1 - ra2)) ** 2
    )
    return np.degrees(2.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def select_field(
    catalog: RefCatalog,
    ra0_deg: float,
    dec0_deg: float,
    radius_deg: float,
    mag_limit: float = np.inf,
) -> RefCatalog:
    """Stars within ``radius_deg`` of ``(ra0_deg, dec0_deg)`` and brighter than ``mag_limit``.

    Returns
    -------
    RefCatalog
        Sorted by increasing magnitude (brightest first).
    """
    dist = angular_distance_deg(catalog.ra, catalog.dec, ra0_deg, dec0_deg)
    sel = np.flatnonzero((dist <= radius_deg) & (catalog.mag <= mag_limit))
    sel = sel[np.argsort(catalog.mag[sel], kind="stable")]
    return RefCatalog(catalog.ra[sel], catalog.dec[sel], catalog.mag[sel], catalog.sources)
