"""Test helpers: the truth of the mini night's guider WCS, and a jitter-free injected field.

Only tests use these; they may import ``engine.synth`` and read truth files.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from engine.astrometry.solve import nominal_cd
from engine.instrument import sedm
from engine.instrument.sky import (
    parse_dec,
    parse_ra,
    sexagesimal_dec,
    sexagesimal_ra,
    sky_to_standard,
    spaxel_to_standard,
    standard_to_sky,
    standard_to_spaxel,
)
from engine.synth import guider as gd
from engine.synth.headers import base_header, file_stamp

JITTER_PX = 0.15
"""Per-frame, per-axis rms pointing jitter of the synthetic guider frames (engine.synth.guider)."""


def truth_wcs(entry: dict) -> WCS:
    """The true (jitter-free) guider WCS of a truth.json exposure entry."""
    return gd.wcs_from_truth(entry["ifu_centre_radec"], entry["guider_wcs"])


def recoverable_reference(entry: dict, night: str) -> tuple[np.ndarray, tuple[float, float]]:
    """What a perfect guider solution gives: the true WCS evaluated at the *table* pixel.

    The synthetic IFU centre sits ``N(0, 0.3)`` px from the table pixel (the table's own
    error), which no guider-only method can see; this is the target position and IFU-centre
    RA/Dec an exact WCS would yield with the table pixel.

    Returns
    -------
    xy : numpy.ndarray
        Shape ``(2,)`` spaxel-frame target position.
    radec : tuple of float
        Sky position of the table pixel [degree].
    """
    epoch = sedm.ifu_centre_for(night)
    ra0, dec0 = (float(v[0]) for v in truth_wcs(entry).all_pix2world([epoch.x_px], [epoch.y_px], 0))
    xi, eta = sky_to_standard(*entry["target_radec"], ra0, dec0)
    return standard_to_spaxel(xi, eta, epoch.rotation_deg), (ra0, dec0)


class _NoJitter:
    """Generator proxy that zeroes the frame jitter draw of ``render_guider_frame``."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def normal(self, loc=0.0, scale=1.0, size=None):
        if size == 2:
            return np.zeros(2)
        return self._rng.normal(loc, scale, size)

    def poisson(self, lam):
        return self._rng.poisson(lam)


@dataclass(frozen=True)
class InjectedField:
    """An injected exposure: raw dir, catalogue dir, IFU header and the exact truth."""

    night: str
    night_dir: Path
    catalog_dir: Path
    ifu_header: fits.Header
    guider_paths: tuple[str, ...]
    position: tuple[float, float]
    ifu_radec: tuple[float, float]


def inject_field(
    root: Path,
    *,
    night: str = "20261124",
    seed: int = 7,
    n_frames: int = 2,
    rotation_deg: float = 0.9,
    scale_arcsec: float = 0.3785,
    pointing_error_arcsec: tuple[float, float] = (12.0, -9.0),
    position: tuple[float, float] = (1.3, -2.1),
    parity: str = sedm.GUIDER_PARITY,
) -> InjectedField:
    """Write jitter-free guider frames whose IFU centre is exactly at the table pixel
    (mirrored like the Rainbow Camera's unless ``parity='pos'``)."""
    rng = np.random.default_rng(seed)
    epoch = sedm.ifu_centre_for(night)
    ifu_ra, ifu_dec = 52.1234, 21.4321
    field = gd.draw_star_field(ifu_ra, ifu_dec, rng)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ifu_ra, ifu_dec]
    w.wcs.crpix = [epoch.x_px + 1.0, epoch.y_px + 1.0]
    w.wcs.cd = nominal_cd(scale_arcsec, rotation_deg, parity) / 3600.0
    xi, eta = spaxel_to_standard(np.asarray(position), epoch.rotation_deg)
    t_ra, t_dec = (float(v) for v in standard_to_sky(xi, eta, ifu_ra, ifu_dec))
    tel_ra, tel_dec = (float(v) for v in standard_to_sky(*pointing_error_arcsec, ifu_ra, ifu_dec))
    night_dir, cat_dir = root / night, root / "catalog"
    night_dir.mkdir(parents=True, exist_ok=True)
    cat_dir.mkdir(parents=True, exist_ok=True)
    Table({"ra": field.ra, "dec": field.dec, "mag": field.mag}).write(
        cat_dir / "refcat_inject.fits", overwrite=True
    )
    start = dt.datetime(2026, 11, 24, 5, 0, 0, tzinfo=dt.UTC)
    ifu = base_header(start, 600.0, "andor")
    ifu.update(
        {
            "CAM_NAME": "IFU Cam",
            "OBJRA": sexagesimal_ra(t_ra),
            "OBJDEC": sexagesimal_dec(t_dec),
            "TEL_RA": sexagesimal_ra(tel_ra),
            "TEL_DEC": sexagesimal_dec(tel_dec),
            "RA_RATE": 0.0,
            "DEC_RATE": 0.0,
        }
    )
    paths = []
    for i in range(n_frames):
        t0 = start + dt.timedelta(seconds=5 + 200 * i)
        data = gd.render_guider_frame(
            w,
            field,
            [(t_ra, t_dec, 17.0)],
            exptime=30.0,
            fwhm_arcsec=1.8,
            sky_mag_arcsec2=20.8,
            extinction_mag=0.0,
            rng=_NoJitter(rng),
        )
        hdr = gd.guider_header(
            t0, 30.0, "INJECT", ifu["TEL_RA"], ifu["TEL_DEC"], base_header(t0, 30.0, "rc")
        )
        path = night_dir / f"rc{file_stamp(t0)}.fits"
        fits.PrimaryHDU(data, header=hdr).writeto(path, overwrite=True)
        paths.append(str(path))
    # The target as quoted in the header (sexagesimal rounding) is the truth the engine sees.
    xi_q, eta_q = sky_to_standard(parse_ra(ifu["OBJRA"]), parse_dec(ifu["OBJDEC"]), ifu_ra, ifu_dec)
    pos_q = standard_to_spaxel(xi_q, eta_q, epoch.rotation_deg)
    return InjectedField(
        night,
        night_dir,
        cat_dir,
        ifu,
        tuple(paths),
        (float(pos_q[0]), float(pos_q[1])),
        (ifu_ra, ifu_dec),
    )
