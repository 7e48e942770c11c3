"""Optional WCS backend: astrometry.net's ``solve-field``, run as SEDM runs it.

SEDM (pysedm/sedmpy ``do_astrom``) calls ``solve-field`` on the guider stack centred on
TEL_RA/TEL_DEC with a 0.2-degree search radius, a 0.35-0.41 arcsec/pixel scale range, SIP
order 3, ``--nsigma 12``, negative parity (the Rainbow Camera's frames are mirrored) and a
5-s CPU limit. Here the reference pixel is also pinned to the IFU-centre pixel
(``--crpix-x/--crpix-y``) so that ``CRVAL`` is the IFU centre, and ``--config`` may name the
index files. The stack is written to a temporary directory; nothing else is touched.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning
from astropy.wcs import WCS, FITSFixedWarning

from engine.astrometry.catalog import angular_distance_deg
from engine.astrometry.options import AstrometryOptions
from engine.astrometry.solve import WcsSolution, cd_scale_rotation
from engine.errors import AlgorithmError, ConfigError

log = logging.getLogger(__name__)

SOLVE_FIELD = "solve-field"
STEM = "guider"


def find_solve_field(executable: str = SOLVE_FIELD) -> str | None:
    """Absolute path of ``solve-field`` if on PATH (or ``executable`` is a path), else None."""
    return shutil.which(executable)


def solve_field_command(
    image_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    pointing: tuple[float, float],
    crpix0: tuple[float, float],
    config: AstrometryOptions | None = None,
    *,
    executable: str = SOLVE_FIELD,
) -> list[str]:
    """The ``solve-field`` argument list (no shell quoting needed).

    Parameters
    ----------
    image_path : path-like
        FITS image to solve.
    out_dir : path-like
        Directory for every output (``--dir``); outputs are named ``guider.*``.
    pointing : tuple of float
        TEL_RA, TEL_DEC: centre of the search [degree].
    crpix0 : tuple of float
        0-based IFU-centre pixel; passed 1-based as the WCS reference pixel.
    config : AstrometryOptions, optional
        Tunables (defaults when None): configuration file, scale range, radius, SIP order,
        nsigma, parity and CPU limit.
    executable : str
        Program name or path.
    """
    cfg = config or AstrometryOptions()
    lo, hi = cfg.scale_range_arcsec
    out = Path(out_dir)
    options = ["--config", cfg.solve_field_config] if cfg.solve_field_config else []
    if cfg.parity != "both":
        options += ["--parity", cfg.parity]
    return [
        executable,
        str(image_path),
        *options,
        "--overwrite",
        "--no-plots",
        "--no-remove-lines",
        "--dir",
        str(out),
        "--out",
        STEM,
        "--ra",
        f"{pointing[0]:.6f}",
        "--dec",
        f"{pointing[1]:.6f}",
        "--radius",
        f"{cfg.solve_field_radius_deg:g}",
        "--scale-units",
        "arcsecperpix",
        "--scale-low",
        f"{lo:g}",
        "--scale-high",
        f"{hi:g}",
        "--tweak-order",
        str(cfg.solve_field_sip_order),
        "--nsigma",
        f"{cfg.solve_field_nsigma:g}",
        "--cpulimit",
        f"{cfg.solve_field_cpulimit_s:g}",
        "--crpix-x",
        f"{crpix0[0] + 1.0:.3f}",
        "--crpix-y",
        f"{crpix0[1] + 1.0:.3f}",
        "--new-fits",
        "none",
        "--index-xyls",
        "none",
        "--rdls",
        "none",
        "--match",
        "none",
        "--wcs",
        str(out / f"{STEM}.wcs"),
        "--corr",
        str(out / f"{STEM}.corr"),
        "--solved",
        str(out / f"{STEM}.solved"),
    ]


def read_solution(out_dir: str | os.PathLike, crpix0: tuple[float, float]) -> WcsSolution:
    """Read ``guider.wcs`` (and ``guider.corr`` when present) written by ``solve-field``.

    ``n_matched`` and ``rms_arcsec`` come from the correspondence file (0 and NaN without it).

    Raises
    ------
    AlgorithmError
        No ``.solved`` or ``.wcs`` file: no solution was found.
    """
    out = Path(out_dir)
    wcs_path = out / f"{STEM}.wcs"
    if not (out / f"{STEM}.solved").exists() or not wcs_path.exists():
        raise AlgorithmError("astrometry.net solve-field found no solution", {"n_matched": 0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (AstropyWarning, FITSFixedWarning))
        wcs = WCS(fits.getheader(wcs_path))
    ra, dec = (float(v[0]) for v in wcs.all_pix2world([crpix0[0]], [crpix0[1]], 0))
    cd_arcsec = wcs.pixel_scale_matrix * 3600.0
    n, rms = 0, float("nan")
    corr = out / f"{STEM}.corr"
    if corr.exists():
        with fits.open(corr, memmap=False) as hdul:
            t = hdul[1].data
            if t is not None and len(t):
                sep_deg = angular_distance_deg(
                    t["field_ra"], t["field_dec"], t["index_ra"], t["index_dec"]
                )
                n, rms = len(t), float(math.sqrt(np.mean((sep_deg * 3600.0) ** 2)))
    scale, rot = cd_scale_rotation(cd_arcsec)
    return WcsSolution(
        wcs, (ra, dec), tuple(map(float, crpix0)), n, rms, scale, rot, backend="solve-field"
    )


def solve_with_astrometry_net(
    image: np.ndarray,
    pointing: tuple[float, float],
    crpix0: tuple[float, float],
    config: AstrometryOptions | None = None,
    *,
    executable: str = SOLVE_FIELD,
) -> WcsSolution:
    """Solve a guider image with astrometry.net's ``solve-field``.

    Parameters
    ----------
    image : numpy.ndarray
        Shape ``(ny, nx)`` guider stack [ADU].
    pointing : tuple of float
        TEL_RA, TEL_DEC [degree].
    crpix0 : tuple of float
        0-based IFU-centre pixel.
    config : AstrometryOptions, optional
        Tunables; defaults when None.
    executable : str
        Program name or path of ``solve-field``.

    Returns
    -------
    WcsSolution
        With a TAN-SIP WCS; ``crval`` is the sky position of ``crpix0``.

    Raises
    ------
    ConfigError
        ``solve-field`` is not installed, or ``solve_field_config`` names no file.
    AlgorithmError
        It failed, timed out or found no solution.
    """
    cfg = config or AstrometryOptions()
    exe = find_solve_field(executable)
    if exe is None:
        msg = (
            f"astrometry.net '{executable}' is not installed (not on PATH); "
            "install astrometry.net and its index files "
            "or use the built-in solver (backend='builtin')"
        )
        raise ConfigError(msg)
    if cfg.solve_field_config and not Path(cfg.solve_field_config).is_file():
        raise ConfigError(
            f"astrometry.net configuration file {cfg.solve_field_config} does not exist "
            "(astrometry.solve_field_config: a file naming the index files)"
        )
    with tempfile.TemporaryDirectory(prefix="sedm-astrom-") as tmp:
        img = Path(tmp) / "stack.fits"
        fits.PrimaryHDU(np.asarray(image, dtype=np.float32)).writeto(img)
        cmd = solve_field_command(img, tmp, pointing, crpix0, cfg, executable=exe)
        log.info("running %s", " ".join(cmd))
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                check=False,
                timeout=4 * cfg.solve_field_cpulimit_s + 60,
            )
        except subprocess.TimeoutExpired as exc:
            raise AlgorithmError(
                f"astrometry.net solve-field timed out ({exc.timeout:.0f} s)"
            ) from exc
        except OSError as exc:
            raise AlgorithmError(f"astrometry.net solve-field could not be run ({exc})") from exc
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise AlgorithmError(
                f"astrometry.net solve-field exited with {proc.returncode}: {' | '.join(tail)}"
            )
        try:
            return read_solution(tmp, crpix0)
        except AlgorithmError as exc:
            msg = f"{exc} within the {cfg.solve_field_cpulimit_s:g}-s CPU limit"
            raise AlgorithmError(msg, exc.metadata) from exc
