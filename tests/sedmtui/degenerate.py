"""The fake night plus one exposure per way a product or a row can be bad (for the console walk).

Added to a private copy of :func:`tests.sedmtui.fakenight.build_fake_night` (which already has a
standard, a quality-3 target off the IFU, a quality-5 target, one reducing and one waiting):

==========  ==========================================================================
03_19_00    the quality-3 target gets an all-NaN spectrum (what the engine writes off the IFU)
05_00_00    OBJECT ``ZTFbad[/nope]`` (Rich markup that raises), markup in the quality reason
05_05_00    OBJECT ``[@click=app.quit]ZTFlink[/]`` (markup that would be a live link)
05_10_00    OBJECT, stage-free reason and an event holding terminal escape codes
05_15_00    the cube file is missing
05_20_00    the spectrum file is missing
05_25_00    cube, PSF product, spectrum and guider stack truncated
05_30_00    a cube of zeros, no PSF product, an empty spectrum, a zero-byte verify PNG
05_35_00    unparsable ``facts_json``, NULL numbers where numbers are expected
==========  ==========================================================================
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
from astropy.io import fits

from engine.state.db import open_writer
from engine.state.writer import StateWriter
from tests.sedmtui import fakenight
from tests.sedmtui.fakenight import NIGHT, FakeNight, Spec

ESCAPES = "\x1b]0;pwned\x07ZTFesc\x1b[2J\x1b[31mred\x9b1m"
"""An object name that retitles the terminal, clears it and turns text red if written raw."""

HOSTILE = {
    "05_00_00": "ZTFbad[/nope]",
    "05_05_00": "[@click=app.quit]ZTFlink[/]",
    "05_10_00": ESCAPES,
}
"""Object names written into the state (products keep a plain name: FITS refuses escape codes)."""

CASES: tuple[Spec, ...] = tuple(
    replace(base, obs_id=obs_id, object=f"ZTF26deg{i:04d}")
    for i, (obs_id, base) in enumerate((
        ("05_00_00", Spec("", "", reason="good [b]but[/b] [/nope] reason")),
        ("05_05_00", Spec("", "")),
        ("05_10_00", Spec("", "")),
        ("05_15_00", Spec("", "")),
        ("05_20_00", Spec("", "", quality=5, srcpos="auto", reason="guider astrometry failed")),
        ("05_25_00", Spec("", "")),
        ("05_30_00", Spec("", "", snid=None)),
        ("05_35_00", Spec("", "", snid=None, s2n=None)),
    ))
)


def _truncate(path: Path, keep: int = 3000) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


def _products_of(conn: sqlite3.Connection, obs_id: str) -> dict:
    row = conn.execute("""SELECT o.cube_file, e.spec_fits, e.spec_txt, e.psf_file, e.id, o.file FROM observations o
                          JOIN extractions e ON e.id = o.current_extraction_id WHERE o.obs_id=?""", [obs_id]).fetchone()
    return dict(zip(("cube", "spec", "txt", "psf", "eid", "raw"), row))


def add_degenerate_cases(night: FakeNight) -> FakeNight:
    """Add the exposures of :data:`CASES` (and spoil their products) in ``night`` (a private copy)."""
    spaxel_id, xy = fakenight.lattice()
    rng = np.random.default_rng(11)
    db = open_writer(night.db)
    w = StateWriter(db)
    for spec in CASES:
        fakenight._exposure(night, w, spec, spaxel_id, xy, rng)
    w.db.conn.commit()
    db.close()

    d = night.night_dir
    conn = sqlite3.connect(night.db)
    with conn:
        # raw rows, as a hostile or older writer could leave them (the engine may sanitise its own)
        for kind, obs_id, msg in (("request", "05_10_00", f"05_10_00 request refused: target {ESCAPES}"),
                                  ("extraction", "05_00_00", "05_00_00 [/nope] [@click=app.quit]quit[/] S/N -0")):
            conn.execute("INSERT INTO events (ts, night, kind, obs_id, message, payload_json) VALUES "
                         "('2026-11-24T05:59:00.000Z', ?, ?, ?, ?, '{}')", [NIGHT, kind, obs_id, msg])
        for obs_id, name in HOSTILE.items():
            conn.execute("UPDATE observations SET object=?, name=? WHERE obs_id=?", [name, name, obs_id])
            conn.execute("UPDATE frames SET object=? WHERE obs_id=?", [name, obs_id])
        conn.execute("UPDATE observations SET stage=? WHERE obs_id='05_10_00'", ["\x1b[2Jstage"])
        conn.execute("UPDATE extractions SET quality_reason=? WHERE obs_id='05_10_00'", ["escape \x1b[2J in the reason"])
        # 03_19_00: the quality-3 target off the IFU: an all-NaN spectrum, as the engine writes it
        p = _products_of(conn, "03_19_00")
        spec_name = p["cube"].replace("e3d_", "spec_auto_robot_lstep1__")
        wave = np.linspace(3800.0, 9200.0, 2041)
        nan = np.full(wave.size, np.nan)
        _write_spectrum(d / spec_name, wave, nan, nan)
        conn.execute("UPDATE extractions SET spec_fits=? WHERE id=?", [spec_name, p["eid"]])
        # 05_15_00: the cube is missing
        (d / _products_of(conn, "05_15_00")["cube"]).unlink()
        # 05_20_00: the spectrum is missing
        (d / _products_of(conn, "05_20_00")["spec"]).unlink()
        # 05_25_00: every product truncated
        p = _products_of(conn, "05_25_00")
        for key in ("cube", "spec", "psf"):
            _truncate(d / p[key])
        _truncate(d / f"guider_crr_b_{p['raw']}", 100)
        # 05_30_00: a cube of zeros, no PSF product, an empty spectrum, a zero-byte PNG
        p = _products_of(conn, "05_30_00")
        with fits.open(d / p["cube"]) as hdul:
            hdul[0].data = np.zeros_like(hdul[0].data)
            hdul.writeto(d / (p["cube"] + ".tmp"), overwrite=True)
        (d / (p["cube"] + ".tmp")).replace(d / p["cube"])
        (d / p["psf"]).unlink()
        _write_spectrum(d / p["spec"], wave[:0], nan[:0], nan[:0])
        png = p["spec"].replace("spec_", "verify_").replace(".fits", ".png")
        (d / png).write_bytes(b"")
        conn.execute("UPDATE extractions SET verify_png=? WHERE id=?", [png, p["eid"]])
        # 05_35_00: a row a person edited by hand
        p = _products_of(conn, "05_35_00")
        conn.execute("""UPDATE extractions SET facts_json='{not json', adr_chi2=NULL, psf_ell=NULL,
                        calsrc_dt_h=NULL WHERE id=?""", [p["eid"]])
    conn.close()
    return night


def _write_spectrum(path: Path, wave: np.ndarray, flux: np.ndarray, var: np.ndarray) -> None:
    hdr = fits.Header()
    hdr["CRVAL1"] = float(wave[0]) if wave.size else 3800.0
    hdr["CDELT1"] = float(wave[1] - wave[0]) if wave.size > 1 else 2.6
    hdr["QUALITY"], hdr["BUNIT"] = 3, "erg/s/A/cm^2"
    fits.HDUList([fits.PrimaryHDU(np.asarray(flux, float), header=hdr),
                  fits.ImageHDU(np.asarray(var, float), name="VARIANCE")]).writeto(path, overwrite=True)


__all__ = ["CASES", "ESCAPES", "HOSTILE", "add_degenerate_cases"]
