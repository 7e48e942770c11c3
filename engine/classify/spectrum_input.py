"""Read a 1-D spectrum for classification: SEDM ``.txt``, SEDM FITS, or plain columns.

Text files: ``# KEY: value`` header lines, then ``lambda flux [third]`` columns. The third
column of a real SEDM ``.txt`` is the **variance** (pyifu ``writeto(ascii=True)``); files
written by this project carry a ``# COLUMNS: wavelength flux flux_err`` line, which is
honoured (``err``/``error``/``sigma``/``unc`` -> error, ``var``/``variance`` -> variance,
``ivar`` -> inverse variance). Without a COLUMNS line, a file with SEDM header lines is read
with the SEDM convention (variance) and a bare two/three-column file with the usual one
(error).

FITS files: a 1-D primary image with ``CRVAL1``/``CDELT1`` (or ``CD1_1``, ``CRPIX1``) and an
optional ``VARIANCE`` (SEDM) or error extension; or a binary table with wavelength, flux and
error/variance columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import EngineError

_HEADER_RE = re.compile(r"^#\s*([A-Za-z0-9_\-]+)\s*[:=]\s?(.*)$")
_ERR_NAMES = ("err", "error", "flux_err", "fluxerr", "sigma", "unc", "uncertainty", "noise",
              "e_flux", "error_flux")
_VAR_NAMES = ("var", "variance", "flux_var")
_IVAR_NAMES = ("ivar", "inverse_variance", "invvar")
_WAVE_NAMES = ("wave", "wavelength", "lambda", "lam", "wl", "loglam")
_FLUX_NAMES = ("flux", "f_lambda", "flam", "fl")


class SpectrumReadError(EngineError):
    """A spectrum file cannot be read."""


@dataclass(frozen=True, eq=False)
class SpectrumInput:
    """A spectrum as read from disk.

    Attributes
    ----------
    wave : numpy.ndarray
        Shape ``(n,)`` wavelengths [Angstrom].
    flux : numpy.ndarray
        Shape ``(n,)`` F_lambda.
    err : numpy.ndarray or None
        Shape ``(n,)`` 1-sigma errors, or None.
    header : dict
        Header keywords (values as read: strings for text files).
    """

    wave: np.ndarray
    flux: np.ndarray
    err: np.ndarray | None
    header: dict[str, Any] = field(default_factory=dict)


def _third_column_kind(names: list[str] | None, sedm_header: bool) -> str:
    if names and len(names) >= 3:
        third = names[2].lower()
        if third in _IVAR_NAMES:
            return "ivar"
        if third in _VAR_NAMES or "var" in third:
            return "variance"
        return "error"
    return "variance" if sedm_header else "error"


def _error_from(values: np.ndarray, kind: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if kind == "variance":
            return np.sqrt(values)
        if kind == "ivar":
            return 1.0 / np.sqrt(values)
    return values


def read_text_spectrum(path: str | Path) -> SpectrumInput:
    """Read a SEDM-format or plain-column text spectrum (see module docstring).

    Raises
    ------
    SpectrumReadError
        If the file has no numeric rows of at least two columns.
    """
    path = Path(path)
    header: dict[str, Any] = {}
    rows: list[list[float]] = []
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        msg = f"{path}: cannot read ({exc.strerror or exc})"
        raise SpectrumReadError(msg) from exc
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            m = _HEADER_RE.match(s)
            if m:
                header.setdefault(m.group(1).strip(), m.group(2).strip())
            continue
        try:
            rows.append([float(v) for v in s.replace(",", " ").split()[:3]])
        except ValueError:
            continue
    ncol = min((len(r) for r in rows), default=0)
    if not rows or ncol < 2:
        msg = f"{path}: no numeric 'wavelength flux' rows found"
        raise SpectrumReadError(msg)
    data = np.array([r[:ncol] for r in rows], dtype=float)
    names = header.get("COLUMNS", "").split() or None
    err = None
    if ncol >= 3:
        sedm = any(k in header for k in ("OBJECT", "NAXIS1", "CRVAL1", "QUALITY", "EXPTIME"))
        err = _error_from(data[:, 2], _third_column_kind(names, sedm))
    return SpectrumInput(wave=data[:, 0], flux=data[:, 1], err=err, header=header)


def _fits_header_dict(hdr: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in hdr.keys():
        if key in ("COMMENT", "HISTORY", "") or key in out:
            continue
        out[key] = hdr[key]
    return out


def _find(names: list[str], wanted: tuple[str, ...]) -> str | None:
    low = {n.lower(): n for n in names}
    for w in wanted:
        if w in low:
            return low[w]
    return None


def _read_fits_table(hdu: Any, header: dict[str, Any], path: Path) -> SpectrumInput:
    names = list(hdu.columns.names)
    wcol, fcol = _find(names, _WAVE_NAMES), _find(names, _FLUX_NAMES)
    if wcol is None or fcol is None:
        msg = f"{path}: table has no wavelength/flux columns (columns: {', '.join(names)})"
        raise SpectrumReadError(msg)
    wave = np.asarray(hdu.data[wcol], dtype=float).ravel()
    if wcol.lower() == "loglam":
        wave = 10.0 ** wave
    flux = np.asarray(hdu.data[fcol], dtype=float).ravel()
    err = None
    for wanted, kind in ((_ERR_NAMES, "error"), (_VAR_NAMES, "variance"), (_IVAR_NAMES, "ivar")):
        col = _find(names, wanted)
        if col is not None:
            err = _error_from(np.asarray(hdu.data[col], dtype=float).ravel(), kind)
            break
    return SpectrumInput(wave=wave, flux=flux, err=err, header=header)


def _linear_wave(hdr: Any, n: int, path: Path) -> np.ndarray:
    crval = hdr.get("CRVAL1")
    cdelt = hdr.get("CDELT1", hdr.get("CD1_1"))
    if crval is None or cdelt is None:
        msg = f"{path}: 1-D image without CRVAL1/CDELT1 wavelength keywords"
        raise SpectrumReadError(msg)
    crpix = float(hdr.get("CRPIX1", 1.0))
    wave = float(crval) + (np.arange(n) + 1.0 - crpix) * float(cdelt)
    if int(hdr.get("DC-FLAG", 0) or 0) == 1:
        wave = 10.0 ** wave
    return wave


def read_fits_spectrum(path: str | Path) -> SpectrumInput:
    """Read a SEDM FITS spectrum (1-D primary + ``VARIANCE``) or a FITS table spectrum.

    Raises
    ------
    SpectrumReadError
        If no 1-D spectrum is found.
    """
    from astropy.io import fits

    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            header = _fits_header_dict(hdul[0].header)
            prim = hdul[0].data
            if prim is not None and np.squeeze(prim).ndim == 1:
                flux = np.asarray(np.squeeze(prim), dtype=float)
                wave = _linear_wave(hdul[0].header, flux.size, path)
                err = None
                for hdu in hdul[1:]:
                    name = (hdu.name or "").lower()
                    if hdu.data is None or np.size(hdu.data) != flux.size:
                        continue
                    kind = ("variance" if name in _VAR_NAMES else "ivar" if name in _IVAR_NAMES
                            else "error" if name in _ERR_NAMES else None)
                    if kind:
                        err = _error_from(np.asarray(hdu.data, dtype=float).ravel(), kind)
                        break
                return SpectrumInput(wave=wave, flux=flux, err=err, header=header)
            for hdu in hdul[1:]:
                if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)) and hdu.data is not None:
                    return _read_fits_table(hdu, {**header, **_fits_header_dict(hdu.header)},
                                            path)
    except (OSError, ValueError, TypeError) as exc:
        msg = f"{path}: not a readable FITS spectrum ({exc})"
        raise SpectrumReadError(msg) from exc
    msg = f"{path}: no 1-D spectrum (1-D primary image or table) in this FITS file"
    raise SpectrumReadError(msg)


def read_spectrum(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                             dict[str, Any]]:
    """Read any supported spectrum file.

    Parameters
    ----------
    path : str or Path
        ``.fits``/``.fit``/``.fits.gz`` files are read as FITS, everything else as text.

    Returns
    -------
    tuple
        ``(wave, flux, err_or_None, header)``; ``wave`` [Angstrom], shapes ``(n,)``.

    Raises
    ------
    SpectrumReadError
        With a one-line message naming the file.
    """
    path = Path(path)
    if not path.exists():
        msg = f"{path}: no such file"
        raise SpectrumReadError(msg)
    name = path.name.lower()
    is_fits = name.endswith((".fits", ".fit", ".fts", ".fits.gz", ".fit.gz"))
    if not is_fits:
        with open(path, "rb") as fh:
            is_fits = fh.read(9) == b"SIMPLE  ="
    spec = read_fits_spectrum(path) if is_fits else read_text_spectrum(path)
    return spec.wave, spec.flux, spec.err, spec.header
