"""A reduced night in the state database without reducing anything: rows and real spectrum products.

``fake_night`` writes ``frames``/``observations``/``extractions``/``classifications`` rows the way
the engine does, and the ``spec_`` products with :func:`engine.science.products.write_spectrum`
(the real writer: FITS with the variance, text with the 1-sigma error).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from astropy.io import fits

from engine.config import load_config
from engine.provenance import Provenance
from engine.science.products import write_spectrum
from engine.state.db import open_writer
from engine.state.writer import StateWriter
from engine.timeutil import utc_now_iso

NIGHT = "20261124"
TOKEN = "sp-token-3f9c2a77e1"
"""The stand-in's token (tests look for it in logs and error texts)."""

EXPOSURES = (
    # obs_id, name, quality, req_id, classification type
    ("03_06_30", "ZTF26aaaaaaa", 0, 1001, "Ia"),
    ("03_19_00", "ZTF26bbbbbbb", 1, 1002, "II"),
    ("04_21_30", "ZTF26ccccccc", 0, None, None),
    ("04_39_00", "ZTF26ddddddd", 4, 1004, None),
    ("05_01_30", "SN2026xyz", 0, 1005, "Ia"),
)


def mjd_of(night: str, obs_id: str) -> float:
    """MJD of ``night`` at UT ``obs_id`` (the exposure start the file name says)."""
    import datetime as dt

    t = dt.datetime.strptime(f"{night} {obs_id}", "%Y%m%d %H_%M_%S").replace(tzinfo=dt.UTC)
    return (t - dt.datetime(1858, 11, 17, tzinfo=dt.UTC)).total_seconds() / 86400.0


def config_for(tmp_path: Path, url: str = "http://127.0.0.1:9", **sections):
    """A configuration on ``tmp_path`` with delivery on, Fritz at ``url`` and test-sized backoffs."""
    cfg = load_config(None, env={"SEDMTUI_RAW_ROOT": str(tmp_path / "raw"),
                                 "SEDMTUI_REDUX_ROOT": str(tmp_path / "redux")})
    d = {
        "delivery": dataclasses.replace(cfg.delivery, enabled=True, backoff_s=(0.05, 0.1, 0.2), max_age_days=100000,
                                        drain_timeout_s=20.0),
        "fritz": dataclasses.replace(cfg.fritz, base_url=url, token=TOKEN, timeout_s=2.0, min_interval_s=0.0,
                                     uncalibrated_hold_s=0.0, recheck_s=0.3),
    }
    for name, changes in sections.items():
        d[name] = dataclasses.replace(d.get(name, getattr(cfg, name)), **changes)
    return dataclasses.replace(cfg, **d)


def add_exposure(w: StateWriter, redux: Path, night: str, obs_id: str, name: str, quality: int,
                 req_id: int | None, snid: str | None, *, tag: str = "robot", seed: int = 0,
                 local_time_header: bool = True) -> int:
    """One science exposure with its current extraction and products; returns the extraction id."""
    mjd = mjd_of(night, obs_id)
    header = {"OBJECT": f"{name} [A]", "NAME": name, "IMGTYPE": "Science", "EXPTIME": 600.0, "MJD_OBS": mjd,
              "JD": mjd + 2400000.5, "REQ_ID": "" if req_id is None else str(req_id),
              "EMAIL": f"pi-{name.lower()}@example.org"}
    if local_time_header:  # a 2019-2020 header: OBSDATE/OBSTIME in Pacific local time, 8 h behind
        h, m, s = (int(v) for v in obs_id.split("_"))
        header.update(OBSDATE=f"{night[:4]}-{night[4:6]}-{int(night[6:]) - 1:02d}", OBSTIME=f"{(h - 8) % 24:02d}:{m:02d}:{s:02d}")
    fid = w.insert("frames", {"night": night, "file": f"ifu{night}_{obs_id}.fits",
                              "path": f"/raw/{night}/ifu{night}_{obs_id}.fits",
                              "kind": "science", "object": header["OBJECT"], "name": name, "obs_id": obs_id,
                              "state": "done", "header_json": json.dumps(header)})
    oid = w.insert("observations", {"night": night, "obs_id": obs_id, "frame_id": fid, "object": name, "name": name,
                                    "kind": "science", "exptime": 600.0, "jd": mjd + 2400000.5, "state": "done",
                                    "created": utc_now_iso()})
    return add_extraction(w, redux, night, obs_id, oid, name, quality, snid, tag=tag, seed=seed)


def add_extraction(w: StateWriter, redux: Path, night: str, obs_id: str, oid: int, name: str, quality: int,
                   snid: str | None, *, tag: str = "robot", seed: int = 0, status: str = "current") -> int:
    """Products and rows of one extraction (made current unless ``status`` says otherwise)."""
    rng = np.random.default_rng(seed)
    wave = 3776.7 + 25.57 * np.arange(214)
    flux = 1e-15 * (1 + 0.1 * rng.standard_normal(214))
    var = (1e-17 * (1 + rng.random(214))) ** 2
    base = f"spec_auto_{tag}_lstep1__crr_b_ifu{night}_{obs_id}_{name}"
    out = redux / night
    out.mkdir(parents=True, exist_ok=True)
    hdr = fits.Header()
    hdr["OBJECT"], hdr["QUALITY"], hdr["CRVAL1"], hdr["CDELT1"] = name, quality, 3776.7, 25.57
    write_spectrum(out / f"{base}.fits", out / f"{base}.txt", wave, flux, var, hdr, Provenance("sedmtui.spectrum", 1))
    png = out / f"verify_auto_{tag}_lstep1__crr_b_ifu{night}_{obs_id}_{name}.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(2000))
    eid = w.insert("extractions", {"observation_id": oid, "night": night, "obs_id": obs_id, "tag": tag, "status": status,
                                   "quality": quality, "quality_reason": "good" if quality == 0 else f"q{quality}",
                                   "s2n": 42.5, "fluxcal": 1, "spec_fits": f"{base}.fits", "spec_txt": f"{base}.txt",
                                   "verify_png": png.name, "created": utc_now_iso()})
    if snid:
        w.insert("classifications", {"extraction_id": eid, "night": night, "obs_id": obs_id, "classifier": "builtin",
                                     "type": snid, "subtype": f"{snid}-norm", "z": 0.0512, "z_err": 0.003, "rlap": 11.2,
                                     "template": "sn1994D", "created": utc_now_iso()})
    if status == "current":
        w.update("observations", oid, {"current_extraction_id": eid})
    return eid


def fake_night(config, exposures=EXPOSURES, night: str = NIGHT) -> StateWriter:
    """The night's rows and products; returns a writer holding the lease (as the engine would)."""
    Path(config.paths.redux_root).mkdir(parents=True, exist_ok=True)
    w = StateWriter(open_writer(config.paths.db_path))
    w.acquire_lease(30.0)
    redux = Path(config.paths.redux_root)
    w.ensure_night(night, str(Path(config.paths.raw_root) / night), str(redux / night))
    for i, (obs_id, name, q, req, snid) in enumerate(exposures):
        add_exposure(w, redux, night, obs_id, name, q, req, snid, seed=i)
    return w
