"""Reference data packaged with the engine: arc and sky lines, telluric and extinction curves,
standard-star spectra. Provenance and licences are in ``engine/data/README.md``.

Everything is returned in **vacuum** wavelengths [Angstrom]; air wavelengths in the source
files are converted with the IAU (Morton 2000) formula.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from engine.errors import CalibrationNotFoundError

DATA_DIR = Path(str(resources.files("engine") / "data"))


def air_to_vacuum(wave_air: np.ndarray) -> np.ndarray:
    """Convert air wavelengths to vacuum (Morton 2000; valid above 2000 A) [Angstrom]."""
    wave_air = np.asarray(wave_air, dtype=float)
    s2 = (1e4 / wave_air) ** 2
    n = 1 + 8.336624212083e-5 + 2.408926869968e-2 / (130.1065924522 - s2) + 1.599740894897e-4 / (38.92568793293 - s2)
    return wave_air * n


@dataclass(frozen=True)
class ArcLine:
    """One arc-lamp line.

    Attributes
    ----------
    lamp : str
        ``Hg``, ``Cd`` or ``Xe``.
    wave_aa : float
        Vacuum wavelength [Angstrom].
    amplitude : float
        Catalogue relative amplitude (instrument dependent; NaN when unknown).
    listed : bool
        True for NIST-checked lines with a catalogue amplitude (PypeIt list).
    """

    lamp: str
    wave_aa: float
    amplitude: float
    listed: bool


@cache
def arc_lines(lamp: str | None = None) -> tuple[ArcLine, ...]:
    """Hg, Cd and Xe lines from ``arclines/sedm_arc_lines_HgCdXe.csv``, sorted by wavelength."""
    out = []
    with open(DATA_DIR / "arclines" / "sedm_arc_lines_HgCdXe.csv", newline="") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        for row in rows:
            if lamp is not None and row["lamp"] != lamp:
                continue
            if row["wave_vac"]:
                wave = float(row["wave_vac"])
            else:
                wave = float(air_to_vacuum(float(row["wave_air_conv"])))
            amp = float(row["amplitude"]) if row["amplitude"] else float("nan")
            out.append(ArcLine(row["lamp"], wave, amp, row["source"] == "pypeit"))
    return tuple(sorted(out, key=lambda line: line.wave_aa))


@cache
def sky_lines() -> tuple[np.ndarray, np.ndarray]:
    """Night-sky emission lines (York 1991 IRAF list), vacuum.

    Returns
    -------
    wave_aa : numpy.ndarray
        Shape ``(n,)`` vacuum wavelengths [Angstrom].
    label : numpy.ndarray
        Shape ``(n,)`` the list's identification (``[OI]``, ``Hg``, ``Na I``, an OH band...).
    """
    waves, labels = [], []
    for line in (DATA_DIR / "sky" / "skylines_iraf_air.dat").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        try:
            waves.append(float(parts[0]))
        except ValueError:
            continue
        labels.append(parts[1].strip() if len(parts) > 1 else "")
    order = np.argsort(waves)
    return air_to_vacuum(np.array(waves)[order]), np.array(labels, dtype=object)[order]


@cache
def telluric_transmission() -> tuple[np.ndarray, np.ndarray]:
    """KPNO telluric transmission at airmass 1 (Hinkle et al. 2003 via SNIFS).

    Returns
    -------
    wave_aa : numpy.ndarray
        Shape ``(1689,)`` vacuum wavelengths [Angstrom] (5045-10000 A).
    transmission : numpy.ndarray
        Shape ``(1689,)`` transmission in ``[0, 1]``.
    """
    from astropy.io import fits

    with fits.open(DATA_DIR / "telluric" / "KPNO_lines.fits") as hdul:
        hdr = hdul[0].header
        data = np.asarray(hdul[0].data, dtype=float)
    wave_air = hdr["CRVAL1"] + hdr["CDELT1"] * (np.arange(data.size) + 1 - hdr.get("CRPIX1", 1))
    return air_to_vacuum(wave_air), np.clip(data, 0.0, 1.0)


TELLURIC_O2_BANDS_AA: tuple[tuple[float, float], ...] = (
    (6270.2, 6331.7), (6862.1, 6964.6), (7585.8, 7703.0),
)
"""O2 absorption regions (air, as listed by SNIFS) [Angstrom]."""

TELLURIC_H2O_BANDS_AA: tuple[tuple[float, float], ...] = (
    (5880.5, 5959.6), (6466.5, 6522.2), (6979.3, 7067.2), (7143.3, 7398.2),
    (7887.6, 8045.8), (8083.9, 8420.8), (8916.0, 9929.8),
)
"""H2O absorption regions (air, as listed by SNIFS) [Angstrom]."""


def telluric_components() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split the KPNO transmission into O2 and H2O parts (1 outside their regions).

    Returns
    -------
    wave_aa, t_o2, t_h2o : numpy.ndarray
        Vacuum wavelengths [Angstrom] and the two transmissions at airmass 1.
    """
    wave, trans = telluric_transmission()
    t_o2 = np.ones_like(trans)
    t_h2o = np.ones_like(trans)
    for lo, hi in TELLURIC_O2_BANDS_AA:
        m = (wave >= air_to_vacuum(lo)) & (wave <= air_to_vacuum(hi))
        t_o2[m] = trans[m]
    for lo, hi in TELLURIC_H2O_BANDS_AA:
        m = (wave >= air_to_vacuum(lo)) & (wave <= air_to_vacuum(hi))
        t_h2o[m] = trans[m]
    return wave, t_o2, t_h2o


@cache
def extinction_curve(site: str = "palomar") -> tuple[np.ndarray, np.ndarray]:
    """Atmospheric extinction (Palomar: Hayes & Latham 1975) [mag/airmass] on vacuum wavelengths."""
    table = np.loadtxt(DATA_DIR / "extinction" / f"{site}extinct.dat", comments="#")
    return air_to_vacuum(table[:, 0]), table[:, 1]


def extinction_mag(wave_aa: np.ndarray, site: str = "palomar") -> np.ndarray:
    """Extinction [mag/airmass] interpolated (cubic) at ``wave_aa``."""
    from scipy.interpolate import CubicSpline

    w, k = extinction_curve(site)
    return CubicSpline(w, k)(np.asarray(wave_aa, dtype=float))


# ------------------------------------------------------------------------ standard stars
def _standard_key(name: str) -> str:
    key = name.strip()
    if key.upper().startswith("STD-"):
        key = key[4:]
    key = key.split()[0] if key.split() else key
    key = key.replace(" ", "").replace("_", "").lower()
    return re.sub(r"(bd[+-]\d+)[d ]?(\d+)", r"\1d\2", key)


@cache
def _standard_files() -> dict[str, Path]:
    return {_standard_key(p.stem): p for p in sorted((DATA_DIR / "standards" / "oke1990").glob("*.dat"))}


def known_standards() -> list[str]:
    """Names of the packaged standard stars (Oke 1990)."""
    return [p.stem for p in _standard_files().values()]


def standard_name(object_name: str) -> str | None:
    """Canonical standard name for an OBJECT such as ``STD-BD+33d2642``, or ``None`` if unknown."""
    path = _standard_files().get(_standard_key(object_name))
    return None if path is None else path.stem


@cache
def standard_spectrum(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Reference spectrum of a standard star (Oke 1990).

    Parameters
    ----------
    name : str
        ``STD-BD+33d2642``, ``BD+33d2642``, ``Feige34``...

    Returns
    -------
    wave_aa, flam : numpy.ndarray
        Vacuum wavelengths [Angstrom] and F_lambda [erg s-1 cm-2 A-1].

    Raises
    ------
    CalibrationNotFoundError
        The star is not in the packaged list.
    """
    path = _standard_files().get(_standard_key(name))
    if path is None:
        msg = f"unknown standard star {name!r}; known: {', '.join(known_standards())}"
        raise CalibrationNotFoundError(msg)
    table = np.loadtxt(path, skiprows=1)
    return air_to_vacuum(table[:, 0]), table[:, 1] * 1e-16
