"""A small, fully deterministic reduced night for console tests (no engine run needed).

Products are written with the engine's own writers (cube, PSF product, spectrum) from analytic
data (Gaussian PSFs on the real lenslet lattice); state rows go through the engine's schema
and :class:`~engine.state.writer.StateWriter`. Timestamps are fixed, so SVG snapshots are stable.
"""

from __future__ import annotations

import math
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from engine.instrument import sedm
from engine.io import names
from engine.provenance import Provenance
from engine.science.cube import Cube, write_cube
from engine.science.products import spectrum_header, write_psf_product, write_spectrum
from engine.state.db import open_writer
from engine.state.writer import StateWriter

NIGHT = "20261124"
TS = "2026-11-24T05:00:00.000Z"


@dataclass(frozen=True)
class Spec:
    """One exposure of the fake night."""

    obs_id: str
    object: str
    kind: str = "science"
    exptime: float = 600.0
    airmass: float = 1.2
    state: str = "done"
    stage: str = "done"
    progress: float = 1.0
    quality: int | None = 0
    reason: str = "good"
    srcpos: str = "astrom"
    pos: tuple[float, float] = (0.0, 0.0)
    neighbour: tuple[float, float] | None = None
    snid: tuple[str, str, float, float] | None = ("Ia", "norm", 0.071, 18.2)
    s2n: float | None = 41.0


EXPOSURES: tuple[Spec, ...] = (
    Spec("03_02_00", "STD-BD+25d4655", kind="standard", exptime=120, airmass=1.06, pos=(-1.0, 0.6), snid=None,
         s2n=880.0, srcpos="auto"),
    Spec("03_06_30", "ZTF26aaaaaaa", pos=(0.8, -0.4), snid=("II", "IIP", 0.023, 13.0), s2n=78.0),
    Spec("03_19_00", "ZTF26bbbbbbb", exptime=900, quality=3, reason="target outside the IFU (34.2 spaxels from "
         "the centre > 25)", pos=(30.0, 17.0), snid=None, s2n=None),
    Spec("04_21_30", "ZTF26ccccccc", exptime=900, airmass=1.06, quality=5, srcpos="auto",
         reason="guider astrometry failed: no stars detected in the guider stack (clouds?); extracted at the "
                "brightest spaxel", pos=(-4.0, 3.0), neighbour=(3.0, -2.0), snid=("Ia", "norm", 0.046, 27.7),
         s2n=37.0),
    Spec("04_39_00", "ZTF26ddddddd", state="reducing", stage="cube", progress=0.3, quality=None, snid=None, s2n=None),
    Spec("04_51_30", "ZTF26eeeeeee", state="waiting", stage="waiting for calibration", progress=0.0, quality=None,
         snid=None, s2n=None),
)


@dataclass
class FakeNight:
    """Where the fake night lives."""

    root: Path
    redux: Path
    raw: Path
    db: Path
    night: str = NIGHT

    @property
    def night_dir(self) -> Path:
        return self.redux / self.night


def lattice() -> tuple[np.ndarray, np.ndarray]:
    """``(spaxel_id, xy)`` of the lenslets within 23 spaxel units of the centre."""
    q, r = np.meshgrid(np.arange(-30, 31), np.arange(-30, 31))
    xy = sedm.hex_to_spaxel_xy(q.ravel(), r.ravel())
    keep = np.hypot(*xy.T) <= 23.0
    return np.arange(keep.sum()), xy[keep]


def _gauss(xy: np.ndarray, pos, sigma: float = 1.3) -> np.ndarray:
    d2 = ((xy - np.asarray(pos)) ** 2).sum(1)
    return np.exp(-0.5 * d2 / sigma ** 2)


def _sed(wave: np.ndarray, z: float = 0.05) -> np.ndarray:
    """A smooth SED with a couple of broad absorption features [arbitrary]."""
    w = wave / 1e4
    base = 1.2 * np.exp(-((w - 0.45) / 0.25) ** 2) + 0.4
    for c in (0.6150, 0.5900, 0.3950):
        base -= 0.25 * np.exp(-0.5 * ((w - c * (1 + z)) / 0.012) ** 2)
    return base


def _products(night: FakeNight, spec: Spec, spaxel_id, xy, rng, tag: str = "robot", shift=(0.0, 0.0)) -> dict:
    """Write cube (robot only), PSF product and spectrum; return their names."""
    wave = sedm.CUBE_WAVE_AA.copy()
    raw_name = f"ifu{NIGHT}_{spec.obs_id}.fits"
    out = night.night_dir
    z = spec.snid[2] if spec.snid else 0.0
    sed = _sed(wave, z) * (30.0 if spec.kind == "standard" else 3.0)
    psf = _gauss(xy, spec.pos)
    flux = np.outer(psf, sed) + 0.02 * rng.standard_normal((len(xy), wave.size))
    if spec.neighbour is not None:
        flux += 1.6 * np.outer(_gauss(xy, spec.neighbour), _sed(wave, 0.0))
    var = np.full_like(flux, 0.02 ** 2)
    prov = Provenance(schema="test", version=1)
    header = fits.Header()
    header["OBJECT"], header["EXPTIME"], header["AIRMASS"] = spec.object, spec.exptime, spec.airmass
    cube_name = names.cube(raw_name, spec.object)
    if tag == "robot":
        write_cube(out / cube_name, Cube(wave=wave, flux=flux.astype(np.float32), var=var.astype(np.float32),
                                         spaxel_id=spaxel_id, xy=xy), header, prov)
    if spec.quality == 3:
        return {"cube": cube_name}
    centre = (spec.pos[0] + shift[0], spec.pos[1] + shift[1])
    fitted = np.hypot(*(xy - np.asarray(centre)).T) <= 10.0
    model = np.where(fitted[:, None], np.outer(_gauss(xy, centre), sed), np.nan)
    meta_w = np.linspace(4333.3, 7666.7, 6)
    metaslices = {"wave": meta_w, "x": np.full(6, centre[0]), "y": np.full(6, centre[1]),
                  "x_err": np.full(6, 0.01), "y_err": np.full(6, 0.01), "amplitude": np.linspace(0.9, 0.4, 6)}
    psf_name = names.extraction("psf", raw_name, spec.object, tag=tag)
    write_psf_product(out / psf_name, spaxel_id=spaxel_id, xy=xy, model=model, fit_mask=fitted,
                      excluded=np.zeros(len(xy), bool), metaslices=metaslices,
                      cards={"PSFFWHM": (1.7, "fwhm")}, provenance=prov)
    e = sedm.EDGE_CUT_SAMPLES
    sw = wave[e:-e]
    scale = 1e-16 * (1.1 if tag != "robot" else 1.0)
    sflux = (sed[e:-e] * 2 * math.pi * 1.3 ** 2) * scale
    svar = (0.03 * sflux) ** 2
    cards = {"QUALITY": (spec.quality, ""), "QUALREAS": (spec.reason[:68], ""), "SRCPOS": (spec.srcpos, ""),
             "BUNIT": ("erg/s/A/cm^2", "")}
    hdr = spectrum_header(header, cards, sw)
    template = None
    if spec.snid:
        t = _sed(sw, spec.snid[2]) * 2 * math.pi * 1.3 ** 2 * 1e-16 * 0.95
        template = {"wave": sw, "flux": t, "flux_flat": t / t.mean() - 1, "data_flat": sflux / sflux.mean() - 1}
    spec_name = names.extraction("spec", raw_name, spec.object, tag=tag)
    write_spectrum(out / spec_name, out / (spec_name[:-5] + ".txt"), sw, sflux, svar, hdr, prov, template=template)
    return {"cube": cube_name, "psf": psf_name, "spec": spec_name, "txt": spec_name[:-5] + ".txt",
            "centre": centre, "fitted": int(fitted.sum())}


def _guider(night: FakeNight, spec: Spec, rng) -> str:
    img = rng.normal(100.0, 3.0, (300, 300)).astype(np.float32)
    yy, xx = np.mgrid[:300, :300]
    for sx, sy, a in ((150, 152, 800.0), (90, 200, 1500.0), (230, 60, 600.0)):
        img += a * np.exp(-0.5 * ((xx - sx) ** 2 + (yy - sy) ** 2) / 2.0 ** 2)
    h = fits.Header()
    h["IFUPX_X"], h["IFUPX_Y"] = 150.0, 150.0
    if spec.srcpos == "astrom":
        h["TGTPX_X"], h["TGTPX_Y"] = 150.0 - spec.pos[0] * 1.455, 150.0 + spec.pos[1] * 1.455
        h["ASTROM"] = "OK"
    else:
        h["ASTROM"] = "FAILED"
    name = f"guider_crr_b_ifu{NIGHT}_{spec.obs_id}.fits"
    fits.PrimaryHDU(img, header=h).writeto(night.night_dir / name, overwrite=True)
    return name


def build_fake_night(root: Path) -> FakeNight:
    """Write the fake night under ``root`` (``raw/``, ``redux/``, ``redux/sedm.db``)."""
    night = FakeNight(root=root, redux=root / "redux", raw=root / "raw", db=root / "redux" / "sedm.db")
    night.night_dir.mkdir(parents=True, exist_ok=True)
    (night.raw / NIGHT).mkdir(parents=True, exist_ok=True)
    spaxel_id, xy = lattice()
    rng = np.random.default_rng(7)
    db = open_writer(night.db)
    w = StateWriter(db)
    w.db.execute("INSERT INTO nights (night, raw_dir, redux_dir, created, calib_status, calib_id) VALUES (?,?,?,?,?,?)",
                 [NIGHT, str(night.raw / NIGHT), str(night.night_dir), TS, "ok", 1])
    w.insert("calibrations", {"night": NIGHT, "status": "ok", "source_night": NIGHT, "level": "ideal",
                              "stats_json": {"wave_rms_median_aa": 0.31, "nspax": len(xy), "flat_std": 0.043},
                              "created": TS})
    w.db.execute("""INSERT INTO engine (name, owner, token, version, started, heartbeat, heartbeat_iso, activity,
                    queue_len, status) VALUES ('engine', 'test:1', 'x', '0.1.0', ?, 0, ?, 'stopped', 0, 'stopped')""",
                 [TS, TS])
    for spec in EXPOSURES:
        _exposure(night, w, spec, spaxel_id, xy, rng)
    w.db.conn.commit()
    w.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    db.close()
    fix_event_times(night.db)
    return night


def _exposure(night: FakeNight, w: StateWriter, spec: Spec, spaxel_id, xy, rng) -> None:
    raw = night.raw / NIGHT / f"ifu{NIGHT}_{spec.obs_id}.fits"
    raw.touch()
    fid = w.insert("frames", {"night": NIGHT, "file": raw.name, "path": str(raw), "camera": "ifu", "kind": spec.kind,
                              "object": spec.object, "exptime": spec.exptime, "airmass": spec.airmass,
                              "obs_id": spec.obs_id, "state": "ingested", "created": TS, "updated": TS})
    jd = 2461368.5 + int(spec.obs_id[:2]) / 24.0 + int(spec.obs_id[3:5]) / 1440.0
    oid = w.insert("observations", {"night": NIGHT, "obs_id": spec.obs_id, "frame_id": fid, "file": raw.name,
                                    "object": spec.object, "name": spec.object, "kind": spec.kind,
                                    "exptime": spec.exptime, "airmass": spec.airmass, "jd": jd, "state": spec.state,
                                    "stage": spec.stage, "progress": spec.progress, "p60prid": "2026B-ZTF",
                                    "created": TS, "updated": TS})
    w.event("observation", f"{spec.obs_id} {spec.object}: new {spec.kind} exposure", night=NIGHT,
            obs_id=spec.obs_id, payload={"state": "waiting"})
    if spec.state != "done":
        return
    p = _products(night, spec, spaxel_id, xy, rng)
    guider = _guider(night, spec, rng) if spec.kind == "science" and spec.quality != 3 else None
    bright = (spec.pos[0] + 0.2, spec.pos[1] - 0.1)
    ext = {"observation_id": oid, "night": NIGHT, "obs_id": spec.obs_id, "tag": "robot", "status": "current",
           "reducer": "auto", "srcpos": spec.srcpos, "quality": spec.quality, "quality_reason": spec.reason,
           "guess_x": spec.pos[0] + 0.1, "guess_y": spec.pos[1] - 0.1,
           "astrom_x": spec.pos[0] + 0.1 if spec.srcpos == "astrom" else None,
           "astrom_y": spec.pos[1] - 0.1 if spec.srcpos == "astrom" else None,
           "bright_x": bright[0], "bright_y": bright[1], "s2n": spec.s2n, "lstep": 1,
           "delivered": int(spec.quality is not None and spec.quality <= 2), "created": TS, "updated": TS,
           "facts_json": {"guider_file": guider, "fluxcal_note": ""}}
    if "psf" in p:
        ext.update({"centroid_x": p["centre"][0], "centroid_y": p["centre"][1], "psf_fwhm_arcsec": 1.7,
                    "psf_ell": 0.05, "adr_pa": 40.0, "adr_airmass": spec.airmass, "adr_chi2": 0.4,
                    "fluxcal": 1, "calsrc": f"fluxcal_auto_robot_lstep1__crr_b_ifu{NIGHT}_03_02_00_STD-BD+25d4655.fits",
                    "calsrc_dt_h": 1.5, "spec_fits": p["spec"], "spec_txt": p["txt"], "psf_file": p["psf"]})
        if spec.kind == "standard":
            ext["fluxcal_file"] = f"fluxcal_auto_robot_lstep1__crr_b_ifu{NIGHT}_03_02_00_STD-BD+25d4655.fits"
    eid = w.insert("extractions", ext)
    if spec.snid:
        t, sub, z, rlap = spec.snid
        w.insert("classifications", {"extraction_id": eid, "night": NIGHT, "obs_id": spec.obs_id,
                                     "classifier": "builtin", "type": t, "subtype": sub, "z": z, "rlap": rlap,
                                     "template": "sn2005am", "created": TS})
    w.update("observations", oid, {"current_extraction_id": eid, "cube_file": p["cube"]})
    w.event("extraction", f"{spec.obs_id} {spec.object} · Q{spec.quality}", night=NIGHT, obs_id=spec.obs_id,
            payload={"state": "done", "extraction_id": eid, "quality": spec.quality})


def fix_event_times(db: Path) -> None:
    """Deterministic event timestamps (05:00:00 + id seconds)."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE events SET ts = '2026-11-24T05:' || printf('%02d', (id / 60) % 60) || ':' "
                     "|| printf('%02d', id % 60) || '.000Z'")
    conn.close()


def copy_night(src: FakeNight, dst_root: Path) -> FakeNight:
    """A private copy: products hard-linked (the engine replaces files, never edits them), database copied."""
    dst = FakeNight(root=dst_root, redux=dst_root / "redux", raw=src.raw, db=dst_root / "redux" / "sedm.db",
                    night=src.night)
    dst.night_dir.mkdir(parents=True, exist_ok=True)
    for f in src.night_dir.iterdir():
        try:
            os.link(f, dst.night_dir / f.name)
        except OSError:
            import shutil

            shutil.copy2(f, dst.night_dir / f.name)
    s = sqlite3.connect(src.db)
    d = sqlite3.connect(dst.db)
    s.backup(d)
    s.close()
    d.close()
    return dst


__all__ = ["EXPOSURES", "NIGHT", "FakeNight", "build_fake_night", "copy_night", "fix_event_times", "lattice"]
