"""Finder charts: found by object name under the night's ``finders/``, FITS before PNG; a FITS
chart's WCS marks the target and says where north and east are; a PNG is shown as drawn; in the
console ``n`` switches the guider pane to the chart and back, and says where it looked when
there is none."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from sedmtui.finder import arrow, finder_candidates, read_finder, sky_degrees
from tests.sedmtui.conftest import wait_for

RA, DEC = 330.0, 26.4


def _fits_chart(path, *, rotate_deg: float = 0.0, size: int = 200, east_left: bool = True):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [RA, DEC]
    w.wcs.crpix = [80.5, 120.5]  # the target off-centre, pixel (79.5, 119.5) 0-based
    scale = 1.0 / 3600.0
    t = np.radians(rotate_deg)
    sign = -1.0 if east_left else 1.0
    w.wcs.cd = np.array([[sign * scale * np.cos(t), -scale * np.sin(t)], [sign * scale * np.sin(t), scale * np.cos(t)]])
    img = np.random.default_rng(1).normal(100.0, 5.0, (size, size))
    fits.PrimaryHDU(img, header=w.to_header()).writeto(path)


def test_charts_are_found_by_object_name_fits_first(tmp_path):
    d1, d2 = tmp_path / "redux" / "finders", tmp_path / "raw" / "finders"
    d1.mkdir(parents=True)
    d2.mkdir(parents=True)
    (d1 / "ZTF26abcdefg_finder.png").write_bytes(b"png")
    (d2 / "finder_ztf26abcdefg_r.fits").write_bytes(b"fits")
    (d1 / "finder_ZTF26zzzzzzz.fits").write_bytes(b"other")
    (d1 / "notes.txt").write_text("ZTF26abcdefg")
    found = finder_candidates([d1, d2, tmp_path / "missing"], "ZTF26abcdefg [A]")
    assert [p.name for p in found] == ["finder_ztf26abcdefg_r.fits", "ZTF26abcdefg_finder.png"]
    assert finder_candidates([d1], "") == [] and finder_candidates([d1], "ZTF26nothere") == []


@pytest.mark.parametrize(("rotate", "east_left", "north", "east"), [
    (0.0, True, "↑", "←"), (90.0, True, "←", "↓"), (0.0, False, "↑", "→")])
def test_a_fits_chart_marks_the_target_and_its_orientation(tmp_path, rotate, east_left, north, east):
    path = tmp_path / "finder_ZTF26abcdefg.fits"
    _fits_chart(path, rotate_deg=rotate, east_left=east_left)
    f = read_finder(path, RA, DEC)
    assert f.target == pytest.approx((79.5, 119.5), abs=0.01)
    assert (f.north, f.east) == (north, east) and f.orientation == f"N{north} E{east}"
    unmarked = read_finder(path, None, None)
    assert unmarked.target is None and unmarked.orientation == "orientation as drawn"


def test_a_png_chart_is_shown_as_drawn(tmp_path):
    import matplotlib.image

    img = np.zeros((60, 40, 3))
    img[:10, :, 0] = 1.0  # a red band at the top of the picture
    path = tmp_path / "ZTF26abcdefg.png"
    matplotlib.image.imsave(path, img)
    f = read_finder(path, RA, DEC)
    assert f.image.shape == (60, 40) and f.target is None and f.orientation == "orientation as drawn"
    assert f.image[-5:].mean() > f.image[:5].mean()  # row 0 at the bottom: the top band is drawn on top


def test_arrows_and_coordinates():
    assert [arrow(*v) for v in ((0, 1), (-1, 0), (1, -1), (0.1, -1))] == ["↑", "←", "↘", "↓"]
    assert arrow(0, 0) == "?" and arrow(float("nan"), 1) == "?"
    assert sky_degrees("22:00:00", "+26:24:00") == pytest.approx((330.0, 26.4))
    assert sky_degrees("garbage", None) == (None, None)


async def test_n_switches_the_guider_pane_to_the_finder_chart(make_app, night):
    from sedmtui.widgets.guider import GuiderView

    conn = sqlite3.connect(night.db)
    with conn:
        conn.execute("UPDATE observations SET ra='22:00:00', dec='+26:24:00' WHERE obs_id='03_06_30'")
        obj = conn.execute("SELECT object FROM observations WHERE obs_id='03_06_30'").fetchone()[0]
    conn.close()
    (night.night_dir / "finders").mkdir()
    _fits_chart(night.night_dir / "finders" / f"finder_{obj}_r.fits")
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        app.open_target("03_06_30")
        await wait_for(pilot, lambda: getattr(app.screen, "data", None) is not None)
        pane = app.screen.query_one("#guider", GuiderView)
        assert not pane.showing_finder and "n finder" in str(pane.border_title)
        await pilot.press("n")
        await pilot.pause()
        assert pane.showing_finder and f"finder finder_{obj}_r.fits · N↑ E← · target ×" in str(pane.border_title)
        painting = pane.paint(40, 20)
        assert any(m.glyph == "×" for m in painting.glyphs.values())
        await pilot.press("n")
        await pilot.pause()
        assert not pane.showing_finder
        app.open_target("04_21_30")
        await wait_for(pilot, lambda: getattr(app.screen, "obs_id", "") == "04_21_30" and app.screen.data is not None)
        told = []
        app.tell = lambda message, **kw: told.append(message)
        await pilot.press("n")
        await pilot.pause()
        assert told and "no finder chart for" in told[0] and "finders" in told[0]
