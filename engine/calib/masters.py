"""Master frames of a night: biases per read speed, dome, Hg, Cd, Xe.

Masters are written in the night directory as ``bias<speed>.fits`` (raw-shaped, ADU),
``dome.fits``, ``Hg.fits``, ``Cd.fits``, ``Xe.fits`` (electrons, median of the bias-subtracted,
not cosmic-cleaned frames; min/max rejected above 7 frames), with their inputs' checksums.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from engine.ccd.combine import median_combine
from engine.ccd.debias import debias, master_bias
from engine.errors import CalibrationNotFoundError, FrameError
from engine.io.fitsio import read_image, write_atomic
from engine.provenance import Provenance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Master:
    """A combined frame in electrons."""

    image: np.ndarray
    variance: np.ndarray
    saturated: np.ndarray
    n_frames: int
    header: fits.Header


def bias_name(speed: float) -> str:
    """``bias1.0.fits``-style name of a master bias."""
    return f"bias{speed:.1f}.fits"


def make_master_biases(biases: dict[float, list[str]], out_dir: Path, config: dict) -> dict[float, Path]:
    """Combine and write one master bias per read speed; return their paths.

    Parameters
    ----------
    biases : dict
        ``{read speed [MHz]: [raw bias paths]}``.
    out_dir : Path
        The night's reduction directory.
    config : dict
        The resolved configuration (recorded as provenance).
    """
    out = {}
    for speed, paths in sorted(biases.items()):
        frames = [read_image(p) for p in paths]
        raws = [np.asarray(d) for d, _h in frames]
        master, cards = master_bias(raws, [h for _d, h in frames])
        prov = Provenance(schema="sedmtui.bias", version=1, config=config, steps={"bias": "COMPLETE"})
        for p in paths:
            prov.add_input(p)
        hdu = fits.PrimaryHDU(master.astype(np.float32))
        prov.stamp(hdu.header)
        for key, val in cards.items():
            hdu.header[key] = val
        path = out_dir / bias_name(speed)
        _write(fits.HDUList([hdu, prov.hdu()]), path)
        out[speed] = path
    return out


def load_bias(bias_paths: dict[float, Path], speed: float) -> tuple[np.ndarray | None, str]:
    """The master bias of a read speed (``None`` when the night has none: overscan only).

    Parameters
    ----------
    bias_paths : dict
        ``{read speed [MHz]: master bias path}``.
    speed : float
        The frame's read speed [MHz].
    """
    path = bias_paths.get(round(speed, 1))
    if path is None:
        return None, ""
    return fits.getdata(path).astype(np.float32), Path(path).name


def combine_master(name: str, paths: list[str], bias_paths: dict[float, Path], out_dir: Path, config: dict) -> Master:
    """Debias each frame and median-combine; write ``<name>.fits``.

    Parameters
    ----------
    name : str
        ``dome``, ``Hg``, ``Cd`` or ``Xe`` (the file's name).
    paths : list of str
        The raw frames.
    bias_paths : dict
        ``{read speed [MHz]: master bias path}``.
    out_dir : Path
        The night's reduction directory.
    config : dict
        The resolved configuration (recorded as provenance).

    Raises
    ------
    CalibrationNotFoundError
        No frames.
    """
    if not paths:
        raise CalibrationNotFoundError(f"no {name} frames for the night")
    images, variances, saturated = [], [], None
    header = None
    prov = Provenance(schema=f"sedmtui.master.{name}", version=1, config=config, steps={"debias": "COMPLETE"})
    missing_bias = set()
    for p in paths:
        raw, hdr = read_image(p)
        speed = round(float(hdr.get("ADCSPEED", 0.0)), 1)
        master, mname = load_bias(bias_paths, speed)
        if master is None:
            missing_bias.add(speed)
        d = debias(raw, hdr, master, master_name=mname)
        images.append(d.image)
        variances.append(d.variance)
        saturated = d.saturated if saturated is None else saturated | d.saturated
        header = header or hdr.copy()
        for key, val in d.cards.items():
            header[key] = val
        prov.add_input(p)
    image = median_combine(np.stack(images))
    variance = (np.mean(variances, axis=0) / len(images) * (np.pi / 2 if len(images) > 2 else 1.0)).astype(np.float32)
    header["NCOMBINE"] = (len(paths), "frames combined (median)")
    if missing_bias:
        header["BIASWARN"] = (f"no master bias at {sorted(missing_bias)} MHz: overscan only", "")
        log.warning("%s: no master bias at read speed(s) %s; overscan only", name, sorted(missing_bias))
    hdu = fits.PrimaryHDU(image, header=header)
    prov.stamp(hdu.header)
    _write(fits.HDUList([hdu, fits.ImageHDU(variance, name="VARIANCE"), prov.hdu()]), out_dir / f"{name}.fits")
    return Master(image=image, variance=variance, saturated=saturated, n_frames=len(paths), header=header)


def _write(hdul: fits.HDUList, path: Path) -> None:
    write_atomic(hdul, path)


__all__ = ["Master", "bias_name", "make_master_biases", "combine_master", "load_bias", "FrameError"]
