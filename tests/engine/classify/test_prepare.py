"""Input preparation: sample selection, log rebinning, continuum, apodisation."""

from __future__ import annotations

import numpy as np
import pytest

from engine.classify.prepare import (
    apodize,
    apodize_length,
    cosine_bell,
    data_range,
    log_grid_dwlog,
    log_grid_wave,
    median_filter_samples,
    prepare_spectrum,
    rebin_log,
    select_samples,
)
from engine.errors import AlgorithmError


def test_log_grid_matches_snid_templates():
    wave = log_grid_wave()
    assert wave.shape == (1024,)
    assert wave[0] == pytest.approx(2501.69, abs=0.01)
    assert wave[-1] == pytest.approx(9993.23, abs=0.01)
    assert log_grid_dwlog() == pytest.approx(np.log(4) / 1024)


def test_rebin_conserves_integrated_flux():
    wave = np.linspace(4000, 9000, 300)
    flux = 1.0 + 0.5 * np.sin(wave / 300.0)
    out = rebin_log(wave, flux)
    edges = np.r_[1.5 * wave[0] - 0.5 * wave[1], 0.5 * (wave[1:] + wave[:-1]),
                  1.5 * wave[-1] - 0.5 * wave[-2]]
    assert out.sum() == pytest.approx(np.sum(flux * np.diff(edges)), rel=1e-12)
    assert out[:300].sum() == 0.0


def test_select_samples_clips_sky_and_aband():
    wave = np.arange(3800.0, 9600.0, 10.0)
    flux = np.ones_like(wave)
    keep = select_samples(wave, flux, wmin=4000, wmax=9500, skyclip=True, aband=False)
    assert not keep[(wave > 5540) & (wave < 5615)].any()
    assert not keep[(wave >= 7575) & (wave <= 7675)].any()
    assert not keep[wave < 4000].any() and not keep[wave > 9500].any()
    assert keep[(wave > 5000) & (wave < 5500)].all()
    keep = select_samples(wave, flux, wmin=4000, wmax=9500, skyclip=False, aband=True)
    assert keep[(wave > 5540) & (wave < 5615)].all() and keep[(wave >= 7575) & (wave <= 7675)].all()


def test_median_filter():
    x = np.array([1.0, 1.0, 10.0, 1.0, 1.0, 2.0, 2.0])
    assert median_filter_samples(x, 1).tolist() == x.tolist()
    assert median_filter_samples(x, 3)[2] == 1.0
    assert median_filter_samples(x, 3)[0] == 1.0


def test_apodize_matches_snid_bell():
    assert apodize_length(1024, 0, 1000) == 51
    assert apodize_length(1024, 10, 60) == 25
    bell = cosine_bell(51)
    assert bell[0] == 0.0 and bell[-1] == pytest.approx(1.0) and bell[25] == pytest.approx(0.5)
    out = apodize(np.ones(1024), 100, 800)
    assert out[100] == 0.0 and out[800] == 0.0 and out[450] == 1.0
    assert out[125] == pytest.approx(0.5) and out[775] == pytest.approx(0.5)


def test_flattening_removes_a_smooth_continuum():
    wave = np.arange(3700.0, 9300.0, 25.57)
    flux = 1e-16 * (wave / 5000.0) ** -2
    prep = prepare_spectrum(wave, flux, wmin=4000, wmax=9500, skyclip=False, aband=True,
                            medlen=1, zmin=-0.01, zmax=1.2)
    inner = prep.flat[prep.l1 + 60:prep.l2 - 60]
    assert np.abs(inner).max() < 5e-3  # sampling ripple of 25 A pixels in 7 A bins
    assert prep.flat[:prep.l1 + 1].max() == 0.0
    assert (prep.l1, prep.l2) == data_range(prep.flog)


def test_empty_spectrum_is_an_algorithm_error():
    wave = np.arange(4000.0, 9000.0, 25.0)
    with pytest.raises(AlgorithmError, match="usable log-wavelength bins"):
        prepare_spectrum(wave, -np.ones_like(wave), wmin=4000, wmax=9500, skyclip=True,
                         aband=True, medlen=1, zmin=-0.01, zmax=1.2)
