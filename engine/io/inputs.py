"""The guarded boundary: every outside input becomes a typed value or a refusal with a reason.

Outside inputs are raw file names, night directory names, FITS header cards, and console or
CLI requests. Nothing past this module parses them again. A refusal is a value
(:class:`Refusal`) or a domain error (:class:`~engine.errors.FrameError`,
:class:`~engine.errors.RequestError`) whose message a person can act on; no other exception
escapes these functions, whatever the input.

Text that came from outside (OBJECT, a request's target or comment, a user name) may hold
terminal escape sequences; :func:`clean_text` neutralises them. It is used here, when such
text enters, and again wherever the engine prints or records a message.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import FrameError, RequestError

# --------------------------------------------------------------------------------------------- text

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_NEWLINES = re.compile("[\t\n\r]")


def clean_text(value: Any, *, max_len: int | None = None, keep_newlines: bool = False) -> str:
    """``value`` as text that is safe to show on a terminal.

    Control characters (C0 except tab/newline, DEL, C1 -- hence every ESC/CSI/OSC sequence
    introducer), zero-width and bidirectional-override characters become ``?``; tabs and
    newlines become spaces unless ``keep_newlines``. ``None`` gives ``""``.

    Parameters
    ----------
    value : object
        Anything; converted with ``str``.
    max_len : int, optional
        Cut to this many characters (an ellipsis marks the cut).
    keep_newlines : bool
        Keep ``\\n`` (multi-line text such as a report comment; ``\\r`` becomes ``\\n``).
    """
    text = "" if value is None else str(value)
    if keep_newlines:
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    else:
        text = _NEWLINES.sub(" ", text)
    text = _CONTROL.sub("?", text)
    if max_len is not None and len(text) > max_len:
        text = text[: max(0, max_len - 1)] + "…"
    return text


# --------------------------------------------------------------------------------------------- refusals

@dataclass(frozen=True)
class Refusal:
    """An input refused at the boundary.

    Attributes
    ----------
    reason : str
        What is wrong, in words a person can act on.
    retryable : bool
        The input may become valid later (a file still being written).
    """

    reason: str
    retryable: bool = False

    def __bool__(self) -> bool:  # a refusal is never a usable value
        return False


# --------------------------------------------------------------------------------------------- names

NIGHT_FORMAT = re.compile(r"^\d{8}$")
RAW_NAME = re.compile(r"^(ifu|rc)(\d{8})_(\d{2})_(\d{2})_(\d{2})\.fits$")
OBS_ID = re.compile(r"^(\d{2})_(\d{2})_(\d{2})$")
FIRST_YEAR, LAST_YEAR = 2000, 2199


def parse_night(name: Any) -> str | Refusal:
    """A UT night directory name ``YYYYMMDD`` that is a real date, else a refusal."""
    text = clean_text(name, max_len=40)
    if not isinstance(name, str) or not NIGHT_FORMAT.match(name):
        return Refusal(f"{text!r} is not a night directory name (YYYYMMDD)")
    try:
        date = dt.datetime.strptime(name, "%Y%m%d")
    except ValueError:
        return Refusal(f"{text!r} is not a date (YYYYMMDD)")
    if not FIRST_YEAR <= date.year <= LAST_YEAR:
        return Refusal(f"{text!r}: year {date.year} is outside {FIRST_YEAR}-{LAST_YEAR}")
    return name


def is_night(name: Any) -> bool:
    """True if ``name`` is a valid night directory name."""
    return not isinstance(parse_night(name), Refusal)


def parse_obs_id(text: Any) -> str | Refusal:
    """An exposure id ``HH_MM_SS`` that is a real UT time, else a refusal."""
    m = OBS_ID.match(text) if isinstance(text, str) else None
    if m is None:
        return Refusal(f"{clean_text(text, max_len=40)!r} is not an exposure id (HH_MM_SS)")
    hh, mm, ss = (int(g) for g in m.groups())
    if hh > 23 or mm > 59 or ss > 60:
        return Refusal(f"{text}: {hh:02d}:{mm:02d}:{ss:02d} is not a UT time")
    return text


@dataclass(frozen=True)
class RawName:
    """A raw frame's file name, parsed: ``ifuYYYYMMDD_HH_MM_SS.fits`` / ``rc…``."""

    camera: str
    date: str
    obs_id: str
    ut: dt.datetime

    @property
    def jd(self) -> float:
        """Julian date of the time in the name."""
        return 2440587.5 + self.ut.timestamp() / 86400.0


def parse_raw_name(name: Any) -> RawName | Refusal:
    """Parse a raw file name; an impossible date or time is refused with a reason."""
    m = RAW_NAME.match(name) if isinstance(name, str) else None
    if m is None:
        return Refusal(f"{clean_text(name, max_len=80)!r} is not a raw frame name (ifu|rcYYYYMMDD_HH_MM_SS.fits)")
    camera, date, hh, mm, ss = m.groups()
    night = parse_night(date)
    if isinstance(night, Refusal):
        return Refusal(f"{name}: date {night.reason}")
    obs_id = parse_obs_id(f"{hh}_{mm}_{ss}")
    if isinstance(obs_id, Refusal):
        return Refusal(f"{name}: impossible time in the file name ({obs_id.reason})")
    ut = dt.datetime.strptime(date, "%Y%m%d").replace(tzinfo=dt.UTC) + dt.timedelta(
        hours=int(hh), minutes=int(mm), seconds=int(ss))
    return RawName(camera=camera, date=date, obs_id=obs_id, ut=ut)


# --------------------------------------------------------------------------------------------- headers

HEADER_KEYS_KEPT = (
    "OBJECT", "NAME", "IMGTYPE", "EXPTIME", "ADCSPEED", "GAIN", "AIRMASS", "ENDAIR", "JD", "MJD_OBS",
    "TEL_RA", "TEL_DEC", "OBJRA", "OBJDEC", "TEL_PA", "END_PA", "IN_AIR", "IN_HUM", "BARPRESS", "DOMEST",
    "LAMPCUR", "REQ_ID", "OBJ_ID", "P60PRID", "CAM_NAME", "RA_RATE", "DEC_RATE", "OBSDATE", "OBSTIME",
    "EMAIL",
)
"""Header keywords read at ingest (the planner's and the observation row's)."""

NUMERIC_KEYS = frozenset({"EXPTIME", "ADCSPEED", "GAIN", "AIRMASS", "ENDAIR", "JD", "MJD_OBS", "TEL_PA",
                          "END_PA", "IN_AIR", "IN_HUM", "BARPRESS", "LAMPCUR", "RA_RATE", "DEC_RATE"})
"""Keywords that must be finite numbers when present."""

ESSENTIAL_KEYS = frozenset({"OBJECT", "NAME", "IMGTYPE", "EXPTIME", "ADCSPEED", "AIRMASS", "JD", "LAMPCUR",
                            "DOMEST", "CAM_NAME"})
"""Keywords the planner and the exposure rows rely on: a bad one refuses the file. A bad card of
another kept keyword (a weather or telescope reading) is dropped and the file is used."""

MAX_TEXT = 200
"""Longest header string kept [characters]."""

MAX_EXPTIME_S = 86400.0
MAX_AIRMASS = 40.0


def header_values(header, filename: str) -> dict[str, Any] | Refusal:
    """The kept keywords of a primary header as plain Python values, or a refusal.

    A card of an essential keyword (:data:`ESSENTIAL_KEYS`) that astropy cannot parse (a
    control character or newline in OBJECT, ``JD = NaN``) or, for a numeric keyword, that is
    not a finite number, refuses the file: it is unusable as written and the reason names the
    card. Such a card of another kept keyword is dropped. Strings pass through
    :func:`clean_text`.
    """
    out: dict[str, Any] = {}
    for key in HEADER_KEYS_KEPT:
        value, problem = _card_value(header, key)
        if problem:
            if key in ESSENTIAL_KEYS:
                return Refusal(f"{filename}: {problem}")
            continue
        if value is not None:
            out[key] = value
    return out


def _card_value(header, key: str) -> tuple[Any, str]:
    """``(value, "")`` of one kept keyword (``None`` when absent or blank), or ``(None, problem)``."""
    try:
        if key not in header:
            return None, ""
        value = header[key]
    except Exception as exc:  # noqa: BLE001 - astropy VerifyError and friends
        return None, f"header card {key} cannot be parsed ({clean_text(exc, max_len=120)})"
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, ""
    if key in NUMERIC_KEYS:
        number = _finite(value)
        if number is None:
            return None, f"header keyword {key}={clean_text(repr(value), max_len=40)} is not a finite number"
        return number, ""
    if isinstance(value, float) and not math.isfinite(value):
        return None, f"header keyword {key}={value!r} is not a finite number"
    if isinstance(value, (bool, int, float)):
        return value, ""
    return clean_text(value, max_len=MAX_TEXT), ""


def _finite(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def check_exposure(values: Mapping[str, Any], kind: str, filename: str) -> Refusal | None:
    """Refuse an exposure whose times or airmass make no physical sense for its kind.

    On-sky frames (standard, science) need ``0 < EXPTIME`` and ``1 <= AIRMASS``; lamps
    (dome, arc) a positive EXPTIME; every EXPTIME must be >= 0. ``None`` if it is usable.
    """
    exptime, airmass = values.get("EXPTIME"), values.get("AIRMASS")
    if exptime is not None and not 0.0 <= exptime <= MAX_EXPTIME_S:
        return Refusal(f"{filename}: EXPTIME = {exptime:g} s is impossible (0 to {MAX_EXPTIME_S:g} s)")
    if kind in ("standard", "science", "dome", "arc") and (exptime is None or exptime <= 0.0):
        return Refusal(f"{filename}: a {kind} exposure needs EXPTIME > 0 s (got {exptime})")
    if kind in ("standard", "science"):
        if airmass is None:
            return Refusal(f"{filename}: a {kind} exposure needs AIRMASS (missing)")
        if not 1.0 <= airmass <= MAX_AIRMASS:
            return Refusal(f"{filename}: AIRMASS = {airmass:g} is impossible (must be 1 to {MAX_AIRMASS:g})")
    return None


def read_frame_header(path) -> dict[str, Any]:
    """Read and validate a raw file's primary header (kept keywords only).

    Raises
    ------
    FrameError
        Unreadable or unparsable header (not retryable), with the reason.
    """
    from engine.io.fitsio import read_header

    try:
        header = read_header(path)
    except FrameError:
        raise
    except Exception as exc:  # noqa: BLE001 - any astropy failure is a bad file, never a crash
        raise FrameError(f"{path.name}: unreadable FITS header ({clean_text(exc, max_len=160)})") from exc
    values = header_values(header, path.name)
    if isinstance(values, Refusal):
        raise FrameError(values.reason)
    return values


# --------------------------------------------------------------------------------------------- requests

REQUEST_KINDS: tuple[str, ...] = ("reextract", "recover", "accept", "reject", "report", "final_report",
                                  "tns_report", "deliver_retry")
TARGETED_KINDS: frozenset[str] = frozenset({"reextract", "recover", "accept", "reject", "tns_report"})
TNS_NAME = re.compile(r"^\d{4}[a-z]{2,4}$")
"""A TNS name without its prefix (``2026abc``)."""
MAX_PARAMS_BYTES = 16384
"""Largest ``params_json`` accepted [bytes]."""
MAX_SPAXELS = 10000
"""More spaxel ids than this (the IFU has a few thousand) is a malformed region."""
MAX_SPAXEL_ID = 1_000_000
MAX_COMMENT = 4000
MAX_USER = 64
MAX_CENTROID_RADIUS = 5.0
"""Largest ``centroid_radius`` of a re-extraction (how far the fit may move from a hand-set centroid)."""
MAX_CENTROID = 1000.0
"""A centroid coordinate beyond this is nonsense (the IFU radius is checked by the engine)."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _spaxel_ids(value: Any, what: str) -> None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        shown = clean_text(repr(value), max_len=60)
        raise RequestError(f"region {what} must be a list of spaxel ids (integers), not {shown}")
    if len(value) > MAX_SPAXELS:
        raise RequestError(f"region {what} lists {len(value)} spaxels; at most {MAX_SPAXELS} are accepted")
    if any(not 0 <= v < MAX_SPAXEL_ID for v in value):
        raise RequestError(f"region {what} holds a spaxel id out of range")


def _region(region: Any) -> None:
    if not isinstance(region, dict) or not region or not set(region) <= {"radius", "include", "exclude"}:
        raise RequestError(f"region must be {{radius|include|exclude}}, not {clean_text(repr(region), max_len=80)}")
    if "radius" in region and (not _number(region["radius"]) or not 0 < region["radius"] <= 100):
        shown = clean_text(repr(region["radius"]), max_len=40)
        raise RequestError(f"region radius must be a number in (0, 100] spaxels, not {shown}")
    for what in ("include", "exclude"):
        if what in region:
            _spaxel_ids(region[what], what)
    if "include" in region and len(region["include"]) == 0:
        raise RequestError("the region includes no spaxel")


def validate_request(kind: Any, night: Any, target: Any, params: Any) -> None:
    """Check a request's kind, night, target and parameter shapes (the engine checks meaning).

    Raises
    ------
    RequestError
        With a message the console shows: unknown kind, bad night or target, malformed
        centroid, region, lstep, extraction id or comment.
    """
    if kind not in REQUEST_KINDS:
        shown = clean_text(repr(kind), max_len=40)
        raise RequestError(f"unknown request kind {shown}; known: {', '.join(REQUEST_KINDS)}")
    if not isinstance(params, dict):
        raise RequestError(f"request parameters must be a JSON object, not {type(params).__name__}")
    if kind in TARGETED_KINDS and not (night and target):
        raise RequestError(f"a {kind} request needs a night and a target (HH_MM_SS)")
    if kind == "reextract":
        centroid = params.get("centroid")
        if centroid is not None and not (isinstance(centroid, (list, tuple)) and len(centroid) == 2
                                         and all(_number(v) and abs(v) <= MAX_CENTROID for v in centroid)):
            shown = clean_text(repr(centroid), max_len=60)
            raise RequestError(f"centroid must be two numbers [x, y] (finite), not {shown}")
        radius = params.get("centroid_radius")
        if radius is not None and not (_number(radius) and 0.0 < radius <= MAX_CENTROID_RADIUS):
            shown = clean_text(repr(radius), max_len=30)
            raise RequestError(f"centroid_radius must be a number in (0, {MAX_CENTROID_RADIUS:g}] spaxels, not {shown}")
        if params.get("region") is not None:
            _region(params["region"])
        lstep = params.get("lstep", 1)
        if not isinstance(lstep, int) or isinstance(lstep, bool) or not 1 <= lstep <= 5:
            raise RequestError(f"lstep must be an integer 1-5, not {clean_text(repr(lstep), max_len=20)}")
    if kind in {"accept", "reject"}:
        eid = params.get("extraction_id")
        if not isinstance(eid, int) or isinstance(eid, bool) or eid <= 0:
            raise RequestError(f"a {kind} request needs the extraction_id of the re-extraction")
    if kind in {"report", "final_report"}:
        comment = params.get("comment")
        if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT):
            raise RequestError(f"a report comment must be text of at most {MAX_COMMENT} characters")
    if kind == "tns_report":
        name, typ = params.get("tns_name"), params.get("type")
        if not isinstance(name, str) or not TNS_NAME.match(name):
            raise RequestError(f"a TNS name is like 2026abc, not {clean_text(repr(name), max_len=30)}")
        if typ is not None and (not isinstance(typ, str) or len(typ) > 20):
            raise RequestError("a TNS type is a short text such as 'SN Ia'")
    if kind == "deliver_retry":
        ids = params.get("ids")
        if ids is not None and not (isinstance(ids, list) and len(ids) <= 10000 and all(
                isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids)):
            raise RequestError("deliver_retry ids must be a list of delivery row ids")
    if night is not None and isinstance(parse_night(night), Refusal):
        raise RequestError(parse_night(night).reason)
    if target is not None and isinstance(parse_obs_id(target), Refusal):
        raise RequestError(f"target: {parse_obs_id(target).reason}")


def encode_params(params: Any) -> str:
    """``params`` as the JSON stored in ``requests.params_json``.

    Raises
    ------
    RequestError
        Not JSON-serialisable (NaN included), or larger than :data:`MAX_PARAMS_BYTES`.
    """
    try:
        text = json.dumps(params, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise RequestError(f"request parameters are not plain JSON ({clean_text(exc, max_len=80)})") from exc
    if len(text.encode()) > MAX_PARAMS_BYTES:
        size = len(text.encode())
        raise RequestError(f"request parameters are {size} bytes; at most {MAX_PARAMS_BYTES} are accepted")
    return text


def decode_params(params_json: Any) -> dict[str, Any] | Refusal:
    """Parse a stored ``params_json`` (written by any client) into a dict, or a refusal."""
    if params_json is None or params_json == "":
        return {}
    if not isinstance(params_json, str):
        return Refusal(f"request parameters are stored as {type(params_json).__name__}, not JSON text")
    if len(params_json.encode(errors="replace")) > MAX_PARAMS_BYTES:
        return Refusal(f"request parameters are larger than {MAX_PARAMS_BYTES} bytes")
    try:
        params = json.loads(params_json, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        return Refusal(f"request parameters are not valid JSON ({clean_text(exc, max_len=80)})")
    if not isinstance(params, dict):
        return Refusal(f"request parameters must be a JSON object, not {type(params).__name__}")
    return params


def _no_constant(name: str):
    raise ValueError(f"{name} is not allowed")


def check_request_row(row: Mapping[str, Any]) -> dict[str, Any] | Refusal:
    """A stored request row's parameters, validated (the engine's side of the boundary)."""
    params = decode_params(row.get("params_json"))
    if isinstance(params, Refusal):
        return params
    try:
        validate_request(row.get("kind"), row.get("night"), row.get("target"), params)
    except RequestError as exc:
        return Refusal(str(exc))
    return params
