"""Delivery of one extraction's products: names, provenance, cards, files.

``spec_`` (.fits, .txt), ``psf_``, ``verify_`` (.png) and, for a standard whose sensitivity
was fitted, ``fluxcal_``. The extraction itself is computed without I/O by
:func:`engine.science.extract.extract`; this module is the only place that writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from astropy.io import fits

from engine.io import names
from engine.pipeline.tasks import ExposureTask, ExtractionRequest
from engine.provenance import COMPLETE, FALLBACK, SKIPPED, Provenance
from engine.science.cards import (
    PRIOR_CARDS,
    correlation_cards,
    metaslice_table,
    psf_cards,
    spectrum_cards,
    template_table,
)
from engine.science.classification import ClassifyOutcome
from engine.science.cube import Cube
from engine.science.extract import EDGE, Extraction
from engine.science.fluxcal import write_sensitivity
from engine.science.products import spectrum_header, write_psf_product, write_spectrum


@dataclass(frozen=True)
class Source:
    """What an extraction was made from.

    Attributes
    ----------
    task : ExposureTask
        The exposure.
    request : ExtractionRequest
        Tag, reducer, region and lstep of the extraction.
    cube : Cube
        The cube.
    header : astropy.io.fits.Header
        The cube's header (raw cards and the cube's).
    cube_name : str
        The cube's file name.
    object_name : str
        The target's name in product names.
    correlation : numpy.ndarray or None
        Shape ``(k, n_wave)``: noise correlation of neighbouring samples.
    guider : dict or None
        The guider view of the verification figure.
    """

    task: ExposureTask
    request: ExtractionRequest
    cube: Cube
    header: fits.Header
    cube_name: str
    object_name: str
    correlation: np.ndarray | None = None
    guider: dict | None = None

    def name(self, kind: str, **kw) -> str:
        """The SEDM product name of this extraction (``spec``, ``psf``, ``verify``, ``fluxcal``)."""
        r = self.request
        return names.extraction(kind, self.task.raw, self.object_name, tag=r.tag, lstep=r.lstep, **kw)


@dataclass(frozen=True)
class ProductNames:
    """File names (in the night's directory) of one extraction's products (``None``: not written)."""

    spec_fits: str
    spec_txt: str
    psf_file: str | None = None
    verify_png: str | None = None
    fluxcal_file: str | None = None


def write_extraction(src: Source, ext: Extraction, cls: ClassifyOutcome | None,
                     s2n: dict) -> tuple[ProductNames, Extraction]:
    """Write every product of an extraction.

    Parameters
    ----------
    src : Source
        What the extraction was made from.
    ext : Extraction
        The extraction.
    cls : ClassifyOutcome or None
        Its classification (``None``: not tried).
    s2n : dict
        The spectrum's S/N cards.

    Returns
    -------
    names : ProductNames
        The files written.
    ext : Extraction
        The extraction, its sensitivity's ``source`` set to the ``fluxcal_`` product a
        standard's own sensitivity was written to.
    """
    out_dir = Path(src.task.out_dir)
    fluxcal_file = None
    if ext.standard is not None and ext.sensitivity is not None:
        fluxcal_file = src.name("fluxcal")
        _write_fluxcal(src, ext, out_dir / fluxcal_file)
        ext = replace(ext, sensitivity=replace(ext.sensitivity, source=str(out_dir / fluxcal_file)))
    notfluxcal = ext.sensitivity is None and src.task.kind == "science" and ext.extracted
    spec_fits = src.name("spec", notfluxcal=notfluxcal)
    spec_txt = spec_fits[:-5] + ".txt"
    prov = _spectrum_provenance(src, ext, cls)
    cards = spectrum_cards(ext, cube_name=src.cube_name, tag=src.request.tag, reducer=src.request.reducer,
                           manual_region=bool(src.request.region), lstep=src.request.lstep, mjd=_mjd(src.header),
                           calsrc=Path(ext.sensitivity.source).name if ext.sensitivity is not None else None)
    cards.update(s2n)
    cards.update(correlation_cards(src.cube.wave, src.correlation))
    if cls is not None:
        cards.update(cls.cards)
    hdr = spectrum_header(src.header, cards, ext.wave)
    write_spectrum(out_dir / spec_fits, out_dir / spec_txt, ext.wave, ext.flux, ext.var, hdr, prov,
                   template=template_table(cls.template, ext.wave) if cls else None,
                   correlation=src.correlation[:, EDGE:-EDGE] if src.correlation is not None else None)
    psf_file = verify_file = None
    if ext.fit is not None:
        psf_file = src.name("psf")
        c, fit = src.cube, ext.fit
        write_psf_product(out_dir / psf_file, spaxel_id=c.spaxel_id, xy=c.xy, model=ext.photometry.model,
                          fit_mask=fit.fit_mask, excluded=ext.excluded, metaslices=metaslice_table(fit),
                          cards=psf_cards(fit), provenance=prov)
    if src.task.config.science.verify_figure:
        verify_file = src.name("verify", ext="png")
        _write_verify(src, ext, cls, out_dir / verify_file)
    return ProductNames(spec_fits, spec_txt, psf_file, verify_file, fluxcal_file), ext


def _mjd(header) -> float:
    return float(header.get("MJD_OBS", 0.0) or 0.0)


def _spectrum_provenance(src: Source, ext: Extraction, cls: ClassifyOutcome | None) -> Provenance:
    """What made the spectrum: the PSF fit, the flux calibration, the classification."""
    prov = Provenance(schema="sedmtui.spectrum", version=1, config=src.task.config.to_dict())
    if ext.fit is not None:
        prov.record("psf")
    else:
        prov.record("psf", SKIPPED, ext.notes[0] if ext.notes else "target outside the IFU")
    sens = ext.sensitivity
    if sens is None:
        prov.record("fluxcal", SKIPPED, ext.fluxcal_note)
    elif sens.source and Path(sens.source).parent != Path(src.task.out_dir):
        prov.record("fluxcal", FALLBACK, f"sensitivity of an earlier night: {Path(sens.source).name}")
    else:
        prov.record("fluxcal", COMPLETE)
    if cls is not None and cls.row:
        prov.record("classify")
    else:
        prov.record("classify", SKIPPED, cls.skipped if cls is not None else "not classified")
    prov.add_input(Path(src.task.out_dir) / src.cube_name)
    if sens is not None and sens.source:
        prov.add_input(sens.source)
    return prov


def _write_fluxcal(src: Source, ext: Extraction, path: Path) -> None:
    """A standard's ``fluxcal_`` product, with its PSF's profile family for the science frames."""
    prov = Provenance(schema="sedmtui.fluxcal", version=1, config=src.task.config.to_dict())
    prov.record("fluxcal")
    prov.add_input(Path(src.task.out_dir) / src.cube_name)
    hdr = src.header.copy()
    if ext.aperture_deviation is not None:
        hdr["STDAPER"] = (round(100 * ext.aperture_deviation, 3), "max |PSF / aperture flux - 1|, 4000-9000 A [%]")
    for key, card in psf_cards(ext.fit).items():
        if key in PRIOR_CARDS:
            hdr[key] = card
    write_sensitivity(path, ext.sensitivity, hdr, prov)


def _write_verify(src: Source, ext: Extraction, cls: ClassifyOutcome | None, path: Path) -> None:
    """The verification figure: spaxel map, PSF data/model, spectrum, template, guider view."""
    from engine.science.verify import write_verify

    c, h, fit = src.cube, src.header, ext.fit
    snid = cls.cards.get("SNIDTYPE", ("-",))[0] if cls and cls.cards else "-"
    title = (f"{src.object_name} | {h.get('EXPTIME', '?')} s | Qual {ext.quality} | {Path(src.task.raw).name[12:20]} "
             f"| {src.request.tag} | SNID {snid}")
    panels = None
    if fit is not None:
        k = int(np.nanargmax(fit.meta_amp))
        lo, hi = 4000 + 4000 / fit.meta_wave.size * k, 4000 + 4000 / fit.meta_wave.size * (k + 1)
        sel = (c.wave >= lo) & (c.wave < hi)
        model_cube = ext.photometry.model
        with np.errstate(invalid="ignore"):
            data = np.nansum(c.flux[:, sel], axis=1) / np.maximum(np.isfinite(c.flux[:, sel]).sum(1), 1)
            model = np.nansum(model_cube[:, sel], axis=1) / np.maximum(np.isfinite(model_cube[:, sel]).sum(1), 1)
        panels = (fit.fit_mask, data, model, 0.5 * (lo + hi))
    tmpl = None
    if cls is not None and cls.template is not None:
        label = cls.row.get("template", "template") if cls.row else "template"
        tmpl = {"wave": cls.template["wave"], "flux": cls.template["flux"], "label": label}
    pos = ext.position
    markers = {"astrom": pos.astrom, "brightest": pos.brightest, "manual": pos.manual, "fitted": ext.fitted}
    err = np.sqrt(np.where(ext.var > 0, ext.var, np.nan))
    write_verify(path, title=title, xy=c.xy, image=c.slice_mean(5000, 7000), fit_mask=ext.fit_mask,
                 excluded=ext.excluded, markers=markers, psf_panels=panels, wave=ext.wave, flux=ext.flux, err=err,
                 template=tmpl, guider=src.guider, flux_unit=ext.unit)
