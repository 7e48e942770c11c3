"""Flux-calibrate a spectrum after the fact (a standard arrived after the science frame).

The uncalibrated spectrum (``..._notfluxcal.fits``, electrons s-1 A-1) is divided by the
sensitivity, classified, and rewritten under its calibrated name; the ``_notfluxcal`` files
are removed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.provenance import Provenance
from engine.science.classification import classify, s2n_cards
from engine.science.fluxcal import read_sensitivity
from engine.science.products import read_spectrum_fits, spectrum_header, write_spectrum


def recalibrate(task: dict) -> dict:
    """Calibrate ``task["spec_fits"]`` with ``task["fluxcal"]`` (path); return the updated row."""
    out_dir = Path(task["out_dir"])
    wave, counts, var, hdr, _tmpl = read_spectrum_fits(out_dir / task["spec_fits"])
    sens = read_sensitivity(task["fluxcal"])
    airmass = 0.5 * (float(hdr.get("AIRMASS", 1.1)) + float(hdr.get("ENDAIR", hdr.get("AIRMASS", 1.1))))
    resp = np.interp(wave, sens.wave, sens.response(airmass))
    flux, fvar = counts / resp, var / resp**2
    cards = {"FLUXCAL": (True, "flux calibrated"), "BUNIT": ("erg/s/A/cm^2", "flux unit"),
             "CALSRC": (Path(sens.source).name, "sensitivity file"),
             "CALDTH": (round(abs(float(hdr.get("MJD_OBS", 0.0)) - sens.mjd) * 24.0, 3), "hours to the standard"),
             "CALAIRM": (round(sens.airmass, 4), "airmass of the standard"),
             "TELLAO2": (round(sens.a_o2, 4), "telluric O2 strength"), "TELLAH2O": (round(sens.a_h2o, 4), "telluric H2O strength")}
    s2n, s2n_value = s2n_cards(wave, flux, fvar)
    cards.update(s2n)
    cls = classify(wave, flux, fvar, object_name=task["object_name"], header=hdr, quality=int(hdr.get("QUALITY", 0)),
                   classify_config=task["config"]["classify"])
    cards.update(cls.cards)
    if "FLUXNOTE" in hdr:
        del hdr["FLUXNOTE"]
    new_hdr = spectrum_header(hdr, cards, wave)
    new_fits = task["spec_fits"].replace("_notfluxcal.fits", ".fits")
    new_txt = new_fits[:-5] + ".txt"
    prov = Provenance(schema="sedmtui.spectrum", version=1, config=task["config"], steps={"fluxcal": "COMPLETE"})
    prov.add_input(out_dir / task["spec_fits"])
    prov.add_input(sens.source)
    template = None
    if cls.template is not None:
        t = cls.template
        template = {"wave": wave, "flux": np.interp(wave, t["wave"], t["flux"]),
                    "flux_flat": np.interp(wave, t["wave"], t["flux_flat"]),
                    "data_flat": np.interp(wave, t["wave"], t["data_flat"])}
    write_spectrum(out_dir / new_fits, out_dir / new_txt, wave, flux, fvar, new_hdr, prov, template=template)
    if new_fits != task["spec_fits"]:
        for old in (task["spec_fits"], task["spec_fits"][:-5] + ".txt"):
            if (out_dir / old).exists():
                os.unlink(out_dir / old)
    return {"spec_fits": new_fits, "spec_txt": new_txt, "fluxcal": 1, "calsrc": Path(sens.source).name,
            "calsrc_dt_h": cards["CALDTH"][0], "s2n": s2n_value if np.isfinite(s2n_value) else None,
            "classification": cls.row}
