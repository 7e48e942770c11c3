"""The truth of a synthetic night: ``truth.json`` and the FITS tables it points to.

Only tests and benchmarks read these files; the reduction code never does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from engine.instrument import sedm
from engine.synth.frames import NightContext, _exposure_psf
from engine.synth.plan import FramePlan, draw_night_conditions

TRUTH_WAVE_AA = np.linspace(3500.0, 10000.0, 66)
"""Wavelengths at which trace positions and throughputs are tabulated [Angstrom]."""

DOC = {
    "night": "UT night YYYYMMDD of the directory holding truth.json",
    "frames": "one entry per raw FITS file: file (basename), dir (raw sub-directory), kind in "
              "bias/dome/arc/standard/science/guider/skip, lamp (arcs), object, exptime, adcspeed, "
              "skip_reason (skips), ifu_file (guider frames: the IFU exposure they belong to)",
    "exposures": "one entry per standard/science IFU frame: file, obs_id (HH_MM_SS), object, kind, "
                 "sed (path, relative to this file, of a two-column text file: vacuum wavelength [A], "
                 "F_lambda [erg/s/cm2/A] above the atmosphere), position ([x, y] of the target at 7000 A "
                 "in the engine's spaxel frame, units of 0.55 arcsec, +x West +y North), jflex_px / iflex_px "
                 "(shift of the trace pattern in y / x relative to the calibration frames), "
                 "expected_quality (SEDM quality flag the engine should assign) and quality_reason, "
                 "sn_type and redshift (SNID's answer for the real SEDM spectrum used, null otherwise), "
                 "mag_r, airmass, seeing and PSF, ADR inputs, host/neighbour, guider state and frames",
    "instrument": "traces: FITS table (one row per lenslet imaged on the detector): id, q, r (axial hex), "
                  "usable (whole 3700-9300 A trace inside the usable region), sky_x/sky_y (spaxel frame), "
                  "x_ref/y_ref (CCD position at 7000 A), disp (D, C, E, F of x = x_ref + D t + C t^2 + E t^3 + "
                  "F t^4 with t = lambda^-0.5 - 7000^-0.5), tilt/curv (y = y_ref + tilt dx + curv dx^2), "
                  "sigma_y (cross-dispersion Gaussian sigma at 6500 A; scales as 1 + sigma_chroma (lambda/6500 - 1)), "
                  "lsf_sigma, flat/flat_chroma (throughput = flat (1 + flat_chroma (lambda - 6500)/3000)), "
                  "flat_5000_8500 (mean throughput over 5000-8500 A / its median over usable lenslets), "
                  "x_at_wave / y_at_wave (CCD positions at the wavelengths of extension WAVE). The calibration "
                  "frames (domes, arcs) are rendered with zero flexure, so this table describes them exactly.",
    "priors": "prior set of the draw: 'nominal' (narrow draw around engine/instrument/sedm.py, unbounded "
              "lenslet array, no defects) or 'wide' (ranges of engine.synth.priors.describe_priors())",
    "instrument_draw": "the drawn instrument. Both prior sets: priors, pitch_px (CCD distance of neighbouring "
                       "lenslet images), angle_deg (lattice q axis from CCD +x), origin_px (CCD x, y of the "
                       "microlens array's centre at 7000 A; the spaxel frame's lenslet (0, 0) is the one imaged "
                       "nearest CCD_LATTICE_ORIGIN_PX, and mla_centre_lenslet is the array centre's (q, r) in it), "
                       "mla_outline, min_trace_y_separation_px "
                       "(analytic: min |v_y - tilt v_x| over lattice vectors v with |v_x| below the trace "
                       "length), defects. Wide draws add: attempts/builds (redraws under the separation rule), "
                       "lattice_basis_px, trace_length_px (3700-9300 A at the centre), separation_vector_px, "
                       "measured_min_trace_y_separation_px (on the drawn traces), distortion (coefficients of "
                       "the quadratic + cubic terms in normalised coordinates, max_px, max_slope), dispersion "
                       "(scale = D / 38900, coeffs_centre D C E F, c_e_f_factors = C/2e5, E/8e6, F/6e7, field "
                       "terms), tilt_mean/tilt_range, curv_mean_per_px, widths (sigma_y_px at the centre and "
                       "its field terms, sigma_chroma, lsf), throughput (flat_scatter, vignetting, gradient, "
                       "flat_chroma_scatter, pixel_flat_rms), mla_outline (SEDM's 52 rows of 45 "
                       "lenslets, engine.instrument.sedm.in_mla, around the array centre), defects (bad_columns: x, rows "
                       "[y0, y1), dead with response or hot with offset_e + rate_e_s; hot_pixels x, y, "
                       "rate_e_s; bleed: a pixel saturating rows around it in every exposed frame; "
                       "scattered_light: fraction of the frame's mean illumination times a smooth pattern), "
                       "conditions (the night's seeing median, PSF family and flexure sizes). Defects are the "
                       "detector's: the same on every frame of the night.",
}


def exposure_entry(
    ctx: NightContext, plan: FramePlan, sed: np.ndarray, centre: dict, wcs_truth: dict, guider_files: list[str],
    extras: dict,
) -> dict:
    """The truth entry of one on-sky exposure (and write its SED file)."""
    exp = plan.exposure
    sed_dir = ctx.raw_root / ctx.night / "truth"
    sed_dir.mkdir(parents=True, exist_ok=True)
    sed_name = f"sed_{plan.obs_id}_{exp.object_name}.txt"
    w = ctx.grid.wave[::-1]
    grid2 = np.arange(3500.0, 10000.01, 2.0)
    flux = np.interp(grid2, w, sed[::-1])
    np.savetxt(sed_dir / sed_name, np.column_stack([grid2, flux]), fmt="%.2f %.6e",
               header="vacuum wavelength [A]  F_lambda [erg/s/cm2/A] above the atmosphere")
    psf = _exposure_psf(exp)
    entry = {
        "file": plan.file,
        "obs_id": plan.obs_id,
        "object": exp.object_name,
        "kind": exp.kind,
        "trick": exp.trick,
        "sed": f"truth/{sed_name}",
        "sed_kind": exp.sed_kind,
        "sed_source": exp.sed_source,
        "position": [float(v) for v in exp.position],
        "jflex_px": exp.jflex,
        "iflex_px": exp.iflex,
        "expected_quality": exp.expected_quality,
        "quality_reason": exp.quality_reason,
        "sn_type": exp.sn_type,
        "redshift": exp.redshift,
        "mag_r": exp.mag_r,
        "exptime": plan.exptime,
        "airmass": exp.airmass,
        "endair": exp.endair,
        "parallactic_deg": exp.parallactic_deg,
        "end_pa_deg": exp.end_pa_deg,
        "in_air_c": exp.in_air,
        "in_hum_pct": exp.in_hum,
        "barpress_hpa": exp.barpress,
        "seeing_fwhm_arcsec": exp.seeing_fwhm,
        "psf": {"fwhm_arcsec_5000": psf.fwhm_arcsec, "measured_fwhm_arcsec_5000": psf.measured_fwhm_arcsec(),
                "beta": psf.beta, "eta": psf.eta, "core_ratio": psf.core_ratio, "ab": psf.ab,
                "theta_rad": psf.theta_rad, "chroma": psf.chroma},
        "sky_brightness": exp.sky_brightness,
        "host": exp.host,
        "neighbour": exp.neighbour,
        "guider": exp.guider,
        "guider_frames": guider_files,
        "guider_wcs": wcs_truth,
        "target_radec": [exp.ra, exp.dec],
        "pointing_error_arcsec": list(exp.pointing_error_arcsec),
        **centre,
        **extras,
    }
    return entry


def _trace_table(ctx: NightContext) -> fits.BinTableHDU:
    ins = ctx.instrument
    x_at = ins.x_of_wave(TRUTH_WAVE_AA)
    y_at = ins.y_of_x(x_at)
    w = np.linspace(5000.0, 8500.0, 71)
    thr = ins.throughput(w).mean(axis=1)
    thr /= np.median(thr[ins.usable])
    cols = {
        "id": np.arange(ins.n), "q": ins.q, "r": ins.r, "usable": ins.usable,
        "sky_x": ins.sky_xy[:, 0], "sky_y": ins.sky_xy[:, 1], "x_ref": ins.x_ref, "y_ref": ins.y_ref,
        "disp": ins.disp, "tilt": ins.tilt, "curv": ins.curv, "sigma_y": ins.sigma_y,
        "sigma_chroma": ins.sigma_chroma, "lsf_sigma": ins.lsf_sigma, "flat": ins.flat,
        "flat_chroma": ins.flat_chroma, "flat_5000_8500": thr, "x_at_wave": x_at, "y_at_wave": y_at,
    }
    return fits.table_to_hdu(Table(cols))


def write_truth(
    out: Path, night: str, ctx: NightContext, results: list[dict], *, mini: bool, seed: int, camera: str,
    elapsed_s: float, version: str, noise_seed: int | None = None, priors: str = "nominal",
) -> Path:
    """Write ``truth.json`` and ``truth/traces.fits``; return the JSON path."""
    tdir = out / night / "truth"
    tdir.mkdir(parents=True, exist_ok=True)
    hdul = fits.HDUList([fits.PrimaryHDU(), _trace_table(ctx), fits.ImageHDU(TRUTH_WAVE_AA, name="WAVE")])
    hdul[1].name = "TRACES"
    hdul.writeto(tdir / "traces.fits", overwrite=True)
    frames = []
    for r in results:
        frames.append(r["frame"])
        frames.extend(r["guider_frames"])
    exposures = [r["exposure"] for r in results if r["exposure"] is not None]
    ins = ctx.instrument
    truth = {
        "doc": DOC,
        "night": night,
        "seed": seed,
        "noise_seed": noise_seed,
        "mini": mini,
        "camera": camera,
        "priors": priors,
        "generator": f"sedmtui {version} engine.synth",
        "elapsed_s": round(elapsed_s, 2),
        "frames": frames,
        "exposures": exposures,
        "instrument": {
            "traces": "truth/traces.fits",
            "flat": "truth/traces.fits (columns flat, flat_chroma, flat_5000_8500)",
            "n_lenslets_on_detector": ins.n,
            "n_traces_usable": int(ins.usable.sum()),
            "ifu_centre_epoch": sedm.ifu_centre_for(night).__dict__,
            "catalog": f"../catalog/refcat_{night}.fits",
        },
        "instrument_draw": instrument_draw(ctx),
    }
    path = out / night / "truth.json"
    path.write_text(json.dumps(truth, indent=1, default=_jsonable))
    return path


def instrument_draw(ctx: NightContext) -> dict:
    """The night's drawn instrument, detector defects and observing conditions (JSON-ready)."""
    draw = dict(ctx.instrument.draw)
    draw["defects"] = ctx.defects.record() if ctx.defects is not None else None
    if ctx.priors == "wide":
        draw["conditions"] = draw_night_conditions(ctx.seed)
        draw["prior_table"] = "engine.synth.priors.describe_priors()"
    return draw


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value)}")
