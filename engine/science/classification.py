"""Classification and S/N of a delivered spectrum (header cards, state row, template arrays)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from engine.config import ClassifyConfig

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _library(templates_dir: str):
    """The template library, loaded once per process (~0.2 s)."""
    from engine.classify import load_template_library

    return load_template_library(templates_dir)


def warm_template_library(templates_dir: str) -> None:
    """Load the template library into this process now (a worker's start-up), if configured.

    A library that cannot be read is left for :func:`classify` to report on the spectrum.
    """
    if not templates_dir:
        return
    try:
        _library(templates_dir)
    except Exception as exc:  # noqa: BLE001 - reported per spectrum by classify()
        log.warning("SNID templates in %s not preloaded: %s", templates_dir, exc)


@dataclass
class ClassifyOutcome:
    """What classification produced for one spectrum."""

    cards: dict = field(default_factory=dict)
    row: dict | None = None
    template: dict | None = None
    skipped: str = ""


def s2n_cards(wave: np.ndarray, flux: np.ndarray, var: np.ndarray) -> tuple[dict, float]:
    """``S2NMED, S2NWL0, S2NWHI`` cards and the median S/N (4000-8000 A).

    Parameters
    ----------
    wave, flux, var : numpy.ndarray
        Shape ``(n,)``: the spectrum [Angstrom, flux, flux^2].
    """
    from engine.classify import median_s2n, s2n_header_cards

    s = median_s2n(wave, flux, np.sqrt(np.where(var > 0, var, np.nan)))
    cards = {k: (v, c) for k, v, c in s2n_header_cards(s)}
    return cards, float(s.median)


def classify(wave: np.ndarray, flux: np.ndarray, var: np.ndarray, *, object_name: str, header, quality: int,
             options: ClassifyConfig) -> ClassifyOutcome:
    """Classify a spectrum when the SEDM rules allow it (quality < 3 or 5, not a star/galaxy...).

    Parameters
    ----------
    wave, flux, var : numpy.ndarray
        Shape ``(n,)``: the delivered spectrum [Angstrom, erg/s/cm^2/A, its square].
    object_name : str
        The target's name (stars and galaxies are not classified).
    header : astropy.io.fits.Header
        The spectrum's header (the SEDM rules read it).
    quality : int
        The extraction's quality flag.
    options : ClassifyConfig
        SNID's options and the template directory.

    Returns
    -------
    ClassifyOutcome
        Cards, the state row and the best template; ``skipped`` says why not, if not.
    """
    from engine.classify import classify_spectrum, should_classify, snid_header_cards

    cfg = options
    ok, reason = should_classify(object_name, header, quality)
    if not ok:
        return ClassifyOutcome(skipped=reason)
    if not cfg.templates_dir:
        return ClassifyOutcome(skipped="no SNID template directory configured")
    err = np.sqrt(np.where(var > 0, var, np.nan))
    try:
        result = classify_spectrum(wave, flux, err, library=_library(cfg.templates_dir), options=cfg)
    except Exception as exc:  # noqa: BLE001 - a spectrum that cannot be classified is recorded, not fatal
        log.warning("classification of %s failed: %s", object_name, exc)
        return ClassifyOutcome(cards={"SNIDTYPE": ("NONE", f"classification failed: {exc}"[:60])},
                               skipped=f"failed: {exc}")
    cards = {k: (v, c) for k, v, c in snid_header_cards(result)}
    fr = result.fractions or {}
    row = {
        "classifier": "builtin", "type": result.type, "subtype": result.subtype, "rlap": result.rlap, "z": result.z,
        "z_err": result.z_err, "zmed": result.zmed, "zmed_err": result.zmed_err, "age": result.age,
        "age_med": result.age_med, "age_err": result.age_err, "template": result.template,
        "frac_ia": fr.get("Ia"), "frac_ib": fr.get("Ib"), "frac_ic": fr.get("Ic"), "frac_ii": fr.get("II"),
        "frac_notsn": fr.get("NotSN"),
    }
    template = None
    if result.best is not None and result.type != "NONE":
        template = {"wave": result.best.wave, "flux": result.best.template_flux, "flux_flat": result.best.template_flat,
                    "data_flat": result.best.data_flat}
    return ClassifyOutcome(cards=cards, row={k: _finite(v) for k, v in row.items()}, template=template)


def _finite(v):
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v
