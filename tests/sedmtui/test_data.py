"""Product readers and the target screen's texts (Textual-free)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.state.reader import StateReader
from sedmtui import data as d
from sedmtui import review


@pytest.fixture
def target(night):
    reader = StateReader(night.db)
    yield d.load_target(reader, night.redux, night.night, "04_21_30", d.ProductCache())
    reader.close()


def test_load_target_reads_every_product(target):
    assert target.errors == []
    assert target.cube.flux.shape == (len(target.cube.xy), 220)
    cur = target.current
    assert cur.row["tag"] == "robot" and cur.spectrum.wave.size == 214 and cur.spectrum.template is not None
    assert cur.psf.fitted.sum() > 50 and target.candidate is None
    assert target.guider.image.shape == (144, 144) and target.guider.ifu == (72.0, 72.0)
    assert target.guider.target is None and not target.guider.ok  # Q5: astrometry failed


def test_missing_exposure_and_exposure_without_products(night):
    reader = StateReader(night.db)
    assert d.load_target(reader, night.redux, night.night, "99_99_99", d.ProductCache()) is None
    t = d.load_target(reader, night.redux, night.night, "04_51_30", d.ProductCache())
    assert t.cube is None and t.current is None
    assert d.facts(t)[0][0] == "state"
    reader.close()


def test_product_cache_reuses_until_the_file_changes(night):
    cache = d.ProductCache()
    f = next(night.night_dir.glob("spec_*ccccccc.fits"))
    a = cache.get(f, d.read_spectrum)
    assert cache.get(f, d.read_spectrum) is a
    import os

    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    assert cache.get(f, d.read_spectrum) is not a


def test_psf_panels_ranges_bounds_markers_facts(target):
    psf, cube = target.current.psf, target.cube
    data, model, resid = d.psf_panels(cube, psf, *d.brightest_range(psf))
    assert np.isfinite(data[psf.fitted]).all() and np.isnan(data[~psf.fitted]).all()
    k = cube.layout.nearest(-4.0, 3.0)  # the target: well modelled; the neighbour at (3, -2) is left over
    assert abs(resid[k]) < 0.1 * data[k]
    assert np.nanargmax(resid) == cube.layout.nearest(3.0, -2.0)
    labels = [r[0] for r in d.wavelength_ranges(psf)]
    assert labels[:2] == ["5000–7000 Å", "3800–9200 Å"] and len(labels) == 8
    cx, cy, hw = d.fitted_bounds(cube, psf.fitted)
    assert (cx, cy) == pytest.approx((-4.0, 3.0), abs=1.0) and 9 < hw < 13
    marks = d.markers_of(target.current.row)
    assert set(marks) == {"brightest", "fitted"}
    facts = dict((k, v) for k, v, _ in d.facts(target))
    assert facts["quality"].startswith("Q5 guider astrometry failed")
    assert facts["fluxcal"] == "STD-BD+25d4655 03:02:00 (20261124)  Δt 1.5 h"
    assert facts["SNID"].startswith("Ia-norm  z 0.046")


def test_standard_of():
    assert d.standard_of("fluxcal_auto_robot_lstep1__crr_b_ifu20261124_03_02_00_STD-BD+25d4655.fits") == \
        "STD-BD+25d4655 03:02:00 (20261124)"
    assert d.standard_of("odd") == "odd"


def test_review_texts(target):
    from sedmtui.edits import EditState

    cand = d.ExtractionData(row={**target.current.row, "id": 99, "tag": "redo010203", "quality": 1,
                                 "quality_reason": "manual centroid", "status": "candidate"},
                            classification=target.current.classification, spectrum=None, psf=None)
    data = d.TargetData(target=target.target, observation=target.observation, cube=target.cube,
                        current=target.current, candidate=cand, guider=None)
    title, body = review.accept_text(data)
    assert title == "Accept redo010203?" and "it will be delivered" in body and "robot stays on disk" in body
    title, body = review.reject_text(data)
    assert "deletes the files of redo010203" in body and "robot stays current" in body
    title, body = review.recover_text(target.target, target.current.row)
    assert "5 → 1" in title and "(○)" in body and "nothing is re-extracted" in body
    assert review.shown_extraction(data) is cand
    edit = EditState(guess=(0.0, 0.0)).set_centroid(1.0, 2.0)
    assert review.marker_positions(data, edit)["manual"] == (1.0, 2.0)
    assert "centroid (+0.00, +0.00) → (+1.00, +2.00)" in review.reextract_text(edit)
    text, sev = review.request_status("reextract", {"id": 3, "status": "failed", "error": "outside the IFU"})
    assert sev == "bad" and "refused: outside the IFU" in text
    text, sev = review.request_status("accept", {"id": 3, "status": "done", "result_json": '{"extraction_id": 9}'},
                                      subject="04_21_30 ZTF26ccccccc", tag_of={9: "redo104512"}.get)
    assert sev == "ok" and text == "accepted: redo104512 is now the current one for 04_21_30 ZTF26ccccccc"
    assert "9" not in text.replace("04_21_30", "")


@pytest.mark.slow
def test_real_products_of_the_reduced_mini_night(reduced_mini):
    """The readers against the engine's own products (every exposure of the mini night)."""
    reader = StateReader(reduced_mini / "sedm.db")
    cache = d.ProductCache()
    for t in reader.targets("20261124"):
        data = d.load_target(reader, reduced_mini, "20261124", t["obs_id"], cache)
        assert data.errors == [], data.errors
        assert data.cube is not None and data.current is not None
        if data.current.row["quality"] != 3:
            assert data.current.psf is not None and data.current.spectrum is not None
            d.psf_panels(data.cube, data.current.psf, *d.brightest_range(data.current.psf))
        d.facts(data)
    reader.close()
