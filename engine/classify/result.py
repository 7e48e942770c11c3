"""Classification results and their SEDM header forms.

SEDM production (sedmpy ``RunSnid.py``) takes the rank-1 line of SNID's rlap-ordered list,
splits its (sub)type string at the first ``-`` into ``SNIDTYPE``/``SNIDSUBT`` (``Ia-norm`` ->
``Ia``/``norm``; ``IIP`` -> ``IIP``/``-``), and copies the median redshift and age, their
errors and the Ia/Ib/Ic/II/NotSN fractions. The same rounding as SNID's output file is used
here (rlap 2 decimals, redshifts 4, ages and fractions 2), so the cards equal production's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

TYPE_KEYS: tuple[tuple[str, str, str], ...] = (
    ("Ia", "SNIDFIA", "SNIDFRAC_IA"),
    ("Ib", "SNIDFIB", "SNIDFRAC_IB"),
    ("Ic", "SNIDFIC", "SNIDFRAC_IC"),
    ("II", "SNIDFII", "SNIDFRAC_II"),
    ("NotSN", "SNIDFNOT", "SNIDFRAC_NOTSN"),
)
"""Main type, FITS key and text key of each type fraction."""


@dataclass(frozen=True)
class TemplateMatch:
    """One template epoch in the rlap-ordered list.

    Attributes
    ----------
    rank : int
        1-based position in the rlap-ordered list.
    template, main_type, subtype : str
        Template name, main type (``Ia``...``NotSN``) and SNID (sub)type (``Ia-norm``...).
    lap : float
        Overlap of data and template at the match [``ln lambda``].
    r : float
        Tonry & Davis correlation height-to-noise ratio.
    rlap : float
        ``r * lap``.
    z, z_err : float
        Redshift and SNID's formal error ``2 w / (1 + rlap)`` (``w``: peak FWHM in ``z``).
    age : float
        Template epoch [days]; meaning given by ``age_flag`` (0 = from maximum).
    age_flag : int
    grade : str
        ``good`` (rlap >= rlapmin and ``|z - zinit| < zfilter``), ``bad`` or ``cut``.
    row : int
        Row of the epoch in the template library used.
    """

    rank: int
    template: str
    main_type: str
    subtype: str
    lap: float
    r: float
    rlap: float
    z: float
    z_err: float
    age: float
    age_flag: int
    grade: str
    row: int = -1

    def to_json_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-safe)."""
        return {k: _json_value(getattr(self, k)) for k in self.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class BestMatchSpectrum:
    """The rank-1 template on the input wavelength grid, for plots.

    Attributes
    ----------
    wave : numpy.ndarray
        Shape ``(n,)`` input wavelengths [Angstrom].
    template_flat : numpy.ndarray
        Shape ``(n,)`` flattened template (continuum divided out, minus 1) redshifted to the
        match; NaN where the template has no data.
    template_flux : numpy.ndarray
        Shape ``(n,)`` un-flattened template: ``(template_flat + 1)`` times the data's fitted
        continuum, in the input flux unit (what SNID plots as the fluxed comparison).
    data_flat : numpy.ndarray
        Shape ``(n,)`` the input spectrum flattened by its own continuum fit (NaN outside the
        range used).
    continuum : numpy.ndarray
        Shape ``(n,)`` the data's fitted continuum [input flux unit].
    """

    wave: np.ndarray
    template_flat: np.ndarray
    template_flux: np.ndarray
    data_flat: np.ndarray
    continuum: np.ndarray


@dataclass(frozen=True, eq=False)
class Classification:
    """The answer of an SNID-compatible classification.

    Attributes
    ----------
    type : str
        Main type of the rank-1 match (``Ia``, ``Ib``, ``Ic``, ``II``, ``NotSN``) or ``NONE``
        when no template is good.
    subtype : str
        SNID (sub)type of the rank-1 match (``Ia-norm``, ``IIP``...); empty for NONE.
    template : str
        Rank-1 template name.
    rlap, z, z_err, age : float
        Rank-1 rlap, redshift, formal redshift error and age [days].
    age_flag : int
        Rank-1 age flag (0 = days from maximum).
    grade : str
        Rank-1 grade (``good`` or ``bad``; production reports rank 1 either way).
    zmed, zmed_err : float
        Median and standard deviation of the good redshifts.
    age_med, age_err : float
        Median and standard deviation of the good ages (age flag 0 only) [days].
    zinit : float
        SNID's initial redshift (weighted median of the first correlation pass).
    fractions : Mapping[str, float]
        Fraction of good matches of each main type.
    n_good, n_bad, n_correlated : int
        Good and bad matches above rlapmin, and template epochs correlated.
    matches : tuple of TemplateMatch
        The best matches, rlap-ordered.
    best : BestMatchSpectrum or None
        The rank-1 template on the input grid.
    options : Mapping[str, Any]
        Options used.
    engine : str
        ``builtin`` or ``external`` (an installed SNID executable).
    """

    type: str
    subtype: str = ""
    template: str = ""
    rlap: float = math.nan
    z: float = math.nan
    z_err: float = math.nan
    age: float = math.nan
    age_flag: int = -1
    grade: str = ""
    zmed: float = math.nan
    zmed_err: float = math.nan
    age_med: float = math.nan
    age_err: float = math.nan
    zinit: float = math.nan
    fractions: Mapping[str, float] = field(default_factory=dict)
    n_good: int = 0
    n_bad: int = 0
    n_correlated: int = 0
    matches: tuple[TemplateMatch, ...] = ()
    best: BestMatchSpectrum | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    engine: str = "builtin"

    def __post_init__(self) -> None:
        object.__setattr__(self, "fractions", MappingProxyType(dict(self.fractions)))
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def matched(self) -> bool:
        """True when a good template was found (``type != NONE``)."""
        return self.type != "NONE"

    def to_json_dict(self, *, include_matches: bool = True,
                     include_spectra: bool = False) -> dict[str, Any]:
        """Plain JSON-safe dict; NaN becomes None.

        Parameters
        ----------
        include_matches : bool
            Include the rlap-ordered match list.
        include_spectra : bool
            Include the best-match arrays (long).
        """
        keys = ("type", "subtype", "template", "rlap", "z", "z_err", "age", "age_flag", "grade",
                "zmed", "zmed_err", "age_med", "age_err", "zinit", "n_good", "n_bad",
                "n_correlated", "engine")
        out: dict[str, Any] = {k: _json_value(getattr(self, k)) for k in keys}
        out["fractions"] = {k: _json_value(v) for k, v in self.fractions.items()}
        out["options"] = {k: _json_value(v) for k, v in self.options.items()}
        if include_matches:
            out["matches"] = [m.to_json_dict() for m in self.matches]
        if include_spectra and self.best is not None:
            out["best_spectrum"] = {k: _json_value(getattr(self.best, k))
                                    for k in self.best.__dataclass_fields__}
        return out


def _json_value(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_json_value(x) for x in v.tolist()]
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (tuple, list)):
        return [_json_value(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _json_value(x) for k, x in v.items()}
    return v


def sedm_type_split(subtype: str) -> tuple[str, str]:
    """Production's split of an SNID (sub)type into ``SNIDTYPE`` and ``SNIDSUBT``.

    ``Ia-norm`` -> (``Ia``, ``norm``); ``IIP`` -> (``IIP``, ``-``); ``Ic-broad`` ->
    (``Ic``, ``broad``). Mirrors sedmpy ``RunSnid.parse_and_fill``.
    """
    parts = subtype.split("-")
    if not parts[0]:
        return "None", "-"
    return parts[0], (parts[1] if len(parts) > 1 else "-")


def _r(x: float, nd: int) -> float:
    return float(round(x, nd)) if math.isfinite(x) else x


def snid_header_cards(c: Classification) -> list[tuple[str, Any, str]]:
    """SEDM FITS header cards of a classification, as ``(key, value, comment)``.

    ``SNIDTYPE = NONE`` is the only card when nothing matched (as in production).
    """
    if not c.matched:
        return [("SNIDTYPE", "NONE", "SNID match type")]
    stype, ssub = sedm_type_split(c.subtype)
    cards: list[tuple[str, Any, str]] = [
        ("SNIDTYPE", stype, "SNID match type"),
        ("SNIDSUBT", ssub, "SNID match subtype"),
        ("SNIDRLAP", _r(c.rlap, 2), "SNID match rlap"),
        ("SNIDZMAT", _r(c.z, 4), "SNID match z"),
        ("SNIDAMAT", _r(c.age, 2), "SNID match age (days)"),
        ("SNIDTEMP", c.template, "SNID match template"),
        ("SNIDZMED", _r(c.zmed, 4), "SNID z med"),
        ("SNIDZERR", _r(c.zmed_err, 4), "SNID z med err"),
        ("SNIDAMED", _r(c.age_med, 2), "SNID Age med (days)"),
        ("SNIDAERR", _r(c.age_err, 2), "SNID Age med err (days)"),
    ]
    names = {"Ia": "SN Ia", "Ib": "SN Ib", "Ic": "SN Ic", "II": "SN II", "NotSN": "Not SN"}
    for typ, key, _ in TYPE_KEYS:
        cards.append((key, _r(c.fractions.get(typ, 0.0), 2), f"SNID Fraction {names[typ]}"))
    return cards


def snid_text_lines(c: Classification) -> list[tuple[str, str]]:
    """SEDM text-header lines (``# KEY: value``) of a classification, as ``(key, value)``."""
    if not c.matched:
        return [("SNIDMATCHTYPE", "NONE")]
    stype, ssub = sedm_type_split(c.subtype)
    lines = [
        ("SNIDMATCHTYPE", stype),
        ("SNIDMATCHSUBTYPE", ssub),
        ("SNIDMATCHRLAP", str(_r(c.rlap, 2))),
        ("SNIDMATCHREDSHIFT", str(_r(c.z, 4))),
        ("SNIDMATCHAGE", str(_r(c.age, 2))),
        ("SNIDMATCHTEMPLATE", c.template),
        ("SNIDZMED", str(_r(c.zmed, 4))),
        ("SNIDZMEDERR", str(_r(c.zmed_err, 4))),
        ("SNIDAGEMED", str(_r(c.age_med, 2))),
        ("SNIDAGEMEDERR", str(_r(c.age_err, 2))),
    ]
    for typ, _, key in TYPE_KEYS:
        lines.append((key, str(_r(c.fractions.get(typ, 0.0), 2))))
    return lines
