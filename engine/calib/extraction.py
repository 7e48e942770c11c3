"""The extraction operator: CCD pixels -> (trace, column) sums, as one sparse matrix.

Each trace is extracted over a fixed-length window of columns; in each column the pixels
within ``HALF_ROWS`` of the trace centre are combined with profile weights
``w_y = P_y / sum(P^2)`` where ``P`` is the pixel-integrated Gaussian cross-dispersion profile
(unbiased for a profile-shaped signal; optimal when the noise is uniform across the profile).
The profile itself is modelled over ``HALF_PROFILE_ROWS`` (wider), so the deblending removes
the part of a neighbour's light that reaches this trace's rows from beyond its own ``HALF_ROWS``.
The variance of a sum is ``sum(w^2 var)`` (weights squared).

The operator is built from the analytic profile, so a j-flexure shift "moves" it by
recomputing the weights at the shifted centres with the same vectorised formula: no
polygons, no rasterisation. The transposed profile operator ``P`` renders a model image from
column fluxes (used by the scattered-light background model).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtr

from engine.instrument import sedm

HALF_ROWS = 3
"""Rows each side of the centre whose pixels are summed in a column (neighbours are >= 5.3 px
away on every instrument the priors allow)."""
HALF_PROFILE_ROWS = 5
"""Rows each side of the centre over which the profile is modelled: a neighbour's light that
falls into this trace's rows is removed by the deblending only where its profile is modelled
(its wing 3-5 rows out is ~2 % of its peak at sigma 1.5 px)."""
DEBLEND_ITERATIONS = 3
"""Iterations removing the neighbouring traces' light from each extraction."""


@dataclass(frozen=True)
class TraceGeometry:
    """What the operator needs: column windows, centres and widths of every trace.

    Attributes
    ----------
    x0 : numpy.ndarray
        Shape ``(n,)`` first column of each trace's window (may be < 0 or past the edge).
    n_cols : int
        Window length.
    y_centre : numpy.ndarray
        Shape ``(n, n_cols)`` trace centre row at each window column [pixel].
    sigma : numpy.ndarray
        Shape ``(n, n_cols)`` profile sigma [pixel].
    col_ok : numpy.ndarray, optional
        Shape ``(n, n_cols)`` bool: columns that belong to the trace (others are left out).
    """

    x0: np.ndarray
    n_cols: int
    y_centre: np.ndarray
    sigma: np.ndarray
    col_ok: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of traces."""
        return int(self.x0.size)

    def columns(self) -> np.ndarray:
        """Shape ``(n, n_cols)`` detector columns of the windows."""
        return self.x0[:, None] + np.arange(self.n_cols)[None, :]


@dataclass(frozen=True)
class ExtractionOperator:
    """Sparse extraction and profile operators of one trace geometry (and j-shift).

    Attributes
    ----------
    geometry : TraceGeometry
    dj : float
        Cross-dispersion shift applied [pixel].
    weights : scipy.sparse.csr_matrix
        Shape ``(n * n_cols, ny * nx)``: extraction weights.
    profile : scipy.sparse.csr_matrix
        Shape ``(n * n_cols, ny * nx)``: normalised profile ``P`` (model image = ``P.T @ flux``).
    valid : numpy.ndarray
        Shape ``(n, n_cols)`` bool: the column is on the detector with all its rows.
    """

    geometry: TraceGeometry
    dj: float
    weights: sp.csr_matrix
    profile: sp.csr_matrix
    dprofile: sp.csr_matrix
    """Derivative of the profile with respect to the trace centre row (for flexure fits)."""
    valid: np.ndarray
    norm: np.ndarray | None = None
    """Shape ``(n, n_cols)`` flux-normalisation factors (from the dome), or ``None``."""

    def extract(self, image: np.ndarray, *, deblend: int = DEBLEND_ITERATIONS) -> np.ndarray:
        """Column fluxes of an image; shape ``(n, n_cols)`` (invalid columns NaN).

        The weighted sums are corrected for the neighbouring traces' light by ``deblend``
        Jacobi iterations ``F <- F + W (d - P.T F)`` (the weights satisfy ``sum w P = 1``, so
        the own trace's light cancels and only the neighbours' is removed).
        """
        d = image.ravel().astype(np.float64)
        flux = self.weights @ d
        for _ in range(deblend):
            model = self.profile.T @ np.where(self.valid.ravel(), flux, 0.0)
            flux = flux + self.weights @ (d - model)
        out = flux.reshape(self.valid.shape)
        if self.norm is not None:
            out = out * self.norm
        return np.where(self.valid, out, np.nan)

    def extract_variance(self, variance: np.ndarray) -> np.ndarray:
        """Variance of the column sums, ``sum(w^2 var)``; shape ``(n, n_cols)``."""
        w2 = self.weights.multiply(self.weights)
        out = (w2 @ variance.ravel().astype(np.float64)).reshape(self.valid.shape)
        if self.norm is not None:
            out = out * self.norm**2
        return np.where(self.valid, out, np.nan)

    def box_sums(self, image: np.ndarray) -> np.ndarray:
        """Plain sums over each column's rows (no weights); shape ``(n, n_cols)``."""
        box = self.weights.copy()
        box.data[:] = 1.0
        return (box @ image.ravel().astype(np.float64)).reshape(self.valid.shape)

    def with_norm(self, norm: np.ndarray | None) -> ExtractionOperator:
        """The same operator with flux-normalisation factors."""
        return replace(self, norm=norm)

    def model_image(self, flux: np.ndarray, shape: tuple[int, int] = sedm.CCD_SHAPE, *, derivative: bool = False) -> np.ndarray:
        """Image of traces carrying column fluxes ``flux`` (shape ``(n, n_cols)``).

        With ``derivative``, the image's derivative with respect to a common shift of every
        trace centre (d model / d dj).
        """
        f = np.nan_to_num(np.where(self.valid, flux, 0.0)).ravel()
        op = self.dprofile if derivative else self.profile
        return (op.T @ f).reshape(shape)

    def shifted(self, dj: float) -> ExtractionOperator:
        """The operator for traces moved by ``dj`` rows (j-flexure); normalisation kept."""
        return build_operator(self.geometry, dj=dj).with_norm(self.norm)


def build_operator(geometry: TraceGeometry, *, dj: float = 0.0, shape: tuple[int, int] = sedm.CCD_SHAPE) -> ExtractionOperator:
    """Build the extraction and profile operators of ``geometry`` shifted by ``dj`` rows."""
    ny, nx = shape
    n, m = geometry.n, geometry.n_cols
    cols = geometry.columns()
    yc = geometry.y_centre + dj
    sig = geometry.sigma
    centre = np.rint(yc).astype(np.int64)
    offs = np.arange(-HALF_PROFILE_ROWS, HALF_PROFILE_ROWS + 1)
    rows = centre[:, :, None] + offs[None, None, :]  # (n, m, k)
    inner = np.abs(offs) <= HALF_ROWS
    lo = (rows - 0.5 - yc[:, :, None]) / sig[:, :, None]
    hi = (rows + 0.5 - yc[:, :, None]) / sig[:, :, None]
    prof = ndtr(hi) - ndtr(lo)
    dprof = (np.exp(-0.5 * lo * lo) - np.exp(-0.5 * hi * hi)) / (np.sqrt(2 * np.pi) * sig[:, :, None])
    norm = (prof * prof * inner).sum(axis=2, keepdims=True)
    w = prof * inner / np.where(norm > 0, norm, 1.0)
    on = (cols >= 0) & (cols < nx)
    if geometry.col_ok is not None:
        on &= geometry.col_ok
    rows_ok = (rows >= 0) & (rows < ny)
    valid = on & rows_ok[:, :, inner].all(axis=2)
    keep = (on[:, :, None] & rows_ok).ravel()
    r_idx = np.broadcast_to(np.arange(n * m).reshape(n, m, 1), rows.shape).ravel()[keep]
    c_idx = (rows * nx + cols[:, :, None]).ravel()[keep]
    keep_w = (on[:, :, None] & rows_ok & inner).ravel()
    r_w = np.broadcast_to(np.arange(n * m).reshape(n, m, 1), rows.shape).ravel()[keep_w]
    c_w = (rows * nx + cols[:, :, None]).ravel()[keep_w]
    wts = sp.csr_matrix((w.ravel()[keep_w].astype(np.float32), (r_w, c_w)), shape=(n * m, ny * nx))
    prf = sp.csr_matrix((prof.ravel()[keep].astype(np.float32), (r_idx, c_idx)), shape=(n * m, ny * nx))
    dprf = sp.csr_matrix((dprof.ravel()[keep].astype(np.float32), (r_idx, c_idx)), shape=(n * m, ny * nx))
    return ExtractionOperator(geometry=geometry, dj=float(dj), weights=wts, profile=prf, dprofile=dprf, valid=valid)

