"""The host galaxy of a transient: an extended scene component of the PSF fit.

Model
-----
An elliptical exponential disk (Sersic n = 1) of scale length ``h``, axis ratio ``q`` and
major-axis angle ``phi``, seen through the exposure's PSF and averaged over the lenslets::

    S(x) = F * [exp(-r_e / h) / (2 pi q h^2)]  (*)  PSF_lambda  (*)  hexagon,
    r_e^2 = u^2 + (v / q)^2   (u, v: offsets along the major and minor axes)

Both profiles are written as mixtures of Gaussians, so the convolution is analytic (the
covariances add; Hogg & Lang 2013, PASP 125, 719 use the same device):

* the exponential: six Gaussians of fixed relative variances and weights fitted once to
  ``exp(-r)`` (flux-weighted rms 0.25 %; :data:`EXP_MIXTURE_VAR`, :data:`EXP_MIXTURE_WEIGHT`);
* the PSF (:class:`engine.science.psf.PsfShape`): its Gaussian core exactly, its Moffat part
  by non-negative weights on a fixed ladder of variances fitted to ``(1 + r^2)^-beta``
  (:func:`psf_mixture`); its ellipticity and chromatic width are applied to every component;
* the lenslet: the hexagon's second moment (an isotropic variance ``5 R^2 / 24``).

The shape (centre, ``h``, ``q``, ``phi``) is shared by all wavelengths; the flux ``F`` is free
at each wavelength (a linear amplitude of the fit, like the point source's). Refraction moves
the host's light like the transient's: the fit passes the target's ADR track as ``shifts``.

Whether a host is modelled at all is a model-selection decision (:func:`host_warranted`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from engine.instrument import sedm
from engine.science.psf import SPAXEL_AREA, PsfShape

EXP_MIXTURE_VAR = np.array([0.005487, 0.046061, 0.213022, 0.751478, 2.257341, 6.212663])
"""Variances of the Gaussians approximating ``exp(-r)`` [units of h^2]."""
EXP_MIXTURE_WEIGHT = np.array([0.000446, 0.006689, 0.048306, 0.208446, 0.456281, 0.278221])
EXP_MIXTURE_WEIGHT = EXP_MIXTURE_WEIGHT / EXP_MIXTURE_WEIGHT.sum()
"""Flux weights of those Gaussians (sum 1)."""

MOFFAT_LADDER_VAR = np.geomspace(0.04, 120.0, 10)
"""Variances [units of alpha^2] on which the Moffat part of the PSF is decomposed."""
_MOFFAT_R = np.linspace(0.0, 9.0, 120)
"""Radii [units of alpha] where the Moffat decomposition is fitted (the 10-spaxel fit region)."""

HEXAGON_VAR = 5.0 * sedm.HEX_CIRCUMRADIUS_UNITS**2 / 24.0
"""Second moment of a uniform hexagonal lenslet along any axis [spaxel unit^2]."""

MIN_SCALE_UNITS = 1.0
"""Smallest host scale length [spaxel unit] (below, a disk is a second point source)."""
MAX_SCALE_UNITS = 15.0


@dataclass(frozen=True)
class HostShape:
    """Geometry of the host (exponential disk), shared by all wavelengths.

    Attributes
    ----------
    x, y : float
        Centre [spaxel unit] (in whatever frame the spaxel positions use).
    scale : float
        Exponential scale length ``h`` along the major axis [spaxel unit].
    ab : float
        Minor/major axis ratio ``q`` (0 < q <= 1).
    theta : float
        Major-axis angle from +x [rad].
    """

    x: float
    y: float
    scale: float
    ab: float
    theta: float

    @property
    def centre(self) -> np.ndarray:
        """``(x, y)`` as an array of shape ``(2,)``."""
        return np.array([self.x, self.y])

    def shifted(self, dx: float, dy: float) -> HostShape:
        """The same disk moved by ``(dx, dy)`` [spaxel unit]."""
        return HostShape(x=self.x + dx, y=self.y + dy, scale=self.scale, ab=self.ab, theta=self.theta)


def _axes_covariance(major_var: np.ndarray, ab: float, theta: float) -> np.ndarray:
    """Covariances (..., 2, 2) of Gaussians with variance ``major_var`` along ``theta``, ``ab^2`` times it across."""
    c, s = math.cos(theta), math.sin(theta)
    eu = np.array([[c * c, c * s], [c * s, s * s]])
    ev = np.array([[s * s, -c * s], [-c * s, c * c]])
    major_var = np.asarray(major_var, dtype=float)
    return major_var[..., None, None] * (eu + ab * ab * ev)


def psf_mixture(shape: PsfShape) -> tuple[np.ndarray, np.ndarray]:
    """The circular PSF profile as a mixture of Gaussians.

    Parameters
    ----------
    shape : PsfShape
        The PSF (its ellipticity and chromaticity are ignored here).

    Returns
    -------
    weight, var : numpy.ndarray
        Shape ``(k,)`` flux weights (sum 1) and variances [units of ``alpha^2``]. The last
        component is the Gaussian core (variance ``core^2``); the others decompose the Moffat
        by non-negative least squares on :data:`MOFFAT_LADDER_VAR` (weighted by radius, i.e.
        by the flux in each annulus, out to 9 alpha; flux beyond is left out, which only
        rescales the host's amplitude by a constant).
    """
    r = _MOFFAT_R
    moffat = (1.0 + r * r) ** (-shape.beta)
    gauss = np.exp(-0.5 * r[:, None] ** 2 / MOFFAT_LADDER_VAR[None, :])
    wr = np.sqrt(r + 0.05)
    peaks, _ = nnls(gauss * wr[:, None], moffat * wr)
    moffat_flux = peaks * 2.0 * math.pi * MOFFAT_LADDER_VAR
    core_flux = shape.eta * 2.0 * math.pi * shape.core**2
    flux = np.append(moffat_flux, core_flux)
    var = np.append(MOFFAT_LADDER_VAR, shape.core**2)
    keep = flux > 1e-6 * flux.sum()
    return flux[keep] / flux[keep].sum(), var[keep]


def host_fractions(xy: np.ndarray, host: HostShape, psf: PsfShape, wave_aa: np.ndarray,
                   shifts: np.ndarray | None = None) -> np.ndarray:
    """Fraction of the host's flux collected by each spaxel at each wavelength.

    Parameters
    ----------
    xy : numpy.ndarray
        Shape ``(n, 2)`` spaxel centres [spaxel unit].
    host : HostShape
        The disk (centre in the frame of ``xy``).
    psf : PsfShape
        The PSF it is seen through.
    wave_aa : numpy.ndarray
        Shape ``(m,)`` wavelengths [Angstrom].
    shifts : numpy.ndarray, optional
        Shape ``(m, 2)`` displacement of the host at each wavelength (e.g. an ADR track).

    Returns
    -------
    numpy.ndarray
        Shape ``(m, n)``; sums to < 1 where the disk extends past ``xy``.
    """
    wave_aa = np.atleast_1d(np.asarray(wave_aa, dtype=float))
    alpha, _sigma = psf.at(wave_aa)
    p_w, p_v = psf_mixture(psf)
    cov_psf = _axes_covariance(alpha[:, None] ** 2 * p_v[None, :], psf.ab, psf.theta)  # (m, k, 2, 2)
    cov_host = _axes_covariance(host.scale**2 * EXP_MIXTURE_VAR, host.ab, host.theta)  # (j, 2, 2)
    cov = cov_psf[:, :, None] + cov_host[None, None] + HEXAGON_VAR * np.eye(2)  # (m, k, j, 2, 2)
    weight = p_w[:, None] * EXP_MIXTURE_WEIGHT[None, :]  # (k, j)
    a, b, d = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1]
    det = a * d - b * b
    centre = host.centre[None, :] + (np.zeros((wave_aa.size, 2)) if shifts is None else np.asarray(shifts))
    dx = xy[None, :, 0] - centre[:, 0:1]  # (m, n)
    dy = xy[None, :, 1] - centre[:, 1:2]
    q = (d[..., None] * dx[:, None, None] ** 2 - 2 * b[..., None] * dx[:, None, None] * dy[:, None, None]
         + a[..., None] * dy[:, None, None] ** 2) / det[..., None]  # (m, k, j, n)
    dens = np.exp(-0.5 * q) / (2.0 * math.pi * np.sqrt(det))[..., None]
    return np.einsum("kj,mkjn->mn", weight, dens) * SPAXEL_AREA


@dataclass(frozen=True)
class HostTest:
    """The model-selection test of a host component.

    Attributes
    ----------
    delta_chi2 : float
        chi2 without the host minus chi2 with it, on the same spaxels.
    n_extra : int
        Parameters the host adds (5 shape + one amplitude per metaslice).
    n_data : int
        Data points of the metaslice fit.
    dispersion : float
        ``max(1, chi2/dof)`` of the host fit (the over-dispersion the test allows for).
    delta_bic : float
        ``delta_chi2 / dispersion - n_extra ln(n_data)``: > 0 favours the host.
    host_fraction : float
        Host flux / point-source flux over the metaslices.
    kept : bool
        The verdict.
    reason : str
        Why (the first failed condition, or ``"warranted"``).
    """

    delta_chi2: float
    n_extra: int
    n_data: int
    dispersion: float
    delta_bic: float
    host_fraction: float
    kept: bool
    reason: str

    def as_dict(self) -> dict:
        """JSON-ready summary."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


MIN_HOST_FRACTION = 0.02
"""A host holding less than 2 % of the point source's flux is not worth modelling."""
MAX_HOST_FRACTION = 20.0
"""A host holding more than 20 times the point source's flux (or a point source with no flux
left) is not a transient on its galaxy but a fit that gave the target's light to the disk
(an unmodelled neighbour, a merged first fit): the host is refused."""


def host_fraction(host_flux: float, point_flux: float) -> float:
    """Host / point-source flux, bounded to ``[-MAX, MAX]`` with ``MAX = 10 * MAX_HOST_FRACTION``.

    A point source with no positive flux gives the bound (it was ~1e31 from a division by a
    floor of 1e-30), so the value is always finite and fails the test.
    """
    cap = 10.0 * MAX_HOST_FRACTION
    if not (np.isfinite(host_flux) and np.isfinite(point_flux)):
        return cap
    if point_flux <= 0:
        return cap if host_flux >= 0 else -cap
    return float(np.clip(host_flux / point_flux, -cap, cap))


def host_warranted(chi2_point: float, chi2_host: float, *, n_extra: int, n_data: int, dof_host: int,
                   host_fraction: float, host: HostShape, fwhm_units: float,
                   neighbours: np.ndarray | None = None) -> HostTest:
    """Decide whether the host component is warranted.

    Conditions, in order:

    1. Bayesian information criterion: ``delta BIC = (chi2_point - chi2_host) / c - n_extra
       ln(n_data) > 0`` with ``c = max(1, chi2_host / dof_host)``. Dividing by the reduced
       chi2 (a quasi-likelihood correction) keeps an imperfect PSF model, whose residuals any
       extra smooth component partly absorbs, from passing the test on bright isolated stars.
    2. The host holds at least :data:`MIN_HOST_FRACTION` and at most :data:`MAX_HOST_FRACTION`
       of the point source's flux (:func:`host_fraction`).
    3. It is not a neighbouring star's residual: its centre is more than one PSF FWHM from
       every modelled neighbour (``neighbours``, shape ``(k, 2)``, same frame as ``host``).
    4. It is resolved: its scale length is not at the lower bound :data:`MIN_SCALE_UNITS`.

    Returns
    -------
    HostTest
        With the verdict in ``kept`` and ``reason``.
    """
    disp = max(1.0, chi2_host / max(dof_host, 1))
    dchi2 = chi2_point - chi2_host
    dbic = dchi2 / disp - n_extra * math.log(max(n_data, 2))
    near = (0.0 if neighbours is None or not len(neighbours)
            else float(np.min(np.hypot(*(np.asarray(neighbours) - host.centre).T))))
    if not dbic > 0.0:
        reason = "BIC does not favour a host"
    elif host_fraction < MIN_HOST_FRACTION:
        reason = f"host below {100 * MIN_HOST_FRACTION:.0f}% of the point source"
    elif host_fraction > MAX_HOST_FRACTION:
        reason = f"host above {MAX_HOST_FRACTION:.0f} times the point source (the point source lost its light)"
    elif neighbours is not None and len(neighbours) and near <= fwhm_units:
        reason = "centred on a neighbouring star"
    elif host.scale <= 1.05 * MIN_SCALE_UNITS:
        reason = "unresolved (scale length at its lower bound)"
    else:
        reason = "warranted"
    return HostTest(delta_chi2=float(dchi2), n_extra=int(n_extra), n_data=int(n_data), dispersion=float(disp),
                    delta_bic=float(dbic), host_fraction=float(host_fraction), kept=reason == "warranted", reason=reason)


def seed_host(xy: np.ndarray, residual: np.ndarray, variance: np.ndarray, fwhm_units: float,
              region_radius: float) -> HostShape | None:
    """A starting disk from the broad-band residual of a point-source fit.

    The residual is smoothed with a Gaussian of one PSF FWHM (an extended source survives,
    noise does not); the start is the brightest smoothed spaxel within ``region_radius`` of
    the origin, with a scale length of one FWHM, round. ``None`` if that peak is below five
    times its noise (nothing extended left to model).

    Parameters
    ----------
    xy : numpy.ndarray
        Shape ``(n, 2)`` spaxel positions relative to the point source's start [spaxel unit].
    residual, variance : numpy.ndarray
        Shape ``(n,)`` data - point source - background plane, and its variance.
    fwhm_units : float
        PSF FWHM [spaxel unit].
    region_radius : float
        Largest distance of the start from the origin [spaxel unit].
    """
    from engine.science.scene import _smooth

    good = np.isfinite(residual) & np.isfinite(variance) & (variance > 0)
    if good.sum() < 12:
        return None
    sigma = fwhm_units / 2.3548
    r = np.where(good, residual, 0.0)
    sm, support = _smooth(xy, r, good.astype(float), sigma)
    # Noise of the normalised smoothing: sum k^2 var / (sum k)^2, approximated by var / n_eff.
    n_eff = np.maximum(support, 1.0) * 0.5
    noise = np.sqrt(_smooth(xy, np.where(good, variance, 0.0), good.astype(float), sigma)[0] / n_eff)
    inside = good & (np.hypot(*xy.T) <= region_radius)
    if not inside.any():
        return None
    k = int(np.argmax(np.where(inside, sm, -np.inf)))
    if not sm[k] > 5.0 * noise[k]:
        return None
    return HostShape(x=float(xy[k, 0]), y=float(xy[k, 1]), scale=float(np.clip(fwhm_units, MIN_SCALE_UNITS + 0.5, 6.0)),
                     ab=0.8, theta=0.0)
