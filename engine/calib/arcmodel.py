"""Forward model of the arc spectra: the final dispersion law of every trace.

Each trace's extracted arc spectrum of lamp ``m`` is modelled as::

    f_k(c) = sum_l a_ml (A_km + B_km t_l) G(c; x_k(lambda_l), s_k(lambda_l)) + b_km(c)

* ``a_ml``: the lamp's line amplitudes, **shared by every trace** (one lamp lights every
  lenslet), measured from all traces at once;
* ``x_k(lambda) = c0 + c1 t + c2 t^2 + c3 t^3`` with ``t = lambda**-0.5 - 7000**-0.5``: the
  trace's dispersion law (:mod:`engine.calib.wavesol`). A prism law with a ``t^4`` term at the
  edge of the priors leaves up to ~0.01 px (0.4 A) of form error in the red; a night-wide
  ``t^4`` term was tried and rejected: where the blue lines are weak it traded against the
  per-trace ``c3`` and took 1 A from the blue end (seed 107);
* ``s_k = s0 + s1 t``: the line-spread sigma, linear in ``t``;
* ``A + B t``: the trace's throughput for the lamp, smooth in wavelength;
* ``b``: a quadratic background in the column (scattered light);
* ``G``: a pixel-integrated unit Gaussian.

Why a forward model: most of SEDM's arc features are blends at R ~ 100 (Xe 8232/8267/8282,
Hg 5771/5792, ...). A line-by-line fit with catalogue amplitude ratios is biased by 0.1-0.2 px
when the lamp's ratios differ from the catalogue (lamps age; the catalogue's amplitudes are
another lamp's), and free ratios per trace are degenerate with the blend's position. The
ratios are the same on every trace, so the whole night measures them, and the law ties every
component of every blend to all the other lines of the trace.

The fit alternates a linear solve of the amplitudes (all traces, per lamp, non-negative) with
damped Gauss-Newton steps of each trace's six non-linear parameters (``c0..c3, s0, s1``; the
throughput and background are solved exactly inside every step). Samples more than
``CLIP_SIGMA`` robust sigmas off the model (cosmic rays, a neighbour's light) are dropped.
Everything here is a pure function of its arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from engine import refdata
from engine.calib.arcid import law_x, t_of

HALF_TAPS = 6
"""Columns modelled on each side of a line centre (> 4 sigma of the widest LSF)."""
LAMP_WAVE_RANGE_AA = (3300.0, 11000.0)
"""Catalogue lines modelled [Angstrom] (lines outside a trace's window drop out by themselves)."""
CLIP_SIGMA = 6.0
"""Samples this many robust sigmas off the model are dropped."""
SIGMA_BOUNDS_PX = (0.4, 3.5)
"""Line-spread sigma allowed [pixel]."""
MAX_STEP_PX = 0.5
"""Largest change of a line's column in one Gauss-Newton step [pixel]."""
MAX_MOVE_PX = 3.0
"""A trace whose law moves further than this from its start (over 3700-9300 A) is not refined."""
SUBSET_TRACES = 400
"""Traces (evenly spread) on which the amplitudes are fitted jointly with their laws."""
JOINT_ITERATIONS = 8
"""Joint Gauss-Newton steps of the amplitudes and the subset's laws."""
TRACE_STEPS = 4
"""Gauss-Newton steps of every trace's law with the amplitudes fixed."""
MIN_TRACES = 10
"""Fewer traces to fit than this and nothing is refined (the amplitudes need many traces)."""
MIN_SAMPLES = 100
"""A trace needs this many extracted arc samples (all lamps) beyond its parameters to be refined."""
_OFFS = np.arange(-HALF_TAPS, HALF_TAPS + 1)
_SQRT2PI = np.sqrt(2.0 * np.pi)
_CHECK_T = t_of(np.linspace(3700.0, 9300.0, 15))


@dataclass(frozen=True)
class ArcModelFit:
    """Result of :func:`fit_arc_model` for ``n`` traces.

    Attributes
    ----------
    coef : numpy.ndarray
        Shape ``(n, 4)`` dispersion law ``x = c0 + c1 t + c2 t^2 + c3 t^3`` [pixel].
    lsf : numpy.ndarray
        Shape ``(n, 2)`` line-spread sigma ``s0 + s1 t`` [pixel].
    chi2 : numpy.ndarray
        Shape ``(n,)`` reduced chi-square of the model over the three lamps.
    ok : numpy.ndarray
        Shape ``(n,)`` bool: the trace was refined (converged, moved less than
        ``MAX_MOVE_PX``, LSF within bounds); elsewhere ``coef`` is the starting law.
    amplitudes : dict
        ``{lamp: (waves, amps)}``: the lamp's measured line amplitudes (relative to its
        brightest) and their vacuum wavelengths [Angstrom].
    """

    coef: np.ndarray
    lsf: np.ndarray
    chi2: np.ndarray
    ok: np.ndarray
    amplitudes: dict


@dataclass
class _Lamp:
    """Data and state of one lamp (internal, mutable while fitting)."""

    waves: np.ndarray
    t: np.ndarray
    amp: np.ndarray
    data: np.ndarray
    weight: np.ndarray
    lin: np.ndarray | None = None


def _catalogue(lamp: str) -> tuple[np.ndarray, np.ndarray]:
    lines = [ln for ln in refdata.arc_lines(lamp) if LAMP_WAVE_RANGE_AA[0] <= ln.wave_aa <= LAMP_WAVE_RANGE_AA[1]]
    waves = np.array([ln.wave_aa for ln in lines])
    amps = np.array([ln.amplitude for ln in lines], dtype=float)
    top = np.nanmax(amps) if np.isfinite(amps).any() else 1.0
    return waves, np.where(np.isfinite(amps), amps / top, 0.03)


def _law(coef: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Columns ``(n, m)`` of ``t`` (shape ``(m,)``) under laws ``coef`` (shape ``(n, 4)``)."""
    return law_x(coef, t)


def _profiles(xw: np.ndarray, sig: np.ndarray, n_cols: int):
    """Pixel-integrated Gaussians of centres ``xw`` and sigmas ``sig`` (both ``(n, m)``).

    Returns flat sample indices ``(n, m, T)`` (``n * n_cols`` where off the window), the
    profile and its derivatives with respect to the centre and to sigma.
    """
    n = xw.shape[0]
    cols = np.floor(xw).astype(np.int64)[..., None] + _OFFS
    s = sig[..., None]
    z_hi = (cols + 0.5 - xw[..., None]) / s
    z_lo = z_hi - 1.0 / s
    g = ndtr(z_hi) - ndtr(z_lo)
    p_hi, p_lo = np.exp(-0.5 * z_hi * z_hi) / _SQRT2PI, np.exp(-0.5 * z_lo * z_lo) / _SQRT2PI
    dg_dx = -(p_hi - p_lo) / s
    dg_ds = -(p_hi * z_hi - p_lo * z_lo) / s
    inside = (cols >= 0) & (cols < n_cols)
    flat = np.where(inside, np.arange(n)[:, None, None] * n_cols + cols, n * n_cols)
    return flat, g, dg_dx, dg_ds


def _scatter(flat: np.ndarray, vals: np.ndarray, n: int, n_cols: int) -> np.ndarray:
    out = np.bincount(flat.ravel(), weights=vals.ravel(), minlength=n * n_cols + 1)
    return out[: n * n_cols].reshape(n, n_cols)


def _linear_basis(lamp: _Lamp, prof, n: int, n_cols: int) -> np.ndarray:
    """Basis ``(n, L, 5)``: the lamp's lines times 1 and t, and a quadratic background."""
    flat, g = prof[0], prof[1]
    p1 = _scatter(flat, lamp.amp[None, :, None] * g, n, n_cols)
    p2 = _scatter(flat, (lamp.amp * lamp.t)[None, :, None] * g, n, n_cols)
    u = (np.arange(n_cols) - 0.5 * n_cols) / n_cols
    ones = np.ones((n, n_cols))
    return np.stack([p1, p2, ones, ones * u, ones * u * u], axis=2)


def _wls(basis: np.ndarray, d: np.ndarray, w: np.ndarray) -> np.ndarray:
    bw = basis * w[:, :, None]
    ata = bw.transpose(0, 2, 1) @ basis
    atb = (bw.transpose(0, 2, 1) @ d[:, :, None])[:, :, 0]
    ata += np.eye(ata.shape[1])[None] * 1e-9 * np.maximum(np.trace(ata, axis1=1, axis2=2), 1e-30)[:, None, None]
    return np.linalg.solve(ata, atb[:, :, None])[:, :, 0]


def _lamp_model(lamp: _Lamp, coef, lsf, x0, n_cols, lin: np.ndarray | None = None):
    """One lamp's profiles, linear basis, linear parameters and residual for laws ``coef``.

    ``lin`` (throughput and background, shape ``(n, 5)``) is solved when not given."""
    n = coef.shape[0]
    xw = _law(coef, lamp.t) - x0[:, None]
    sig = np.clip(lsf[:, 0:1] + lsf[:, 1:2] * lamp.t, *SIGMA_BOUNDS_PX)
    prof = _profiles(xw, sig, n_cols)
    basis = _linear_basis(lamp, prof, n, n_cols)
    if lin is None:
        lin = _wls(basis, lamp.data, lamp.weight)
    resid = lamp.data - (basis @ lin[:, :, None])[:, :, 0]
    return prof, basis, lin, resid


def _law_jacobian(lamp: _Lamp, prof, lin, n: int, n_cols: int) -> np.ndarray:
    """``(n, L, 6)``: d model / d (c0..c3, s0, s1) of one lamp."""
    flat, _g, dg_dx, dg_ds = prof
    e = lamp.amp[None, :] * (lin[:, 0:1] + lin[:, 1:2] * lamp.t[None, :])  # (n, m)
    cols = [_scatter(flat, (e * lamp.t**k)[..., None] * dg_dx, n, n_cols) for k in range(4)]
    cols += [_scatter(flat, (e * lamp.t**k)[..., None] * dg_ds, n, n_cols) for k in range(2)]
    return np.stack(cols, axis=2)


def _evaluate(lamps: list[_Lamp], coef, lsf, x0, n_cols, *, jacobian: bool):
    """chi2 per trace, and (with ``jacobian``) the normal equations of the six parameters."""
    n = coef.shape[0]
    chi2 = np.zeros(n)
    hess = np.zeros((n, 6, 6))
    grad = np.zeros((n, 6))
    for lamp in lamps:
        prof, _basis, lin, resid = _lamp_model(lamp, coef, lsf, x0, n_cols)
        lamp.lin = lin
        chi2 += (lamp.weight * resid * resid).sum(1)
        if not jacobian:
            continue
        jac = _law_jacobian(lamp, prof, lin, n, n_cols)
        jw = (jac * lamp.weight[:, :, None]).transpose(0, 2, 1)
        hess += jw @ jac
        grad += (jw @ resid[:, :, None])[:, :, 0]
    return chi2, hess, grad


def _damped_step(hess: np.ndarray, grad: np.ndarray, damping: np.ndarray) -> np.ndarray:
    diag = np.sqrt(np.maximum(np.einsum("npp->np", hess), 1e-300))
    hn = hess / (diag[:, :, None] * diag[:, None, :])
    hn = hn + damping[:, None, None] * np.eye(6)[None]
    ok = np.all(np.isfinite(hn), axis=(1, 2))
    step = np.zeros_like(grad)
    step[ok] = np.linalg.solve(hn[ok], (grad / diag)[ok][:, :, None])[:, :, 0] / diag[ok]
    return step


def _clip_samples(lamps: list[_Lamp], coef, lsf, x0, n_cols) -> None:
    for lamp in lamps:
        resid = _lamp_model(lamp, coef, lsf, x0, n_cols, lin=lamp.lin)[3]
        z = resid * np.sqrt(lamp.weight)
        used = lamp.weight > 0
        scale = np.array([1.4826 * np.median(np.abs(zk[uk])) if uk.sum() > 10 else 1.0 for zk, uk in zip(z, used)])
        bad = np.abs(z) > CLIP_SIGMA * np.maximum(scale, 1.0)[:, None]
        bad |= np.roll(bad, 1, axis=1) | np.roll(bad, -1, axis=1)
        lamp.weight = np.where(bad, 0.0, lamp.weight)


def _dense_lines(lamp: _Lamp, prof, lin: np.ndarray, n: int, n_cols: int) -> np.ndarray:
    """``(n, L, m)``: each line's profile times the trace's throughput (d model / d a_l)."""
    flat, g = prof[0], prof[1]
    m = lamp.t.size
    h = (lin[:, 0:1] + lin[:, 1:2] * lamp.t[None, :])[..., None] * g  # (n, m, T)
    dense = np.zeros((n * n_cols + 1, m))
    line_idx = np.broadcast_to(np.arange(m)[None, :, None], flat.shape)
    dense[flat.ravel(), line_idx.ravel()] = h.ravel()
    return dense[:-1].reshape(n, n_cols, m)


def _joint_normal(lamps: list[_Lamp], coef, lsf, x0, n_cols):
    """Normal equations of the per-trace parameters and the lamps' amplitudes, with the
    throughput and background projected out (variable projection).

    Returns ``chi2 (n,), hpp (n, 6, 6), hpa (n, 6, M), haa (M, M), gp (n, 6), ga (M,)`` with
    ``M`` the number of lines of all lamps.
    """
    n = coef.shape[0]
    sizes = [lamp.t.size for lamp in lamps]
    total = sum(sizes)
    chi2, hpp, gp = np.zeros(n), np.zeros((n, 6, 6)), np.zeros((n, 6))
    hpa, haa, ga = np.zeros((n, 6, total)), np.zeros((total, total)), np.zeros(total)
    start = 0
    for lamp, size in zip(lamps, sizes):
        block = np.arange(start, start + size)
        start += size
        prof, basis, lin, resid = _lamp_model(lamp, coef, lsf, x0, n_cols)
        lamp.lin = lin
        chi2 += (lamp.weight * resid * resid).sum(1)
        jp = _law_jacobian(lamp, prof, lin, n, n_cols)
        ja = _dense_lines(lamp, prof, lin, n, n_cols)
        bw = (basis * lamp.weight[:, :, None]).transpose(0, 2, 1)
        gram = bw @ basis
        gram += np.eye(gram.shape[1])[None] * 1e-9 * np.maximum(np.trace(gram, axis1=1, axis2=2), 1e-30)[:, None, None]
        gram_inv = np.linalg.inv(gram)
        jp = jp - basis @ (gram_inv @ (bw @ jp))
        ja = ja - basis @ (gram_inv @ (bw @ ja))
        jpw = (jp * lamp.weight[:, :, None]).transpose(0, 2, 1)
        jaw = ja * lamp.weight[:, :, None]
        hpp += jpw @ jp
        hpa[:, :, block] += jpw @ ja
        haa[np.ix_(block, block)] += jaw.reshape(-1, size).T @ ja.reshape(-1, size)
        gp += (jpw @ resid[:, :, None])[:, :, 0]
        ga[block] += jaw.reshape(-1, size).T @ resid.ravel()
    return chi2, hpp, hpa, haa, gp, ga


def _joint_step(hpp, hpa, haa, gp, ga, lam: float):
    """Damped Gauss-Newton step of the block-arrow system (Schur complement on the amplitudes)."""
    dp = np.sqrt(np.maximum(np.einsum("npp->np", hpp), 0.0))
    dp = np.where(dp > 0, dp, 1.0)
    da = np.sqrt(np.maximum(np.diag(haa), 0.0))
    da = np.where(da > 0, da, 1.0)
    hpp_n = hpp / (dp[:, :, None] * dp[:, None, :]) + lam * np.eye(6)[None]
    hpa_n = hpa / (dp[:, :, None] * da[None, None, :])
    haa_n = haa / np.outer(da, da) + (lam + 1e-9) * np.eye(da.size)
    inv = np.linalg.inv(hpp_n)
    x = inv @ hpa_n
    y = np.einsum("npq,nq->np", inv, gp / dp)
    schur = haa_n - np.einsum("npa,npb->ab", hpa_n, x)
    rhs = ga / da - np.einsum("npa,np->a", hpa_n, y)
    step_a = np.linalg.solve(schur, rhs)
    step_p = y - np.einsum("npa,a->np", x, step_a)
    return step_p / dp, step_a / da


def _limit(step: np.ndarray) -> np.ndarray:
    """Scale each trace's law step so no line moves more than ``MAX_STEP_PX``."""
    move = np.abs(_law(step[:, :4], _CHECK_T)).max(axis=1)
    return step * np.minimum(1.0, MAX_STEP_PX / np.maximum(move, 1e-12))[:, None]





def _fit_amplitudes(lamps: list[_Lamp], coef, lsf, x0, n_cols) -> tuple[np.ndarray, np.ndarray]:
    """Joint damped Gauss-Newton of the amplitudes and the laws of ``lamps``' traces."""
    lam = 1e-3
    chi2 = None
    for it in range(JOINT_ITERATIONS):
        if it == 2:
            _evaluate(lamps, coef, lsf, x0, n_cols, jacobian=False)
            _clip_samples(lamps, coef, lsf, x0, n_cols)
        chi2, hpp, hpa, haa, gp, ga = _joint_normal(lamps, coef, lsf, x0, n_cols)
        total = chi2.sum()
        old = [lamp.amp for lamp in lamps]
        for _attempt in range(4):
            step_p, step_a = _joint_step(hpp, hpa, haa, gp, ga, lam)
            step_p = _limit(step_p)
            trial_coef, trial_lsf = coef + step_p[:, :4], lsf + step_p[:, 4:]
            start = 0
            for lamp, a in zip(lamps, old):
                lamp.amp = np.maximum(a + step_a[start:start + a.size], 0.0)
                start += a.size
            trial, _h, _g = _evaluate(lamps, trial_coef, trial_lsf, x0, n_cols, jacobian=False)
            if np.isfinite(trial.sum()) and trial.sum() <= total:
                coef, lsf, lam = trial_coef, trial_lsf, max(lam / 3.0, 1e-7)
                break
            for lamp, a in zip(lamps, old):
                lamp.amp = a
            lam *= 10.0
    for lamp in lamps:
        lamp.amp = lamp.amp / max(lamp.amp.max(), 1e-30)
    return coef, lsf


def _fit_traces(lamps: list[_Lamp], coef, lsf, x0, n_cols) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-trace damped Gauss-Newton of the laws with the amplitudes fixed."""
    damping = np.full(coef.shape[0], 1e-3)
    chi2 = None
    for step_no in range(TRACE_STEPS):
        if step_no == 1:
            _evaluate(lamps, coef, lsf, x0, n_cols, jacobian=False)
            _clip_samples(lamps, coef, lsf, x0, n_cols)
        chi2, hess, grad = _evaluate(lamps, coef, lsf, x0, n_cols, jacobian=True)
        step = _limit(_damped_step(hess, grad, damping))
        trial_coef, trial_lsf = coef + step[:, :4], lsf + step[:, 4:]
        trial, _h, _g = _evaluate(lamps, trial_coef, trial_lsf, x0, n_cols, jacobian=False)
        better = np.isfinite(trial) & (trial <= chi2)
        coef, lsf = np.where(better[:, None], trial_coef, coef), np.where(better[:, None], trial_lsf, lsf)
        chi2 = np.where(better, trial, chi2)
        damping = np.where(better, np.maximum(damping / 3.0, 1e-6), np.minimum(damping * 10.0, 1e6))
    return coef, lsf, chi2


def _lamp_data(spectra: dict, idx: np.ndarray) -> list[_Lamp]:
    lamps = []
    for name in sorted(spectra):
        flux, var = (np.asarray(a, dtype=float)[idx] for a in spectra[name])
        good = np.isfinite(flux) & np.isfinite(var) & (var > 0)
        waves, amps = _catalogue(name)
        lamps.append(_Lamp(waves=waves, t=t_of(waves), amp=amps, data=np.where(good, flux, 0.0),
                           weight=np.where(good, 1.0 / np.where(good, var, 1.0), 0.0)))
    return lamps


def fit_arc_model(
    spectra: dict, x0: np.ndarray, coef0: np.ndarray, fit: np.ndarray, sigma0: float = 1.2
) -> ArcModelFit:
    """Refine every trace's dispersion law against the forward model of its arc spectra.

    The lamps' amplitudes are fitted jointly with the laws of ``SUBSET_TRACES`` traces spread
    over the detector (one block-arrow Gauss-Newton system: a blend's amplitude ratios and the
    laws' common shape are coupled, which an alternating fit resolves only slowly); then every
    trace's law and line-spread sigma are fitted with the amplitudes fixed.

    Parameters
    ----------
    spectra : dict
        ``{lamp: (flux, var)}``, arrays of shape ``(n, L)``: arc spectra extracted over the
        columns ``x0[k] + arange(L)`` (NaN where not extracted) [electrons].
    x0 : numpy.ndarray
        Shape ``(n,)`` first column of each window [pixel].
    coef0 : numpy.ndarray
        Shape ``(n, 4)`` starting laws (line identification done; good to ~1 px) [pixel].
    fit : numpy.ndarray
        Shape ``(n,)`` bool: traces to refine (the others keep ``coef0`` and do not enter
        the amplitudes).
    sigma0 : float
        First guess of the line-spread sigma [pixel].

    Returns
    -------
    ArcModelFit
    """
    idx = np.flatnonzero(fit)
    n_all = coef0.shape[0]
    if idx.size < MIN_TRACES:  # too few traces to measure the lamps: the starting laws stand
        return ArcModelFit(coef=coef0.astype(float).copy(), lsf=np.full((n_all, 2), np.nan),
                           chi2=np.full(n_all, np.nan), ok=np.zeros(n_all, bool), amplitudes={})
    n_cols = next(iter(spectra.values()))[0].shape[1]
    x0s = np.asarray(x0, dtype=np.int64)[idx]
    coef = coef0[idx].astype(float).copy()
    lsf = np.column_stack([np.full(idx.size, sigma0), np.zeros(idx.size)])
    lamps = _lamp_data(spectra, idx)
    sub = np.unique(np.linspace(0, idx.size - 1, min(SUBSET_TRACES, idx.size)).astype(int))
    sub_lamps = [_Lamp(waves=lamp.waves, t=lamp.t, amp=lamp.amp, data=lamp.data[sub], weight=lamp.weight[sub])
                 for lamp in lamps]
    coef_sub, lsf_sub = _fit_amplitudes(sub_lamps, coef[sub], lsf[sub], x0s[sub], n_cols)
    coef[sub], lsf[sub] = coef_sub, lsf_sub
    for lamp, fitted in zip(lamps, sub_lamps):
        lamp.amp = fitted.amp
    coef, lsf, chi2 = _fit_traces(lamps, coef, lsf, x0s, n_cols)
    dof = np.maximum(sum((lamp.weight > 0).sum(1) for lamp in lamps) - 6 - 5 * len(lamps), 1)
    moved = np.abs(_law(coef - coef0[idx], _CHECK_T)).max(axis=1)
    sig_t = lsf[:, 0:1] + lsf[:, 1:2] * _CHECK_T
    ok_fit = (moved < MAX_MOVE_PX) & np.all((sig_t > SIGMA_BOUNDS_PX[0]) & (sig_t < SIGMA_BOUNDS_PX[1]), axis=1)
    ok_fit &= np.all(np.isfinite(coef), axis=1) & np.isfinite(chi2) & (dof >= MIN_SAMPLES)
    out_coef = coef0.astype(float).copy()
    out_coef[idx[ok_fit]] = coef[ok_fit]
    out_lsf = np.full((n_all, 2), np.nan)
    out_lsf[idx] = lsf
    out_chi2 = np.full(n_all, np.nan)
    out_chi2[idx] = chi2 / dof
    ok = np.zeros(n_all, bool)
    ok[idx[ok_fit]] = True
    amplitudes = {name: (lamp.waves, lamp.amp) for name, lamp in zip(sorted(spectra), lamps)}
    return ArcModelFit(coef=out_coef, lsf=out_lsf, chi2=out_chi2, ok=ok, amplitudes=amplitudes)
