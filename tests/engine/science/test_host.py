"""Inject and recover: a point source on an exponential host galaxy, rendered in the test.

The renderer here is independent of the model in :mod:`engine.science.host`: the disk is
sampled on a fine grid (0.1 spaxel unit), convolved with the PSF profile by FFT and averaged
over each lenslet with the 7-point quadrature of :mod:`engine.science.psf`; the PSF is
achromatic and there is no refraction (airmass 1), so one convolution serves every slice.

Tolerances, measured over 30 noise realisations of these cubes (S/N ~35 per slice):

* shape: the extracted spectrum divided by a grey factor agrees with the injected one to
  chi2/dof <= 1.43 (median 1.04; 85 slices, so the 1.6 limit is 4 sigma of chi2/dof);
* grey factor: rms 1.7 % with a host (the PSF's wings trade with the disk's inner light:
  Moffat beta/eta and the disk are only separated by their shapes), 0.8 % without; limits
  6 % and 3 %, against the 40-50 % excess of the extraction without a host component;
* host spectrum: median ratio within 3.4 % rms; limit 15 %.

The mixture-of-Gaussians model agrees with the brute-force rendering to 1 % of the peak.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import fftconvolve

from engine.instrument import sedm
from engine.science.adr import Meteo
from engine.science.host import MIN_SCALE_UNITS, HostShape, host_fractions, host_warranted
from engine.science.photometry import forced_photometry
from engine.science.psf import QUAD_W, QUAD_XY, SPAXEL_AREA, PsfShape, profile, spaxel_fractions
from engine.science.psffit import fit_psf

TRUE_PSF = PsfShape(alpha=2.0, beta=2.6, eta=0.5, core=0.6, ab=0.93, theta=0.4, rho=0.0)
STEP = 0.1


def spaxel_grid(radius: float = 13.0) -> np.ndarray:
    """Lenslet centres (n, 2) within ``radius`` of the origin [spaxel unit]."""
    q, r = np.meshgrid(np.arange(-16, 17), np.arange(-16, 17))
    xy = sedm.hex_to_spaxel_xy(q.ravel(), r.ravel())
    return xy[np.hypot(*xy.T) <= radius]


def render_host(xy: np.ndarray, host: HostShape, psf: PsfShape) -> np.ndarray:
    """Fraction of the disk's flux in each lenslet (n,), by brute force."""
    g = np.arange(-300, 301) * STEP
    gx, gy = np.meshgrid(g, g)
    c, s = np.cos(host.theta), np.sin(host.theta)
    u = c * (gx - host.x) + s * (gy - host.y)
    v = (-s * (gx - host.x) + c * (gy - host.y)) / host.ab
    disk = np.exp(-np.hypot(u, v) / host.scale)
    disk /= 2 * np.pi * host.ab * host.scale**2 / STEP**2
    alpha, sigma = psf.at(7000.0)
    kernel = profile(gx, gy, psf, alpha, sigma) * STEP**2
    image = fftconvolve(disk, kernel, mode="same") / STEP**2  # surface density [per unit^2]
    out = np.zeros(len(xy))
    for (dx, dy), w in zip(QUAD_XY, QUAD_W):
        ix = np.clip(np.round((xy[:, 0] + dx - g[0]) / STEP).astype(int), 0, g.size - 1)
        iy = np.clip(np.round((xy[:, 1] + dy - g[0]) / STEP).astype(int), 0, g.size - 1)
        out += w * image[iy, ix]
    return out * SPAXEL_AREA


def make_cube(rng: np.random.Generator, host: HostShape | None, *, sn_xy=(0.4, -0.3), noise_scale: float = 1.0):
    """Cube (wave, flux, var, xy) and the injected point-source and host spectra."""
    wave = np.linspace(3800.0, 9200.0, 90)
    xy = spaxel_grid()
    sn = 2000.0 * (wave / 6000.0) ** -1.5  # blue transient
    host_spec = 900.0 * np.where(wave > 4000.0, 1.0, 0.4) * (wave / 6000.0) ** 1.0  # red galaxy, 4000-A break
    host_spec = host_spec + 1500.0 * np.exp(-0.5 * ((wave - 6563.0) / 15.0) ** 2)  # H-alpha
    sky = 8.0 * np.ones_like(wave)
    model = spaxel_fractions(xy, np.tile(np.asarray(sn_xy, float), (wave.size, 1)), TRUE_PSF, wave).T * sn
    if host is not None:
        model += render_host(xy, host, TRUE_PSF)[:, None] * host_spec
    model += sky
    var = noise_scale * (model + 4.0)
    flux = model + rng.normal(size=model.shape) * np.sqrt(var)
    return wave, flux, var, xy, sn, host_spec


def extract(wave, flux, var, xy, *, find_host: bool):
    """The science extraction of :mod:`engine.science.extract` (metaslices, ADR, forced fit)."""
    mask = np.hypot(*xy.T) <= 10.0
    meteo = Meteo()
    fit = fit_psf(wave, flux, var, xy, (0.0, 0.0), n_meta=6, fit_mask=mask, meteo=meteo, airmass=1.0,
                  parallactic_deg=0.0, rotation_deg=0.0, find_host=find_host)
    centres = fit.adr.position(wave, 0.0, meteo)
    fp = forced_photometry(wave, flux, var, xy, fit.fit_mask, fit.shape, centres, companions=fit.companions, host=fit.host)
    return fit, fp


def _agreement(fp, truth, wave):
    """chi2/dof of the spectrum's shape (grey factor removed) and the grey factor, 4000-9000 A."""
    sel = (wave > 4000) & (wave < 9000)
    ratio = fp.flux[sel].sum() / truth[sel].sum()
    z = (fp.flux[sel] - ratio * truth[sel]) / np.sqrt(fp.var[sel])
    return float(np.sum(z**2) / (sel.sum() - 1)), float(ratio)


def test_host_fractions_match_a_brute_force_rendering():
    xy = spaxel_grid(16.0)
    host = HostShape(x=1.0, y=-2.0, scale=2.5, ab=0.6, theta=0.4)
    model = host_fractions(xy, host, TRUE_PSF, np.array([7000.0]))[0]
    brute = render_host(xy, host, TRUE_PSF)
    assert np.max(np.abs(model - brute)) < 0.01 * brute.max()
    wide = spaxel_grid(40.0)
    assert host_fractions(wide, host, TRUE_PSF, np.array([5000.0]))[0].sum() == pytest.approx(1.0, abs=0.01)


def test_point_source_on_a_host_is_separated_from_it():
    rng = np.random.default_rng(3)
    host = HostShape(x=3.0, y=-2.5, scale=2.2, ab=0.6, theta=0.5)
    wave, flux, var, xy, sn, host_spec = make_cube(rng, host)
    fit, fp = extract(wave, flux, var, xy, find_host=True)
    assert fit.host is not None and fit.host_test.kept and fit.host_test.delta_bic > 0
    assert np.hypot(fit.host.x - host.x, fit.host.y - host.y) < 0.5
    assert fit.host.scale == pytest.approx(host.scale, rel=0.25)
    chi2, ratio = _agreement(fp, sn, wave)
    assert chi2 < 1.6, chi2
    assert abs(ratio - 1.0) < 0.06, ratio
    assert np.hypot(fit.adr.x_ref - 0.4, fit.adr.y_ref + 0.3) < 0.05
    # The host's own spectrum comes out too (H-alpha included).
    sel = (wave > 4000) & (wave < 9000)
    assert np.median(fp.host_flux[sel] / host_spec[sel]) == pytest.approx(1.0, abs=0.15)
    # Without the host component the transient absorbs the galaxy's light (and its colour).
    _fit0, fp0 = extract(wave, flux, var, xy, find_host=False)
    chi2_0, ratio0 = _agreement(fp0, sn, wave)
    assert ratio0 > 1.2 and chi2_0 > 5.0


def test_isolated_point_source_gets_no_host():
    rng = np.random.default_rng(5)
    wave, flux, var, xy, sn, _h = make_cube(rng, None)
    fit, fp = extract(wave, flux, var, xy, find_host=True)
    assert fit.host is None and fp.host_flux is None
    assert fit.host_test is None or not fit.host_test.kept
    chi2, ratio = _agreement(fp, sn, wave)
    assert chi2 < 1.6 and abs(ratio - 1.0) < 0.03
    fit0, fp0 = extract(wave, flux, var, xy, find_host=False)
    np.testing.assert_allclose(fp.flux, fp0.flux)


def test_host_selection_conditions():
    host = HostShape(x=3.0, y=0.0, scale=2.0, ab=0.7, theta=0.0)
    kw = dict(n_extra=11, n_data=1500, dof_host=1470, host_fraction=0.3, host=host, fwhm_units=3.0)
    assert host_warranted(2000.0, 1500.0, **kw).kept
    weak = host_warranted(1560.0, 1500.0, **kw)  # 60 < 11 ln 1500 = 80
    assert not weak.kept and "BIC" in weak.reason
    # Over-dispersed residuals (chi2/dof 3) raise the bar threefold.
    assert not host_warranted(4600.0, 4410.0, **kw).kept
    assert host_warranted(4900.0, 4410.0, **kw).kept
    assert not host_warranted(2000.0, 1500.0, **{**kw, "host_fraction": 0.01}).kept
    compact = HostShape(x=3.0, y=0.0, scale=MIN_SCALE_UNITS, ab=0.7, theta=0.0)
    assert "unresolved" in host_warranted(2000.0, 1500.0, **{**kw, "host": compact}).reason
    near = host_warranted(2000.0, 1500.0, **{**kw, "neighbours": np.array([[4.0, 1.0]])})
    assert not near.kept and "neighbour" in near.reason


def render_double_gaussian(xy: np.ndarray, host: HostShape, psf: PsfShape) -> np.ndarray:
    """A galaxy that is not an exponential disk: two concentric elliptical Gaussians of sigma 0.6
    and 1.8 times ``host.scale`` (equal flux), seen like :func:`render_host`."""
    g = np.arange(-300, 301) * STEP
    gx, gy = np.meshgrid(g, g)
    c, s = np.cos(host.theta), np.sin(host.theta)
    u = c * (gx - host.x) + s * (gy - host.y)
    v = (-s * (gx - host.x) + c * (gy - host.y)) / host.ab
    disk = sum(0.5 * np.exp(-0.5 * (u * u + v * v) / (f * host.scale) ** 2) / (2 * np.pi * (f * host.scale) ** 2 * host.ab)
               for f in (0.6, 1.8)) * STEP**2
    alpha, sigma = psf.at(7000.0)
    image = fftconvolve(disk, profile(gx, gy, psf, alpha, sigma) * STEP**2, mode="same") / STEP**2
    out = np.zeros(len(xy))
    for (dx, dy), w in zip(QUAD_XY, QUAD_W):
        ix = np.clip(np.round((xy[:, 0] + dx - g[0]) / STEP).astype(int), 0, g.size - 1)
        iy = np.clip(np.round((xy[:, 1] + dy - g[0]) / STEP).astype(int), 0, g.size - 1)
        out += w * image[iy, ix]
    return out * SPAXEL_AREA


@pytest.mark.parametrize("seed", [0, 1])
def test_a_host_of_another_profile_is_not_trapped_in_a_compact_minimum(seed):
    """A broad, elongated galaxy 4.4 units away whose profile is not the model's, red against a
    blue transient, in seeing that widens the point-source-only PSF over its core. A single
    round start under that PSF collapsed the disk to its lower bounds (scale 1.3, axis ratio 1):
    grey factor 1.21 and 1.17, a red tilt of 15 % per 2500 A. Measured now: grey 1.016 and 1.045,
    tilt -1.9 and +1.7 % (limits 6 % and 4 %), scale 2.3-2.4, axis ratio 0.51-0.55 (true 0.53)."""
    psf = PsfShape(alpha=2.6, beta=2.5, eta=0.6, core=0.75, ab=0.95, theta=0.3, rho=0.0)
    host = HostShape(x=-1.95, y=-3.9, scale=4.1, ab=0.53, theta=1.21)
    wave = np.linspace(3800.0, 9200.0, 90)
    xy = spaxel_grid(13.0)
    sn = 2000.0 * (wave / 6000.0) ** -1.5
    host_spec = 1200.0 * np.where(wave > 4000.0, 1.0, 0.4) * (wave / 6000.0) ** 1.5
    model = (spaxel_fractions(xy, np.zeros((wave.size, 2)), psf, wave).T * sn
             + render_double_gaussian(xy, host, psf)[:, None] * host_spec + 8.0)
    var = model + 4.0
    flux = model + np.random.default_rng(seed).normal(size=model.shape) * np.sqrt(var)
    mask = np.hypot(*xy.T) <= 10.0
    fit = fit_psf(wave, flux, var, xy, (0.1, 0.0), n_meta=6, fit_mask=mask, meteo=Meteo(), airmass=1.0,
                  parallactic_deg=0.0, rotation_deg=0.0, find_host=True)
    fp = forced_photometry(wave, flux, var, xy, fit.fit_mask, fit.shape, fit.adr.position(wave, 0.0, Meteo()),
                           companions=fit.companions, host=fit.host)
    assert fit.host is not None and fit.companions.n == 0
    assert fit.host.scale > 1.5 * MIN_SCALE_UNITS and fit.host.ab < 0.8
    sel = (wave > 4000) & (wave < 9000)
    r = fp.flux[sel] / sn[sel]
    assert np.median(r) == pytest.approx(1.0, abs=0.06)
    tilt = np.polyfit((wave[sel] - 6500.0) / 2500.0, r / np.median(r), 1)[0]
    assert abs(tilt) < 0.04
