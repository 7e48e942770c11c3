"""Console/CLI requests served by the engine: re-extract, accept, reject, recover, report,
and bad requests refused with a message (nothing else changes)."""

import json
import sqlite3
import time

import numpy as np
import pytest
from astropy.io import fits

from engine.pipeline.engine import Engine
from engine.state.requests import submit_request
from tests.conftest import MINI_NIGHT, copy_reduced, engine_config


@pytest.fixture
def live(mini_reduced, mini_raw, tmp_path):
    redux = tmp_path / "redux"
    copy_reduced(mini_reduced, redux, ignore=("b_ifu*", "crr_b_ifu*"))
    cfg = engine_config(mini_raw, redux)
    engine = Engine(cfg, night=MINI_NIGHT, once=False)
    engine.start()
    conn = sqlite3.connect(cfg.paths.db_path)
    conn.row_factory = sqlite3.Row
    yield engine, conn, redux / MINI_NIGHT
    conn.close()
    engine.close()


def serve(engine, conn, rid, timeout=60.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        engine.step()
        row = conn.execute("SELECT * FROM requests WHERE id=?", [rid]).fetchone()
        if row["status"] in ("done", "failed"):
            return dict(row)
    raise AssertionError("request not served")


def current(conn, obs_id):
    return dict(conn.execute("""SELECT e.* FROM extractions e JOIN observations o ON o.current_extraction_id = e.id
                                WHERE o.obs_id=?""", [obs_id]).fetchone())


def test_reextract_accept_and_reject(live, mini_truth):
    engine, conn, night = live
    e = next(x for x in mini_truth["exposures"] if x["trick"] == "normal")
    before = current(conn, e["obs_id"])
    centroid = [e["position"][0] + 0.25, e["position"][1] - 0.25]
    rid = submit_request(conn, "reextract", night=MINI_NIGHT, target=e["obs_id"],
                         params={"centroid": centroid, "lstep": 1}, user="tester")
    req = serve(engine, conn, rid)
    assert req["status"] == "done", req["error"]
    res = json.loads(req["result_json"])
    cand = dict(conn.execute("SELECT * FROM extractions WHERE id=?", [res["extraction_id"]]).fetchone())
    assert cand["status"] == "candidate" and cand["tag"].startswith("redo") and cand["srcpos"] == "manual"
    assert cand["spec_fits"].startswith("spec_auto_redo") and (night / cand["spec_fits"]).exists()
    h = fits.getheader(night / cand["spec_fits"])
    assert h["SRCPOS"] == "manual" and h["REDUCER"] == "tester"
    assert current(conn, e["obs_id"])["id"] == before["id"]  # nothing changes until accepted
    rid = submit_request(conn, "accept", night=MINI_NIGHT, target=e["obs_id"], params={"extraction_id": cand["id"]})
    assert serve(engine, conn, rid)["status"] == "done"
    assert current(conn, e["obs_id"])["id"] == cand["id"]
    old = conn.execute("SELECT status FROM extractions WHERE id=?", [before["id"]]).fetchone()[0]
    assert old == "superseded" and (night / before["spec_fits"]).exists()
    # A second re-extraction, excluding a spaxel, then rejected: its files go, the current stays.
    rid = submit_request(conn, "reextract", night=MINI_NIGHT, target=e["obs_id"], params={"region": {"exclude": [0]}})
    res = json.loads(serve(engine, conn, rid)["result_json"])
    cand2 = dict(conn.execute("SELECT * FROM extractions WHERE id=?", [res["extraction_id"]]).fetchone())
    rid = submit_request(conn, "reject", night=MINI_NIGHT, target=e["obs_id"], params={"extraction_id": cand2["id"]})
    assert serve(engine, conn, rid)["status"] == "done"
    assert not (night / cand2["spec_fits"]).exists()
    assert current(conn, e["obs_id"])["id"] == cand["id"]


def test_recover_quality_5(live, mini_truth):
    engine, conn, night = live
    e = next(x for x in mini_truth["exposures"] if x["expected_quality"] == 5)
    rid = submit_request(conn, "recover", night=MINI_NIGHT, target=e["obs_id"], user="obs")
    assert serve(engine, conn, rid)["status"] == "done"
    cur = current(conn, e["obs_id"])
    assert cur["quality"] == 1 and "recovered" in cur["quality_reason"]
    assert fits.getheader(night / cur["spec_fits"])["QUALITY"] == 1
    assert "# QUALITY: 1" in (night / cur["spec_txt"]).read_text()


@pytest.mark.parametrize(
    ("kind", "target", "params", "message"),
    [
        ("reextract", "23_59_59", {}, "no exposure 23_59_59"),
        ("reextract", "normal", {"centroid": [30.0, 5.0]}, "outside the IFU"),
        ("reextract", "normal", {"region": {"include": [999999]}}, "contains no spaxel"),
        ("recover", "normal", {}, "is not quality 5"),
        ("accept", "normal", {"extraction_id": "current"}, "not candidate"),
    ],
)
def test_bad_requests_are_refused_with_a_message(live, mini_truth, kind, target, params, message):
    engine, conn, _night = live
    if target == "normal":
        target = next(x for x in mini_truth["exposures"] if x["trick"] == "normal")["obs_id"]
    if params.get("extraction_id") == "current":
        params = {"extraction_id": current(conn, target)["id"]}
    before = conn.execute("SELECT count(*), max(updated) FROM extractions").fetchone()
    rid = submit_request(conn, kind, night=MINI_NIGHT, target=target, params=params)
    req = serve(engine, conn, rid)
    assert req["status"] == "failed" and message in req["error"]
    if kind != "reextract" or "include" not in params:
        assert conn.execute("SELECT count(*), max(updated) FROM extractions").fetchone() == before


def test_report(live):
    engine, conn, night = live
    rid = submit_request(conn, "final_report", night=MINI_NIGHT, params={"comment": "clear night, all good"})
    assert serve(engine, conn, rid)["status"] == "done"
    text = (night / "report_final.txt").read_text()
    assert "clear night, all good" in text and "UTStart" in text and "Reason" in text
    assert "QUALITY_3" in text and "target outside the IFU" in text
    assert (night / "report.txt").exists()
    assert conn.execute("SELECT final_report_at FROM nights WHERE night=?", [MINI_NIGHT]).fetchone()[0]


def test_reduction_is_deterministic(mini_reduced, mini_raw, tmp_path):
    import pickle

    from engine.pipeline.recipes.exposure import reduce_exposure
    from engine.pipeline.tasks import ExposureTask

    cfg = engine_config(mini_raw, mini_reduced)
    e = json.loads((mini_raw / MINI_NIGHT / "truth.json").read_text())["exposures"][1]
    outs = []
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        task = ExposureTask(raw=str(mini_raw / MINI_NIGHT / e["file"]), night=MINI_NIGHT, obs_id=e["obs_id"],
                            kind=e["kind"], out_dir=str(tmp_path / sub), cal_dir=str(mini_reduced / MINI_NIGHT),
                            cal_night=MINI_NIGHT, catalog_dir=str(mini_raw / "catalog"), config=cfg)
        res = reduce_exposure(pickle.loads(pickle.dumps(task)))  # what a pool or Dask worker receives
        outs.append(fits.getdata(tmp_path / sub / res.extraction["spec_fits"]))
    assert np.array_equal(outs[0], outs[1], equal_nan=True)


def test_a_late_standard_calibrates_earlier_spectra_with_its_psf_prior(live, mini_truth):
    """A spectrum extracted while no standard existed (``_notfluxcal``) is extracted again when one
    appears: calibrated and with the standard's PSF prior, the very spectrum the robot delivers
    with the standard present. The uncalibrated files go; the row keeps its id, tag and status."""
    from engine.science.products import read_spectrum_fits

    engine, conn, night = live
    e = next(x for x in mini_truth["exposures"] if x["trick"] == "normal")
    robot = current(conn, e["obs_id"])
    before, stds = _uncalibrated_redo(engine, conn, e["obs_id"])
    assert stds and before["spec_fits"].endswith("_notfluxcal.fits") and before["fluxcal"] == 0
    assert fits.getheader(night / before["spec_fits"])["PSFPRIOR"] == "none"
    after = _restore_standards_and_wait(engine, conn, stds, before["id"])
    assert after["fluxcal"] == 1 and after["calsrc"] == robot["calsrc"]
    assert (after["status"], after["tag"], after["reducer"]) == ("candidate", before["tag"], "tester")
    assert "_notfluxcal" not in after["spec_fits"] and (night / after["spec_fits"]).exists()
    assert not (night / before["spec_fits"]).exists() and not (night / before["spec_txt"]).exists()
    h = fits.getheader(night / after["spec_fits"])
    assert h["FLUXCAL"] and h["PSFPRIOR"] == fits.getheader(night / robot["spec_fits"])["PSFPRIOR"] != "none"
    _w, flux, *_ = read_spectrum_fits(night / after["spec_fits"])
    _w, robot_flux, *_ = read_spectrum_fits(night / robot["spec_fits"])
    assert np.allclose(flux, robot_flux, rtol=1e-5, atol=0, equal_nan=True)
    events = [r[0] for r in conn.execute("SELECT message FROM events WHERE obs_id=?", [e["obs_id"]])]
    assert any("flux-calibrated after the fact" in m for m in events)


def _uncalibrated_redo(engine, conn, obs_id):
    """A re-extraction made while no standard is known; returns its row and the hidden
    standards' ``(id, fluxcal_file)`` pairs (restore them to make the standards reappear)."""
    stds = conn.execute("SELECT id, fluxcal_file FROM extractions WHERE fluxcal_file IS NOT NULL").fetchall()
    with conn:
        conn.execute("UPDATE extractions SET fluxcal_file=NULL WHERE fluxcal_file IS NOT NULL")
    rid = submit_request(conn, "reextract", night=MINI_NIGHT, target=obs_id, params={}, user="tester")
    res = json.loads(serve(engine, conn, rid)["result_json"])
    return dict(conn.execute("SELECT * FROM extractions WHERE id=?", [res["extraction_id"]]).fetchone()), stds


def _restore_standards_and_wait(engine, conn, stds, extraction_id, timeout=120.0):
    """Make the hidden standards reappear; step the engine until the extraction is calibrated."""
    with conn:
        conn.executemany("UPDATE extractions SET fluxcal_file=? WHERE id=?", [(f, i) for i, f in stds])
    t0 = time.time()
    while time.time() - t0 < timeout:
        engine.step()
        row = dict(conn.execute("SELECT * FROM extractions WHERE id=?", [extraction_id]).fetchone())
        if row["fluxcal"]:
            break
    return row


def test_a_late_calibration_keeps_a_recovered_quality(live, mini_truth):
    engine, conn, night = live
    e = next(x for x in mini_truth["exposures"] if x["expected_quality"] == 5)
    redo, stds = _uncalibrated_redo(engine, conn, e["obs_id"])
    assert redo["quality"] == 5
    for kind, params in (("accept", {"extraction_id": redo["id"]}), ("recover", {})):
        rid = submit_request(conn, kind, night=MINI_NIGHT, target=e["obs_id"], params=params, user="obs")
        assert serve(engine, conn, rid)["status"] == "done"
    after = _restore_standards_and_wait(engine, conn, stds, redo["id"])
    assert after["fluxcal"] == 1 and after["status"] == "current" and after["delivered"] == 1
    assert after["quality"] == 1 and after["quality_reason"].startswith("recovered by hand by obs")
    assert fits.getheader(night / after["spec_fits"])["QUALITY"] == 1


def test_a_failed_late_calibration_is_reported_once_and_loses_nothing(live, mini_truth):
    engine, conn, night = live
    e = next(x for x in mini_truth["exposures"] if x["trick"] == "normal")
    redo, stds = _uncalibrated_redo(engine, conn, e["obs_id"])
    cube = conn.execute("SELECT cube_file FROM observations WHERE obs_id=?", [e["obs_id"]]).fetchone()[0]
    (night / cube).rename(night / (cube + ".away"))
    with conn:
        conn.executemany("UPDATE extractions SET fluxcal_file=? WHERE id=?", [(f, i) for i, f in stds])

    def errors():
        return [r[0] for r in conn.execute("SELECT message FROM events WHERE obs_id=? AND level='error'", [e["obs_id"]])]

    t0 = time.time()
    while not errors() and time.time() - t0 < 120:
        engine.step()
        time.sleep(0.02)
    for _ in range(100):                     # the failed job is not planned again
        engine.step()
        time.sleep(0.02)
    found = errors()
    assert len(found) == 1 and "re-calibration failed" in found[0] and "uncalibrated" in found[0]
    row = dict(conn.execute("SELECT * FROM extractions WHERE id=?", [redo["id"]]).fetchone())
    assert row["spec_fits"] == redo["spec_fits"] and row["fluxcal"] == 0 and (night / redo["spec_fits"]).exists()
    assert not engine.futures
