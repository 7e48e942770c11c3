"""Scattered-light background between the traces, as a smooth image.

Between two traces 6.7 px apart, a pixel still holds a few percent of the traces' light, so the
background cannot be read off "empty" pixels. Instead the traces are modelled: column fluxes
are extracted, rendered back through the profile operator, and the residual image (data minus
traces) is reduced to a smooth surface: medians in 32x32-pixel blocks, smoothed over ~3 blocks,
interpolated back to full resolution. Two iterations converge (the extraction of the second is
made on the background-subtracted image).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter, zoom

from engine.calib.extraction import ExtractionOperator

BLOCK = 32


def smooth_surface(residual: np.ndarray, block: int = BLOCK, smooth_blocks: float = 1.5) -> np.ndarray:
    """A smooth version of ``residual``: block medians, Gaussian-smoothed, bilinear upsampling."""
    ny, nx = residual.shape
    med = np.median(residual.reshape(ny // block, block, nx // block, block).transpose(0, 2, 1, 3)
                    .reshape(ny // block, nx // block, block * block), axis=2)
    med = gaussian_filter(med, smooth_blocks, mode="nearest")
    out = zoom(med, block, order=1, mode="nearest", grid_mode=True)
    return out.astype(np.float32)


def subtract_scattered_light(
    image: np.ndarray, operator: ExtractionOperator, *, n_iter: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Estimate and remove the scattered-light background.

    Parameters
    ----------
    image : numpy.ndarray
        Detector image [e-].
    operator : ExtractionOperator
        Extraction operator of all the traces on the detector (at the frame's j-shift).

    Returns
    -------
    corrected : numpy.ndarray
        ``image - background``.
    background : numpy.ndarray
        The smooth background [e-].
    """
    background = np.zeros_like(image, dtype=np.float32)
    for _ in range(n_iter):
        flux = operator.extract(image - background)
        model = operator.model_image(flux, image.shape)
        background = smooth_surface(image - model)
    return image - background, background
