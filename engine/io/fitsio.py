"""Reading raw FITS frames safely (completeness by FITS size arithmetic, clear errors) and
writing products atomically with every card inside 80 characters."""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from engine.errors import FrameError

BLOCK = 2880


def _parse_header_cards(block: bytes) -> dict[str, str]:
    cards = {}
    for i in range(0, len(block), 80):
        card = block[i : i + 80].decode("ascii", errors="replace")
        key = card[:8].strip()
        if card[8:10] == "= ":
            cards[key] = card[10:].split("/")[0].strip()
        elif key == "END":
            cards["END"] = ""
    return cards


VALID_BITPIX = frozenset({8, 16, 32, 64, -32, -64})
MAX_NAXIS = 999
MAX_HEADER_BLOCKS = 1000
"""A header longer than this many 2880-byte blocks (36 000 cards) is refused."""
MAX_HDUS = 1000


def _structure(cards: dict[str, str], name: str, *, hdu: int) -> int:
    """Data bytes of one HDU from its structural keywords; refuse impossible values.

    Raises
    ------
    FrameError
        (not retryable) a malformed, negative or impossible BITPIX, NAXIS, NAXISn, PCOUNT
        or GCOUNT.
    """
    try:
        bitpix = int(cards.get("BITPIX", "8"))
        naxis = int(cards.get("NAXIS", "0"))
        if not 0 <= naxis <= MAX_NAXIS:
            raise ValueError(f"NAXIS = {naxis}")
        dims = [int(cards.get(f"NAXIS{i}", "0")) for i in range(1, naxis + 1)]
        pcount = int(cards.get("PCOUNT", "0"))
        gcount = int(cards.get("GCOUNT", "1"))
    except ValueError as exc:
        raise FrameError(f"{name}: malformed FITS structural keyword in HDU {hdu} ({exc})") from exc
    if bitpix not in VALID_BITPIX:
        raise FrameError(f"{name}: HDU {hdu} has BITPIX = {bitpix} (not one of {sorted(VALID_BITPIX)})")
    bad = [f"NAXIS{i + 1} = {d}" for i, d in enumerate(dims) if d < 0]
    if bad or pcount < 0 or gcount < 0:
        what = ", ".join(bad + ([f"PCOUNT = {pcount}"] if pcount < 0 else []) + ([f"GCOUNT = {gcount}"] if gcount < 0 else []))
        raise FrameError(f"{name}: HDU {hdu} has a negative size keyword ({what}); not a valid FITS file")
    nelem = math.prod(dims) if dims else 0
    return abs(bitpix) // 8 * gcount * (pcount + nelem) if naxis else 0


def expected_fits_size(path: str | os.PathLike) -> int:
    """Size a FITS file must have, from its headers (data is not read).

    Walks every HDU: header blocks until ``END``, then
    ``ceil(|BITPIX|/8 * GCOUNT * (PCOUNT + prod(NAXISn)) / 2880) * 2880`` data bytes. Each
    step moves forward, so a hostile header cannot make this loop.

    Raises
    ------
    FrameError
        (retryable) the file ends inside a header; (not retryable) it is not FITS, or a
        structural keyword is malformed, negative or absurd.
    """
    path = Path(path)
    size = path.stat().st_size
    offset = 0
    with open(path, "rb") as fh:
        for hdu in range(MAX_HDUS):
            cards: dict[str, str] = {}
            blocks = 0
            while "END" not in cards:
                fh.seek(offset)
                block = fh.read(BLOCK)
                if len(block) < BLOCK:
                    raise FrameError(f"{path.name}: file ends inside a FITS header (still being written?)", retryable=True)
                if offset == 0 and not block.startswith(b"SIMPLE  ="):
                    raise FrameError(f"{path.name}: not a FITS file (no SIMPLE card)")
                blocks += 1
                if blocks > MAX_HEADER_BLOCKS:
                    raise FrameError(f"{path.name}: HDU {hdu} header has no END within {MAX_HEADER_BLOCKS} blocks")
                cards.update(_parse_header_cards(block))
                offset += BLOCK
            nbytes = _structure(cards, path.name, hdu=hdu)
            offset += int(math.ceil(nbytes / BLOCK)) * BLOCK
            if offset >= size:
                return offset
            fh.seek(offset)
            if not fh.read(8).startswith(b"XTENSION"):
                return offset
    raise FrameError(f"{path.name}: more than {MAX_HDUS} HDUs; refused")


def check_complete(path: str | os.PathLike) -> int:
    """Return the file size if the FITS file is complete, else raise a retryable FrameError."""
    path = Path(path)
    size = path.stat().st_size
    if size >= 9:
        with open(path, "rb") as fh:
            if not fh.read(9).startswith(b"SIMPLE  ="):
                raise FrameError(f"{path.name}: not a FITS file (no SIMPLE card)")
    if size == 0 or size % BLOCK:
        raise FrameError(
            f"{path.name}: size {size} bytes is not a whole number of FITS blocks (truncated or still being written)",
            retryable=True,
        )
    expected = expected_fits_size(path)
    if size < expected:
        raise FrameError(
            f"{path.name}: truncated, {size} of {expected} bytes (waiting for the rest)", retryable=True
        )
    return size


def read_header(path: str | os.PathLike) -> fits.Header:
    """Primary header of a FITS file.

    Raises
    ------
    FrameError
        The file cannot be parsed as FITS.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            return fits.getheader(path, 0)
    except (OSError, ValueError, TypeError) as exc:
        raise FrameError(f"{path.name}: unreadable FITS header ({exc})") from exc


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, fits.Header]:
    """Primary image (float32) and header.

    Raises
    ------
    FrameError
        Unreadable file, no image data, or a truncated data unit.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            with fits.open(path, memmap=False) as hdul:
                header = hdul[0].header.copy()
                data = hdul[0].data
                if data is None:
                    raise FrameError(f"{path.name}: no image data in the primary HDU")
                return np.asarray(data, dtype=np.float32), header
    except FrameError:
        raise
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise FrameError(f"{path.name}: cannot read image ({exc})") from exc


def header_value(header, key: str, default=None, *, required: bool = False, cast=None, what: str = ""):
    """A header value with a clear error when a required keyword is missing or malformed."""
    if key not in header or header[key] in (None, ""):
        if required:
            name = what or "frame"
            raise FrameError(f"{name}: required header keyword {key} is missing")
        return default
    value = header[key]
    if cast is None:
        return value
    try:
        return cast(value)
    except (TypeError, ValueError) as exc:
        if required:
            raise FrameError(f"{what or 'frame'}: header keyword {key}={value!r} is not a valid {cast.__name__}") from exc
        return default


def fit_comments(header: fits.Header) -> fits.Header:
    """Shorten comments in place so every card fits in 80 characters (values are never cut).

    The room left for a comment is measured on the card as astropy formats it (string
    values are padded to column 30, numbers right-justified to it); long-string cards that
    continue over several records keep no comment.
    """
    for index, card in enumerate(header.cards):
        if card.keyword in ("COMMENT", "HISTORY", "") or not card.comment:
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", fits.verify.VerifyWarning)
            probe = fits.Card(card.keyword, card.value, "x").image
        truncated = any("truncated" in str(w.message) for w in caught)
        room = 80 - (len(probe.rstrip()) - 1) if len(probe) == 80 and not truncated else 0
        if len(card.comment) > room:
            header.comments[index] = card.comment[: max(room, 0)].rstrip()
    return header


def write_atomic(hdul: fits.HDUList | fits.PrimaryHDU, path: str | os.PathLike) -> Path:
    """Write ``hdul`` to ``path`` through a hidden ``.part`` file and an atomic rename.

    Readers (the console, Fritz uploads) never see a half-written product, and comments
    that would not fit a card are shortened instead of raising a truncation warning.
    """
    if isinstance(hdul, fits.PrimaryHDU):
        hdul = fits.HDUList([hdul])
    for hdu in hdul:
        fit_comments(hdu.header)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")  # two processes never share a temporary
    try:
        hdul.writeto(tmp, overwrite=True, output_verify="silentfix")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
