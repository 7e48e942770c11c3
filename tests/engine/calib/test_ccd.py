"""CCD preprocessing: master bias, overscan, gain, trimming, cosmic rays."""

import numpy as np
import pytest
from astropy.io import fits

from engine.ccd.combine import mean_minmax_reject, median_combine
from engine.ccd.cosmics import SEDM_LACOSMIC, clean_cosmics
from engine.ccd.debias import debias, master_bias
from engine.errors import CalibrationMismatchError, FrameError
from engine.instrument import sedm


def andor_header(speed=1.0, gain=0.9):
    return fits.Header({"PSCANX0": 0, "PSCANX1": 8, "OSCANX0": 2056, "OSCANX1": 2064, "ADCSPEED": speed, "GAIN": gain})


def andor_raw(rng, level=410.0, signal=None):
    raw = rng.normal(level, 5.0, (2048, 2064))
    if signal is not None:
        raw[:, 8:2056] += signal
    return raw.astype(np.float32)


def test_mean_with_min_max_rejection():
    stack = np.array([[[1.0]], [[2.0]], [[3.0]], [[100.0]], [[-50.0]]])
    assert mean_minmax_reject(stack)[0, 0] == pytest.approx(2.0)
    assert median_combine(stack)[0, 0] == 2.0


def test_andor_bias_scan_gain_and_trim():
    rng = np.random.default_rng(0)
    headers = [andor_header() for _ in range(5)]
    biases = [andor_raw(rng, level=400 + i) for i in range(5)]  # drifting scan level, removed per frame
    master, cards = master_bias(biases, headers)
    assert cards["NCOMBINE"][0] == 5 and abs(float(np.median(master))) < 0.5
    signal = np.full((2048, 2048), 1000.0)
    d = debias(andor_raw(rng, level=437.0, signal=signal), andor_header(), master, master_name="bias1.0.fits")
    assert d.image.shape == sedm.CCD_SHAPE
    assert np.median(d.image) == pytest.approx(900.0, abs=1.0)  # 1000 ADU x 0.9 e-/ADU
    assert d.cards["GAIN"][0] == 1.0 and d.cards["BUNIT"][0] == "electron"
    assert d.cards["RDNOISE"][0] == pytest.approx(4.5, rel=0.1)
    assert np.median(d.variance) == pytest.approx(900.0 + 4.5**2, rel=0.02)


def test_pixis_row_overscan():
    rng = np.random.default_rng(1)
    ramp = np.linspace(0, 30, 2048)[:, None]
    raw = (rng.normal(1000, 3, (2048, 2048)) + ramp).astype(np.float32)
    raw[:, :2045] += 500.0
    h = fits.Header({"ADCSPEED": 0.1, "GAIN": 1.8})
    d = debias(raw, h, None)
    assert np.median(d.image[:, :2000]) == pytest.approx(900.0, abs=2.0)  # ramp removed row by row
    assert abs(np.median(d.image[:100, :2000]) - np.median(d.image[-100:, :2000])) < 2.0


def test_mixed_read_speeds_and_bad_layout_are_refused():
    rng = np.random.default_rng(2)
    with pytest.raises(CalibrationMismatchError, match="different read speeds"):
        master_bias([andor_raw(rng), andor_raw(rng)], [andor_header(1.0), andor_header(0.1)])
    with pytest.raises(FrameError, match="unknown camera layout"):
        debias(np.zeros((2048, 2100), np.float32), fits.Header(), None)
    bad = andor_header()
    bad["OSCANX0"] = 2000
    with pytest.raises(FrameError, match="inconsistent scan keywords"):
        debias(andor_raw(rng), bad, None)


def test_cosmic_rays_are_found_and_boxed_iterations_match_lacosmic():
    import astroscrappy

    rng = np.random.default_rng(3)
    img = rng.normal(200.0, np.sqrt(200.0 + 25.0), (512, 512)).astype(np.float32)
    ys, xs = rng.integers(10, 500, 40), rng.integers(10, 500, 40)
    for y, x in zip(ys, xs):
        img[y : y + 2, x] += 5000.0
    res = clean_cosmics(img, exptime_s=300.0)
    assert res.mask[ys, xs].all() and res.iterations >= 2
    assert np.abs(res.image[ys, xs] - 200.0).max() < 150.0
    full, _ = astroscrappy.detect_cosmics(img, niter=4, **SEDM_LACOSMIC)
    assert (full ^ res.mask).sum() <= 2
    assert clean_cosmics(img, exptime_s=30.0).skipped  # short frames are not cleaned (SEDM)


def _bright_traces(rng):
    """A standard star's traces (peak 45,000 e-, sigma 0.95 px across, smooth along x, tilted),
    Poisson noise, and 60 two-pixel cosmic rays of 600-9000 e- each."""
    y, x = np.arange(400)[:, None], np.arange(600)[None, :]
    truth = np.full((400, 600), 100.0)
    for k, yc in enumerate(range(40, 380, 24)):
        spec = 45000.0 * np.exp(-0.5 * ((k - 7) / 3.0) ** 2) * (0.6 + 0.4 * np.sin(x / 90.0 + k) ** 2)
        truth = truth + spec * np.exp(-0.5 * ((y - yc - 0.01 * (x - 300)) / 0.95) ** 2)
    img = rng.poisson(truth).astype(float)
    cy, cx = rng.integers(5, 395, 60), rng.integers(5, 594, 60)
    for a, b in zip(cy, cx):
        img[a, b : b + 2] += rng.uniform(600.0, 9000.0, 2)
    hit = np.zeros(img.shape, bool)
    hit[cy, cx] = hit[cy, cx + 1] = True
    return img.astype(np.float32), truth, hit


def test_cosmic_cleaning_keeps_bright_trace_cores(monkeypatch):
    """L.A.Cosmic alone flags 212 core pixels of these traces (0.58 % of their flux replaced; on a
    synthetic standard, 12 % of its brightest pixels). Detections no brighter than their row
    along the dispersion are restored: 4 remain (limit 10, flux lost < 0.05 %), and every
    cosmic ray L.A.Cosmic found is still flagged."""
    img, truth, hit = _bright_traces(np.random.default_rng(1))
    bright = truth > 5000.0
    res = clean_cosmics(img, exptime_s=300.0)
    assert (res.mask & bright & ~hit).sum() <= 10
    assert (img - res.image)[bright & ~hit].sum() / img[bright].sum() < 5e-4
    monkeypatch.setattr("engine.ccd.cosmics.KEEP_SIGMA", -np.inf)
    monkeypatch.setattr("engine.ccd.cosmics.KEEP_FRACTION", -np.inf)
    raw = clean_cosmics(img, exptime_s=300.0)  # L.A.Cosmic's own detections
    assert (raw.mask & bright & ~hit).sum() > 100
    assert np.array_equal(res.mask & hit, raw.mask & hit) and (res.mask & hit).sum() >= 0.8 * hit.sum()
