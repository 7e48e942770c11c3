"""Render one planned frame (bias, dome, arc, on-sky exposure and its guider frames)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.ndimage import gaussian_filter, zoom

from engine import refdata
from engine.instrument import sedm
from engine.instrument.sky import (
    sexagesimal_dec,
    sexagesimal_ra,
    sky_to_standard,
    spaxel_to_standard,
    standard_to_sky,
)
from engine.synth import guider as gd
from engine.synth import priors as pr
from engine.synth import spectra as sp
from engine.synth.detector import (
    READ_MODES,
    BiasPattern,
    Defects,
    add_cosmic_ray_at,
    add_cosmic_rays,
    apply_defects,
    draw_bias_pattern,
    draw_defects,
    read_out,
    scan_keywords,
)
from engine.synth.draw import draw_instrument
from engine.synth.headers import base_header, file_stamp, ifu_header
from engine.synth.instrument import TELESCOPE_AREA_CM2, TrueInstrument, instrument_throughput
from engine.synth.plan import Exposure, FramePlan
from engine.synth.render import render_traces
from engine.synth.scene import Psf, adr_offsets, extended_source_fractions, point_source_fractions

DOME_PEAK_E_PER_T = 3.6e9
"""Dome continuum level at its peak [electrons per unit t] (~30 ke- peak pixel)."""
ARC_BRIGHTEST_E = 1.5e5
"""Electrons of a lamp's brightest line on one trace."""
SCATTER_FRACTION = 0.004
COARSE_WAVE = np.geomspace(3500.0, 10000.0, 27)


@dataclass
class NightContext:
    """Everything shared by the frames of one night (rebuilt identically in each worker)."""

    night: str
    camera: str
    seed: int
    instrument: TrueInstrument
    patterns: dict[float, BiasPattern]
    grid: sp.FineGrid
    raw_root: Path
    priors: str = pr.DEFAULT_PRIORS
    defects: Defects | None = None
    """The detector's defects (wide priors; ``None`` for nominal draws)."""

    @classmethod
    def build(cls, night: str, camera: str, seed: int, raw_root: Path, priors: str = pr.DEFAULT_PRIORS,
              pin: tuple | None = None) -> NightContext:
        """The night's context; ``pin`` is a tuple of ``(key, value)`` pairs (see ``draw_instrument``)."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, 3]))
        instrument = draw_instrument(rng, pr.check_priors(priors), dict(pin) if pin else None)
        patterns = {
            speed: draw_bias_pattern(mode, rng)
            for (cam, speed), mode in sorted(READ_MODES.items())
            if cam == camera
        }
        defects = None
        if priors == "wide":
            lit = instrument.usable if instrument.usable.any() else np.ones(instrument.n, bool)
            x_lit = (float(np.percentile(instrument.x_ref[lit], 10)), float(np.percentile(instrument.x_ref[lit], 90)))
            y_lit = (float(np.percentile(instrument.y_ref[lit], 10)), float(np.percentile(instrument.y_ref[lit], 90)))
            defects = draw_defects(np.random.default_rng(np.random.SeedSequence([seed, 6])), x_lit, y_lit)
        return cls(night, camera, seed, instrument, patterns, sp.fine_grid(), Path(raw_root), priors, defects)


def _scattered_light(image: np.ndarray) -> np.ndarray:
    """A smooth scattered-light component (0.4 % of the local mean, ~60 px scale)."""
    small = image.reshape(128, 16, 128, 16).mean(axis=(1, 3))
    small = gaussian_filter(small, 4.0, mode="nearest")
    return SCATTER_FRACTION * zoom(small, 16, order=1).astype(np.float32)


def _coarse_to_fine(values: np.ndarray, grid_wave: np.ndarray) -> np.ndarray:
    """Interpolate ``(n, n_coarse)`` values from ``COARSE_WAVE`` to the fine grid (linear)."""
    j = np.clip(np.searchsorted(COARSE_WAVE, grid_wave) - 1, 0, COARSE_WAVE.size - 2)
    f = (grid_wave - COARSE_WAVE[j]) / (COARSE_WAVE[j + 1] - COARSE_WAVE[j])
    return values[:, j] * (1 - f) + values[:, j + 1] * f


def _lenslet_response(ctx: NightContext) -> np.ndarray:
    """``throughput_k(lambda) * T_inst(lambda) * |d lambda/d t|``; shape ``(n, n_grid)``."""
    g = ctx.grid
    return ctx.instrument.throughput(g.wave) * (instrument_throughput(g.wave) * g.dwave_dt)[None, :]


def render_dome(ctx: NightContext, plan: FramePlan) -> np.ndarray:
    """Electrons of a dome flat (uniformly lit lenslets)."""
    g = ctx.grid
    shape = sp.dome_lamp_shape(g.wave) * instrument_throughput(g.wave) * g.dwave_dt
    scale = DOME_PEAK_E_PER_T / shape.max() * (plan.exptime / 120.0) * (6.0 if plan.saturate else 1.0)
    cont = ctx.instrument.throughput(g.wave) * (shape * scale)[None, :]
    return render_traces(ctx.instrument, g, cont)


def render_arc(ctx: NightContext, plan: FramePlan, rng: np.random.Generator) -> np.ndarray:
    """Electrons of an arc-lamp frame (analytic lines)."""
    waves, amps = sp.arc_lamp_lines(plan.lamp, rng)
    keep = (waves > sp.WAVE_MIN_AA) & (waves < sp.WAVE_MAX_AA)
    waves, amps = waves[keep], amps[keep]
    t_inst = instrument_throughput(waves) / instrument_throughput(np.array([6000.0]))
    line_e = ctx.instrument.throughput(waves) * (ARC_BRIGHTEST_E * amps * t_inst)[None, :]
    return render_traces(ctx.instrument, ctx.grid, None, line_wave=waves, line_electrons=line_e)


def target_sed(exp: Exposure, grid_wave: np.ndarray) -> np.ndarray:
    """True F_lambda of the target above the atmosphere on ``grid_wave`` [erg s-1 cm-2 A-1]."""
    if exp.sed_kind == "standard":
        w, f = refdata.standard_spectrum(exp.sed_source)
        return np.interp(grid_wave, w, f)
    if exp.sed_kind == "blackbody":
        flam = sp.blackbody_flam(grid_wave, float(exp.sed_source))
    else:
        w, f = sp.read_sedm_text_spectrum(sp.SEDM_SPECTRA_DIR / exp.sed_source)
        flam = sp.extend_to_grid(w, f, grid_wave)
    return sp.scale_to_r_mag(grid_wave, flam, exp.mag_r)


def _exposure_psf(exp: Exposure) -> Psf:
    return Psf(fwhm_arcsec=exp.seeing_fwhm, beta=exp.psf_beta, eta=exp.psf_eta, core_ratio=exp.psf_core_ratio,
               ab=exp.psf_ab, theta_rad=exp.psf_theta, chroma=exp.psf_chroma)


def _scene_electrons(ctx: NightContext, exp: Exposure, exptime: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-lenslet electrons per unit t of sky + target + host + neighbour; and the target SED."""
    g, ins = ctx.grid, ctx.instrument
    rot = sedm.ifu_centre_for(ctx.night).rotation_deg
    pressure = exp.barpress * math.exp(-sedm.SITE_ALTITUDE_M / 8400.0)
    x_mean = 0.5 * (exp.airmass + exp.endair)
    pa_mean = 0.5 * (exp.parallactic_deg + exp.end_pa_deg)
    adr = adr_offsets(COARSE_WAVE, x_mean, pa_mean, rot, exp.in_air, pressure, exp.in_hum)
    psf = _exposure_psf(exp)
    atm = sp.atmosphere_transmission(g.wave, x_mean)
    to_e = TELESCOPE_AREA_CM2 * exptime
    sed = target_sed(exp, g.wave)
    target_photons = sp.photons_per_aa(sed, g.wave) * atm * to_e
    centres = np.asarray(exp.position)[None, :] + adr
    frac = _coarse_to_fine(point_source_fractions(ins.sky_xy, centres, psf, COARSE_WAVE), g.wave)
    photons = frac * target_photons[None, :]
    if exp.neighbour:
        nb = exp.neighbour
        nb_sed = sp.scale_to_r_mag(g.wave, sp.blackbody_flam(g.wave, nb["temperature_k"]), nb["mag_r"])
        c = np.asarray(exp.position) + np.asarray(nb["offset"]) + adr
        f_nb = _coarse_to_fine(point_source_fractions(ins.sky_xy, c, psf, COARSE_WAVE), g.wave)
        photons += f_nb * (sp.photons_per_aa(nb_sed, g.wave) * atm * to_e)[None, :]
    if exp.host:
        h = exp.host
        host_sed = sp.scale_to_r_mag(g.wave, sp.galaxy_flam(g.wave, h["redshift"]), h["mag_r"])
        host_centres = np.asarray(exp.position) + np.asarray(h["offset"]) + adr
        f_host = _coarse_to_fine(extended_source_fractions(
            ins.sky_xy, host_centres, h["scale_arcsec"] / sedm.SPAXEL_UNIT_ARCSEC, h["ab"], h["theta"], psf, COARSE_WAVE
        ), g.wave)
        photons += f_host * (sp.photons_per_aa(host_sed, g.wave) * atm * to_e)[None, :]
    sky = sp.sky_flam_per_arcsec2(g.wave, exp.sky_brightness) * sp.SPAXEL_AREA_ARCSEC2
    photons += (sp.photons_per_aa(sky, g.wave) * to_e)[None, :]
    return photons * _lenslet_response(ctx), sed


def render_onsky(ctx: NightContext, plan: FramePlan, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Electrons of a standard or science exposure; the target SED; truth extras."""
    exp = plan.exposure
    cont, sed = _scene_electrons(ctx, exp, plan.exptime)
    image = render_traces(ctx.instrument, ctx.grid, cont, iflex=exp.iflex, jflex=exp.jflex)
    extras: dict = {}
    if exp.cosmic_on_target:
        ins = ctx.instrument
        k = int(np.argmin(np.hypot(*(ins.sky_xy - np.asarray(exp.position)).T)))
        x = ins.x_of_wave(np.array([6000.0]), np.array([k]))[0, 0] + exp.iflex
        y = ins.y_of_x(np.array([[x - exp.iflex]]), np.array([k]))[0, 0] + exp.jflex
        add_cosmic_ray_at(image, x, y)
        extras["cosmic_ray_on_target"] = {"lenslet": k, "x": float(x), "y": float(y), "wave_aa": 6000.0}
    return image, sed, extras


def finish_ifu(ctx: NightContext, plan: FramePlan, electrons: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """Add scattered light, dark sky, cosmic rays; read out into raw ADU."""
    mode = READ_MODES[(ctx.camera, plan.adcspeed)]
    if electrons is None:
        electrons = np.zeros(sedm.CCD_SHAPE, dtype=np.float32)
        if ctx.defects is not None:
            electrons = apply_defects(electrons, 0.0, ctx.defects, illuminated=False)
        return read_out(electrons, mode, ctx.patterns[plan.adcspeed], rng, poisson=False)
    electrons = electrons + _scattered_light(electrons)
    add_cosmic_rays(electrons, plan.exptime, rng)
    if ctx.defects is not None:
        electrons = apply_defects(electrons, plan.exptime, ctx.defects, illuminated=True)
    if ctx.camera == "pixis":
        lo, hi = sedm.PIXIS_OVERSCAN_COLUMNS
        electrons[:, lo:hi] = 0.0
    return read_out(electrons, mode, ctx.patterns[plan.adcspeed], rng)


def frame_header(ctx: NightContext, plan: FramePlan, pointing: dict | None) -> fits.Header:
    """The raw SEDM header of an IFU frame."""
    mode = READ_MODES[(ctx.camera, plan.adcspeed)]
    lamps = {"lampcur": plan.lampcur}
    if plan.lamp:
        lamps[plan.lamp] = True
    extra = dict(scan_keywords(ctx.camera))
    extra.update(plan.extra)
    return ifu_header(
        start=plan.start, exptime=plan.exptime, camera=ctx.camera, adcspeed=plan.adcspeed, gain=mode.gain,
        obj=plan.obj, name=plan.name, imgtype=plan.imgtype, pointing=pointing, lamps=lamps,
        dome_open=plan.dome_open, extra=extra,
    )


def pointing_of(ctx: NightContext, exp: Exposure) -> tuple[dict, dict]:
    """Header pointing keys and the truth of where the IFU centre really was."""
    rot = sedm.ifu_centre_for(ctx.night).rotation_deg
    xi, eta = spaxel_to_standard(np.asarray(exp.position), rot)
    # The target sits at standard coords (xi, eta) of the IFU centre: solve for the centre.
    ra0, dec0 = standard_to_sky(-xi, -eta, exp.ra, exp.dec)
    for _ in range(4):
        x_now, e_now = sky_to_standard(exp.ra, exp.dec, float(ra0), float(dec0))
        ra0, dec0 = standard_to_sky(float(x_now - xi), float(e_now - eta), float(ra0), float(dec0))
    tel_ra, tel_dec = standard_to_sky(*exp.pointing_error_arcsec, float(ra0), float(dec0))
    pointing = dict(
        tel_ra=float(tel_ra), tel_dec=float(tel_dec), obj_ra=exp.ra, obj_dec=exp.dec, airmass=exp.airmass,
        endair=exp.endair, tel_pa=exp.parallactic_deg, end_pa=exp.end_pa_deg, in_air=exp.in_air,
        in_hum=exp.in_hum, barpress=exp.barpress, req_id=exp.req_id, obj_id=exp.req_id[::-1],
        p60prid=exp.p60prid,
    )
    return pointing, {"ifu_centre_radec": [float(ra0), float(dec0)]}


def write_guider_frames(
    ctx: NightContext, plan: FramePlan, pointing: dict, ifu_centre: tuple[float, float], field: gd.StarField,
    rng: np.random.Generator,
) -> tuple[list[str], dict]:
    """Write the guider frames taken during an exposure; return their names and WCS truth."""
    exp = plan.exposure
    if exp.guider == "none" or exp.n_guider == 0:
        return [], {}
    wcs, truth = gd.guider_wcs(ifu_centre[0], ifu_centre[1], ctx.night, rng)
    extras = [(exp.ra, exp.dec, exp.mag_r)]
    if exp.neighbour:
        rot = sedm.ifu_centre_for(ctx.night).rotation_deg
        xi, eta = spaxel_to_standard(np.asarray(exp.position) + np.asarray(exp.neighbour["offset"]), rot)
        extras.append((*(float(v) for v in standard_to_sky(xi, eta, *ifu_centre)), exp.neighbour["mag_r"]))
    clouds = 9.0 if exp.guider == "nostars" else 0.0
    names = []
    step = plan.exptime / exp.n_guider
    for i in range(exp.n_guider):
        start = plan.start + dt.timedelta(seconds=5 + i * step)
        data = gd.render_guider_frame(
            wcs, field, extras, exptime=30.0, fwhm_arcsec=exp.seeing_fwhm * 1.05,
            sky_mag_arcsec2=20.8 - 2.5 * math.log10(exp.sky_brightness),
            extinction_mag=clouds, rng=rng,
        )
        base = base_header(start, 30.0, "rc")
        hdr = gd.guider_header(start, 30.0, plan.obj, sexagesimal_ra(pointing["tel_ra"]),
                               sexagesimal_dec(pointing["tel_dec"]), base)
        hdr["NAME"] = plan.name
        name = f"rc{file_stamp(start)}.fits"
        fits.PrimaryHDU(data=data, header=hdr).writeto(ctx.raw_root / plan.dir_night / name, overwrite=True)
        names.append(name)
    return names, truth
