"""The SEDM quality flag of an extraction, with the reason.

0 good; 1 recovered by hand (was 5; set only by a request); 2 minor problem (extracted,
classified and delivered, but worth a look: poor ADR fit, PSF centroid far from the astrometric
position); 3 target outside the IFU (cannot be fixed); 4 more than 20 % of the flux samples
negative or missing; 5 guider astrometry failed, the brightest spaxel was used (science only;
standards always use the brightest spaxel and are never 5).

Order: 3 (tested on the astrometric position, or the fitted one), then 5, then 4, then 2.
pysedm counted NaN samples as positive and tested 3 only on the initial guess.
"""

from __future__ import annotations

import numpy as np

from engine.instrument import sedm

NEGATIVE_LIMIT = 0.20
ADR_CHI2_LIMIT = 5.0
CENTROID_OFFSET_LIMIT = 2.0


def negative_fraction(flux: np.ndarray) -> float:
    """Fraction of samples that are negative or not finite."""
    flux = np.asarray(flux, dtype=float)
    return float(np.mean(~(np.isfinite(flux) & (flux >= 0)))) if flux.size else 1.0


def assess_quality(
    *, kind: str, srcpos: str, position: tuple[float, float] | None, flux: np.ndarray | None,
    astrometry_reason: str = "", adr_chi2: float | None = None, centroid_offset: float | None = None,
) -> tuple[int, str]:
    """Quality flag and reason.

    Parameters
    ----------
    kind : {"science", "standard"}
    srcpos : {"astrom", "auto", "manual"}
        Origin of the position (``auto`` = brightest spaxel).
    position : (float, float) or None
        Target position [spaxel unit] (astrometric, manual or fitted).
    flux : numpy.ndarray or None
        The delivered spectrum (edge-cut), ``None`` when not extracted.
    """
    if position is not None:
        r = float(np.hypot(*position))
        if not np.isfinite(r) or r > sedm.MLA_RADIUS_UNITS:
            return 3, f"target outside the IFU ({r:.1f} spaxels from the centre > {sedm.MLA_RADIUS_UNITS:.0f})"
    if kind == "science" and srcpos == "auto":
        why = f": {astrometry_reason}" if astrometry_reason else ""
        return 5, f"guider astrometry failed{why}; extracted at the brightest spaxel"
    if flux is None:
        return 4, "no spectrum extracted"
    frac = negative_fraction(flux)
    if frac > NEGATIVE_LIMIT:
        return 4, f"{100 * frac:.0f}% of the flux samples negative or missing (> 20%)"
    if adr_chi2 is not None and np.isfinite(adr_chi2) and adr_chi2 > ADR_CHI2_LIMIT:
        return 2, f"poor ADR fit (chi2/dof {adr_chi2:.1f} > {ADR_CHI2_LIMIT:.0f})"
    if srcpos == "astrom" and centroid_offset is not None and centroid_offset > CENTROID_OFFSET_LIMIT:
        return 2, f"PSF centroid {centroid_offset:.1f} spaxels from the astrometric position"
    return 0, "good"
