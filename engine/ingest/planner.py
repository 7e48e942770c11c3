"""Frame classification and calibration-set readiness, with the SEDM rules.

Rules (``notes/sedm-pipeline.md`` §1.4), with word matching instead of raw substrings so a
target named ``ZTF21atestab`` is not a test frame:

* skip: "test", "Focus:", "dark" in OBJECT; "STOW" in NAME; empty OBJECT; on-sky frames
  taken with the dome closed; a "bias" with EXPTIME > 0 (mis-labelled); a dome flat with the
  lamp off (LAMPCUR <= 0); domes/arcs shorter than the SEDM minimum exposure;
* bias: "Calib" and "bias" in OBJECT and EXPTIME == 0 (grouped by ADCSPEED);
* dome: "Calib" and "dome" in OBJECT and no lamp name; EXPTIME > 30 s (>= 60 s for the
  previous UT day's files); LAMPCUR > 0;
* arc: "Calib" and one of Hg, Cd, Xe (Ne) in OBJECT; EXPTIME > 15 s (> 25 s previous day);
* standard: "STD-" in OBJECT;  science: anything else with an OBJECT;
* guider: Rainbow-camera frames (``rc*`` files or CAM_NAME without "IFU").

A calibration frame belongs to night D if it is in ``raw/D`` (00-09 UT) or in ``raw/D-1``
taken from 20 UT on (the previous UT day's afternoon).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.timeutil import previous_night

LAMPS = ("Hg", "Cd", "Xe", "Ne")
CAL_KINDS = ("bias", "dome", "arc")

_WORD = {name: re.compile(rf"(?<![A-Za-z0-9]){name}(?![A-Za-z0-9])", re.IGNORECASE)
         for name in ("test", "dark", "bias", "dome", "calib")}
_LAMP_RE = {lamp: re.compile(rf"(?<![A-Za-z]){lamp}(?![a-z])") for lamp in LAMPS}


@dataclass(frozen=True)
class FrameClass:
    """The planner's verdict on one raw frame."""

    kind: str
    """``bias``, ``dome``, ``arc``, ``standard``, ``science``, ``guider`` or ``skip``."""
    reason: str
    lamp: str | None = None


def obs_id_of(filename: str) -> str | None:
    """``HH_MM_SS`` from ``ifuYYYYMMDD_HH_MM_SS.fits`` / ``rc...`` (``None`` if not that form)."""
    m = re.search(r"(\d{8})_(\d{2})_(\d{2})_(\d{2})", filename)
    return None if m is None else f"{m.group(2)}_{m.group(3)}_{m.group(4)}"


def date_of(filename: str) -> str | None:
    """``YYYYMMDD`` from a SEDM file name."""
    m = re.search(r"(\d{8})_\d{2}_\d{2}_\d{2}", filename)
    return None if m is None else m.group(1)


def is_guider_file(filename: str, header=None) -> bool:
    """True for Rainbow-camera frames."""
    if filename.startswith("rc"):
        return True
    if header is not None:
        cam = str(header.get("CAM_NAME", ""))
        return bool(cam) and "IFU" not in cam.upper()
    return False


def classify_frame(header, filename: str, *, previous_day: bool = False) -> FrameClass:
    """Classify a raw frame from its header.

    Parameters
    ----------
    header : mapping
        The primary FITS header.
    filename : str
        Base name (``ifu...``/``rc...``).
    previous_day : bool
        The file comes from the previous UT day's directory (stricter exposure minimums).
    """
    if is_guider_file(filename, header):
        return FrameClass("guider", "Rainbow-camera frame")
    obj = str(header.get("OBJECT", "") or "").strip()
    name = str(header.get("NAME", "") or "")
    exptime = _float(header.get("EXPTIME"))
    if not obj:
        return FrameClass("skip", "empty OBJECT")
    if _WORD["test"].search(obj):
        return FrameClass("skip", "test frame")
    if "focus:" in obj.lower():
        return FrameClass("skip", "focus frame")
    if "STOW" in name.upper():
        return FrameClass("skip", "telescope stowed")
    if _WORD["dark"].search(obj):
        return FrameClass("skip", "dark frame")
    is_calib = bool(_WORD["calib"].search(obj))
    lamp = next((lp for lp in LAMPS if _LAMP_RE[lp].search(obj)), None)
    if is_calib and _WORD["bias"].search(obj):
        if exptime is None or exptime > 0:
            return FrameClass("skip", f"mis-labelled bias (EXPTIME={exptime})")
        return FrameClass("bias", f"bias, ADCSPEED {header.get('ADCSPEED')}")
    if is_calib and _WORD["dome"].search(obj) and lamp is None:
        minimum = 60.0 if previous_day else 30.0
        if exptime is None or exptime < minimum or (not previous_day and exptime <= 30.0):
            return FrameClass("skip", f"dome flat too short (EXPTIME={exptime} s)")
        if _float(header.get("LAMPCUR"), 0.0) <= 0:
            return FrameClass("skip", "bad dome: lamp not on (LAMPCUR <= 0)")
        return FrameClass("dome", "dome flat")
    if is_calib and lamp is not None:
        minimum = 25.0 if previous_day else 15.0
        if exptime is None or exptime <= minimum:
            return FrameClass("skip", f"{lamp} arc too short (EXPTIME={exptime} s)")
        return FrameClass("arc", f"{lamp} arc", lamp=lamp)
    if is_calib:
        return FrameClass("skip", f"calibration of an unused type ({obj})")
    if str(header.get("DOMEST", "open")).strip().lower() == "closed":
        return FrameClass("skip", "on-sky frame taken with the dome closed")
    if "STD-" in obj.upper():
        return FrameClass("standard", "standard star (STD- in OBJECT)")
    return FrameClass("science", "science target")


def _float(value, default=None):
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def belongs_to_night(frame_night_dir: str, filename: str, kind: str, night: str) -> bool:
    """True if a frame is part of night ``night``'s data (calibrations include the afternoon before)."""
    if frame_night_dir == night:
        return True
    if kind in CAL_KINDS and frame_night_dir == previous_night(night):
        obs = obs_id_of(filename)
        return obs is not None and int(obs[:2]) >= 20
    return False


@dataclass(frozen=True)
class CalibrationSet:
    """The calibration frames available to a night and how complete they are."""

    biases: dict[float, list[str]]
    domes: list[str]
    arcs: dict[str, list[str]]

    def counts(self) -> dict[str, int]:
        """Frames per group, e.g. ``{"bias1.0": 10, "dome": 5, "Hg": 5, ...}``."""
        out = {f"bias{speed:.1f}": len(v) for speed, v in sorted(self.biases.items())}
        out["dome"] = len(self.domes)
        out.update({lamp: len(self.arcs.get(lamp, [])) for lamp in ("Hg", "Cd", "Xe")})
        return out

    def level(self, science_speeds: set[float]) -> str:
        """``ideal`` (>= 10 biases per speed, >= 5 domes and of each arc), ``minimum`` (5 / 3),
        ``partial`` (>= 1 of each) or ``incomplete``."""
        speeds = set(science_speeds) | set(self.biases)
        nb = min((len(self.biases.get(s, [])) for s in speeds), default=0)
        nd = len(self.domes)
        na = min(len(self.arcs.get(lamp, [])) for lamp in ("Hg", "Cd", "Xe"))
        if nb >= 10 and nd >= 5 and na >= 5:
            return "ideal"
        if nb >= 5 and nd >= 3 and na >= 3:
            return "minimum"
        if nb >= 1 and nd >= 1 and na >= 1:
            return "partial"
        return "incomplete"


def calibration_set(frames: list[dict]) -> CalibrationSet:
    """Group a night's calibration frame rows (dicts with file, kind, lamp, adcspeed, path)."""
    biases: dict[float, list[str]] = {}
    domes: list[str] = []
    arcs: dict[str, list[str]] = {}
    for f in sorted(frames, key=lambda r: r["file"]):
        if f["kind"] == "bias":
            biases.setdefault(round(float(f["adcspeed"] or 0.0), 1), []).append(f["path"])
        elif f["kind"] == "dome":
            domes.append(f["path"])
        elif f["kind"] == "arc" and f["lamp"]:
            arcs.setdefault(f["lamp"], []).append(f["path"])
    return CalibrationSet(biases=biases, domes=domes, arcs=arcs)
