"""What is sent, built by pure functions: no I/O, no clock, no secret.

Fritz/SkyPortal facts these follow: ``POST /api/spectrum/ascii`` takes the product's text with
the column index of the 1-sigma error (``fluxerr_column``; without it no errors are stored);
``PUT /api/spectra/<id>`` takes wavelengths, fluxes and errors; annotations are one per origin
with a ``data`` dict of numbers where they are numbers; a follow-up request's status is a text
``Completed Automatically <ISO UT>``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_ASCII_BYTES = 10 * 1024 * 1024
"""SkyPortal refuses an ``ascii`` body over 10 MB."""
MJD_EPOCH = dt.datetime(1858, 11, 17, tzinfo=dt.UTC)


class PayloadError(ValueError):
    """The product cannot be sent as it is (the row fails with this message, never retried)."""


@dataclass(frozen=True)
class AsciiSpectrum:
    """A ``.txt`` spectrum product, parsed.

    Attributes
    ----------
    header : dict
        The ``# KEY: value`` cards.
    columns : tuple of str
        Column names from the ``# COLUMNS:`` line (``wavelength flux flux_err``).
    wave, flux, err : tuple of float
        The columns [Angstrom, flux unit, flux unit (1 sigma)].
    """

    header: dict
    columns: tuple[str, ...]
    wave: tuple[float, ...]
    flux: tuple[float, ...]
    err: tuple[float, ...]


def parse_ascii_spectrum(text: str) -> AsciiSpectrum:
    """Parse a spectrum product's text.

    Raises
    ------
    PayloadError
        No ``# COLUMNS:`` line naming ``flux_err`` (an old SEDM file holds the variance there),
        or a data line that is not three numbers.
    """
    header: dict[str, str] = {}
    columns: tuple[str, ...] = ()
    rows: list[tuple[float, float, float]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                header[key.strip()] = value.strip()
                if key.strip() == "COLUMNS":
                    columns = tuple(value.split("[")[0].split())
            continue
        if not line.strip():
            continue
        parts = line.split()
        try:
            rows.append((float(parts[0]), float(parts[1]), float(parts[2])))
        except (IndexError, ValueError) as exc:
            raise PayloadError(f"line {n} of the spectrum is not three numbers: {line[:60]!r}") from exc
    if "flux_err" not in columns:
        raise PayloadError("the spectrum has no '# COLUMNS:' line naming flux_err (a 1-sigma error column); "
                           "SEDM's old files hold the variance there and would be read as errors")
    if not rows:
        raise PayloadError("the spectrum has no data lines")
    wave, flux, err = (tuple(c) for c in zip(*rows))
    return AsciiSpectrum(header=header, columns=columns, wave=wave, flux=flux, err=err)


def observed_at(mjd_obs: float) -> str:
    """ISO UT of an exposure start from ``MJD_OBS`` (never OBSDATE/OBSTIME: local time in 2019-2020).

    Examples
    --------
    >>> observed_at(61368.13)
    '2026-11-24T03:07:12.000'
    """
    if mjd_obs is None or not math.isfinite(float(mjd_obs)):
        raise PayloadError(f"MJD_OBS is missing or not a number ({mjd_obs!r}): the observation time is unknown")
    when = MJD_EPOCH + dt.timedelta(days=float(mjd_obs))
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def fritz_obj_id(name: str | None, obj: str | None, pattern: str) -> str | None:
    """The Fritz object id of an exposure (its ``NAME``, else its ``OBJECT`` without ``[A]``), or
    ``None`` when it does not match ``pattern``."""
    for cand in (name, obj):
        cand = (cand or "").replace(" [A]", "").replace(" [B]", "").strip()
        if cand and re.search(pattern, cand):
            return cand
    return None


def spectrum_ascii_body(*, obj_id: str, ascii_text: str, filename: str, mjd_obs: float, instrument_id: int,
                        group_ids: tuple[int, ...] = (), followup_request_id: int | None = None) -> dict:
    """The JSON body of ``POST /api/spectrum/ascii``.

    Parameters
    ----------
    obj_id : str
        Fritz object (``ZTF26aaaaaaa``).
    ascii_text : str
        The ``.txt`` product, sent as it is.
    filename : str
        Its base name (``original_file_filename`` on Fritz: how a stored spectrum is recognised).
    mjd_obs : float
        ``MJD_OBS`` of the exposure [day].
    instrument_id : int
        SkyPortal instrument id (SEDM: 2).
    group_ids : tuple of int
        Groups to share with.
    followup_request_id : int, optional
        The frame's ``REQ_ID``.

    Raises
    ------
    PayloadError
        The text is over 10 MB, or has no 1-sigma error column.
    """
    size = len(ascii_text.encode())
    if size > MAX_ASCII_BYTES:
        raise PayloadError(f"the spectrum text is {size / 1e6:.1f} MB; SkyPortal refuses more than 10 MB")
    spec = parse_ascii_spectrum(ascii_text)
    body = {
        "obj_id": obj_id, "instrument_id": int(instrument_id), "observed_at": observed_at(mjd_obs),
        "filename": filename, "ascii": finite_lines(ascii_text), "wave_column": spec.columns.index("wavelength")
        if "wavelength" in spec.columns else 0, "flux_column": spec.columns.index("flux"),
        "fluxerr_column": spec.columns.index("flux_err"),
    }
    if group_ids:
        body["group_ids"] = [int(g) for g in group_ids]
    if followup_request_id is not None:
        body["followup_request_id"] = int(followup_request_id)
    return body


def finite_lines(ascii_text: str) -> str:
    """The text without data lines holding a NaN or an infinity (SkyPortal stores numbers only)."""
    keep = []
    for line in ascii_text.splitlines():
        if not line.startswith("#") and line.strip():
            try:
                if not all(math.isfinite(float(v)) for v in line.split()[:3]):
                    continue
            except ValueError:
                pass
        keep.append(line)
    return "\n".join(keep) + "\n"


def spectrum_put_body(*, obj_id: str, ascii_text: str, mjd_obs: float, instrument_id: int,
                      group_ids: tuple[int, ...] = ()) -> dict:
    """The JSON body of ``PUT /api/spectra/<id>`` that replaces a stored spectrum's data."""
    spec = parse_ascii_spectrum(finite_lines(ascii_text))
    body = {"obj_id": obj_id, "instrument_id": int(instrument_id), "observed_at": observed_at(mjd_obs),
            "wavelengths": list(spec.wave), "fluxes": list(spec.flux), "errors": list(spec.err)}
    if group_ids:
        body["group_ids"] = [int(g) for g in group_ids]
    return body


def _number(value):
    if value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return value
    return f if math.isfinite(f) else None


def snid_annotation(cls: Mapping) -> dict | None:
    """``data`` of the ``sedm:SNID`` annotation from a ``classifications`` row (``None`` without a type)."""
    if not cls or not cls.get("type") or cls.get("type") == "NONE":
        return None
    data = {"type": cls["type"], "subtype": cls.get("subtype") or "", "z": _number(cls.get("z")),
            "z_err": _number(cls.get("z_err")), "rlap": _number(cls.get("rlap")),
            "age": _number(cls.get("age")), "template": cls.get("template") or ""}
    return {k: v for k, v in data.items() if v is not None}


def s2n_annotation(s2n: float | None) -> dict | None:
    """``data`` of the ``sedm:S2N`` annotation (``None`` when unknown)."""
    value = _number(s2n)
    return None if value is None else {"s2n": round(value, 2)}


def followup_status(kind: str, when: dt.datetime) -> str:
    """A follow-up request's new status text.

    Parameters
    ----------
    kind : str
        ``automatic`` (the robot's spectrum), ``manual`` (a re-extraction or a recovery) or
        ``failed`` (quality 3-5).
    when : datetime
        UT of the status.
    """
    label = {"automatic": "Completed Automatically", "manual": "Completed Manually", "failed": "Failed"}[kind]
    return f"{label} {when.astimezone(dt.UTC).strftime('%Y-%m-%dT%H:%M:%S')}"


def report_ztf_text(rows: list[Mapping], base_url: str) -> str:
    """``report_ztf.txt``: one line per spectrum stored on Fritz (from the ledger's sent rows)."""
    lines = ["# UT        object         Fritz spectrum  file"]
    for r in rows:
        p = r["payload"]
        url = f"{base_url.rstrip('/')}/source/{p['obj_id']}"
        lines.append(f"{(r['obs_id'] or '').replace('_', ':'):<10}  {p['obj_id']:<13}  "
                     f"{r['remote_id'] or '-':>14}  {p['filename']}  {url}")
    return "\n".join(lines) + "\n"
