"""Guider (Rainbow Camera) frames of an IFU exposure and their median stack.

SEDM builds one guider image per IFU exposure from every RC frame whose start JD lies inside
the IFU exposure (pysedm ``rainbowcam.get_ifu_guider_images``): each frame is divided by its
median, the frames are median-combined, and the result is multiplied back by the mean of the
medians (header ``NSTACK``, ``STACKMTH=median``, ``SCALEMTH=median``, ``STACKSCL``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from engine.errors import FrameError
from engine.io.fitsio import check_complete, header_value, read_header, read_image

log = logging.getLogger(__name__)

JD_TOLERANCE_DAY = 1.0e-6
"""Slack on both ends of the exposure window when comparing JDs [day] (0.09 s)."""

POINTING_KEYS = ("OBJECT", "NAME", "TEL_RA", "TEL_DEC", "RA", "DEC", "FILTER", "CAM_NAME", "GAIN")
"""Header keywords copied from the first stacked frame into the stack header."""


@dataclass(frozen=True, eq=False)
class GuiderStack:
    """The median stack of the guider frames of one IFU exposure.

    Attributes
    ----------
    image : numpy.ndarray or None
        Shape ``(ny, nx)`` float32 stack [ADU]; None when no frame could be used.
    header : astropy.io.fits.Header
        ``NSTACK``, ``STACKMTH``, ``SCALEMTH``, ``STACKSCL``, the pointing keys of the first
        frame and one ``HISTORY`` card per frame combined or skipped.
    used : tuple of str
        Paths of the frames combined, in JD order.
    skipped : tuple of (str, str)
        ``(path, reason)`` of every frame that could not be used.
    """

    image: np.ndarray | None
    header: fits.Header
    used: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = field(default=())

    @property
    def n_frames(self) -> int:
        """Number of frames combined."""
        return len(self.used)


def is_ifu_frame(path: str | os.PathLike, header) -> bool:
    """True for IFU frames (``CAM_NAME`` containing ``IFU`` or ``ifu`` in the file name)."""
    cam = str(header.get("CAM_NAME", "") or "")
    return "IFU" in cam.upper() or "ifu" in Path(path).name


def exposure_window_jd(ifu_header) -> tuple[float, float]:
    """``[JD_start, JD_start + EXPTIME/86400]`` of an IFU exposure [day].

    Raises
    ------
    FrameError
        ``JD`` or ``EXPTIME`` missing or not a number.
    """
    jd = header_value(ifu_header, "JD", required=True, cast=float, what="IFU frame")
    exptime = header_value(ifu_header, "EXPTIME", required=True, cast=float, what="IFU frame")
    return jd, jd + exptime / 86400.0


def select_guider_frames(
    ifu_header, candidates: Iterable[tuple[str | os.PathLike, object]]
) -> list[str]:
    """Guider frames taken during an IFU exposure.

    Parameters
    ----------
    ifu_header : astropy.io.fits.Header or Mapping
        Header of the IFU frame (``JD``, ``EXPTIME``).
    candidates : iterable of (path, header)
        Frames of the night with their primary headers. IFU frames and frames without a
        usable ``JD`` are ignored.

    Returns
    -------
    list of str
        Paths whose ``JD`` lies in ``[JD_ifu, JD_ifu + EXPTIME/86400]``, sorted by JD.
    """
    start, end = exposure_window_jd(ifu_header)
    chosen = []
    for path, header in candidates:
        if is_ifu_frame(path, header):
            continue
        jd = header_value(header, "JD", cast=float)
        if jd is None or not np.isfinite(jd):
            continue
        if start - JD_TOLERANCE_DAY <= jd <= end + JD_TOLERANCE_DAY:
            chosen.append((jd, str(path)))
    return [p for _, p in sorted(chosen)]


def guider_candidates(night_dir: str | os.PathLike) -> list[tuple[str, fits.Header]]:
    """``(path, header)`` of every ``rc*[0-9].fits`` frame of a raw night directory.

    Frames whose header cannot be read are logged and left out.
    """
    out = []
    for path in sorted(Path(night_dir).glob("rc*[0-9].fits")):
        try:
            out.append((str(path), read_header(path)))
        except FrameError as exc:
            log.warning("guider frame ignored: %s", exc)
    return out


def _load_frame(path: str, shape: tuple[int, int] | None) -> tuple[np.ndarray, fits.Header]:
    """One complete, finite guider frame (raises FrameError with the reason otherwise)."""
    check_complete(path)
    data, header = read_image(path)
    if data.ndim != 2:
        raise FrameError(f"{Path(path).name}: not a 2-D image (shape {data.shape})")
    if shape is not None and data.shape != shape:
        raise FrameError(
            f"{Path(path).name}: shape {data.shape} differs from the first frame's {shape}"
        )
    if not np.isfinite(data).all():
        raise FrameError(f"{Path(path).name}: non-finite pixels")
    return data, header


def frame_median(image: np.ndarray, stride: int = 1) -> float:
    """Median of an image, over every ``stride``-th row and column [ADU]."""
    return float(np.median(image[::stride, ::stride]))


def median_combine(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Pixel-wise median of same-shape images; exact, with fast in-place paths for n <= 4.

    For two frames the median is the mean; for three ``sum - max - min``; for four the mean
    of the middle two, ``(sum - max - min) / 2``. Inputs are not modified.
    """
    n = len(frames)
    if n == 1:
        return np.array(frames[0], copy=True)
    if n > 4:
        return np.median(np.stack(frames), axis=0)
    total = frames[0] + frames[1]
    if n == 2:
        total *= 0.5
        return total
    hi = np.maximum(frames[0], frames[1])
    lo = np.minimum(frames[0], frames[1])
    for f in frames[2:]:
        np.add(total, f, out=total)
        np.maximum(hi, f, out=hi)
        np.minimum(lo, f, out=lo)
    total -= hi
    total -= lo
    if n == 4:
        total *= 0.5
    return total


def combine_frames(
    frames: Sequence[np.ndarray], medians: Sequence[float] | None = None, median_stride: int = 1
) -> tuple[np.ndarray, float]:
    """SEDM guider stack of same-shape frames.

    Parameters
    ----------
    frames : sequence of numpy.ndarray
        Images of shape ``(ny, nx)`` [ADU].
    medians : sequence of float, optional
        Each frame's median [ADU]; computed with :func:`frame_median` when not given.
    median_stride : int
        Subsampling of each frame's scaling median (1 = every pixel).

    Returns
    -------
    stack : numpy.ndarray
        Shape ``(ny, nx)`` float32: ``median_k(frame_k / median_k) * mean_k(median_k)`` [ADU].
    scale : float
        ``mean_k(median_k)`` [ADU].

    Raises
    ------
    FrameError
        No frames, or a frame whose median is not positive.
    """
    if not frames:
        raise FrameError("no guider frames to stack")
    if medians is None:
        medians = [frame_median(f, median_stride) for f in frames]
    medians = np.asarray(medians, dtype=float)
    if not (medians > 0).all():
        raise FrameError(f"guider frame median not positive ({medians.tolist()})")
    scaled = [np.asarray(f, dtype=np.float32) / np.float32(m) for f, m in zip(frames, medians)]
    scale = float(medians.mean())
    stack = median_combine(scaled).astype(np.float32, copy=False)
    stack *= np.float32(scale)
    return stack, scale


def _stack_header(
    first: fits.Header | None, used: Sequence[str], skipped, scale: float
) -> fits.Header:
    hdr = fits.Header()
    for key in POINTING_KEYS:
        if first is not None and key in first:
            hdr[key] = first[key]
    if first is not None and "JD" in first:
        hdr["JD"] = (first["JD"], "JD of the first stacked guider frame")
    hdr["NSTACK"] = (len(used), "number of guider frames stacked")
    hdr["STACKMTH"] = ("median", "guider stack method")
    hdr["SCALEMTH"] = ("median", "frames divided by their median")
    if np.isfinite(scale):
        hdr["STACKSCL"] = (scale, "mean of the frame medians [ADU]")
    for path in used:
        hdr.add_history(f"stacked {Path(path).name}")
    for path, reason in skipped:
        hdr.add_history(f"skipped {Path(path).name}: {reason}"[:72])
    return hdr


def stack_guider(paths: Sequence[str | os.PathLike], *, median_stride: int = 2) -> GuiderStack:
    """Read and median-stack the guider frames of one IFU exposure.

    Unreadable, truncated, non-finite or wrongly-shaped frames are skipped and recorded in
    ``GuiderStack.skipped``; the others are still stacked.

    Parameters
    ----------
    paths : sequence of path-like
        Guider frames (``rc*.fits``), e.g. from :func:`select_guider_frames`.
    median_stride : int
        Subsampling of each frame's scaling median.

    Returns
    -------
    GuiderStack
        ``image`` is None when no frame could be used.
    """
    frames, medians, headers, used, skipped = [], [], [], [], []
    shape = None
    for path in map(str, paths):
        try:
            data, header = _load_frame(path, shape)
            med = frame_median(data, median_stride)
            if not med > 0:
                raise FrameError(
                    f"{Path(path).name}: median {med} is not positive (no light, no bias?)"
                )
        except (FrameError, OSError) as exc:
            log.warning("guider frame skipped: %s", exc)
            skipped.append((path, str(exc)))
            continue
        shape = data.shape
        frames.append(data)
        medians.append(med)
        headers.append(header)
        used.append(path)
    if not frames:
        return GuiderStack(None, _stack_header(None, [], skipped, float("nan")), (), tuple(skipped))
    image, scale = combine_frames(frames, medians)
    header = _stack_header(headers[0], used, skipped, scale)
    return GuiderStack(image, header, tuple(used), tuple(skipped))
