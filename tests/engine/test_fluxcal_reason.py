"""A science frame without a sensitivity says why: the refused standard and its own reason, a
failed or waiting standard, or none observed (never "no standard star reduced yet" when one was
reduced and refused)."""

from __future__ import annotations

import json

import pytest

from engine.config import load_config
from engine.pipeline.recipes.steps import science_sensitivity
from engine.pipeline.science import exposure_task, fluxcal_candidates, no_fluxcal_reason
from engine.pipeline.stage import EngineView
from engine.state.db import open_writer
from engine.state.writer import StateWriter

NIGHT = "20261124"
REFUSED = ("standard not used for flux calibration: its PSF flux and aperture flux differ by 31.0 % "
           "(limit 5 %)")


@pytest.fixture
def writer(tmp_path):
    db = open_writer(tmp_path / "sedm.db")
    yield StateWriter(db)
    db.close()


def _view(writer):
    return EngineView(config=load_config(None, env={}), writer=writer, nights={NIGHT}, running=set(), once=True,
                      ingest_idle=True, now_ut_hour=12.0, today="20270101")


def _standard(writer, obs_id, *, state, note=None, error=None):
    with writer.transaction():
        writer.ensure_night(NIGHT, "", "")
        oid = writer.insert("observations", {"night": NIGHT, "obs_id": obs_id, "object": "STD-BD+33d2642",
                                             "kind": "standard", "state": state, "error": error, "jd": 2461368.6})
        if note is not None:
            writer.insert("extractions", {"observation_id": oid, "night": NIGHT, "obs_id": obs_id, "tag": "robot",
                                          "status": "current", "fluxcal_file": None,
                                          "facts_json": json.dumps({"fluxcal_note": note})})


def test_a_refused_standard_is_named_with_its_reason(writer):
    _standard(writer, "04_44_00", state="done", note=REFUSED)
    _standard(writer, "05_10_00", state="failed", error="cube: no calibration")
    _standard(writer, "06_00_00", state="waiting")
    view = _view(writer)
    assert fluxcal_candidates(view, NIGHT) == ()
    reason = no_fluxcal_reason(view, NIGHT)
    assert "STD-BD+33d2642 04:44:00: " + REFUSED in reason
    assert "05:10:00 failed: cube: no calibration" in reason
    assert "06:00:00 not reduced yet (waiting)" in reason
    assert "reduced yet" not in reason.split(";")[0]


def test_no_standard_at_all_says_so_with_the_age_limit(writer):
    view = _view(writer)
    reason = no_fluxcal_reason(view, NIGHT)
    assert "no standard star observed yet" in reason
    assert str(view.config.science.fluxcal_max_age_days) in reason


def test_the_science_task_carries_the_reason_to_the_products_fluxnote(writer):
    _standard(writer, "04_44_00", state="done", note=REFUSED)
    view = _view(writer)
    obs = {"night": NIGHT, "obs_id": "05_00_00", "kind": "science"}
    with writer.transaction():
        writer.insert("calibrations", {"night": NIGHT, "status": "ok", "source_night": NIGHT,
                                       "created": "2026-12-01T00:00:00"})
        writer.update_night(NIGHT, calib_status="ok")
    task = exposure_task(view, obs, {"path": f"/raw/{NIGHT}/ifu{NIGHT}_05_00_00.fits"})
    assert task is not None, "the night's calibration row should make the task"
    sensitivity, note = science_sensitivity(task, 61368.2)
    assert sensitivity is None
    assert REFUSED in note and not note.startswith("no standard star reduced yet")
    standard = exposure_task(view, {**obs, "kind": "standard"}, {"path": "x.fits"})
    assert standard.no_fluxcal_reason == ""
