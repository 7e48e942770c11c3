"""From a cube and a starting position to the delivered products of one extraction."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from engine import refdata
from engine.errors import AlgorithmError, CalibrationNotFoundError
from engine.instrument import sedm
from engine.io import names
from engine.pipeline.jobs import report
from engine.provenance import Provenance
from engine.science.adr import Meteo
from engine.science.aperture import aperture_ratio
from engine.science.classification import classify, s2n_cards
from engine.science.cube import Cube
from engine.science.fluxcal import (
    Sensitivity,
    apply_sensitivity,
    fit_sensitivity,
    read_sensitivity,
    write_sensitivity,
)
from engine.science.position import GUESS_ERR, Position, fit_region
from engine.science.products import spectrum_header, write_psf_product, write_spectrum
from engine.science.psf import PsfShape
from engine.science.psffit import ForcedPhotometry, PsfFit, ShapePrior, fit_psf, forced_photometry
from engine.science.quality import assess_quality
from engine.timeutil import utc_now_iso

log = logging.getLogger(__name__)
EDGE = sedm.EDGE_CUT_SAMPLES


@dataclass(frozen=True)
class ExtractionInputs:
    """Everything one extraction needs."""

    task: dict
    cube: Cube
    header: fits.Header
    cube_name: str
    object_name: str
    position: Position
    region: dict | None
    lstep: int
    tag: str
    reducer: str
    guider: dict | None
    rotation_deg: float
    correlation: np.ndarray | None = None
    """Shape ``(k, n_wave)``: noise correlation of samples ``i`` and ``i + l`` (``None``: unknown)."""
    manual_radius: float | None = None
    """How far the PSF fit may move from a hand-set centroid [spaxel unit] (a re-extraction
    request's ``centroid_radius``; ``None``: ``GUESS_ERR["manual"]``)."""

    @property
    def guess_err(self) -> float:
        """How far the fit may move from the starting position [spaxel unit]."""
        if self.position.srcpos == "manual" and self.manual_radius is not None:
            return float(self.manual_radius)
        return GUESS_ERR[self.position.srcpos]


def manual_check(inp: ExtractionInputs, fitted: tuple[float, float] | None, quality: int, reason: str
                 ) -> tuple[int, str, float | None]:
    """A hand-set centroid is obeyed or flagged: ``(quality, reason, moved)``.

    ``moved`` is how far the fitted position is from the hand-set centroid [spaxel unit]. A
    fit that moved farther than the allowed radius ran to another source (or to nothing): it is
    quality 4 with the distance in the reason, never a good (delivered) extraction.
    """
    pos = inp.position
    if pos.srcpos != "manual" or fitted is None:
        return quality, reason, None
    moved = float(np.hypot(fitted[0] - pos.x, fitted[1] - pos.y))
    allowed = inp.guess_err
    if moved > allowed and quality != 3:
        return 4, (f"PSF fit moved {moved:.2f} spaxels from the hand-set centroid ({pos.x:+.2f}, {pos.y:+.2f}) "
                   f"to ({fitted[0]:+.2f}, {fitted[1]:+.2f}), more than the {allowed:.2f} allowed: another source "
                   "or no source there"), moved
    return quality, reason, moved


PRIOR_CARDS = ("PSFBETA", "PSFETA", "PSFCORE", "PSFRHO")
"""The PSF profile-family cards a standard's ``fluxcal_`` file carries for the science frames."""


def nearest_fluxcal(task: dict, mjd: float) -> dict | None:
    """The sensitivity candidate of ``task["fluxcal"]`` nearest in time to ``mjd`` (None if none)."""
    candidates = task.get("fluxcal") or []
    return min(candidates, key=lambda c: abs(c["mjd"] - mjd)) if candidates else None


def shape_prior_for(task: dict, mjd: float) -> ShapePrior | None:
    """The profile-family prior of a science frame: the nearest standard's fitted PSF.

    ``None`` for standards, when no sensitivity exists yet, or when its file lacks the PSF
    cards (written before they existed) or cannot be read: the PSF is then fitted freely.
    """
    best = nearest_fluxcal(task, mjd)
    if task["kind"] != "science" or best is None:
        return None
    try:
        h = fits.getheader(best["path"])
    except OSError:
        return None
    if not all(k in h for k in PRIOR_CARDS):
        return None
    shape = PsfShape(beta=float(h["PSFBETA"]), eta=float(h["PSFETA"]), core=float(h["PSFCORE"]), rho=float(h["PSFRHO"]))
    when = re.search(r"ifu\d{8}_(\d\d_\d\d_\d\d)", Path(best["path"]).name)
    return ShapePrior(shape=shape, source=f"{h.get('STDNAME', 'standard')} {when.group(1) if when else ''}".strip())


def _fit(inp: ExtractionInputs, mask: np.ndarray) -> tuple[PsfFit, ForcedPhotometry, Meteo]:
    h = inp.header
    meteo = Meteo.from_header(h)
    x0, x1 = float(h.get("AIRMASS", 1.1) or 1.1), float(h.get("ENDAIR", h.get("AIRMASS", 1.1)) or 1.1)
    pa0 = float(h.get("TEL_PA", 0.0) or 0.0)
    pa = 0.5 * (pa0 + float(h.get("END_PA", pa0) or pa0))
    sci = inp.task["config"]["science"]
    n_meta = sci["n_metaslices_standard"] if inp.task["kind"] == "standard" else sci["n_metaslices_science"]
    c = inp.cube
    fit = fit_psf(c.wave, c.flux, c.var, c.xy, inp.position.xy, n_meta=n_meta, fit_mask=mask, meteo=meteo,
                  airmass=0.5 * (x0 + x1), parallactic_deg=pa, rotation_deg=inp.rotation_deg,
                  guess_err=inp.guess_err, find_host=inp.task["kind"] == "science",
                  shape_prior=shape_prior_for(inp.task, float(h.get("MJD_OBS", 0.0) or 0.0)))
    centres = fit.adr.position(c.wave, inp.rotation_deg, meteo)
    fp = forced_photometry(c.wave, c.flux, c.var, c.xy, fit.fit_mask, fit.shape, centres, lstep=inp.lstep,
                           companions=fit.companions, host=fit.host)
    return fit, fp, meteo


def _sensitivity(inp: ExtractionInputs, counts, var, quality, fit: PsfFit | None,
                 fp: ForcedPhotometry | None = None) -> tuple[Sensitivity | None, str, dict]:
    """Standards: fit (and write, with the PSF's profile family) a sensitivity. Science: pick the nearest one."""
    task, h = inp.task, inp.header
    mjd = float(h.get("MJD_OBS", 0.0) or 0.0)
    airmass = 0.5 * (float(h.get("AIRMASS", 1.1) or 1.1) + float(h.get("ENDAIR", h.get("AIRMASS", 1.1)) or 1.1))
    if task["kind"] == "standard":
        std = refdata.standard_name(inp.object_name)
        if std is None:
            return None, f"unknown standard {inp.object_name}: no reference spectrum ({', '.join(refdata.known_standards())})", {}
        if quality != 0 or fit is None:
            return None, f"standard not used for flux calibration (quality {quality})", {}
        aperture = _aperture_check(inp, fit, fp)
        if aperture > APERTURE_TOLERANCE:
            return None, (f"standard not used for flux calibration: its PSF flux and aperture flux differ by "
                          f"{100 * aperture:.1f} % (limit {100 * APERTURE_TOLERANCE:.0f} %)"), {}
        sens = fit_sensitivity(inp.cube.wave, counts, var, std, airmass, mjd)
        path = Path(task["out_dir"]) / names.extraction("fluxcal", task["raw"], inp.object_name, tag=inp.tag, lstep=inp.lstep)
        prov = Provenance(schema="sedmtui.fluxcal", version=1, config=task["config"], steps={"fluxcal": "COMPLETE"})
        prov.add_input(Path(task["out_dir"]) / inp.cube_name)
        hdr = h.copy()
        hdr["STDAPER"] = (round(100 * aperture, 3), "max |PSF / aperture flux - 1|, 4000-9000 A [%]")
        for key, card in _psf_cards(fit).items():
            if key in PRIOR_CARDS:
                hdr[key] = card
        write_sensitivity(path, sens, hdr, prov)
        return Sensitivity(**{**sens.__dict__, "source": str(path)}), "", {"file": path.name, "mjd": mjd, "airmass": airmass,
                                                                              "selfcheck_rms_pct": sens.selfcheck_rms_pct,
                                                                              "standard": std}
    best = nearest_fluxcal(task, mjd)
    if best is None:
        return None, "no standard star reduced yet", {}
    try:
        return read_sensitivity(best["path"]), "", {}
    except (OSError, KeyError) as exc:
        raise CalibrationNotFoundError(f"sensitivity {best['path']} unreadable: {exc}") from exc


APERTURE_TOLERANCE = 0.05
"""A standard whose PSF flux and aperture flux (:func:`engine.science.aperture.aperture_ratio`)
differ by more than this in any 1000-A band is not used for flux calibration. Healthy wide-prior
standards agree to 0.1-0.5 %; the failures this guards against were off by 50-98 %."""


def _aperture_check(inp: ExtractionInputs, fit: PsfFit, fp: ForcedPhotometry | None) -> float:
    """Largest ``|PSF flux / aperture flux - 1|`` over the bands (0 when there is nothing to check)."""
    if fp is None:
        return 0.0
    ratio = aperture_ratio(inp.cube.wave, inp.cube.flux, inp.cube.xy, fit.fit_mask, fit.shape, fp)
    ratio = ratio[np.isfinite(ratio)]
    return float(np.max(np.abs(ratio - 1.0))) if ratio.size else 0.0


def extract_and_deliver(inp: ExtractionInputs) -> dict:
    """PSF extraction, flux calibration, quality, classification and products of one extraction."""
    t0 = time.perf_counter()
    task, c, pos = inp.task, inp.cube, inp.position
    out_dir = Path(task["out_dir"])
    notes = []
    fit = fp = None
    key = task.get("job_key", "")
    if pos.inside:
        report(key, "PSF fit", 0.6)
        mask, excluded = fit_region(c, pos.xy, inp.region, task["config"]["science"]["fit_radius"])
        try:
            fit, fp, _meteo = _fit(inp, mask)
        except AlgorithmError as exc:
            notes.append(f"PSF fit failed: {exc}")
    else:
        mask, excluded = np.zeros(c.n_spax, bool), np.zeros(c.n_spax, bool)
    t_fit = time.perf_counter() - t0
    counts = fp.flux if fp is not None else np.full(c.wave.size, np.nan)
    var = fp.var if fp is not None else np.full(c.wave.size, np.nan)
    fitted = (fit.adr.x_ref, fit.adr.y_ref) if fit is not None else None
    offset = float(np.hypot(fitted[0] - pos.astrom[0], fitted[1] - pos.astrom[1])) if fitted and pos.astrom else None
    quality, reason = assess_quality(
        kind=task["kind"], srcpos=pos.srcpos, position=pos.xy if not pos.inside or fitted is None else fitted,
        flux=counts[EDGE:-EDGE] if fp is not None else None, astrometry_reason=pos.astrometry_reason,
        adr_chi2=fit.adr.chi2_dof if fit else None, centroid_offset=offset,
    )
    if notes and quality in (0, 2):
        quality, reason = 4, notes[0]
    quality, reason, moved = manual_check(inp, fitted, quality, reason)
    sens, why_not, fluxcal_info = _sensitivity(inp, counts, var, quality, fit, fp) if fp is not None else (None, "not extracted", {})
    x_mean = 0.5 * (float(inp.header.get("AIRMASS", 1.1) or 1.1) + float(inp.header.get("ENDAIR", inp.header.get("AIRMASS", 1.1)) or 1.1))
    if sens is not None:
        flux, fvar = apply_sensitivity(counts, var, sens, x_mean)
        unit = "erg/s/A/cm^2"
    else:
        flux, fvar, unit = counts, var, "electron/s/A"
    wave = c.wave[EDGE:-EDGE]
    flux, fvar = flux[EDGE:-EDGE], fvar[EDGE:-EDGE]
    s2n, s2n_value = s2n_cards(wave, flux, fvar) if fp is not None else ({}, float("nan"))
    cls = None
    if fp is not None and sens is not None and task["kind"] == "science":
        report(key, "classification", 0.85)
        cls = classify(wave, flux, fvar, object_name=inp.object_name, header=inp.header, quality=quality,
                       classify_config=task["config"]["classify"])
    cards = _cards(inp, fit, pos, quality, reason, sens, fluxcal_info, why_not, unit, fitted, mask, excluded, fp)
    cards.update(s2n)
    cards.update(correlation_cards(c.wave, inp.correlation))
    if cls is not None:
        cards.update(cls.cards)
    report(key, "products", 0.92)
    notfluxcal = sens is None and task["kind"] == "science" and fp is not None
    spec_fits = names.extraction("spec", task["raw"], inp.object_name, tag=inp.tag, lstep=inp.lstep, notfluxcal=notfluxcal)
    spec_txt = spec_fits[:-5] + ".txt"
    prov = Provenance(schema="sedmtui.spectrum", version=1, config=task["config"],
                      steps={"psf": "COMPLETE" if fit else "SKIPPED", "fluxcal": "COMPLETE" if sens else "SKIPPED",
                             "classify": "COMPLETE" if cls and cls.row else "SKIPPED"})
    prov.add_input(out_dir / inp.cube_name)
    if sens is not None and sens.source:
        prov.add_input(sens.source)
    hdr = spectrum_header(inp.header, cards, wave)
    write_spectrum(out_dir / spec_fits, out_dir / spec_txt, wave, flux, fvar, hdr, prov,
                   template=_template_table(cls, wave) if cls else None,
                   correlation=inp.correlation[:, EDGE:-EDGE] if inp.correlation is not None else None)
    psf_file = verify_file = None
    if fit is not None:
        psf_file = names.extraction("psf", task["raw"], inp.object_name, tag=inp.tag, lstep=inp.lstep)
        write_psf_product(out_dir / psf_file, spaxel_id=c.spaxel_id, xy=c.xy, model=fp.model, fit_mask=fit.fit_mask,
                          excluded=excluded, metaslices=_metaslice_table(fit), cards=_psf_cards(fit), provenance=prov)
    if task["config"]["science"]["verify_figure"]:
        verify_file = names.extraction("verify", task["raw"], inp.object_name, tag=inp.tag, lstep=inp.lstep, ext="png")
        _verify(inp, out_dir / verify_file, fit, fp, mask, excluded, wave, flux, fvar, cls, quality, unit, fitted)
    t_all = time.perf_counter() - t0
    row = {
        "tag": inp.tag, "reducer": inp.reducer, "srcpos": pos.srcpos, "centroid_x": fitted[0] if fitted else None,
        "centroid_y": fitted[1] if fitted else None, "guess_x": pos.x, "guess_y": pos.y,
        "astrom_x": pos.astrom[0] if pos.astrom else None, "astrom_y": pos.astrom[1] if pos.astrom else None,
        "bright_x": pos.brightest[0] if pos.brightest else None, "bright_y": pos.brightest[1] if pos.brightest else None,
        "region_json": inp.region, "lstep": inp.lstep,
        "psf_fwhm_arcsec": fit.shape.fwhm_units() * sedm.SPAXEL_UNIT_ARCSEC if fit else None,
        "psf_ell": 1.0 - fit.shape.ab if fit else None, "adr_pa": fit.adr.parallactic_deg if fit else None,
        "adr_airmass": fit.adr.airmass if fit else None, "adr_chi2": fit.adr.chi2_dof if fit else None,
        "quality": quality, "quality_reason": reason, "s2n": s2n_value if np.isfinite(s2n_value) else None,
        "fluxcal": int(sens is not None), "calsrc": Path(sens.source).name if sens and sens.source else None,
        "calsrc_dt_h": (abs(float(inp.header.get("MJD_OBS", 0)) - sens.mjd) * 24.0) if sens else None,
        "spec_fits": spec_fits, "spec_txt": spec_txt, "psf_file": psf_file, "verify_png": verify_file,
        "fluxcal_file": fluxcal_info.get("file"),
        "facts_json": {"fluxcal_note": why_not, "notes": notes, "n_fit_spaxels": int(mask.sum()),
                       "excluded": [int(i) for i in c.spaxel_id[excluded]],
                       "classification": cls.skipped if cls else "not classified", "host": _host_facts(fit),
                       "centroid_moved": None if moved is None else round(moved, 3),
                       "centroid_radius": inp.guess_err if moved is not None else None},
    }
    return {"extraction": row, "classification": cls.row if cls and cls.row else None, "fluxcal": fluxcal_info or None,
            "timing": {"psf_s": t_fit, "extract_total_s": t_all}}


def correlation_cards(wave: np.ndarray, correlation: np.ndarray | None) -> dict:
    """``CORRLAG1``/``CORRLAG2``: mean noise correlation of samples one and two apart, 4000-9000 A."""
    if correlation is None:
        return {}
    sel = (wave >= 4000.0) & (wave <= 9000.0)
    out = {}
    for lag, row in enumerate(np.asarray(correlation), start=1):
        vals = row[sel][np.isfinite(row[sel])]
        if vals.size:
            out[f"CORRLAG{lag}"] = (round(float(np.mean(vals)), 4),
                                    f"mean error correlation, samples {lag} apart (4000-9000 A; CORREL ext.)")
    return out


def _template_table(cls, wave):
    if cls is None or cls.template is None:
        return None
    t = cls.template
    return {"wave": wave, "flux": np.interp(wave, t["wave"], t["flux"]),
            "flux_flat": np.interp(wave, t["wave"], t["flux_flat"]),
            "data_flat": np.interp(wave, t["wave"], t["data_flat"])}


def _metaslice_table(fit: PsfFit) -> dict:
    return {"wave": fit.meta_wave, "x": fit.meta_xy[:, 0], "y": fit.meta_xy[:, 1], "x_err": fit.meta_err[:, 0],
            "y_err": fit.meta_err[:, 1], "amplitude": fit.meta_amp}


def _psf_cards(fit: PsfFit) -> dict:
    s = fit.shape
    return {"PSFMODEL": ("MoffatGaussPlane", "elliptical Moffat + Gaussian core + tilted plane"),
            "PSFALPHA": (round(s.alpha, 4), "Moffat alpha at 7000 A [spaxel]"), "PSFBETA": (round(s.beta, 4), "Moffat beta"),
            "PSFETA": (round(s.eta, 4), "Gaussian-core peak / Moffat peak"), "PSFCORE": (round(s.core, 4), "core sigma / alpha"),
            "PSFAB": (round(s.ab, 4), "axis ratio"), "PSFTHETA": (round(s.theta, 4), "major axis angle [rad]"),
            "PSFRHO": (round(s.rho, 4), "chromatic width exponent"),
            "PSFADRPA": (round(fit.adr.parallactic_deg, 3), "fitted parallactic angle [deg]"),
            "PSFADRZ": (round(fit.adr.airmass, 4), "fitted ADR airmass"),
            "PSFADRC2": (round(fit.adr.chi2_dof, 3), "ADR fit chi2/dof"), "PSFCHI2": (round(fit.chi2_dof, 3), "PSF fit chi2/dof"),
            "NNEIGHB": (int(fit.companions.n), "neighbouring point sources modelled"),
            "PSFPRIOR": (fit.prior_source or "none", "PSF profile-family prior (standard, UT)"),
            **_host_cards(fit)}


def _host_cards(fit: PsfFit) -> dict:
    """``HOSTMOD`` (and the disk's geometry when a host galaxy is modelled)."""
    cards = {"HOSTMOD": (fit.host is not None, "host galaxy modelled (exponential disk)")}
    if fit.host_test is not None:
        cards["HOSTDBIC"] = (round(fit.host_test.delta_bic, 1), "BIC gain of the host component (> 0 kept)")
    if fit.host is not None:
        h = fit.host
        cards.update({"HOSTX": (round(h.x, 3), "host centre x at LBDAPOS [spaxel]"),
                      "HOSTY": (round(h.y, 3), "host centre y at LBDAPOS [spaxel]"),
                      "HOSTSCL": (round(h.scale, 3), "host exponential scale length [spaxel]"),
                      "HOSTAB": (round(h.ab, 3), "host axis ratio"), "HOSTPA": (round(h.theta, 3), "host major axis angle [rad]"),
                      "HOSTFRAC": (round(fit.host_test.host_fraction, 3), "host / point-source flux, 4000-8000 A")})
    return cards


def _host_facts(fit: PsfFit | None) -> dict | None:
    """The host model of ``facts_json``: geometry (if kept) and the selection test (if tried)."""
    if fit is None or fit.host_test is None:
        return None
    out = {"modelled": fit.host is not None, "test": fit.host_test.as_dict()}
    if fit.host is not None:
        out.update({k: round(float(v), 4) for k, v in fit.host.__dict__.items()})
    return out


def _cards(inp, fit, pos, quality, reason, sens, fluxcal_info, why_not, unit, fitted, mask, excluded, fp) -> dict:
    cards = {
        "QUALITY": (quality, "0 ok 1 recovered 2 minor 3 off-IFU 4 negative 5 no WCS"),
        "QUALREAS": (reason, "why"),
        "SRCPOS": (pos.srcpos, "position origin: astrom / auto (brightest) / manual"),
        "POSOK": (bool(pos.inside), "target inside the IFU"),
        "XPOS": (round(fitted[0], 4) if fitted else pos.x, "fitted x at LBDAPOS [spaxel]"),
        "YPOS": (round(fitted[1], 4) if fitted else pos.y, "fitted y at LBDAPOS [spaxel]"),
        "LBDAPOS": (sedm.REFERENCE_WAVELENGTH_AA, "wavelength of XPOS/YPOS [A]"),
        "XGUESS": (round(pos.x, 4), "starting x [spaxel]"), "YGUESS": (round(pos.y, 4), "starting y [spaxel]"),
        "EXTRACT": ("manual" if pos.srcpos == "manual" or inp.region else "auto", "extraction mode"),
        "EXTRTYPE": (f"auto_{inp.tag}", "extraction type"), "EXTDATE": (utc_now_iso(), "extraction date"),
        "REDUCER": (inp.reducer, "who made this extraction"),
        "NFITSPX": (int(mask.sum()), "spaxels fitted"), "NEXCLSPX": (int(excluded.sum()), "spaxels excluded by hand"),
        "NCLIPPED": (int(fp.clipped.sum()) if fp is not None else 0, "spaxel samples clipped (cosmics...)"),
        "LSTEP": (inp.lstep, "slices per forced fit"), "FLXPSEC": (True, "flux per second"),
        "FLUXCAL": (sens is not None, "flux calibrated"), "BUNIT": (unit, "flux unit"),
        "EDGECUT": (True, "edge samples removed"), "EDGECUTL": (EDGE, "samples removed at each end"),
        "SOURCE": (inp.cube_name, "cube"),
    }
    if pos.astrom is not None:
        cards["XASTROM"], cards["YASTROM"] = (round(pos.astrom[0], 4), "astrometric x"), (round(pos.astrom[1], 4), "astrometric y")
    if pos.brightest is not None:
        cards["XBRIGHT"], cards["YBRIGHT"] = (round(pos.brightest[0], 4), "brightest-spaxel x"), (round(pos.brightest[1], 4), "brightest-spaxel y")
    if fit is not None:
        cards["PSFFWHM"] = (round(fit.shape.fwhm_units() * sedm.SPAXEL_UNIT_ARCSEC, 3), "PSF FWHM at 7000 A [arcsec]")
        cards.update(_psf_cards(fit))
    if sens is not None:
        cards["CALSRC"] = (Path(sens.source).name, "sensitivity file")
        dt = abs(float(inp.header.get("MJD_OBS", 0.0) or 0.0) - sens.mjd) * 24.0
        cards["CALDTH"] = (round(dt, 3), "hours between standard and this exposure")
        cards["CALAIRM"] = (round(sens.airmass, 4), "airmass of the standard")
        cards["TELLAO2"] = (round(sens.a_o2, 4), "telluric O2 strength applied")
        cards["TELLAH2O"] = (round(sens.a_h2o, 4), "telluric H2O strength applied")
    elif why_not:
        cards["FLUXNOTE"] = (why_not, "why not flux calibrated")
    if fluxcal_info.get("selfcheck_rms_pct") is not None:
        cards["SELFCHK"] = (round(fluxcal_info["selfcheck_rms_pct"], 4), "standard vs reference rms [%]")
    return cards


def _verify(inp, path, fit, fp, mask, excluded, wave, flux, fvar, cls, quality, unit, fitted) -> None:
    from engine.science.verify import write_verify

    c = inp.cube
    h = inp.header
    title = (f"{inp.object_name} | {h.get('EXPTIME', '?')} s | Qual {quality} | {Path(inp.task['raw']).name[12:20]} "
             f"| {inp.tag} | SNID {cls.cards.get('SNIDTYPE', ('-',))[0] if cls and cls.cards else '-'}")
    panels = None
    if fit is not None:
        k = int(np.nanargmax(fit.meta_amp))
        lo, hi = 4000 + 4000 / fit.meta_wave.size * k, 4000 + 4000 / fit.meta_wave.size * (k + 1)
        sel = (c.wave >= lo) & (c.wave < hi)
        with np.errstate(invalid="ignore"):
            data = np.nansum(c.flux[:, sel], axis=1) / np.maximum(np.isfinite(c.flux[:, sel]).sum(1), 1)
            model = np.nansum(fp.model[:, sel], axis=1) / np.maximum(np.isfinite(fp.model[:, sel]).sum(1), 1)
        panels = (fit.fit_mask, data, model, 0.5 * (lo + hi))
    tmpl = None
    if cls is not None and cls.template is not None:
        tmpl = {"wave": cls.template["wave"], "flux": cls.template["flux"], "label": cls.row.get("template", "template") if cls.row else "template"}
    markers = {"astrom": inp.position.astrom, "brightest": inp.position.brightest, "manual": inp.position.manual,
               "fitted": fitted}
    err = np.sqrt(np.where(fvar > 0, fvar, np.nan))
    write_verify(path, title=title, xy=c.xy, image=c.slice_mean(5000, 7000), fit_mask=mask, excluded=excluded,
                 markers=markers, psf_panels=panels, wave=wave, flux=flux, err=err, template=tmpl, guider=inp.guider,
                 flux_unit=unit)
