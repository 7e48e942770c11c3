"""SNID-compatible supernova classification (Blondin & Tonry 2007; Tonry & Davis 1979).

The procedure of SNID 5.0, vectorised over all template epochs:

1. prepare the input spectrum (:mod:`engine.classify.prepare`);
2. **first pass** - correlate the data with every template epoch, take the ``npeaks``
   highest correlation peaks of each, trim data and template to their overlap at each peak,
   re-apodise, re-correlate and fit the highest peak: r (height-to-noise), lap (overlap in
   ``ln lambda``) and z. The initial redshift ``zinit`` is the median of the peak redshifts
   weighted 1/3/5 for rlap above 4/5/6;
3. **second pass** - trim every template at ``zinit``, correlate, fit: r, lap, z and the
   formal error ``2 w / (1 + rlap)`` (``w`` the peak FWHM in z);
4. rank by rlap; median redshift and age, and type fractions, of the good matches
   (:mod:`engine.classify.stats`). The rank-1 entry gives type, subtype, template, rlap, z.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft

from engine.classify.correlate import (
    BandPass,
    allowed_lags,
    band_antisym_rms,
    half_max_center,
    local_peaks,
    masked_argmax,
    overlap_windows,
    parabola_peaks,
    runner_up_peaks,
    value_and_antisym_rms,
)
from engine.classify.options import SnidOptions
from engine.classify.peakfit import fit_peaks
from engine.classify.prepare import APODIZE_PERCENT, PreparedSpectrum, prepare_spectrum
from engine.classify.result import BestMatchSpectrum, Classification, TemplateMatch
from engine.classify.selection import template_mask
from engine.classify.stats import match_statistics, vote_redshift
from engine.classify.templates import W0_AA, TemplateLibrary
from engine.classify.trim import (
    DataTransforms,
    TrimmedChunk,
    correlation_functions,
    sampled_correlations,
    screen_step,
    trimmed_correlations,
)
from engine.errors import AlgorithmError

MAXR = 999.9
"""r assigned when the antisymmetric rms vanishes."""
RESCUE = 0.55
"""Rows whose quick estimate reaches this fraction of the screen (but not the screen) get
second opinions (:func:`_rescue`). With them, no first- or second-pass row of rlap > 4 is
left unfitted on the 52 reference spectra (the 3-point estimate alone leaves a few, at
0.38-0.7 of their fitted rlap); on 300 synthetic spectra of S/N 3-60, 8 keep one such row
(a runner-up peak first estimated below this fraction), which moves zinit by at most 8e-5."""
RESCUE_BATCH = 1024
"""Rows gathered before the rescue estimates run (fewer, larger batches)."""
HALF_MAX_REACH = 64
"""Largest distance [bins] searched on each side of a peak for its half-maximum points."""
VOTE_RLAP = 4.0
"""Smallest rlap that votes for the initial redshift (weights 1/3/5 above 4/5/6)."""
ZERR_K = 2.0
"""SNID's constant in the formal redshift error ``zk * w / (1 + rlap)``."""
CHUNK = 512
"""Template rows per batch of the full (untrimmed) correlations."""


@dataclass(frozen=True)
class _Context:
    """Per-spectrum constants of a classification."""

    prep: PreparedSpectrum
    lib: TemplateLibrary
    use: np.ndarray
    band: BandPass
    filt: np.ndarray
    allowed: np.ndarray
    dwlog: float
    dlo: int
    dhi: int
    nw: int
    precision: type
    aweights: np.ndarray
    data: DataTransforms
    step: int


@dataclass(frozen=True)
class _Correlations:
    """Trimmed correlations: per row the template row, r, lap [ln lambda], z, width [z]."""

    row: np.ndarray
    r: np.ndarray
    lap: np.ndarray
    z: np.ndarray
    width: np.ndarray
    valid: np.ndarray


def _nint(x: np.ndarray | float) -> np.ndarray:
    """Fortran ``nint`` (round half away from zero)."""
    x = np.asarray(x, dtype=float)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def _make_context(wave: np.ndarray, flux: np.ndarray, library: TemplateLibrary,
                  opts: SnidOptions) -> _Context:
    """Prepare the data and the per-spectrum constants (template mask, filter, lag range)."""
    use = template_mask(library, opts)
    prep = prepare_spectrum(wave, flux, wmin=opts.wmin, wmax=opts.wmax, skyclip=opts.skyclip,
                            aband=opts.aband, medlen=opts.medlen, zmin=opts.zmin,
                            zmax=opts.zmax, emclip_z=opts.emclip_z, emwid=opts.emwid)
    nw = prep.flat.size
    dwlog = library.dwlog
    band = BandPass(nw=nw, k1=opts.k1, k2=opts.k2, k3=opts.k3, k4=opts.k4)
    lz1 = int(_nint(math.log(1 + opts.zmin) / dwlog))
    lz2 = int(_nint(math.log(1 + opts.zmax) / dwlog))
    nz = np.flatnonzero(prep.flat)
    precision = np.float32 if opts.single_precision else np.float64
    filt = band.factor()
    return _Context(prep=prep, lib=library, use=use, band=band, filt=filt,
                    allowed=allowed_lags(nw, lz1, lz2), dwlog=dwlog, dlo=int(nz[0]),
                    dhi=int(nz[-1]), nw=nw, precision=precision,
                    aweights=band.antisym_weights(filtered=True),
                    data=DataTransforms.build(prep.flat, filt, band.k4, precision),
                    step=screen_step(nw, band.k4))


def _wrap(center: np.ndarray, nw: int) -> np.ndarray:
    """SNID: lags above ``(1 - 2 percent/100) nw`` are negative redshifts."""
    limit = np.float32(1.0 - 2.0 * 0.01 * APODIZE_PERCENT) * np.float32(nw)
    return np.where(center > limit, center - nw, center)


def _r_value(height: np.ndarray, arms: np.ndarray) -> np.ndarray:
    """Tonry-Davis ``r = h / (2 arms)`` (``MAXR`` when the antisymmetric rms vanishes)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(arms > 0, height / (2.0 * arms), MAXR)


def _stream(ctx: _Context, rows: np.ndarray, shift: np.ndarray, *,
            screening: bool = False) -> Iterator[TrimmedChunk]:
    """Trimmed correlations of ``rows`` at ``shift`` in ``ctx.precision`` (see
    :mod:`engine.classify.trim`); ``screening`` allows the coarse estimate of the template
    side."""
    return trimmed_correlations(ctx.prep.flat, ctx.lib.flux, rows, shift, ctx.lib.lo,
                                ctx.lib.hi, ctx.dlo, ctx.dhi, ctx.band, ctx.filt,
                                dtype=ctx.precision, data=ctx.data, own_fft=ctx.lib.own_fft,
                                coarse=ctx.lib.coarse if screening else None)


def _finish(ctx: _Context, rows: np.ndarray, shift: np.ndarray, center: np.ndarray,
            r: np.ndarray, width: np.ndarray, valid: np.ndarray) -> _Correlations:
    """Peak lags and widths [bins] -> redshifts; overlaps [bins] -> ln lambda."""
    *_, lap = overlap_windows(shift, ctx.lib.lo[rows], ctx.lib.hi[rows], ctx.dlo, ctx.dhi)
    z = np.exp(_wrap(center, ctx.nw) * ctx.dwlog) - 1.0
    return _Correlations(row=rows, r=np.where(valid, r, 0.0), lap=lap * ctx.dwlog, z=z,
                         width=np.exp(width * ctx.dwlog) - 1.0, valid=valid)


def _trimmed(ctx: _Context, rows: np.ndarray, shift: np.ndarray, screen: float, *,
             widths: bool = True) -> _Correlations:
    """Trimmed correlations of the given rows, with SNID's full peak fit where it matters.

    Every row gets a quick estimate of r from its correlation sampled every ``ctx.step`` lags
    (exact samples of the band-limited function), with the template side taken from the
    coarse rows (:func:`engine.classify.trim.decimated_rows`): the value and antisymmetric rms
    at the 3-point parabola centre of the highest sample; rows just short of the screen also
    try the half-maximum mid-point and the runner-up peak (:func:`_rescue`). Rows whose
    estimated rlap reaches ``screen`` (all rows when ``screen <= 0``) get the exact correlation
    at full resolution and SNID's peak fit; the others keep the estimate. Transforms run in
    ``ctx.precision``. Without ``widths`` the peak widths (hence the redshift errors) are left
    at 0.
    """
    n = rows.size
    *_, lap = overlap_windows(shift, ctx.lib.lo[rows], ctx.lib.hi[rows], ctx.dlo, ctx.dhi)
    to_rlap = lap * ctx.dwlog
    center, r = np.zeros(n), np.zeros(n)
    width, valid = np.zeros(n), np.zeros(n, dtype=bool)
    if screen > 0:
        est = _screen(ctx, rows, shift, to_rlap, screen, center, valid)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(to_rlap > 0, est / to_rlap, 0.0)
        idx = np.flatnonzero(valid & (est >= screen))
        exact = list(_stream(ctx, rows[idx], shift[idx]))
    else:
        exact = list(_stream(ctx, rows, shift))
        idx = np.arange(n)
    if idx.size:
        idx = idx[np.concatenate([ch.at for ch in exact])]
        cfilt = np.concatenate([ch.cfilt for ch in exact])
        cfn = correlation_functions(cfilt, ctx.nw)
        fit = fit_peaks(cfn, ctx.allowed, width=widths)
        kb = slice(ctx.band.k1, ctx.band.k4 + 1)
        arms = band_antisym_rms(cfilt[:, kb].astype(complex), fit.center, ctx.band,
                                ctx.aweights)
        center[idx], width[idx], valid[idx] = fit.center, fit.width, fit.valid
        r[idx] = _r_value(fit.height, arms)
    return _finish(ctx, rows, shift, center, r, width, valid)


def _screen(ctx: _Context, rows: np.ndarray, shift: np.ndarray, to_rlap: np.ndarray,
            screen: float, center: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Quick rlap estimates of every row (see :func:`_trimmed`); fills ``center`` [bins] and
    ``valid`` (a positive peak) in place and returns the estimates, shape ``(n,)``."""
    est = np.zeros(rows.size)
    step = ctx.step
    sampled = ctx.allowed[::step]
    pending: list[tuple[np.ndarray, ...]] = []
    for ch in _stream(ctx, rows, shift, screening=True):
        coarse = sampled_correlations(ch.cfilt, ctx.nw, step)
        imax, _ = masked_argmax(coarse, sampled)
        c, _ = parabola_peaks(coarse, imax)
        c *= step
        h, arms = value_and_antisym_rms(ch.cfilt, c, ctx.band, ctx.aweights)
        rlq = _r_value(h, arms) * to_rlap[ch.at]
        center[ch.at], valid[ch.at], est[ch.at] = c, h > 0, rlq
        maybe = np.flatnonzero((rlq < screen) & (rlq >= RESCUE * screen) & (h > 0))
        if maybe.size:
            pending.append((ch.at[maybe], ch.cfilt[maybe], coarse[maybe], imax[maybe], h[maybe]))
        if sum(p[0].size for p in pending) >= RESCUE_BATCH:
            _rescue(ctx, [np.concatenate(a) for a in zip(*pending)], to_rlap, est, center)
            pending = []
    if pending:
        _rescue(ctx, [np.concatenate(a) for a in zip(*pending)], to_rlap, est, center)
    return est


def _rescue(ctx: _Context, batch: list[np.ndarray], to_rlap: np.ndarray, est: np.ndarray,
            center: np.ndarray) -> None:
    """Second opinions on rows whose quick rlap fell just short of the screen.

    ``batch`` holds the rows' positions, filtered cross-powers, sampled correlations, highest
    samples and values there. Two other centres are tried: the mid-point of the half-maximum
    points (broad, asymmetric peaks) and the parabola centre of the runner-up peak of the
    sampled correlation (two peaks of nearly equal height, where the sampling may pick the
    wrong one). Where one gives a higher rlap, ``est`` and ``center`` take it (in place).
    """
    at, cfilt, coarse, imax, height = batch
    step = ctx.step
    runner = runner_up_peaks(coarse, ctx.allowed[::step], imax)
    has = runner >= 0
    c_runner, _ = parabola_peaks(coarse, np.where(has, runner, imax))
    c_half = half_max_center(coarse, imax, height, reach=HALF_MAX_REACH // step)
    for cand, ok in ((c_half, np.ones(at.size, dtype=bool)), (c_runner, has)):
        h, arms = value_and_antisym_rms(cfilt, step * cand, ctx.band, ctx.aweights)
        rl = np.where(ok & (h > 0), _r_value(h, arms) * to_rlap[at], 0.0)
        better = rl > est[at]
        est[at[better]], center[at[better]] = rl[better], step * cand[better]


def _first_pass_peaks(ctx: _Context, opts: SnidOptions) -> tuple[np.ndarray, np.ndarray]:
    """Rows and shifts of the ``npeaks`` highest peaks of each template's full correlation
    that leave at least ``lapmin`` of overlap (SNID ``allpeaks`` + ``overlap``)."""
    lib = ctx.lib
    kf = ctx.band.k4 + 1
    dft = (sfft.rfft(ctx.prep.flat.astype(np.float32)) * ctx.filt.astype(np.float32))[:kf]
    rows_out, shifts_out = [], []
    for s in range(0, lib.n_epochs, CHUNK):
        sl = slice(s, min(s + CHUNK, lib.n_epochs))
        cft = np.conj(lib.fft[sl, :kf])
        cft *= dft
        cfn = sfft.irfft(cft, n=ctx.nw, axis=1)
        peaks = local_peaks(cfn, ctx.allowed, opts.npeaks)
        rr, pp = np.nonzero(peaks >= 0)
        shift = _wrap(peaks[rr, pp], ctx.nw).astype(np.int64)
        rows = rr + s
        *_, lap = overlap_windows(shift, lib.lo[rows], lib.hi[rows], ctx.dlo, ctx.dhi)
        keep = (lap * ctx.dwlog >= opts.lapmin) & ctx.use[rows]
        rows_out.append(rows[keep])
        shifts_out.append(shift[keep])
    return np.concatenate(rows_out), np.concatenate(shifts_out)


def initial_redshift(ctx: _Context, opts: SnidOptions) -> float:
    """SNID's first pass: the rlap-weighted median redshift of all trimmed peaks."""
    rows, shifts = _first_pass_peaks(ctx, opts)
    if rows.size == 0:
        return 0.0
    corr = _trimmed(ctx, rows, shifts, VOTE_RLAP * opts.screen_factor, widths=False)
    ok = corr.valid & (corr.z >= opts.zmin) & (corr.z <= opts.zmax)
    return vote_redshift(corr.z[ok], (corr.r * corr.lap)[ok])


def _second_pass(ctx: _Context, zuser: float, opts: SnidOptions) -> _Correlations:
    """Trim every template at ``zuser`` and correlate (rows with too little overlap dropped)."""
    lib = ctx.lib
    shift = np.full(lib.n_epochs, int(_nint(math.log(zuser + 1.0) / ctx.dwlog)))
    *_, lap = overlap_windows(shift, lib.lo, lib.hi, ctx.dlo, ctx.dhi)
    rows = np.flatnonzero((lap * ctx.dwlog >= opts.lapmin) & ctx.use)
    return _trimmed(ctx, rows, shift[rows], opts.rlapmin * opts.screen_factor)


def classify_spectrum(wave: np.ndarray, flux: np.ndarray, err: np.ndarray | None = None, *,
                      library: TemplateLibrary,
                      options: SnidOptions | None = None) -> Classification:
    """Classify one spectrum against a template library, as SNID 5.0 does.

    Parameters
    ----------
    wave : numpy.ndarray
        Shape ``(n,)`` vacuum wavelengths [Angstrom].
    flux : numpy.ndarray
        Shape ``(n,)`` F_lambda (any unit; only the shape matters). Non-finite samples are
        dropped.
    err : numpy.ndarray or None
        Shape ``(n,)`` flux errors. Not used by the SNID algorithm (kept for API symmetry;
        samples with non-finite errors are still used, as SNID would).
    library : TemplateLibrary
        Loaded templates (:func:`engine.classify.templates.load_template_library`).
    options : SnidOptions or None
        SNID options; defaults are SEDM production's.

    Returns
    -------
    Classification
        ``type == "NONE"`` when no template is good (SNID writes no output then).

    Raises
    ------
    AlgorithmError
        If the spectrum has too few usable samples in ``[wmin, wmax]``.
    ConfigError
        If the options leave no template.
    """
    opts = options or SnidOptions()
    wave = np.asarray(wave, dtype=float).ravel()
    flux = np.asarray(flux, dtype=float).ravel()
    if wave.shape != flux.shape:
        msg = f"wave and flux differ in length ({wave.size} vs {flux.size})"
        raise AlgorithmError(msg, {"n_wave": wave.size, "n_flux": flux.size})
    ctx = _make_context(wave, flux, library, opts)
    zinit = opts.forcez if opts.forcez is not None else initial_redshift(ctx, opts)
    corr = _second_pass(ctx, zinit, opts)
    return _build_result(ctx, corr, zinit, opts, wave, flux)


def _build_result(ctx: _Context, corr: _Correlations, zinit: float, opts: SnidOptions,
                  wave: np.ndarray, flux: np.ndarray) -> Classification:
    """Rank the second-pass correlations and assemble the :class:`Classification`."""
    lib = ctx.lib
    rows = corr.row
    rlap = corr.r * corr.lap
    zerr = ZERR_K * corr.width / (1.0 + rlap)
    st = match_statistics(rlap, corr.z, lib.age[rows], lib.age_flag[rows], lib.main_type[rows],
                          zinit=zinit, rlapmin=opts.rlapmin, zfilter=opts.zfilter)
    common = dict(zinit=float(zinit), n_correlated=int(rows.size), options=opts.to_dict())
    if st.n_good == 0:
        return Classification(type="NONE", n_bad=st.n_bad, **common)
    matches = tuple(
        TemplateMatch(rank=i + 1, template=str(lib.name[rows[j]]),
                      main_type=str(lib.main_type[rows[j]]), subtype=str(lib.subtype[rows[j]]),
                      lap=float(corr.lap[j]), r=float(corr.r[j]), rlap=float(rlap[j]),
                      z=float(corr.z[j]), z_err=float(zerr[j]), age=float(lib.age[rows[j]]),
                      age_flag=int(lib.age_flag[rows[j]]), grade=str(st.grade[j]),
                      row=int(rows[j]))
        for i, j in enumerate(st.order[:max(opts.n_matches, 1)]))
    top = matches[0]
    best = best_match_spectrum(wave, flux, ctx.prep, lib.flux[top.row], top.z, opts, ctx.dwlog)
    return Classification(
        type=top.main_type, subtype=top.subtype, template=top.template, rlap=top.rlap,
        z=top.z, z_err=top.z_err, age=top.age, age_flag=top.age_flag, grade=top.grade,
        zmed=st.zmed, zmed_err=st.zsdev, age_med=st.agem, age_err=st.agesdev,
        fractions=st.fractions, n_good=st.n_good, n_bad=st.n_bad, matches=matches, best=best,
        **common)


def best_match_spectrum(wave: np.ndarray, flux: np.ndarray, prep: PreparedSpectrum,
                        template_row: np.ndarray, z: float, opts: SnidOptions,
                        dwlog: float) -> BestMatchSpectrum:
    """A template row redshifted to ``z`` on the input grid, flattened and un-flattened.

    Parameters
    ----------
    wave, flux : numpy.ndarray
        Shape ``(n,)`` input wavelengths [Angstrom] and F_lambda.
    prep : PreparedSpectrum
        The prepared data (its continuum un-flattens the template).
    template_row : numpy.ndarray
        Shape ``(1024,)`` flattened template on the SNID grid.
    z : float
        Redshift of the match.
    opts : SnidOptions
    dwlog : float
        Log bin width.

    Returns
    -------
    BestMatchSpectrum
    """
    wave = np.asarray(wave, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        x_obs = np.log(wave / W0_AA) / dwlog
        x_rest = np.log(wave / (1.0 + z) / W0_AA) / dwlog
    nz = np.flatnonzero(template_row)
    centers = np.arange(template_row.size) + 0.5
    tflat = np.interp(x_rest, centers, template_row)
    tflat[(x_rest < nz[0] + 0.5) | (x_rest > nz[-1] + 0.5) | ~np.isfinite(x_rest)] = np.nan
    binwidth = wave * 2.0 * math.sinh(dwlog / 2.0)
    cont = 10.0 ** prep.continuum(x_obs) / binwidth
    inside = (wave >= opts.wmin) & (wave <= opts.wmax)
    return BestMatchSpectrum(wave=wave, template_flat=tflat, template_flux=(tflat + 1.0) * cont,
                             data_flat=np.where(inside, flux / cont - 1.0, np.nan),
                             continuum=cont)
