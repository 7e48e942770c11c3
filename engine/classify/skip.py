"""Which spectra SEDM classifies (sedmpy ``Classify.py``/``RunSnid.py`` rules, made stricter).

Skipped: standards (``STD-`` names), stars and galaxies named from a catalogue (STD, BD,
Feige, HZ, Hiltner, Kopff, LTT, NGC, PGC, MCG, 2MASX, TYC, SAO, HD, Tycho), non-sidereal
targets (``RA_RATE``/``DEC_RATE`` non-zero), spectra whose file name says ``notfluxcal``, and
QUALITY 3 or 4 (classified: QUALITY < 3 or = 5, or no QUALITY at all).

SEDM tests raw substrings, so ``HD`` also matches inside ``ZTF21abHDxyz``. Here the object
name is split into tokens at spaces and punctuation and a token matches a catalogue when it
*starts* with the catalogue's name followed by nothing, a digit, a sign or a coordinate
``J`` (``HD 12345``, ``HD12345``, ``BD+28d4211``, ``Feige34``, ``2MASXJ0123+4567``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

CATALOGUE_PREFIXES: tuple[str, ...] = (
    "STD", "BD", "Feige", "HZ", "Hiltner", "Kopff", "LTT", "NGC", "PGC", "MCG", "2MASX",
    "TYC", "SAO", "HD", "Tycho",
)
"""Catalogue names whose objects are never classified."""

_TOKEN_SPLIT = re.compile(r"[\s_,;:/()\[\]]+")


def _catalogue_match(token: str) -> str | None:
    """The catalogue a name token belongs to, or None."""
    low = token.lower()
    for cat in CATALOGUE_PREFIXES:
        c = cat.lower()
        if not low.startswith(c):
            continue
        rest = token[len(cat):]
        if rest == "" or rest[0].isdigit() or rest[0] in "+-." or \
                (cat == "2MASX" and rest[:1] in ("J", "j")):
            return cat
    return None


def catalogue_name(object_name: str) -> str | None:
    """The catalogue an object name comes from (``STD``, ``HD``, ...), or None.

    Tokens are separated by white space and punctuation other than signs, so ``BD+28d4211``
    stays one token; a ``-`` that follows a letter-only word also separates (``STD-Feige34``
    gives ``STD`` and ``Feige34``).
    """
    for part in _TOKEN_SPLIT.split(object_name.strip()):
        if not part:
            continue
        pieces = re.split(r"(?<=[A-Za-z])-(?=[A-Za-z0-9])", part)
        for token in [part, *pieces]:
            cat = _catalogue_match(token)
            if cat:
                return cat
    return None


def _rate(value: Any) -> float:
    try:
        return float(str(value).strip().strip("'\""))
    except (TypeError, ValueError):
        return 0.0


def should_classify(object_name: str, header: Mapping[str, Any] | None = None,
                    quality: int | str | None = None, *,
                    filename: str | None = None) -> tuple[bool, str]:
    """Whether SEDM classifies this spectrum, and why not.

    Parameters
    ----------
    object_name : str
        Target name (``OBJECT``/``NAME``; ``[A]``-style suffixes are ignored).
    header : Mapping or None
        FITS/text header values; ``RA_RATE``, ``DEC_RATE`` and ``QUALITY`` are read from it.
    quality : int, str or None
        QUALITY flag (overrides the header's). None = unknown (classified, as SEDM does).
    filename : str or None
        Spectrum file name (``notfluxcal`` files are skipped).

    Returns
    -------
    tuple of (bool, str)
        ``(True, "")`` to classify, else ``(False, reason)``.
    """
    header = header or {}
    name = (object_name or "").strip()
    if name.upper().startswith("STD-") or name.upper().startswith("STD "):
        return False, f"standard star {name!r}"
    cat = catalogue_name(name)
    if cat:
        return False, f"catalogue-named star or galaxy {name!r} ({cat})"
    ra_rate, dec_rate = _rate(header.get("RA_RATE", 0)), _rate(header.get("DEC_RATE", 0))
    if ra_rate != 0.0 or dec_rate != 0.0:
        return False, f"non-sidereal target (RA_RATE={ra_rate}, DEC_RATE={dec_rate})"
    if filename and "notfluxcal" in filename:
        return False, "not flux calibrated (notfluxcal file)"
    q = quality if quality is not None else header.get("QUALITY")
    if q is not None and str(q).strip() != "":
        try:
            qi = int(float(str(q).strip()))
        except ValueError:
            return True, ""
        if not (qi < 3 or qi == 5):
            meaning = {3: "pointing problem / target outside the IFU",
                       4: "more than 20 % of the flux is negative"}.get(qi, "not classified")
            return False, f"QUALITY {qi} ({meaning})"
    return True, ""
