"""Broken calibration inputs give a clear error or an explicit, recorded fallback."""

import shutil
import sqlite3
import sys

import numpy as np
import pytest
from astropy.io import fits

from engine.calib.masters import combine_master, make_master_biases
from engine.config import load_config
from engine.errors import AlgorithmError
from engine.pipeline.engine import Engine
from engine.pipeline.recipes.calibration import calibrate_night
from engine.pipeline.tasks import CalibrationFrames, CalibrationTask
from tests.conftest import MINI_NIGHT, REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from calibration import select_frames  # noqa: E402


@pytest.fixture(scope="module")
def frames(mini_raw):
    return select_frames(mini_raw, MINI_NIGHT)


def test_missing_lamp_is_a_clear_error(frames, tmp_path):
    broken = dict(frames, arcs={k: v for k, v in frames["arcs"].items() if k != "Xe"})
    with pytest.raises(AlgorithmError, match="no Xe arc frames"):
        calibrate_night(CalibrationTask(MINI_NIGHT, CalibrationFrames.from_lists(broken), str(tmp_path)))


def test_saturated_dome_is_refused(frames, tmp_path):
    dome = frames["domes"][0]
    with fits.open(dome) as hdul:
        data = hdul[0].data.astype(np.int32)
        data[700:1200, 700:1200] = np.where(data[700:1200, 700:1200] > 3000, 65535, data[700:1200, 700:1200])
        fits.PrimaryHDU(data.astype(np.uint16), header=hdul[0].header).writeto(tmp_path / "dome.fits")
    broken = dict(frames, domes=[str(tmp_path / "dome.fits")])
    with pytest.raises(AlgorithmError, match="dome flat is saturated"):
        calibrate_night(CalibrationTask(MINI_NIGHT, CalibrationFrames.from_lists(broken), str(tmp_path / "out")))


def test_frame_at_another_read_speed_uses_overscan_only_and_says_so(frames, tmp_path):
    with fits.open(frames["domes"][0]) as hdul:
        hdul[0].header["ADCSPEED"] = 2.0
        hdul.writeto(tmp_path / "dome20.fits")
    bias = make_master_biases({1.0: frames["biases"][1.0]}, tmp_path, {})
    master = combine_master("dome", [str(tmp_path / "dome20.fits")], bias, tmp_path, {})
    assert "overscan only" in master.header["BIASWARN"]
    assert "overscan only" in fits.getheader(tmp_path / "dome.fits")["BIASWARN"]


def _rename_copy(src, dst_dir, night, hhmmss):
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / f"ifu{night}_{hhmmss}.fits"
    shutil.copy2(src, dst)
    return dst


def test_failed_night_falls_back_to_the_last_good_one(mini_raw, frames, tmp_path):
    raw, redux = tmp_path / "raw", tmp_path / "redux"
    for night_dir in mini_raw.iterdir():
        if night_dir.name.isdigit():
            shutil.copytree(night_dir, raw / night_dir.name, ignore=shutil.ignore_patterns("rc*", "truth*"))
    # The next night has biases and a dome but no arcs.
    nxt = "20261125"
    for i, b in enumerate(frames["biases"][1.0]):
        _rename_copy(b, raw / nxt, nxt, f"00_0{i}_00")
    _rename_copy(frames["domes"][0], raw / nxt, nxt, "00_20_00")
    env = {"SEDMTUI_ENGINE_STAGES": "calibration", "SEDMTUI_ENGINE_WORKERS": "1"}
    cfg = load_config(None, env=env, overrides={"paths": {"raw_root": str(raw), "redux_root": str(redux)}})
    assert Engine(cfg, night=MINI_NIGHT, once=True).run() == 0
    assert Engine(cfg, night=nxt, once=True).run() == 0
    with sqlite3.connect(cfg.paths.db_path) as c:
        rows = c.execute("SELECT night, status, source_night FROM calibrations ORDER BY id").fetchall()
        events = [r[0] for r in c.execute("SELECT message FROM events WHERE night=? AND kind='calibration'", [nxt])]
        status = c.execute("SELECT calib_status FROM nights WHERE night=?", [nxt]).fetchone()[0]
    assert (MINI_NIGHT, "ok", MINI_NIGHT) in rows
    assert (nxt, "fallback", MINI_NIGHT) in rows
    assert status == "fallback"
    assert any("uses the calibration of 20261124 (fallback)" in e for e in events)
