"""Parser of SNID's ``.lnw`` template format (Blondin & Tonry 2007).

Layout of one file:

* line 1: ``Nspec Nbins w0 w1 Nknots name delta type itype isubtype`` (``Nbins`` = 1024 log
  bins between ``w0`` = 2500 and ``w1`` = 10000 Angstrom);
* line 2: ``Nknots`` followed by ``(nknot, fmean)`` per epoch (continuum-spline bookkeeping);
* ``Nknots`` lines ``k (log10 x_k, log10 y_k) per epoch`` (the continuum spline knots);
* a line ``age_flag age_1 ... age_N`` (days from maximum light);
* ``Nbins`` rows ``lambda f_1 ... f_N`` (Fortran ``f8.2, N f9.3``): the flattened flux
  (continuum divided out, minus 1), exactly zero outside the template's coverage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.errors import ConfigError

N_BINS = 1024
"""Number of log-wavelength bins of SNID templates."""
W0_AA = 2500.0
"""Blue edge of the SNID log-wavelength grid [Angstrom]."""
W1_AA = 10000.0
"""Red edge of the SNID log-wavelength grid [Angstrom]."""

@dataclass(frozen=True)
class LnwTemplate:
    """One parsed ``.lnw`` file.

    Attributes
    ----------
    name, subtype : str
        Template name and SNID (sub)type string from the header.
    itype, isubtype : int
        SNID type and subtype indices.
    delta : float
        Decline-rate parameter.
    ages : numpy.ndarray
        Shape ``(n_epoch,)`` [days].
    age_flag : int
        SNID age flag.
    wave : numpy.ndarray
        Shape ``(1024,)`` tabulated bin wavelengths [Angstrom].
    flux : numpy.ndarray
        Shape ``(n_epoch, 1024)`` flattened flux.
    """

    name: str
    subtype: str
    itype: int
    isubtype: int
    delta: float
    ages: np.ndarray
    age_flag: int
    wave: np.ndarray
    flux: np.ndarray


def parse_lnw(data: bytes, source: str = "<bytes>") -> LnwTemplate:
    """Parse the bytes of one ``.lnw`` file.

    Parameters
    ----------
    data : bytes
        File content.
    source : str
        Name used in error messages.

    Returns
    -------
    LnwTemplate

    Raises
    ------
    ConfigError
        If the header, the age line or the flux block is malformed, or the wavelength grid is
        not SNID's 1024 bins over 2500-10000 Angstrom.
    """
    head, _, rest = data.partition(b"\n")
    tok = head.split()
    try:
        nspec, nbins, nknots = int(tok[0]), int(tok[1]), int(tok[4])
        w0, w1 = float(tok[2]), float(tok[3])
        name, delta = tok[5].decode(), float(tok[6])
        subtype, itype, isubtype = tok[7].decode(), int(tok[8]), int(tok[9])
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        msg = f"{source}: malformed .lnw header line {head[:80]!r} ({exc})"
        raise ConfigError(msg) from exc
    if nspec < 1 or nknots < 0:
        msg = f"{source}: header gives {nspec} spectra and {nknots} knots"
        raise ConfigError(msg)
    if nbins != N_BINS or abs(w0 - W0_AA) > 0.01 or abs(w1 - W1_AA) > 0.01:
        msg = (f"{source}: grid {nbins} bins {w0}-{w1} A is not SNID's {N_BINS} bins "
               f"{W0_AA:.0f}-{W1_AA:.0f} A")
        raise ConfigError(msg)
    parts = rest.split(b"\n", nknots + 2)
    if len(parts) < nknots + 3:
        msg = f"{source}: file ends inside the spline-knot block"
        raise ConfigError(msg)
    try:
        age_tok = parts[nknots + 1].split()
        age_flag = int(age_tok[0])
        ages = np.array(age_tok[1:], dtype=float)
    except (IndexError, ValueError) as exc:
        msg = f"{source}: malformed age line ({exc})"
        raise ConfigError(msg) from exc
    if ages.size != nspec:
        msg = f"{source}: age line has {ages.size} ages for {nspec} spectra"
        raise ConfigError(msg)
    body = parts[nknots + 2]
    table = _parse_fixed_block(body, nspec, nbins)
    if table is None:
        table = _parse_free_block(body, nspec, nbins, source)
    return LnwTemplate(name=name, subtype=subtype, itype=itype, isubtype=isubtype, delta=delta,
                       ages=ages, age_flag=age_flag, wave=table[:, 0].copy(),
                       flux=np.ascontiguousarray(table[:, 1:].T))


_HIGH_WEIGHTS = np.array([10_000_000, 1_000_000, 100_000, 10_000], dtype=np.int32)


def _parse_fixed_block(body: bytes, nspec: int, nbins: int) -> np.ndarray | None:
    """Decode the flux block written by SNID's ``logwave`` (``f8.2`` then ``nspec`` x ``f9.3``).

    Works on the raw bytes with array arithmetic (several times faster than text-to-float
    conversion). Returns None when the block is not in exactly that layout, so the caller can
    fall back to :func:`_parse_free_block`.
    """
    width = 8 + 9 * nspec
    if not body.endswith(b"\n"):
        body = body + b"\n"
    raw = np.frombuffer(body, dtype=np.uint8)
    need = nbins * (width + 1)
    if raw.size < need or (raw.size > need and not np.isin(raw[need:], (9, 10, 13, 32)).all()):
        return None
    rows = raw[:need].reshape(nbins, width + 1)
    if not (rows[:, width] == 10).all():
        return None
    fields = rows[:, 8:width].reshape(nbins, nspec, 9)
    low = fields[..., [4, 6, 7, 8]] - np.uint8(48)
    if low.max(initial=0) > 9 or not (fields[..., 5] == 46).all():
        return None
    high = fields[..., :4]
    hd = high - np.uint8(48)
    isdig = hd <= 9
    if not (isdig | (high == 32) | (high == 45)).all():
        return None
    milli = low.astype(np.int32) @ np.array([1000, 100, 10, 1], dtype=np.int32)
    if isdig.any():
        milli += (np.where(isdig, hd, 0).astype(np.int32) @ _HIGH_WEIGHTS)
    sign = np.where((high == 45).any(axis=-1), -0.001, 0.001)
    try:
        wave = np.array(rows[:, :8].tobytes().split(), dtype=float)
    except ValueError:
        return None
    if wave.size != nbins:
        return None
    table = np.empty((nbins, nspec + 1))
    table[:, 0] = wave
    np.multiply(milli, sign, out=table[:, 1:])
    return table


def _parse_free_block(body: bytes, nspec: int, nbins: int, source: str) -> np.ndarray:
    """Decode a whitespace-separated flux block of ``nbins`` rows x ``nspec + 1`` columns."""
    try:
        block = np.array(body.split(), dtype=float)
    except ValueError as exc:
        msg = f"{source}: malformed flux block ({exc})"
        raise ConfigError(msg) from exc
    if block.size != nbins * (nspec + 1):
        msg = (f"{source}: flux block has {block.size} numbers, expected "
               f"{nbins} rows x {nspec + 1} columns")
        raise ConfigError(msg)
    return block.reshape(nbins, nspec + 1)


