"""A target next to a brighter star in poor seeing: the neighbour must be modelled, not merged.

Cubes: the target at the origin and a star five times brighter (1.75 mag) 2.1 FWHM away, both
point sources of an achromatic PSF of FWHM 3.5 spaxel units (1.9 arcsec), rendered with the
engine's lenslet-averaged profile, S/N ~35 per slice on the target's peak; no refraction.

Before the fix the first fit of the target alone moved towards the star and widened until both
were one broad source; the residual search then skipped the star (it looked for neighbours two
*fitted* FWHM away), a host disk took the star's light, the host fraction was ~1e31 and the
target's spectrum came out negative. Measured now over the seeds below: the star is found within
0.12 unit of its position, the target's flux within 1.2 % of the truth (limits 0.3 unit and
3 %), and no host is kept.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.science.adr import Meteo
from engine.science.host import MAX_HOST_FRACTION, HostShape, host_fraction, host_warranted
from engine.science.photometry import forced_photometry
from engine.science.psf import PsfShape, spaxel_fractions
from engine.science.psffit import fit_psf
from engine.science.scene import find_peaks
from tests.engine.science.test_host import render_host, spaxel_grid

PSF = PsfShape(alpha=3.0, beta=2.6, eta=0.5, core=0.6, ab=0.95, theta=0.3, rho=0.0)
NEIGHBOUR = np.array([5.2, -5.4])  # 7.5 units, 2.1 FWHM


def make_cube(rng: np.random.Generator, *, neighbour_ratio: float = 5.0, host: HostShape | None = None):
    """Cube (wave, flux, var, xy) of target + neighbour (+ host) + sky and the target's spectrum."""
    wave = np.linspace(3800.0, 9200.0, 90)
    xy = spaxel_grid(14.0)
    sn = 2000.0 * (wave / 6000.0) ** -1.0
    star = neighbour_ratio * 2000.0 * (wave / 6000.0) ** 0.5  # redder than the target
    at = np.zeros((wave.size, 2))
    model = spaxel_fractions(xy, at, PSF, wave).T * sn
    if neighbour_ratio:
        model += spaxel_fractions(xy, at + NEIGHBOUR, PSF, wave).T * star
    if host is not None:
        model += render_host(xy, host, PSF)[:, None] * 900.0 * (wave / 6000.0)
    model += 8.0
    var = model + 4.0
    return wave, model + rng.normal(size=model.shape) * np.sqrt(var), var, xy, sn


def extract(wave, flux, var, xy, *, find_host: bool = True, guess=(0.0, 0.0)):
    mask = np.hypot(*(xy - np.asarray(guess)).T) <= 10.0
    meteo = Meteo()
    fit = fit_psf(wave, flux, var, xy, guess, n_meta=6, fit_mask=mask, meteo=meteo, airmass=1.0,
                  parallactic_deg=0.0, rotation_deg=0.0, find_host=find_host)
    centres = fit.adr.position(wave, 0.0, meteo)
    fp = forced_photometry(wave, flux, var, xy, fit.fit_mask, fit.shape, centres, companions=fit.companions,
                           host=fit.host)
    return fit, fp


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_bright_neighbour_two_fwhm_away_is_modelled(seed):
    wave, flux, var, xy, sn = make_cube(np.random.default_rng(seed))
    fit, fp = extract(wave, flux, var, xy, guess=(0.15, -0.1))
    assert fit.companions.n == 1
    assert np.hypot(*(fit.companions.points[0] - NEIGHBOUR)) < 0.3
    assert np.hypot(fit.adr.x_ref, fit.adr.y_ref) < 0.1
    assert fit.host is None
    sel = (wave > 4000) & (wave < 9000)
    assert fp.flux[sel].sum() / sn[sel].sum() == pytest.approx(1.0, abs=0.03)
    assert np.all(fp.flux[sel] > 0)
    assert abs(fit.shape.fwhm_units() - PSF.fwhm_units()) < 0.25 * PSF.fwhm_units()


def test_an_isolated_target_gets_no_neighbour():
    wave, flux, var, xy, sn = make_cube(np.random.default_rng(4), neighbour_ratio=0.0)
    fit, fp = extract(wave, flux, var, xy)
    assert fit.companions.n == 0
    sel = (wave > 4000) & (wave < 9000)
    assert fp.flux[sel].sum() / sn[sel].sum() == pytest.approx(1.0, abs=0.015)


def test_a_host_bulge_is_not_taken_for_a_neighbour():
    """A resolved disk (scale 3.5 units, 0.5 of the target's flux at 6000 A) 4.5 units away is not
    a compact peak: the image search leaves it to the host model."""
    host = HostShape(x=-3.0, y=3.4, scale=3.5, ab=0.6, theta=0.8)
    wave, flux, var, xy, sn = make_cube(np.random.default_rng(5), neighbour_ratio=0.0, host=host)
    ms_img = flux[:, (wave > 4000) & (wave < 8000)].mean(1)
    peaks = find_peaks(xy, ms_img, var[:, 0] / 40.0, np.zeros(2), 3.6, exclude_radius=3.0)
    assert peaks.n == 0


def test_find_peaks_sees_a_separate_star_and_not_the_target():
    wave, flux, var, xy, sn = make_cube(np.random.default_rng(6))
    img = flux[:, (wave > 4000) & (wave < 8000)].mean(1)
    peaks = find_peaks(xy, img, var[:, 0] / 40.0, np.zeros(2), 3.6, exclude_radius=3.0)
    assert peaks.n == 1
    assert np.hypot(*(peaks.points[0] - NEIGHBOUR)) < 0.6


def test_host_fraction_is_bounded():
    assert host_fraction(5.0, 1e-30) == pytest.approx(10 * MAX_HOST_FRACTION)
    assert host_fraction(5.0, -2.0) == pytest.approx(10 * MAX_HOST_FRACTION)
    assert host_fraction(-5.0, 0.0) == pytest.approx(-10 * MAX_HOST_FRACTION)
    assert host_fraction(float("nan"), 1.0) == pytest.approx(10 * MAX_HOST_FRACTION)
    assert host_fraction(0.5, 2.0) == pytest.approx(0.25)


def test_a_host_that_took_the_point_sources_light_is_refused():
    disk = HostShape(x=1.0, y=-6.0, scale=3.0, ab=0.8, theta=0.0)
    test = host_warranted(2e4, 1e4, n_extra=11, n_data=1500, dof_host=1400, host_fraction=host_fraction(3e3, -10.0),
                          host=disk, fwhm_units=3.5)
    assert not test.kept and "above" in test.reason
    assert np.isfinite(test.host_fraction) and test.host_fraction <= 10 * MAX_HOST_FRACTION
    ok = host_warranted(2e4, 1e4, n_extra=11, n_data=1500, dof_host=1400, host_fraction=0.8, host=disk, fwhm_units=3.5)
    assert ok.kept


BROAD_PSF = PSF.with_(alpha=4.3)
"""FWHM ~5 spaxel units (2.9 arcsec): the neighbour below is only 1.5 FWHM away."""
EDGE_NEIGHBOUR = np.array([-0.9, 7.4])  # 7.45 units: on the edge of a 10-unit region around the target


def _edge_case(seed: int):
    wave = np.linspace(3800.0, 9200.0, 90)
    xy = spaxel_grid(16.0)
    sn = 2000.0 * (wave / 6000.0) ** -1.0
    star = 5.3 * 2000.0 * (wave / 6000.0) ** 0.5
    at = np.zeros((wave.size, 2))
    model = spaxel_fractions(xy, at, BROAD_PSF, wave).T * sn + spaxel_fractions(xy, at + EDGE_NEIGHBOUR, BROAD_PSF, wave).T * star
    model += 8.0
    var = model + 4.0
    return wave, model + np.random.default_rng(seed).normal(size=model.shape) * np.sqrt(var), var, xy, sn


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_bright_neighbour_merged_in_broad_seeing_is_seeded_from_the_brightest_source(seed):
    """Seed 115's case: 2.9-arcsec seeing, a star 5.3 times brighter 1.5 FWHM away on the edge of
    the fitted region. The data image shows no separate peak there, and the target alone was
    fitted at the merged blob, 3.8 units off (a Q2 spectrum of mostly the star). The brightest
    compact source of the cube (the extraction's ``brightest`` position) seeds the neighbour: over
    seeds 1-3 the target comes back within 0.02 unit (limit 0.15), the star within 0.01 (limit
    0.5) and the target's flux within -0.9 to +2.9 % (limit 4 %: the star is 5.3 times brighter
    and only 1.5 FWHM away)."""
    from engine.science.cube import Cube
    from engine.science.position import brightest_position

    wave, flux, var, xy, sn = _edge_case(seed)
    mask = np.hypot(*xy.T) <= 10.0
    meteo = Meteo()
    kw = dict(n_meta=5, fit_mask=mask, meteo=meteo, airmass=1.0, parallactic_deg=0.0, rotation_deg=0.0,
              guess_err=3.0, find_host=True)
    alone = fit_psf(wave, flux, var, xy, (0.05, -0.04), **kw)
    assert np.hypot(alone.adr.x_ref, alone.adr.y_ref) > 2.0  # without the seed: the merged blob
    brightest = brightest_position(Cube(wave=wave, flux=flux, var=var, spaxel_id=np.arange(len(xy)), xy=xy))
    assert np.hypot(*(np.asarray(brightest) - EDGE_NEIGHBOUR)) < 1.0
    fit = fit_psf(wave, flux, var, xy, (0.05, -0.04), bright_sources=(brightest,), **kw)
    assert np.hypot(fit.adr.x_ref, fit.adr.y_ref) < 0.15
    assert fit.companions.n >= 1 and np.hypot(*(fit.companions.points[0] - EDGE_NEIGHBOUR)) < 0.5
    centres = fit.adr.position(wave, 0.0, meteo)
    fp = forced_photometry(wave, flux, var, xy, fit.fit_mask, fit.shape, centres, companions=fit.companions,
                           host=fit.host)
    sel = (wave > 4000) & (wave < 9000)
    assert fp.flux[sel].sum() / sn[sel].sum() == pytest.approx(1.0, abs=0.04)


def test_a_brightest_source_within_the_guess_radius_is_the_target_not_a_neighbour():
    wave, flux, var, xy, sn = make_cube(np.random.default_rng(5), neighbour_ratio=0.0)
    mask = np.hypot(*xy.T) <= 10.0
    fit = fit_psf(wave, flux, var, xy, (0.0, 0.0), n_meta=6, fit_mask=mask, meteo=Meteo(), airmass=1.0,
                  parallactic_deg=0.0, rotation_deg=0.0, bright_sources=((0.3, -0.2), None))
    assert fit.companions.n == 0 and np.hypot(fit.adr.x_ref, fit.adr.y_ref) < 0.1
