"""Correlation, trimming, peak fitting and r on controlled inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft as sfft

from engine.classify.correlate import (
    BandPass,
    allowed_lags,
    antisym_rms,
    band_antisym_rms,
    cross_correlate,
    lag_segments,
    local_peaks,
    masked_argmax,
    overlap_windows,
    runner_up_peaks,
    value_and_antisym_rms,
    window_weights,
)
from engine.classify.peakfit import fit_peaks
from engine.classify.prepare import apodize
from engine.classify.trim import DataTransforms, apply_windows, sampled_correlations, screen_step, trimmed_correlations

NW = 1024


def feature_spectrum(rng, lo=300, hi=900):
    x = np.zeros(NW)
    i = np.arange(lo, hi)
    x[lo:hi] = np.convolve(rng.normal(size=hi - lo), np.ones(7) / 7, mode="same")
    x[lo:hi] += 0.3 * np.sin(i / 9.0)
    return x


def test_bandpass_defaults():
    band = BandPass.snid_default(NW)
    assert (band.k1, band.k2, band.k3, band.k4) == (1, 4, 85, 102)
    f = band.factor()
    assert f[0] == 0.0 and f[1] == 0.0 and f[4] == 1.0 and f[85] == 1.0 and f[103] == 0.0
    assert 0 < f[2] < 1 and 0 < f[95] < 1


def test_correlation_recovers_a_shift_and_width():
    rng = np.random.default_rng(3)
    t = feature_spectrum(rng)
    d = np.roll(t, 37) * 2.0
    band = BandPass.snid_default(NW)
    cfn, cft = cross_correlate(sfft.rfft(d)[None], sfft.rfft(t)[None], band.factor(), NW)
    allowed = allowed_lags(NW, -7, 582)
    fit = fit_peaks(cfn, allowed)
    assert fit.center[0] == pytest.approx(37.0, abs=0.05)
    assert 1.0 < fit.width[0] < 20.0
    r = fit.height / (2 * antisym_rms(cft, fit.center, band))
    assert r[0] > 50  # a perfect match is nearly symmetric
    noisy = d + rng.normal(scale=1.0, size=NW)
    cfn2, cft2 = cross_correlate(sfft.rfft(noisy)[None], sfft.rfft(t)[None], band.factor(), NW)
    fit2 = fit_peaks(cfn2, allowed)
    r2 = fit2.height / (2 * antisym_rms(cft2, fit2.center, band))
    assert 2 < r2[0] < r[0]


def test_antisym_rms_of_symmetric_function_is_zero():
    band = BandPass.snid_default(NW)
    x = np.exp(-0.5 * ((np.arange(NW) - 200.0) / 5.0) ** 2)
    x = x + x[::-1].copy()  # symmetric about 0 (circularly: i and -i)
    sym = np.roll(np.exp(-0.5 * (np.minimum(np.arange(NW), NW - np.arange(NW)) / 5.0) ** 2), 0)
    c = sfft.rfft(sym)[None]
    assert antisym_rms(c, np.array([0.0]), band)[0] == pytest.approx(0.0, abs=1e-12)
    assert antisym_rms(c, np.array([3.0]), band)[0] > 1e-4


def test_negative_lags_wrap_into_the_search():
    allowed = allowed_lags(NW, -7, 582)
    assert allowed[0] and allowed[582] and not allowed[583] and allowed[1017] and not allowed[1016]
    cfn = np.zeros((1, NW))
    cfn[0, 1020] = 5.0
    cfn[0, 700] = 9.0
    imax, cmax = masked_argmax(cfn, allowed)
    assert imax[0] == 1020 and cmax[0] == 5.0


def test_local_peaks_highest_first():
    cfn = np.zeros((1, NW))
    for lag, h in ((10, 1.0), (50, 3.0), (300, 2.0), (700, 9.0), (1020, 0.5)):
        cfn[0, lag] = h
    peaks = local_peaks(cfn, allowed_lags(NW, -7, 582), 10)
    assert peaks[0, :4].tolist() == [50, 300, 10, 1020]
    assert (peaks[0, 4:] == -1).all()


def test_overlap_windows_and_trim_weights_agree():
    t1, t2, d1, d2, lap = overlap_windows(np.array([40, -5]), np.array([100, 100]),
                                          np.array([900, 900]), 347, 986)
    assert (t1.tolist(), t2.tolist(), d1.tolist(), d2.tolist()) == (
        [307, 352], [900, 900], [347, 347], [940, 895])
    assert lap.tolist() == [594, 549]
    rng = np.random.default_rng(0)
    lo = rng.integers(0, 400, 50)
    hi = np.minimum(lo + rng.integers(20, 600, 50), NW - 1)
    x = rng.random((50, NW))
    assert np.array_equal(apply_windows(x.copy(), lo, hi), x * window_weights(lo, hi, NW))


@pytest.mark.parametrize("span", [(20, 100), (102, 600), (20, 600)])
def test_apply_windows_single_precision_matches_weights(span):
    rng = np.random.default_rng(3)
    lo = rng.integers(0, 400, 64)
    hi = np.minimum(lo + rng.integers(*span, 64), NW - 1)
    x = rng.standard_normal((64, NW)).astype(np.float32)
    want = x * window_weights(lo, hi, NW, dtype=np.float32)
    assert np.array_equal(apply_windows(x.copy(), lo, hi), want)


def windowed_transforms(flat, lo, hi, filt, k4):
    """Reference: band-passed ``rfft`` of the data under each window, shape ``(n, k4 + 1)``."""
    x = np.broadcast_to(flat, (lo.size, NW)).copy()
    apply_windows(x, lo, hi)
    return sfft.rfft(x, axis=1)[:, :k4 + 1] * filt[:k4 + 1]


def test_data_transform_tables_equal_the_windowed_transforms():
    rng = np.random.default_rng(5)
    band = BandPass.snid_default(NW)
    flat = apodize(feature_spectrum(rng, 250, 880), 250, 879)
    tables = DataTransforms.build(flat, band.factor(), band.k4, np.float64)
    lo = rng.integers(260, 500, 300)
    hi = np.minimum(lo + rng.integers(30, 640, 300), 870)
    ok = tables.usable(lo, hi)
    assert ok.any() and (~ok).any() and np.array_equal(ok, hi - lo >= 2 * tables.kmax)
    want = windowed_transforms(flat, lo[ok], hi[ok], band.factor(), band.k4)
    got = tables.window(lo[ok], hi[ok])
    assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trimmed_correlations_equal_direct_transforms(dtype):
    rng = np.random.default_rng(8)
    band = BandPass.snid_default(NW)
    filt = band.factor()
    flat = apodize(feature_spectrum(rng, 300, 930), 300, 929)
    flux = np.stack([feature_spectrum(rng, 100 + 20 * j, 1000 - 15 * j)
                     for j in range(12)]).astype(np.float32)
    nz = flux != 0
    tlo, thi = nz.argmax(axis=1), NW - 1 - nz[:, ::-1].argmax(axis=1)
    rows = rng.integers(0, 12, 200)
    shift = rng.integers(-300, 600, 200)
    shift[:5] = [850, 860, -800, 700, -700]           # tiny overlaps: the direct fallback
    *_, lap = overlap_windows(shift, tlo[rows], thi[rows], 300, 929)
    keep = lap > 2
    rows, shift = rows[keep], shift[keep]
    t1, t2, d1, d2, _ = overlap_windows(shift, tlo[rows], thi[rows], 300, 929)
    tw = flux[rows].astype(dtype)
    apply_windows(tw, t1, t2)
    want = (windowed_transforms(flat.astype(dtype), d1, d2, filt.astype(dtype), band.k4)
            * np.conj(sfft.rfft(tw, axis=1)[:, :band.k4 + 1]))
    got = np.concatenate([ch.cfilt for ch in trimmed_correlations(
        flat, flux, rows, shift, tlo, thi, 300, 929, band, filt, dtype=dtype, chunk=64)])
    tol = 1e-5 if dtype == np.float32 else 1e-11
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= tol * np.abs(want).max()


def test_antisym_rms_of_filtered_cross_power():
    rng = np.random.default_rng(9)
    band = BandPass.snid_default(NW)
    cft = rng.normal(size=(20, NW // 2 + 1)) + 1j * rng.normal(size=(20, NW // 2 + 1))
    center = rng.uniform(0, NW, 20)
    kb = slice(band.k1, band.k4 + 1)
    filtered = cft[:, kb] * band.factor()[kb]
    assert np.allclose(band_antisym_rms(filtered, center, band, band.antisym_weights(True)),
                       antisym_rms(cft, center, band), rtol=1e-12)


def brute_local_peaks(cfn, allowed, npeak):
    """Reference ``allpeaks``: a plain loop over rows and allowed lags."""
    nw = cfn.shape[1]
    lags = [i for a, b in lag_segments(allowed) for i in range(a, b)]
    out = np.full((cfn.shape[0], npeak), -1)
    for r, c in enumerate(cfn):
        cand = [(-c[i], n, i) for n, i in enumerate(lags)
                if c[i] > 0 and c[i] >= c[(i - 1) % nw] and c[i] >= c[(i + 1) % nw]]
        for j, (_, _, i) in enumerate(sorted(cand)[:npeak]):
            out[r, j] = i
    return out


@pytest.mark.parametrize("lz1, lz2", [(-7, 582), (0, 500), (3, 1023), (-20, 40)])
def test_local_peaks_equal_a_plain_loop(lz1, lz2):
    rng = np.random.default_rng(lz2)
    x = np.zeros((40, NW // 2 + 1), dtype=complex)
    x[:, 1:103] = rng.normal(size=(40, 102)) + 1j * rng.normal(size=(40, 102))
    cfn = sfft.irfft(x, n=NW, axis=1).astype(np.float32)
    cfn[::3] = np.round(cfn[::3], 1)                 # plateaus and equal peaks
    cfn[1] = -1.0
    allowed = allowed_lags(NW, lz1, lz2)
    for npeak in (1, 10, 60):
        assert np.array_equal(local_peaks(cfn, allowed, npeak),
                              brute_local_peaks(cfn, allowed, npeak))


def test_screening_transforms_match_the_exact_ones():
    """The screen's template side: whole-template rows from the per-library table are exact;
    trimmed rows from the samples every fourth bin agree with the full computation to a few
    1e-5 here (median 3e-4 of the largest mode, at most 2e-2 near k4 on the SNID templates),
    far inside the screen's 20 % margin."""
    from engine.classify.trim import decimated_rows, own_window_transforms

    rng = np.random.default_rng(11)
    band = BandPass.snid_default(NW)
    filt = band.factor()
    flat = apodize(feature_spectrum(rng, 300, 930), 300, 929)
    flux = np.stack([apodize(feature_spectrum(rng, 100 + 20 * j, 1000 - 15 * j),
                             100 + 20 * j, 999 - 15 * j) for j in range(12)]).astype(np.float32)
    nz = flux != 0
    tlo, thi = nz.argmax(axis=1), NW - 1 - nz[:, ::-1].argmax(axis=1)
    rows = rng.integers(0, 12, 300)
    shift = rng.integers(-250, 400, 300)
    *_, lap = overlap_windows(shift, tlo[rows], thi[rows], 300, 929)
    rows, shift = rows[lap > 120], shift[lap > 120]
    args = (flat, flux, rows, shift, tlo, thi, 300, 929, band, filt)
    exact = np.concatenate([ch.cfilt for ch in trimmed_correlations(*args, dtype=np.float32)])
    own = own_window_transforms(flux, tlo, thi)
    screen = np.empty_like(exact)
    for ch in trimmed_correlations(*args, dtype=np.float32, chunk=50, own_fft=own,
                                   coarse=decimated_rows(sfft.rfft(flux, axis=1), NW, 4)):
        screen[ch.at] = ch.cfilt
    t1, t2, *_ = overlap_windows(shift, tlo[rows], thi[rows], 300, 929)
    whole = (t1 == tlo[rows]) & (t2 == thi[rows])
    assert whole.any() and (~whole).any()
    err = np.linalg.norm(screen - exact, axis=1) / np.linalg.norm(exact, axis=1)
    assert err[whole].max() <= 1e-6
    assert np.median(err[~whole]) <= 2e-4 and err[~whole].max() <= 2e-3


def random_cross_power(rng, n, band):
    """Shape ``(n, k4 + 1)`` complex64 cross-powers carrying the band-pass filter."""
    nk = band.k4 + 1
    x = rng.normal(size=(n, nk)) + 1j * rng.normal(size=(n, nk))
    return (x * band.factor()[:nk]).astype(np.complex64)


def test_sampled_correlations_are_exact_samples():
    rng = np.random.default_rng(5)
    band = BandPass.snid_default(NW)
    cfilt = random_cross_power(rng, 30, band)
    full = sfft.irfft(cfilt.astype(complex), n=NW, axis=1)
    assert screen_step(NW, band.k4) == 4
    for step in (4, 2, 1):
        got = sampled_correlations(cfilt, NW, step)
        assert got.shape == (30, NW // step)
        assert np.allclose(got, full[:, ::step], rtol=0, atol=1e-5 * np.abs(full).max())
    assert screen_step(NW, 200) == 2 and screen_step(NW, 300) == 1
    with pytest.raises(ValueError, match="sampling step"):
        sampled_correlations(random_cross_power(rng, 2, BandPass(NW, 1, 4, 100, 200)), NW, 4)


def test_value_and_antisym_rms_match_the_direct_evaluation():
    """The screen's value and antisymmetric rms at a centre equal the full-resolution
    correlation there and :func:`band_antisym_rms` in double precision (centres on the
    quarter-bin grid, which the screen rounds to)."""
    rng = np.random.default_rng(8)
    band = BandPass.snid_default(NW)
    cfilt = random_cross_power(rng, 40, band)
    center = rng.integers(-40, 4 * NW + 40, 40) / 4.0
    value, arms = value_and_antisym_rms(cfilt, center, band, band.antisym_weights(filtered=True))
    k = np.arange(band.k4 + 1)
    shifted = cfilt.astype(complex) * np.exp(2j * np.pi * np.outer(center, k) / NW)
    direct = (2.0 * shifted.real.sum(axis=1) - shifted.real[:, 0]) / NW
    ref = band_antisym_rms(cfilt[:, band.k1:].astype(complex), center, band,
                           band.antisym_weights(filtered=True))
    scale = np.abs(direct).max()
    assert np.allclose(value, direct, rtol=0, atol=1e-5 * scale)
    assert np.allclose(arms, ref, rtol=1e-5)
    whole = np.rint(center).astype(int) == center
    full = sfft.irfft(cfilt.astype(complex), n=NW, axis=1)
    at = full[np.flatnonzero(whole), (center[whole].astype(int)) % NW]
    assert np.allclose(value[whole], at, rtol=0, atol=1e-5 * scale)


def test_runner_up_peaks():
    x = np.zeros((4, 16), dtype=np.float32)
    x[0, [3, 9]] = [5.0, 4.0]                  # two separate peaks: the lower one is the runner-up
    x[1, 3] = 5.0                              # one peak only (zeros are plateaus: local maxima)
    x[1] = -np.abs(np.arange(16) - 3.0)
    x[2] = np.arange(16.0)[::-1]               # falls away from lag 0: no other local maximum
    x[3] = [1, 2, 3, 4, 5, 6, 5, 4, 3, 2, 1, 2, 3, 4, 5, 6]   # runner-up cut by the lag range
    allowed = np.ones(16, dtype=bool)
    allowed[14:] = False
    imax = np.array([3, 3, 0, 5])
    got = runner_up_peaks(x, allowed, imax)
    assert got[0] == 9 and got[1] == -1 and got[2] == -1
    assert got[3] == 13                        # its neighbour 14 is not allowed
