"""Star detection on a guider stack with sep (Source Extractor as a library).

Background mesh model, extraction above ``thresh`` times the global rms, windowed centroids
(SExtractor's ``XWIN/YWIN``), and removal of saturated, elongated or too-sharp sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sep

from engine.errors import AlgorithmError

WINPOS_SIGMA_PER_HLR = 2.0 / 2.35
"""``sig`` of the windowed centroid per half-light radius (SExtractor's choice)."""


@dataclass(frozen=True, eq=False)
class Detections:
    """Stars found on a guider image, brightest first.

    Attributes
    ----------
    x, y : numpy.ndarray
        Shape ``(n,)`` windowed centroids, 0-based pixel coordinates (x = column).
    flux : numpy.ndarray
        Shape ``(n,)`` background-subtracted isophotal flux [ADU].
    peak : numpy.ndarray
        Shape ``(n,)`` brightest pixel of each source including background [ADU].
    hlr : numpy.ndarray
        Shape ``(n,)`` half-light radius [pixel].
    elongation : numpy.ndarray
        Shape ``(n,)`` ``a/b`` of the isophotal ellipse.
    background : float
        Global background level [ADU].
    background_rms : float
        Global background rms [ADU].
    n_raw : int
        Number of sep detections before cuts.
    n_saturated, n_elongated, n_sharp : int
        Sources dropped by each cut.
    """

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    peak: np.ndarray
    hlr: np.ndarray
    elongation: np.ndarray
    background: float
    background_rms: float
    n_raw: int = 0
    n_saturated: int = 0
    n_elongated: int = 0
    n_sharp: int = 0

    @property
    def n(self) -> int:
        """Number of stars kept."""
        return int(self.x.size)

    @property
    def xy(self) -> np.ndarray:
        """Shape ``(n, 2)`` positions ``(x, y)`` [pixel]."""
        return np.column_stack([self.x, self.y])


def _extract(data: np.ndarray, thresh: float, err: float, minarea: int) -> np.ndarray:
    try:
        return sep.extract(data, thresh, err=err, minarea=minarea)
    except Exception as exc:  # sep raises bare Exception on pixel-stack overflow
        msg = f"star extraction failed on the guider stack ({exc})"
        raise AlgorithmError(msg, {"stage": "detect"}) from exc


def detect_stars(
    image: np.ndarray,
    *,
    thresh_sigma: float = 5.0,
    minarea: int = 5,
    back_size_px: int = 64,
    saturation_adu: float = 60000.0,
    max_elongation: float = 1.6,
    min_flux_radius_px: float = 0.7,
    max_stars: int | None = 400,
) -> Detections:
    """Detect stars on a guider image.

    Parameters
    ----------
    image : numpy.ndarray
        Shape ``(ny, nx)`` guider image [ADU]; not modified.
    thresh_sigma : float
        Detection threshold in units of the global background rms.
    minarea : int
        Minimum number of connected pixels above threshold.
    back_size_px : int
        Background mesh size [pixel].
    saturation_adu : float
        Sources whose brightest pixel (with background) reaches this are dropped [ADU].
    max_elongation : float
        Sources with ``a/b`` above this are dropped.
    min_flux_radius_px : float
        Sources with a half-light radius below this are dropped [pixel].
    max_stars : int or None
        Keep at most this many of the brightest stars.

    Returns
    -------
    Detections
        Sorted by decreasing flux.
    """
    data = np.ascontiguousarray(image, dtype=np.float32)
    bkg = sep.Background(data, bw=back_size_px, bh=back_size_px)
    sub = data - bkg.back()
    rms = float(bkg.globalrms)
    objs = _extract(sub, thresh_sigma, rms, minarea)
    n_raw = len(objs)
    ny, nx = data.shape
    peak = data[np.clip(objs["ypeak"], 0, ny - 1), np.clip(objs["xpeak"], 0, nx - 1)].astype(float)
    elong = objs["a"] / np.maximum(objs["b"], 1e-3)
    saturated = peak >= saturation_adu
    elongated = ~saturated & (elong > max_elongation)
    keep = ~saturated & ~elongated & ((objs["flag"] & sep.OBJ_TRUNC) == 0)
    objs, peak, elong = objs[keep], peak[keep], elong[keep]
    hlr, fr_flag = sep.flux_radius(sub, objs["x"], objs["y"], 6.0 * objs["a"] + 2.0, 0.5, subpix=5)
    sharp = hlr < min_flux_radius_px
    good = ~sharp & (fr_flag == 0) & np.isfinite(hlr)
    objs, peak, elong, hlr = objs[good], peak[good], elong[good], hlr[good]
    sig = WINPOS_SIGMA_PER_HLR * hlr
    xw, yw, wflag = sep.winpos(sub, objs["x"], objs["y"], sig)
    ok = (
        (wflag == 0)
        & np.isfinite(xw)
        & np.isfinite(yw)
        & (np.hypot(xw - objs["x"], yw - objs["y"]) < 2.0)
    )
    order = np.argsort(-objs["flux"][ok], kind="stable")
    if max_stars is not None:
        order = order[:max_stars]
    return Detections(
        x=xw[ok][order],
        y=yw[ok][order],
        flux=objs["flux"][ok][order],
        peak=peak[ok][order],
        hlr=hlr[ok][order],
        elongation=elong[ok][order],
        background=float(bkg.globalback),
        background_rms=rms,
        n_raw=n_raw,
        n_saturated=int(saturated.sum()),
        n_elongated=int(elongated.sum()),
        n_sharp=int(sharp.sum()),
    )
