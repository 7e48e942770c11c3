"""SEDM primary headers for synthetic raw frames, modelled on real SEDM headers."""

from __future__ import annotations

import datetime as dt
import math

from astropy.io import fits

from engine.instrument import sedm
from engine.instrument.sky import sexagesimal_dec, sexagesimal_ra


def julian_date(t: dt.datetime) -> float:
    """Julian date of a UTC datetime."""
    epoch = dt.datetime(2000, 1, 1, 12, tzinfo=dt.UTC)
    return 2451545.0 + (t - epoch).total_seconds() / 86400.0


def local_sidereal_hours(t: dt.datetime) -> float:
    """Local mean sidereal time at Palomar [hour]."""
    d = julian_date(t) - 2451545.0
    gmst = (18.697374558 + 24.06570982441908 * d) % 24.0
    return (gmst + sedm.SITE_LONGITUDE_DEG / 15.0) % 24.0


def hms(hours: float) -> str:
    """``HH:MM:SS.s`` of a time in hours."""
    h = int(hours) % 24
    m = int((hours - int(hours)) * 60)
    s = ((hours - int(hours)) * 60 - m) * 60
    return f"{h:02d}:{m:02d}:{s:04.1f}"


def file_stamp(t: dt.datetime) -> str:
    """``YYYYMMDD_HH_MM_SS`` for file names."""
    return t.strftime("%Y%m%d_%H_%M_%S")


def base_header(start: dt.datetime, exptime: float, camera: str) -> fits.Header:
    """Keywords every SEDM frame carries: times, camera, site."""
    end = start + dt.timedelta(seconds=exptime)
    h = fits.Header()
    h["EXPTIME"] = (float(exptime), "exposure time [s]")
    h["TELESCOP"] = "60"
    h["INSTRUME"] = "SEDM-P60"
    h["UTC"] = start.strftime("%Y-%m-%dT%H:%M:%S.%f")
    h["END_SHUT"] = end.strftime("%Y-%m-%dT%H:%M:%S.%f")
    h["OBSDATE"] = start.strftime("%Y-%m-%d")
    h["OBSTIME"] = start.strftime("%H:%M:%S.%f")
    jd = julian_date(start)
    h["JD"] = (jd, "Julian date at exposure start")
    h["MJD_OBS"] = (jd - 2400000.5, "modified Julian date at exposure start")
    h["LST"] = hms(local_sidereal_hours(start))
    h["ELAPTIME"] = round(exptime + 3.1, 3)
    h["CAMERA"] = camera
    return h


def ifu_header(
    *,
    start: dt.datetime,
    exptime: float,
    camera: str,
    adcspeed: float,
    gain: float,
    obj: str,
    name: str,
    imgtype: str,
    pointing: dict | None = None,
    lamps: dict | None = None,
    dome_open: bool = True,
    extra: dict | None = None,
) -> fits.Header:
    """Header of a raw IFU frame.

    Parameters
    ----------
    pointing : dict, optional
        On-sky frames: ``tel_ra, tel_dec, obj_ra, obj_dec`` [deg], ``airmass, endair,
        tel_pa, end_pa`` [deg], ``in_air`` [C], ``in_hum`` [%], ``barpress`` [hPa],
        ``req_id, obj_id, p60prid``.
    lamps : dict, optional
        ``{"Hg": True, ...}`` and ``lampcur`` for calibration frames.
    """
    h = base_header(start, exptime, camera)
    h["ADCSPEED"] = (float(adcspeed), "read speed [MHz]")
    h["GAIN"] = (float(gain), "[e-/ADU]")
    h["CAM_NAME"] = "IFU Cam"
    h["SNSR_NM"] = "E2V 2048 x 2048 (CCD 42-40)(B)" if camera == "pixis" else "Andor iKon-L 936"
    h["OBJECT"] = obj
    h["NAME"] = name
    h["IMGTYPE"] = imgtype
    h["FILTER"] = "ifu"
    h["DOMEST"] = "open" if dome_open else "closed"
    lamps = lamps or {}
    h["LAMPCUR"] = (float(lamps.get("lampcur", 0.0)), "dome lamp current [A]")
    h["LAMPSTAT"] = "on" if lamps.get("lampcur", 0.0) > 0 else "off"
    for lamp in ("Hg", "Xe", "Cd"):
        h[f"{lamp.upper()}_LAMP"] = "on" if lamps.get(lamp) else "off"
    if pointing:
        p = pointing
        h["RA"] = sexagesimal_ra(p["tel_ra"])
        h["DEC"] = sexagesimal_dec(p["tel_dec"])
        h["TEL_RA"] = h["RA"]
        h["TEL_DEC"] = h["DEC"]
        h["OBJRA"] = sexagesimal_ra(p["obj_ra"])
        h["OBJDEC"] = sexagesimal_dec(p["obj_dec"])
        h["OBJEQX"] = "j2000.0"
        h["AIRMASS"] = (round(p["airmass"], 3), "airmass at exposure start")
        h["ENDAIR"] = (round(p["endair"], 3), "airmass at exposure end")
        h["TEL_PA"] = (round(p["tel_pa"], 1), "parallactic angle at start [deg E of N]")
        h["END_PA"] = (round(p["end_pa"], 1), "parallactic angle at end [deg E of N]")
        alt = math.degrees(math.asin(min(1.0, 1.0 / p["airmass"])))
        h["TEL_EL"] = round(alt, 2)
        h["TEL_AZ"] = round(p.get("az", 180.0), 2)
        h["RA_RATE"] = 0.0
        h["DEC_RATE"] = 0.0
        h["RA_OFF"] = round(p.get("ra_off", 0.0), 2)
        h["DEC_OFF"] = round(p.get("dec_off", 0.0), 2)
        h["IN_AIR"] = (round(p["in_air"], 1), "dome air temperature [C]")
        h["IN_HUM"] = (round(p["in_hum"], 1), "dome relative humidity [%]")
        h["OUT_AIR"] = round(p["in_air"] - 0.3, 1)
        h["BARPRESS"] = (round(p["barpress"], 1), "barometric pressure reduced to sea level [hPa]")
        h["OBJTYPE"] = "Transient" if imgtype == "Science" else "Standard"
        h["REQ_ID"] = p.get("req_id", "")
        h["OBJ_ID"] = p.get("obj_id", "")
        h["P60PRID"] = p.get("p60prid", "")
        h["TEL_MO"] = "tracking"
        h["ABPAIR"] = False
        h["IMGSET"] = "A"
    for key, value in (extra or {}).items():
        h[key] = value
    return h
