"""Plan a synthetic night: which frames, when, with which parameters (no rendering here).

A full night has >= 10 biases per read speed, 5 domes, 5 of each arc (split over the previous
UT day's afternoon and this UT day), 3 standards and 24 science targets, plus skipped frames
(test, focus, dark, a mislabelled bias). ``mini`` keeps one of each calibration, one
standard and seven science frames covering every trick case.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace

import numpy as np

from engine.instrument import sedm
from engine.synth.headers import file_stamp, local_sidereal_hours
from engine.synth.spectra import sedm_spectra

# Standards (J2000 RA, Dec in degree, V magnitude): positions of the Oke (1990) stars.
STANDARDS: dict[str, tuple[float, float, float]] = {
    "BD+33d2642": (237.9996, 32.9483, 10.8),
    "BD+28d4211": (327.7962, 28.8639, 10.5),
    "BD+25d4655": (329.9254, 26.4328, 9.7),
    "Feige34": (159.9029, 43.1027, 11.2),
    "Feige110": (349.9933, -5.1656, 11.8),
    "G191B2B": (76.3776, 52.8311, 11.8),
    "HZ44": (200.8938, 36.1333, 11.7),
    "GD248": (351.5321, 16.0058, 15.1),
    "BD+75d325": (122.7346, 74.9658, 9.5),
    "HZ4": (58.8417, 9.7883, 14.5),
    "Feige66": (189.3479, 25.0667, 10.5),
}

TRICKS_MINI = ("normal", "outside", "faint", "no_guider", "no_stars", "neighbour", "cosmic")


@dataclass(frozen=True)
class Exposure:
    """An on-sky IFU exposure (standard or science) and its true scene."""

    kind: str
    object_name: str
    trick: str
    ra: float
    dec: float
    mag_r: float
    sed_kind: str
    sed_source: str
    sn_type: str | None
    redshift: float | None
    position: tuple[float, float]
    airmass: float
    endair: float
    parallactic_deg: float
    end_pa_deg: float
    in_air: float
    in_hum: float
    barpress: float
    seeing_fwhm: float
    psf_ab: float
    psf_theta: float
    jflex: float
    iflex: float
    sky_brightness: float
    expected_quality: int
    quality_reason: str
    host: dict | None = None
    neighbour: dict | None = None
    guider: str = "ok"
    n_guider: int = 3
    cosmic_on_target: bool = False
    pointing_error_arcsec: tuple[float, float] = (0.0, 0.0)
    req_id: str = ""
    p60prid: str = ""
    psf_beta: float = 2.5
    psf_eta: float = 0.6
    psf_core_ratio: float = 0.75
    psf_chroma: float = -0.2


@dataclass(frozen=True)
class FramePlan:
    """One raw IFU frame to write."""

    file: str
    dir_night: str
    start: dt.datetime
    kind: str
    exptime: float
    adcspeed: float
    obj: str
    name: str
    imgtype: str
    lamp: str | None = None
    seed: int = 0
    exposure: Exposure | None = None
    dome_open: bool = True
    lampcur: float = 0.0
    saturate: bool = False
    skip_reason: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def obs_id(self) -> str:
        """``HH_MM_SS`` of the file name."""
        return self.file[12:20]


def exptime_for_mag(mag: float) -> float:
    """SEDM exposure-time guide [s]."""
    for limit, t in ((16.0, 420.0), (17.0, 600.0), (17.7, 900.0), (18.5, 1200.0)):
        if mag < limit:
            return t
    return 1800.0


def _alt_pa(ra: float, dec: float, t: dt.datetime) -> tuple[float, float]:
    """Airmass and parallactic angle [deg] of ``(ra, dec)`` at Palomar at time ``t``."""
    lst = local_sidereal_hours(t) * 15.0
    ha = math.radians((lst - ra + 540.0) % 360.0 - 180.0)
    phi, d = math.radians(sedm.SITE_LATITUDE_DEG), math.radians(dec)
    sin_alt = math.sin(phi) * math.sin(d) + math.cos(phi) * math.cos(d) * math.cos(ha)
    airmass = 1.0 / max(sin_alt, 0.05)
    pa = math.degrees(math.atan2(math.sin(ha), math.tan(phi) * math.cos(d) - math.sin(d) * math.cos(ha)))
    return airmass, pa


def _field_for_time(t: dt.datetime, rng: np.random.Generator) -> tuple[float, float]:
    """A random target position observable near the meridian at time ``t`` [degree]."""
    lst = local_sidereal_hours(t) * 15.0
    while True:
        ha = rng.uniform(-45.0, 45.0)
        dec = math.degrees(math.asin(rng.uniform(math.sin(math.radians(-15)), math.sin(math.radians(70)))))
        ra = (lst - ha) % 360.0
        airmass, _ = _alt_pa(ra, dec, t)
        if airmass < 1.8:
            return ra, dec


def _conditions(ra: float, dec: float, start: dt.datetime, exptime: float, rng: np.random.Generator) -> dict:
    x0, pa0 = _alt_pa(ra, dec, start)
    x1, pa1 = _alt_pa(ra, dec, start + dt.timedelta(seconds=exptime))
    return dict(
        airmass=x0, endair=x1, parallactic_deg=pa0, end_pa_deg=pa1,
        in_air=float(rng.uniform(4.0, 15.0)), in_hum=float(rng.uniform(15.0, 60.0)),
        barpress=float(rng.uniform(1008.0, 1020.0)), seeing_fwhm=float(rng.uniform(1.5, 2.4)),
        psf_ab=float(rng.uniform(0.88, 0.98)), psf_theta=float(rng.uniform(-1.2, 1.2)),
        jflex=float(np.clip(rng.normal(0.0, 0.8), -1.8, 1.8)), iflex=float(np.clip(rng.normal(0.0, 0.3), -0.8, 0.8)),
        sky_brightness=float(rng.uniform(0.9, 1.6)),
    )


def _ztf_name(rng: np.random.Generator, year: int) -> str:
    letters = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 7))
    return f"ZTF{year % 100:02d}{letters}"


def _science(trick: str, name: str, start: dt.datetime, rng: np.random.Generator, year: int) -> tuple[Exposure, float]:
    """A science exposure for one trick case."""
    spectra = sedm_spectra()
    spec = spectra[int(rng.integers(len(spectra)))]
    mag = float(rng.uniform(16.2, 18.0))
    pos = tuple(float(v) for v in rng.normal(0.0, 2.0, 2))
    sed_kind, sed_source, sn_type, z = "sedm", str(spec.path.relative_to(spec.path.parents[1])), spec.sn_type, spec.redshift
    quality, reason, guider = 0, "", "ok"
    host = neighbour = None
    cosmic = False
    if trick == "outside":
        ang = rng.uniform(0, 2 * math.pi)
        pos = (34.0 * math.cos(ang), 34.0 * math.sin(ang))
        quality, reason = 3, "target outside the IFU"
    elif trick == "faint":
        mag = 23.5
        quality, reason = 4, "more than 20% of the flux negative"
    elif trick in ("no_guider", "no_stars"):
        guider = "none" if trick == "no_guider" else "nostars"
        quality, reason = 5, "guider astrometry failed"
    elif trick == "neighbour":
        ang = rng.uniform(0, 2 * math.pi)
        neighbour = {"offset": [7.5 * math.cos(ang), 7.5 * math.sin(ang)], "mag_r": mag - 1.8, "temperature_k": 5200.0}
    elif trick == "cosmic":
        cosmic = True
    elif trick == "blackbody":
        sed_kind, sed_source, sn_type, z = "blackbody", "14000", None, None
    if trick in ("normal", "host") and rng.uniform() < 0.6 or trick == "host":
        ang = rng.uniform(0, 2 * math.pi)
        d = rng.uniform(3.0, 6.0)
        host = {"offset": [d * math.cos(ang), d * math.sin(ang)], "scale_arcsec": float(rng.uniform(1.5, 3.0)),
                "ab": float(rng.uniform(0.5, 0.9)), "theta": float(rng.uniform(0, math.pi)),
                "mag_r": float(mag + rng.uniform(0.5, 1.5)), "redshift": z if z and np.isfinite(z) else 0.05}
    exptime = exptime_for_mag(min(mag, 19.0))
    ra, dec = _field_for_time(start, rng)
    cond = _conditions(ra, dec, start, exptime, rng)
    exp = Exposure(
        kind="science", object_name=name, trick=trick, ra=ra, dec=dec, mag_r=mag, sed_kind=sed_kind,
        sed_source=sed_source, sn_type=sn_type, redshift=None if z is None or not np.isfinite(z) else float(z),
        position=pos, expected_quality=quality, quality_reason=reason, host=host, neighbour=neighbour,
        guider=guider, n_guider=int(np.clip(exptime // 300, 2, 4)), cosmic_on_target=cosmic,
        pointing_error_arcsec=tuple(float(v) for v in rng.normal(0.0, 4.0, 2)),
        req_id=f"{start:%Y%m%d%H%M%S}{int(rng.integers(100, 999))}", p60prid="2026B-ZTF", **cond,
    )
    return exp, exptime


def _standard(start: dt.datetime, rng: np.random.Generator, used: set[str]) -> tuple[Exposure, float]:
    """The best-placed standard star at ``start``."""
    best = min(
        (s for s in STANDARDS if s not in used and STANDARDS[s][2] < 13.0),
        key=lambda s: _alt_pa(STANDARDS[s][0], STANDARDS[s][1], start)[0],
    )
    ra, dec, vmag = STANDARDS[best]
    exptime = 120.0 if vmag < 11.0 else 180.0
    cond = _conditions(ra, dec, start, exptime, rng)
    exp = Exposure(
        kind="standard", object_name=f"STD-{best}", trick="standard", ra=ra, dec=dec, mag_r=vmag,
        sed_kind="standard", sed_source=best, sn_type=None, redshift=None,
        position=tuple(float(v) for v in rng.normal(0.0, 2.0, 2)), expected_quality=0, quality_reason="",
        guider="none", n_guider=0, **cond,
    )
    return exp, exptime


def draw_night_conditions(seed: int) -> dict:
    """The night's seeing, PSF family and flexure sizes under the wide priors.

    Drawn from their own stream of ``seed`` (the nominal plan's draws are untouched).

    Returns
    -------
    dict
        ``seeing_median_arcsec, psf_beta, psf_eta, psf_core_ratio, psf_chroma, psf_ab_min,
        jflex_sigma_px, iflex_sigma_px`` (see :data:`engine.synth.priors.WIDE_PRIORS`).
    """
    from engine.synth.priors import PRIORS

    rng = np.random.default_rng(np.random.SeedSequence([seed, 5]))
    keys = ("seeing_median_arcsec", "psf_beta", "psf_eta", "psf_core_ratio", "psf_chroma", "psf_ab_min",
            "jflex_sigma_px", "iflex_sigma_px")
    return {k: PRIORS[k].draw(rng) for k in keys}


def _widen(exp: Exposure, cond: dict, rng: np.random.Generator) -> Exposure:
    """``exp`` with its seeing, PSF and flexure redrawn around the night's ``cond``."""
    seeing = float(np.clip(cond["seeing_median_arcsec"] * math.exp(rng.normal(0.0, 0.15)), 0.8, 3.0))
    js, is_ = cond["jflex_sigma_px"], cond["iflex_sigma_px"]
    return replace(
        exp, seeing_fwhm=seeing, psf_ab=float(rng.uniform(cond["psf_ab_min"], 0.98)),
        psf_beta=cond["psf_beta"], psf_eta=cond["psf_eta"], psf_core_ratio=cond["psf_core_ratio"],
        psf_chroma=cond["psf_chroma"],
        jflex=float(np.clip(rng.normal(0.0, js), -2.5 * js, 2.5 * js)),
        iflex=float(np.clip(rng.normal(0.0, is_), -2.5 * is_, 2.5 * is_)),
    )


def plan_night(night: str, *, mini: bool, seed: int, camera: str, priors: str = "nominal") -> list[FramePlan]:
    """Every raw IFU frame of the night, in time order, each with its own seed.

    ``priors="wide"`` redraws every exposure's seeing, PSF and flexure from the night's
    :func:`draw_night_conditions`; all else is the nominal plan.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    day = dt.datetime.strptime(night, "%Y%m%d").replace(tzinfo=dt.UTC)
    prev = (day - dt.timedelta(days=1)).strftime("%Y%m%d")
    speeds = (1.0,) if camera == "andor" else (0.1, 2.0)
    cal_speed = speeds[-1]
    n_bias, n_dome, n_arc = (5, 1, 1) if mini else (10, 5, 5)
    frames: list[FramePlan] = []

    def add(start, kind, exptime, speed, obj, name, imgtype, dir_night, **kw):
        frames.append(FramePlan(file=f"ifu{file_stamp(start)}.fits", dir_night=dir_night, start=start, kind=kind,
                                exptime=exptime, adcspeed=speed, obj=obj, name=name, imgtype=imgtype, **kw))

    # Afternoon of the previous UT day: biases (and part of the domes).
    t = day - dt.timedelta(hours=2, minutes=10)
    for speed in speeds:
        for i in range(n_bias):
            add(t, "bias", 0.0, speed, f"Calib: bias {i + 1} of {n_bias}", "Calib: bias", "bias", prev)
            t += dt.timedelta(seconds=23)
    n_dome_prev = 0 if mini else 3
    t += dt.timedelta(minutes=5)
    for i in range(n_dome):
        dir_night = prev if i < n_dome_prev else night
        if i == n_dome_prev and dir_night == night:
            t = max(t, day + dt.timedelta(minutes=12))
        add(t, "dome", 120.0, cal_speed, f"Calib: dome {i + 1} of {n_dome}", "Calib: dome", "dome", dir_night,
            lampcur=2.1)
        t += dt.timedelta(seconds=150)
    # This UT day: arcs.
    t = max(t, day + dt.timedelta(minutes=25))
    for lamp, exptime in (("Hg", 30.0), ("Cd", 60.0), ("Xe", 45.0)):
        for i in range(n_arc):
            add(t, "arc", exptime, cal_speed, f"Calib: {lamp} {i + 1} of {n_arc}", f"Calib: {lamp}", "lamp", night,
                lamp=lamp)
            t += dt.timedelta(seconds=exptime + 25)
    # Skipped frames (full night only, except one in mini).
    t = day + dt.timedelta(hours=2, minutes=40)
    add(t, "skip", 10.0, speeds[0], "test exposure", "test", "test", night, skip_reason="test")
    t += dt.timedelta(seconds=60)
    if not mini:
        add(t, "skip", 30.0, speeds[0], "Focus: IFU focus loop", "focus", "focus", night, skip_reason="focus")
        t += dt.timedelta(seconds=60)
        add(t, "skip", 5.0, speeds[0], "Calib: bias 11 of 10", "Calib: bias", "bias", night,
            skip_reason="bias with EXPTIME > 0")
        t += dt.timedelta(seconds=60)
        add(t, "skip", 300.0, speeds[0], "Calib: dark", "dark", "dark", night, skip_reason="dark")
        t += dt.timedelta(seconds=330)
    # On sky.
    year = day.year
    used: set[str] = set()
    science_speed = speeds[0]
    t = max(t, day + dt.timedelta(hours=3, minutes=2))
    if mini:
        tricks: list[str] = list(TRICKS_MINI)
        std_slots = {0}
    else:
        tricks = ["normal"] * 14 + ["host", "host", "blackbody"] + list(TRICKS_MINI[1:])
        tricks = [tricks[i] for i in rng.permutation(len(tricks))]
        std_slots = {0, 9, 18}
    slot = 0
    while tricks:
        if slot in std_slots:
            exp, exptime = _standard(t, rng, used)
            used.add(exp.object_name[4:])
            add(t, "standard", exptime, science_speed, exp.object_name, exp.object_name, "Standard", night, exposure=exp)
        else:
            name = _ztf_name(rng, year)
            exp, exptime = _science(tricks.pop(0), name, t, rng, year)
            add(t, "science", exptime, science_speed, f"{name} [A]", name, "Science", night, exposure=exp)
        t += dt.timedelta(seconds=exptime + 150)
        slot += 1
    if not mini:
        add(t, "skip", 60.0, science_speed, "ZTF dome-closed test", "ZTF26closed", "Science", night,
            dome_open=False, skip_reason="dome closed")
    seeds = np.random.SeedSequence([seed, 2]).generate_state(len(frames))
    frames = [replace(f, seed=int(s)) for f, s in zip(frames, seeds)]
    if priors == "wide":
        cond = draw_night_conditions(seed)
        wrng = np.random.default_rng(np.random.SeedSequence([seed, 7]))
        frames = [replace(f, exposure=_widen(f.exposure, cond, wrng)) if f.exposure is not None else f for f in frames]
    return frames
