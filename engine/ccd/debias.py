"""Bias, overscan, gain and trimming of raw IFU frames (pure functions over arrays)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.ccd.combine import mean_minmax_reject
from engine.ccd.overscan import andor_scan_level, camera_of, pixis_row_overscan, scan_columns
from engine.errors import CalibrationMismatchError, FrameError
from engine.instrument import sedm


@dataclass(frozen=True)
class Debiased:
    """A frame in electrons.

    Attributes
    ----------
    image : numpy.ndarray
        Shape ``CCD_SHAPE`` float32 [e-].
    variance : numpy.ndarray
        Shape ``CCD_SHAPE`` float32 [e-^2]: read noise^2 + Poisson.
    saturated : numpy.ndarray
        Shape ``CCD_SHAPE`` bool: raw value at the digital limit.
    cards : dict
        Header cards to write on the product ``{key: (value, comment)}``.
    """

    image: np.ndarray
    variance: np.ndarray
    saturated: np.ndarray
    cards: dict


def gain_of(header, camera: str) -> tuple[float, bool]:
    """Gain [e-/ADU] from the header, else the camera's fallback; and whether it was the fallback.

    Parameters
    ----------
    header : astropy.io.fits.Header
        The raw header.
    camera : {"andor", "pixis"}
        The camera (its fallback gain).
    """
    try:
        g = float(header["GAIN"])
        if g > 0:
            return g, False
    except (KeyError, TypeError, ValueError):
        pass
    return sedm.GAIN_FALLBACK_E_PER_ADU[camera], True


def _nmad(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def master_bias(raws: list[np.ndarray], headers: list) -> tuple[np.ndarray, dict]:
    """Master bias of one read speed: mean with min/max rejection (Andor: each minus its scan level).

    Parameters
    ----------
    raws : list of numpy.ndarray
        The raw bias frames [ADU].
    headers : list of astropy.io.fits.Header
        Their headers.

    Returns
    -------
    master : numpy.ndarray
        Raw-shaped float32 [ADU].
    cards : dict
        ``NCOMBINE``, ``COMBNLO``, ``COMBNHI``, ``ADCSPEED``, read noise estimate ``RDNOISE`` [ADU].
    """
    if not raws:
        raise FrameError("no bias frames to combine")
    speeds = {round(float(h.get("ADCSPEED", 0.0)), 1) for h in headers}
    if len(speeds) != 1:
        raise CalibrationMismatchError(f"biases of different read speeds combined together: {sorted(speeds)}")
    camera = camera_of(headers[0], raws[0].shape)
    stack = np.stack([r.astype(np.float32) for r in raws])
    if camera == "andor":
        for i, (r, h) in enumerate(zip(raws, headers)):
            stack[i] -= andor_scan_level(r, h)
    master = mean_minmax_reject(stack)
    noise = _nmad((stack[0] - master)[::4, ::4]) if len(raws) > 1 else float("nan")
    cards = {
        "NCOMBINE": (len(raws), "biases combined"),
        "COMBNLO": (1 if len(raws) >= 3 else 0, "low values rejected per pixel"),
        "COMBNHI": (1 if len(raws) >= 3 else 0, "high values rejected per pixel"),
        "ADCSPEED": (speeds.pop(), "read speed [MHz]"),
        "RDNOISE": (round(noise, 3), "read noise of one bias [ADU]"),
    }
    return master, cards


def debias(raw: np.ndarray, header, master: np.ndarray | None, *, master_name: str = "") -> Debiased:
    """Subtract bias and overscan, convert to electrons, trim (Andor), estimate the variance.

    PIXIS: ``(raw - master) - row overscan`` (median of columns 2045-2047, 50-row running
    median), times the gain. Andor: ``raw - scan level - master``, times the gain, trimmed to
    the image columns.

    Parameters
    ----------
    raw : numpy.ndarray
        Raw frame [ADU].
    header : mapping
        Its header.
    master : numpy.ndarray or None
        Master bias of the frame's read speed (raw-shaped) [ADU]; ``None`` uses only the overscan.
    """
    camera = camera_of(header, raw.shape)
    gain, fallback = gain_of(header, camera)
    data = raw.astype(np.float32)
    saturated = raw >= sedm.SATURATION_ADU
    if master is not None and master.shape != raw.shape:
        raise CalibrationMismatchError(f"master bias shape {master.shape} differs from the frame's {raw.shape}")
    if camera == "andor":
        level = andor_scan_level(raw, header)
        _pre, img_cols, over = scan_columns(header)
        noise_adu = _nmad(data[:, over] - level)
        data -= level
        if master is not None:
            data -= master
        image = data[:, img_cols]
        saturated = saturated[:, img_cols]
        oscan_desc = (round(level, 2), "scan level subtracted (scalar) [ADU]")
    else:
        if master is not None:
            data -= master
        rows = pixis_row_overscan(data)
        lo, hi = sedm.PIXIS_OVERSCAN_COLUMNS
        noise_adu = _nmad(data[:, lo:hi] - rows[:, None])
        image = data - rows[:, None]
        image[:, lo:hi] = 0.0
        oscan_desc = (round(float(np.median(rows)), 2), "median row overscan subtracted [ADU]")
    image = image * np.float32(gain)
    read_noise = noise_adu * gain
    variance = np.maximum(image, 0.0) + np.float32(read_noise**2)
    cards = {
        "GAIN": (1.0, f"was {gain:g} e-/ADU{' (fallback: no GAIN in header)' if fallback else ''}"),
        "BUNIT": ("electron", "pixel unit"),
        "BIASSUB": (master is not None, "master bias subtracted"),
        "MBIASFN": (master_name, "master bias file"),
        "OSCANSUB": (True, "overscan subtracted"),
        "OSCANVAL": oscan_desc,
        "RDNOISE": (round(read_noise, 3), "read noise measured in the overscan [e-]"),
        "NSATUR": (int(saturated.sum()), "saturated pixels"),
    }
    return Debiased(image=image.astype(np.float32), variance=variance.astype(np.float32), saturated=saturated,
                    cards=cards)
