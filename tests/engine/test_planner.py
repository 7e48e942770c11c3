"""Frame classification with the SEDM rules."""

import pytest
from astropy.io import fits

from engine.ingest.planner import belongs_to_night, calibration_set, classify_frame, obs_id_of


def hdr(**kw):
    h = fits.Header()
    h.update({"EXPTIME": 0.0, "ADCSPEED": 1.0, "DOMEST": "open", "LAMPCUR": 0.0, **kw})
    return h


@pytest.mark.parametrize(
    ("cards", "kind", "lamp"),
    [
        ({"OBJECT": "Calib: bias 3 of 10"}, "bias", None),
        ({"OBJECT": "Calib: bias 11 of 10", "EXPTIME": 5.0}, "skip", None),
        ({"OBJECT": "Calib: dome 2 of 5", "EXPTIME": 120.0, "LAMPCUR": 2.1}, "dome", None),
        ({"OBJECT": "Calib: dome 2 of 5", "EXPTIME": 120.0, "LAMPCUR": 0.0}, "skip", None),
        ({"OBJECT": "Calib: dome 1 of 5", "EXPTIME": 30.0, "LAMPCUR": 2.0}, "skip", None),
        ({"OBJECT": "Calib: Hg 1 of 5", "EXPTIME": 30.0}, "arc", "Hg"),
        ({"OBJECT": "Calib: Cd 4 of 5", "EXPTIME": 60.0}, "arc", "Cd"),
        ({"OBJECT": "Calib: Xe 5 of 5", "EXPTIME": 45.0}, "arc", "Xe"),
        ({"OBJECT": "Calib: Xe 5 of 5", "EXPTIME": 10.0}, "skip", None),
        ({"OBJECT": "STD-BD+33d2642", "EXPTIME": 120.0}, "standard", None),
        ({"OBJECT": "ZTF26abcdefg [A]", "EXPTIME": 900.0}, "science", None),
        ({"OBJECT": "ZTF21atestab [A]", "EXPTIME": 900.0}, "science", None),
        ({"OBJECT": "test exposure", "EXPTIME": 10.0}, "skip", None),
        ({"OBJECT": "Focus: IFU loop", "EXPTIME": 10.0}, "skip", None),
        ({"OBJECT": "Calib: dark", "EXPTIME": 300.0}, "skip", None),
        ({"OBJECT": "", "EXPTIME": 300.0}, "skip", None),
        ({"OBJECT": "ZTF26xyz", "NAME": "STOW", "EXPTIME": 300.0}, "skip", None),
        ({"OBJECT": "ZTF26xyz", "DOMEST": "closed", "EXPTIME": 300.0}, "skip", None),
    ],
)
def test_classify_frame(cards, kind, lamp):
    cls = classify_frame(hdr(**cards), "ifu20261124_03_00_00.fits")
    assert (cls.kind, cls.lamp) == (kind, lamp), cls.reason
    assert cls.reason


def test_previous_day_minimum_exposures_are_stricter():
    h = hdr(OBJECT="Calib: dome 1 of 5", EXPTIME=45.0, LAMPCUR=2.0)
    assert classify_frame(h, "ifu20261124_00_10_00.fits").kind == "dome"
    assert classify_frame(h, "ifu20261123_22_10_00.fits", previous_day=True).kind == "skip"
    arc = hdr(OBJECT="Calib: Hg 1 of 5", EXPTIME=20.0)
    assert classify_frame(arc, "x", previous_day=False).kind == "arc"
    assert classify_frame(arc, "x", previous_day=True).kind == "skip"


def test_guider_frames():
    assert classify_frame(hdr(OBJECT="ZTF26abc", CAM_NAME="RC Cam"), "rc20261124_03_00_05.fits").kind == "guider"


def test_night_membership_includes_previous_afternoon_calibrations():
    assert belongs_to_night("20261123", "ifu20261123_21_50_00.fits", "bias", "20261124")
    assert not belongs_to_night("20261123", "ifu20261123_12_50_00.fits", "bias", "20261124")
    assert not belongs_to_night("20261123", "ifu20261123_21_50_00.fits", "science", "20261124")
    assert obs_id_of("ifu20261124_03_06_30.fits") == "03_06_30"


def test_calibration_set_levels():
    rows = [{"file": f"b{i}", "kind": "bias", "adcspeed": 1.0, "lamp": None, "path": f"b{i}"} for i in range(10)]
    rows += [{"file": f"d{i}", "kind": "dome", "adcspeed": 1.0, "lamp": None, "path": f"d{i}"} for i in range(5)]
    for lamp in ("Hg", "Cd", "Xe"):
        rows += [{"file": f"{lamp}{i}", "kind": "arc", "adcspeed": 1.0, "lamp": lamp, "path": f"{lamp}{i}"} for i in range(5)]
    cal = calibration_set(rows)
    assert cal.level({1.0}) == "ideal"
    assert cal.level({1.0, 0.1}) == "incomplete"  # no bias at the science read speed
    assert calibration_set([r for r in rows if not r["file"].startswith(("Xe",))]).level({1.0}) == "incomplete"
    few = [r for r in rows if r["file"][-1] in "0"]
    assert calibration_set(few).level({1.0}) == "partial"
