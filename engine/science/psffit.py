"""PSF fit on metaslices, ADR, and forced photometry of every wavelength slice.

1. Metaslices: the cube averaged (inverse-variance) over ``n`` equal bins of 4000-8000 A.
2. Each metaslice alone: position and width with a default shape (robust start).
3. All metaslices jointly: one shape (alpha at 7000 A, beta, eta, core, ab, theta, chromatic
   exponent rho) and a position per metaslice; amplitudes and the tilted background plane are
   linear and solved exactly at every step (variable projection); spaxels deviating by more
   than 5 sigma (cosmic rays, neighbours) are masked and the fit repeated.
4. ADR: the physical model fitted to the metaslice positions (:mod:`engine.science.adr`).
5. Forced photometry: shape and position fixed at every cube wavelength, the amplitude and
   background plane of all 220 slices solved as one batched weighted linear least-squares
   problem with the cube variance, with iterative 5-sigma clipping of outlying spaxels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from engine.errors import AlgorithmError
from engine.science.adr import AdrFit, Meteo, fit_adr
from engine.science.host import MAX_SCALE_UNITS, MIN_SCALE_UNITS, HostShape, HostTest, host_fractions, host_warranted, seed_host
from engine.science.psf import REF_WAVE_AA, PsfShape, spaxel_fractions
from engine.science.scene import Companions, find_companions

DEFAULT_SHAPE = PsfShape()


@dataclass(frozen=True)
class ShapePrior:
    """A Gaussian prior on the PSF's profile family, from a bright star of the same night.

    The seeing sets the width (``alpha``) and the telescope the ellipticity of each exposure,
    but the profile's family (Moffat ``beta``, Gaussian-core ``eta`` and ``core``, chromatic
    exponent ``rho``) changes slowly through a night. On a faint target those four are poorly
    constrained and trade with each other and with the background plane, moving light between
    the PSF's core and its wings differently at each wavelength; the standard star's values,
    measured at high S/N, pin them (bright targets still move them: the prior is soft).

    Attributes
    ----------
    shape : PsfShape
        The standard's fitted shape (only ``beta``, ``eta``, ``core``, ``rho`` are used).
    sigma : tuple of float
        Prior widths of ``beta``, ``eta``, ``core``, ``rho``.
    source : str
        Where the values come from (recorded in the products).
    """

    shape: PsfShape
    sigma: tuple[float, float, float, float] = (0.3, 0.15, 0.05, 0.03)
    source: str = ""

    def residuals(self, params) -> np.ndarray:
        """Normalised deviations of ``params[1:4]`` and ``params[6]`` from the prior; shape ``(4,)``."""
        s = self.shape
        return np.array([(params[1] - s.beta) / self.sigma[0], (params[2] - s.eta) / self.sigma[1],
                         (params[3] - s.core) / self.sigma[2], (params[6] - s.rho) / self.sigma[3]])


@dataclass(frozen=True)
class Metaslices:
    """Cube averaged over wavelength bins: ``wave`` (m,), ``data``/``var`` (m, n)."""

    wave: np.ndarray
    data: np.ndarray
    var: np.ndarray
    edges: np.ndarray


def make_metaslices(wave: np.ndarray, flux: np.ndarray, var: np.ndarray, n: int, lo: float = 4000.0,
                    hi: float = 8000.0) -> Metaslices:
    """Inverse-variance averages of ``flux`` (n_spax, n_wave) over ``n`` equal bins of [lo, hi]."""
    edges = np.linspace(lo, hi, n + 1)
    data, err, centres = [], [], []
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (wave >= a) & (wave < b)
        f, v = flux[:, sel], var[:, sel]
        w = np.where(np.isfinite(f) & np.isfinite(v) & (v > 0), 1.0 / np.where(v > 0, v, 1.0), 0.0)
        sw = w.sum(1)
        data.append(np.where(sw > 0, (w * np.nan_to_num(f)).sum(1) / np.where(sw > 0, sw, 1.0), np.nan))
        err.append(np.where(sw > 0, 1.0 / np.where(sw > 0, sw, 1.0), np.nan))
        centres.append(0.5 * (a + b))
    return Metaslices(wave=np.array(centres), data=np.array(data), var=np.array(err), edges=edges)


def _basis(frac: np.ndarray, xy: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
    """Columns: target PSF, companions (if any), 1, x, y; shape (m, n, p)."""
    cols = [frac[:, :, None]]
    if extra is not None and extra.shape[2]:
        cols.append(extra)
    cols += [np.ones_like(frac)[:, :, None], np.broadcast_to(xy[:, 0], frac.shape)[:, :, None],
             np.broadcast_to(xy[:, 1], frac.shape)[:, :, None]]
    return np.concatenate(cols, axis=2)


def _plane_solve(frac: np.ndarray, d: np.ndarray, w: np.ndarray, xy: np.ndarray,
                 extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice weighted LSQ of ``d = A frac + sum_j C_j extra_j + b0 + bx x + by y``.

    Shapes: ``frac``, ``d``, ``w`` (m, n); ``extra`` (m, n, k). Returns coef (m, 1+k+3), model (m, n).
    """
    basis = _basis(frac, xy, extra)
    p = basis.shape[2]
    bw = basis * w[:, :, None]
    ata = np.einsum("mnp,mnq->mpq", bw, basis) + np.eye(p)[None] * 1e-12 * (1 + np.abs(np.einsum("mnp,mnp->mp", bw, basis)).max())
    atb = np.einsum("mnp,mn->mp", bw, np.nan_to_num(d))
    coef = np.linalg.solve(ata, atb[:, :, None])[:, :, 0]
    return coef, np.einsum("mnp,mp->mn", basis, coef)


def companion_basis(xy: np.ndarray, shape: PsfShape, wave: np.ndarray, centres: np.ndarray,
                    comp: Companions | None, host: HostShape | None = None) -> np.ndarray | None:
    """Extra basis columns (m, n, k): one PSF per neighbour, then the host galaxy (if any).

    Every component follows the target's ADR track ``centres`` (m, 2): the neighbours relative
    to the track's mean, the host relative to the track at 7000 A (``host`` is its centre there).
    """
    cols = []
    if comp is not None and comp.n:
        mean_c = centres.mean(axis=0)
        cols += [spaxel_fractions(xy, q + (centres - mean_c), shape, wave) for q in comp.points]
    if host is not None:
        at_ref = np.array([np.interp(REF_WAVE_AA, wave, centres[:, i]) for i in (0, 1)])
        cols.append(host_fractions(xy, host, shape, wave, shifts=centres - at_ref))
    return np.stack(cols, axis=2) if cols else None


@dataclass
class PsfFit:
    """Result of the metaslice PSF fit."""

    shape: PsfShape
    meta_wave: np.ndarray
    meta_xy: np.ndarray
    meta_err: np.ndarray
    meta_amp: np.ndarray
    adr: AdrFit
    fit_mask: np.ndarray
    """Shape ``(n_spax,)`` spaxels used."""
    chi2_dof: float
    clipped: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    companions: Companions = field(default_factory=Companions.none)
    """Neighbouring point sources (absolute positions), modelled as extra PSFs."""
    host: HostShape | None = None
    """The host galaxy (absolute centre) when the model selection kept it."""
    host_test: HostTest | None = None
    """The model-selection test of the host (``None`` when no host was tried)."""
    prior_source: str = ""
    """Where the profile-family prior came from (empty: fitted freely)."""


def _unpack(params, m: int) -> tuple[PsfShape, np.ndarray, HostShape | None]:
    """Parameter vector -> PSF shape, metaslice positions (m, 2), host (when 5 more values follow)."""
    a, beta, eta, core, ab, theta, rho = params[:7]
    shape = PsfShape(alpha=a, beta=beta, eta=eta, core=core, ab=ab, theta=theta, rho=rho)
    pos = np.asarray(params[7 : 7 + 2 * m]).reshape(m, 2)
    host = HostShape(*params[7 + 2 * m : 12 + 2 * m]) if len(params) >= 12 + 2 * m else None
    return shape, pos, host


def _scene_model(params, ms: Metaslices, xy_rel, w, comp=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Target PSF fractions (m, n), linear coefficients (m, p) and model (m, n) of the scene."""
    shape, pos, host = _unpack(params, ms.wave.size)
    frac = spaxel_fractions(xy_rel, pos, shape, ms.wave)
    extra = companion_basis(xy_rel, shape, ms.wave, pos, comp, host)
    coef, model = _plane_solve(frac, ms.data, w, xy_rel, extra)
    return frac, coef, model


def _joint_residuals(params, ms: Metaslices, xy_rel, w, mask, comp=None, prior: ShapePrior | None = None):
    """Normalised residuals of the scene model, ``(m * n,)``, then the prior's (4,) if any."""
    ww = w * mask[None, :]
    _frac, _coef, model = _scene_model(params, ms, xy_rel, ww, comp)
    r = (np.sqrt(ww) * np.nan_to_num(ms.data - model)).ravel()
    return r if prior is None else np.concatenate([r, prior.residuals(params)])


def fit_psf(
    wave: np.ndarray, flux: np.ndarray, var: np.ndarray, xy: np.ndarray, guess: tuple[float, float], *,
    n_meta: int, fit_mask: np.ndarray, meteo: Meteo, airmass: float, parallactic_deg: float, rotation_deg: float,
    guess_err: float = 3.0, find_others: bool = True, find_host: bool = False,
    shape_prior: ShapePrior | None = None,
) -> PsfFit:
    """Fit the PSF shape and the ADR of a point source.

    Parameters
    ----------
    wave, flux, var, xy : numpy.ndarray
        The cube (``(n_wave,)``, ``(n_spax, n_wave)`` twice, ``(n_spax, 2)``).
    guess : (float, float)
        Starting position [spaxel unit]; the fit stays within ``guess_err`` of it.
    fit_mask : numpy.ndarray
        Shape ``(n_spax,)`` spaxels to fit.
    find_others : bool
        Look for neighbouring point sources in the residual and model them.
    find_host : bool
        Try a host-galaxy component (:mod:`engine.science.host`) and keep it when the model
        selection warrants it (science targets; never standards).
    shape_prior : ShapePrior, optional
        Soft prior on the profile family (science targets: from the night's nearest standard).

    Raises
    ------
    AlgorithmError
        Too few spaxels or a fit that does not converge.
    """
    if fit_mask.sum() < 12:
        raise AlgorithmError(f"only {int(fit_mask.sum())} spaxels to fit the PSF", {"n_spaxels": int(fit_mask.sum())})
    ms = make_metaslices(wave, flux, var, n_meta)
    origin = np.asarray(guess, dtype=float)
    xy_rel = xy[fit_mask] - origin
    d = ms.data[:, fit_mask]
    w = np.where(np.isfinite(d) & np.isfinite(ms.var[:, fit_mask]), 1.0 / ms.var[:, fit_mask], 0.0)
    ms_fit = Metaslices(wave=ms.wave, data=d, var=ms.var[:, fit_mask], edges=ms.edges)
    m = ms.wave.size
    # Start: each metaslice alone (position and width; default shape).
    starts = []
    for k in range(m):
        def r1(p, k=k):
            shape = DEFAULT_SHAPE.with_(alpha=p[2], rho=0.0)
            frac = spaxel_fractions(xy_rel, p[None, :2], shape, ms.wave[k : k + 1])
            _c, model = _plane_solve(frac, d[k : k + 1], w[k : k + 1], xy_rel)
            return (np.sqrt(w[k]) * np.nan_to_num(d[k] - model[0])).ravel()

        b = guess_err
        res = least_squares(r1, [0.0, 0.0, 3.0], bounds=([-b, -b, 0.8], [b, b, 12.0]), x_scale=[0.3, 0.3, 0.5])
        starts.append(res.x)
    starts = np.array(starts)
    fam = shape_prior.shape if shape_prior is not None else DEFAULT_SHAPE
    p0 = [float(np.median(starts[:, 2])), fam.beta, fam.eta, fam.core, 0.95, 0.0, fam.rho] + list(starts[:, :2].ravel())
    lo = [0.8, 1.3, 0.0, 0.2, 0.6, -np.pi / 2, -1.0] + [-guess_err - 1] * (2 * m)
    hi = [15.0, 8.0, 5.0, 1.5, 1.0, np.pi / 2, 0.5] + [guess_err + 1] * (2 * m)
    p0 = np.clip(p0, np.array(lo) + 1e-6, np.array(hi) - 1e-6)
    mask = np.ones(xy_rel.shape[0], bool)
    res = None
    for _ in range(2):
        res = least_squares(_joint_residuals, p0, bounds=(lo, hi), args=(ms_fit, xy_rel, w, mask, None, shape_prior),
                            x_scale="jac", max_nfev=200)
        bad = _outliers(res.fun[:d.size].reshape(m, -1), mask)
        if not (bad & mask).any():
            break
        mask &= ~bad
        p0 = res.x
    comp = None
    if find_others:
        comp = _companions(res.x, ms_fit, xy_rel, w, mask, m)
        if comp.n:
            res = least_squares(_joint_residuals, res.x, bounds=(lo, hi),
                                args=(ms_fit, xy_rel, w, mask, comp, shape_prior), x_scale="jac", max_nfev=200)
    host = host_test = None
    if find_host:
        res, mask, host, host_test = _host_stage(res, ms_fit, xy_rel, w, mask, comp, lo, hi, shape_prior)
    p = res.x
    n_lin = 4 + (comp.n if comp is not None else 0) + (host is not None)
    dof = max(int((w[:, mask] > 0).sum()) - p.size - n_lin * m, 1)
    chi2 = float(np.sum(res.fun[:d.size] ** 2) / dof)
    try:
        cov = np.linalg.inv(res.jac.T @ res.jac) * max(chi2, 1.0)
        perr = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        perr = np.full(p.size, 0.1)
    shape, pos_rel, _ = _unpack(p, m)
    pos = pos_rel + origin
    pos_err = np.maximum(perr[7 : 7 + 2 * m].reshape(m, 2), 1e-3)
    _frac, coef, _ = _scene_model(p, ms_fit, xy_rel, w * mask[None, :], comp)
    adr = fit_adr(ms.wave, pos, pos_err, airmass=airmass, parallactic_deg=parallactic_deg,
                  rotation_deg=rotation_deg, meteo=meteo)
    used = fit_mask.copy()
    used[np.flatnonzero(fit_mask)[~mask]] = False
    absolute = Companions(points=comp.points + origin) if comp is not None and comp.n else Companions.none()
    return PsfFit(shape=shape, meta_wave=ms.wave, meta_xy=pos, meta_err=pos_err, meta_amp=coef[:, 0], adr=adr,
                  fit_mask=used, chi2_dof=chi2, clipped=np.flatnonzero(fit_mask)[~mask], companions=absolute,
                  host=host.shifted(*origin) if host is not None else None, host_test=host_test,
                  prior_source=shape_prior.source if shape_prior is not None else "")


def _broadband_residual(params, ms: Metaslices, xy_rel, w, mask, comp=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Data minus the scene model averaged over the metaslices: residual (n,), variance (n,), coef (m, p)."""
    _frac, coef, model = _scene_model(params, ms, xy_rel, w * mask[None, :], comp)
    resid = ms.data - model
    ww = np.where(np.isfinite(resid), w, 0.0)
    sw = ww.sum(0)
    broad = np.where(sw > 0, (ww * np.nan_to_num(resid)).sum(0) / np.where(sw > 0, sw, 1.0), np.nan)
    var = np.where(sw > 0, 1.0 / np.where(sw > 0, sw, 1.0), np.nan)
    return broad, var, coef


def _companions(params, ms: Metaslices, xy_rel, w, mask, m) -> Companions:
    """Neighbours in the residual of a target-only fit (relative coordinates)."""
    shape, pos, _ = _unpack(params, m)
    broad, var, coef = _broadband_residual(params, ms, xy_rel, w, mask)
    return find_companions(xy_rel, broad, var, pos.mean(axis=0), shape.fwhm_units(), region=np.ones(len(xy_rel), bool),
                           target_flux=float(np.nanmean(coef[:, 0])))


HOST_LO = [-12.0, -12.0, MIN_SCALE_UNITS, 0.3, -np.pi]
HOST_HI = [12.0, 12.0, MAX_SCALE_UNITS, 1.0, np.pi]
"""Bounds of the host parameters: centre (relative to the start) [spaxel unit], scale length
[spaxel unit], axis ratio, angle [rad] (a wide range so that the angle never sticks at a bound)."""


def _host_stage(res, ms: Metaslices, xy_rel, w, mask, comp, lo, hi, prior: ShapePrior | None = None):
    """Try a host galaxy in the scene; keep it if :func:`engine.science.host.host_warranted`.

    1. Start: :func:`engine.science.host.seed_host` on the residual of the point-source fit.
    2. The disk alone (PSF and positions fixed) on all spaxels. If this already fails the
       test by too small a chi2 gain or by sitting on a neighbour, stop (the joint fit below
       can only lower the chi2 a little more; an unresolved disk is not final yet: the PSF
       still holds the host's core).
    3. Everything jointly on all spaxels, with one 5-sigma clipping pass; both models' chi2
       on the spaxels neither rejected; :func:`engine.science.host.host_warranted` decides.

    Returns the least-squares result, the spaxel mask, the host (relative) or ``None``, the test.
    """
    m = ms.wave.size
    shape, _pos, _ = _unpack(res.x, m)
    broad, var, _coef = _broadband_residual(res.x, ms, xy_rel, w, mask, comp)
    seed = seed_host(xy_rel, broad, var, shape.fwhm_units(), region_radius=float(np.max(np.hypot(*xy_rel.T))))
    if seed is None:
        return res, mask, None, None
    base = np.asarray(res.x)

    def host_only(hp):
        return _joint_residuals(np.concatenate([base, hp]), ms, xy_rel, w, np.ones_like(mask), comp)

    pre = least_squares(host_only, [seed.x, seed.y, seed.scale, seed.ab, seed.theta], bounds=(HOST_LO, HOST_HI),
                        x_scale=[0.5, 0.5, 0.5, 0.1, 0.3], max_nfev=60)
    p0 = np.concatenate([base, pre.x])
    test = _host_test(base, p0, ms, xy_rel, w, mask, comp, shape)
    if test.reason.startswith(("BIC", "centred on a neighbour")):
        return res, mask, None, test
    hmask = np.ones_like(mask)
    lo_h, hi_h = list(lo) + HOST_LO, list(hi) + HOST_HI
    p0 = np.clip(p0, np.array(lo_h) + 1e-6, np.array(hi_h) - 1e-6)
    for _ in range(2):
        hres = least_squares(_joint_residuals, p0, bounds=(lo_h, hi_h), args=(ms, xy_rel, w, hmask, comp, prior),
                             x_scale="jac", max_nfev=200)
        bad = _outliers(hres.fun[:ms.data.size].reshape(m, -1), hmask)
        if not (bad & hmask).any():
            break
        hmask &= ~bad
        p0 = hres.x
    test = _host_test(base, hres.x, ms, xy_rel, w, mask & hmask, comp, shape)
    if not test.kept:
        return res, mask, None, test
    host = _unpack(hres.x, m)[2]
    return hres, hmask, HostShape(host.x, host.y, host.scale, host.ab, float(host.theta % np.pi)), test


def _outliers(r: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Spaxels (n,) with a normalised residual ``r`` (m, n) beyond 5 robust sigma in any metaslice."""
    return np.any(np.abs(r) > 5.0 * max(1.4826 * np.median(np.abs(r[:, mask])), 1.0), axis=0)


def _host_test(p_point, p_host, ms: Metaslices, xy_rel, w, common, comp, shape: PsfShape) -> HostTest:
    """:func:`engine.science.host.host_warranted` for two parameter vectors on the spaxels ``common``."""
    m = ms.wave.size
    chi2_point = float(np.sum(_joint_residuals(p_point, ms, xy_rel, w, common, comp) ** 2))
    chi2_host = float(np.sum(_joint_residuals(p_host, ms, xy_rel, w, common, comp) ** 2))
    n_data = int((w[:, common] > 0).sum())
    n_comp = comp.n if comp is not None else 0
    _f, hcoef, _ = _scene_model(p_host, ms, xy_rel, w * common[None, :], comp)
    host_frac = float(np.sum(hcoef[:, 1 + n_comp]) / max(np.sum(hcoef[:, 0]), 1e-30))
    return host_warranted(chi2_point, chi2_host, n_extra=5 + m, n_data=n_data,
                          dof_host=n_data - len(p_host) - (5 + n_comp) * m, host_fraction=host_frac,
                          host=_unpack(p_host, m)[2], fwhm_units=shape.fwhm_units(),
                          neighbours=comp.points if comp is not None else None)


@dataclass(frozen=True)
class ForcedPhotometry:
    """Spectrum of the point source and the model of the fitted spaxels.

    Attributes
    ----------
    flux, var : numpy.ndarray
        Shape ``(n_wave,)`` total flux of the source (cube units) and its variance.
    model : numpy.ndarray
        Shape ``(n_spax, n_wave)`` PSF + background model (NaN outside the fitted spaxels).
    background : numpy.ndarray
        Shape ``(n_wave, 3)`` plane coefficients ``b0, bx, by``.
    clipped : numpy.ndarray
        Shape ``(n_spax, n_wave)`` bool: samples rejected as outliers.
    centres : numpy.ndarray
        Shape ``(n_wave, 2)`` source position used at each wavelength.
    host_flux : numpy.ndarray or None
        Shape ``(n_wave,)`` total flux of the host galaxy (cube units), when one is modelled.
    """

    flux: np.ndarray
    var: np.ndarray
    model: np.ndarray
    background: np.ndarray
    clipped: np.ndarray
    centres: np.ndarray
    host_flux: np.ndarray | None = None


def forced_photometry(
    wave: np.ndarray, flux: np.ndarray, var: np.ndarray, xy: np.ndarray, fit_mask: np.ndarray,
    shape: PsfShape, centres: np.ndarray, *, lstep: int = 1, clip: float = 5.0, n_iter: int = 3,
    companions: Companions | None = None, host: HostShape | None = None,
) -> ForcedPhotometry:
    """Amplitude and background plane of every slice, the PSF fixed; one batched solve.

    ``lstep > 1`` averages that many adjacent slices before the fit and interpolates the
    spectrum back to every slice (for faint sources). ``companions`` and ``host`` (absolute
    positions, from :func:`fit_psf`) add one free amplitude each per slice.
    """
    sel = np.flatnonzero(fit_mask)
    n_wave = wave.size
    groups = [np.arange(i, min(i + lstep, n_wave)) for i in range(0, n_wave, lstep)]
    gw = np.array([wave[g].mean() for g in groups])
    d = np.array([np.nanmean(flux[sel][:, g], axis=1) for g in groups])
    v = np.array([np.nanmean(var[sel][:, g], axis=1) / len(g) for g in groups])
    gc = np.array([centres[g].mean(axis=0) for g in groups])
    frac = spaxel_fractions(xy[sel], gc, shape, gw)
    extra = companion_basis(xy[sel], shape, gw, gc, companions, host)
    good = np.isfinite(d) & np.isfinite(v) & (v > 0)
    w = np.where(good, 1.0 / np.where(good, v, 1.0), 0.0)
    clipped = np.zeros_like(good)
    for _ in range(n_iter):
        coef, model = _plane_solve(frac, d, w * ~clipped, xy[sel], extra)
        z = np.where(good, (d - model) * np.sqrt(w), 0.0)
        new = clipped | (np.abs(z) > clip)
        if np.array_equal(new, clipped):
            break
        clipped = new
    coef, model = _plane_solve(frac, d, w * ~clipped, xy[sel], extra)
    basis = _basis(frac, xy[sel], extra)
    ww = w * ~clipped
    ata = np.einsum("mnp,mnq->mpq", basis * ww[:, :, None], basis) + np.eye(basis.shape[2])[None] * 1e-12
    cov = np.linalg.pinv(ata)
    amp, amp_var = coef[:, 0], cov[:, 0, 0]
    if lstep > 1:
        amp_full = np.interp(wave, gw, amp)
        var_full = np.interp(wave, gw, amp_var) * lstep
        full_coef = np.stack([np.interp(wave, gw, coef[:, k]) for k in range(coef.shape[1])], 1)
        full_frac = spaxel_fractions(xy[sel], centres, shape, wave)
        full_extra = companion_basis(xy[sel], shape, wave, centres, companions, host)
        full_model = np.einsum("mnp,mp->mn", _basis(full_frac, xy[sel], full_extra), full_coef)
    else:
        amp_full, var_full, full_model = amp, amp_var, model
    bkg = coef[:, -3:] if lstep == 1 else np.stack([np.interp(wave, gw, coef[:, k]) for k in range(-3, 0)], 1)
    model_all = np.full(flux.shape, np.nan, dtype=np.float32)
    model_all[sel] = full_model.T
    clipped_all = np.zeros(flux.shape, bool)
    if lstep == 1:
        clipped_all[sel] = clipped.T
    host_flux = None
    if host is not None:
        k = 1 + (companions.n if companions is not None else 0)
        host_flux = coef[:, k] if lstep == 1 else np.interp(wave, gw, coef[:, k])
    return ForcedPhotometry(flux=amp_full, var=var_full, model=model_all, background=bkg, clipped=clipped_all,
                            centres=centres, host_flux=host_flux)
