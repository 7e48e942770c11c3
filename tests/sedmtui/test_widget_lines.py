"""Widgets rendered line by line without an app (``render_line(y).text``), and pure texts."""

from __future__ import annotations

import numpy as np

from engine.state.reader import Event
from sedmtui.maprender import MARKER_STYLES, Marker, Overlay, SpaxelLayout, View
from sedmtui.widgets.header import header_text
from sedmtui.widgets.log import event_line
from sedmtui.widgets.spaxel_map import SpaxelMap
from tests.sedmtui.fakenight import lattice


def make_map(cols=40, rows=20, view=View()) -> SpaxelMap:  # noqa: B008 - View is frozen
    ids, xy = lattice()
    m = SpaxelMap()
    m.set_view(view)
    m.set_data(SpaxelLayout(xy), np.hypot(*xy.T))
    m.set_canvas_size(cols, rows)
    return m


def test_map_lines_are_half_blocks_inside_a_blank_frame():
    m = make_map()
    lines = [m.render_line(y).text for y in range(20)]
    assert all(len(line) == 40 for line in lines)
    assert set("".join(lines)) <= {" ", "▀", "▄"}
    assert lines[0].strip() == "" or lines[0].count("▀") < 10  # the round IFU leaves corners empty
    assert lines[10].strip().startswith(("▀", "▄")) and lines[10].count("▀") > 30


def test_marker_glyph_and_style():
    m = make_map()
    m.set_markers([Marker(0.0, 0.0, *MARKER_STYLES["astrom"])])
    row = next(y for y in range(20) if "×" in m.render_line(y).text)
    seg = next(s for s in m.render_line(row) if s.text == "×")
    assert seg.style.bold and seg.style.color.triplet == (255, 64, 64)


def test_nudge_repaints_only_the_rows_that_change():
    m = make_map()
    m.set_markers([Marker(0.0, 0.0, "+", (255, 255, 255))])
    before = {y: m.render_line(y) for y in range(20)}
    m.set_markers([Marker(0.0, 1.2, "+", (255, 255, 255))])
    after = {y: m.render_line(y) for y in range(20)}
    changed = [y for y in range(20) if before[y] is not after[y]]
    assert 1 <= len(changed) <= 2


def test_region_overlay_changes_colours_not_characters():
    m = make_map()
    plain = [m.render_line(y) for y in range(20)]
    ids, xy = lattice()
    m.set_overlay(Overlay(region=np.hypot(*xy.T) < 5))
    dimmed = [m.render_line(y) for y in range(20)]
    assert [s.text for s in plain] == [s.text for s in dimmed]
    assert any(a is not b for a, b in zip(plain, dimmed))


def test_nan_outside_leaves_unfitted_spaxels_blank():
    ids, xy = lattice()
    values = np.where(np.hypot(*xy.T) < 5, 1.0, np.nan)
    m = SpaxelMap(nan_outside=True)
    m.set_data(SpaxelLayout(xy), values, (0.0, 1.0))
    m.set_canvas_size(40, 20)
    text = "".join(m.render_line(y).text for y in range(20))
    assert 20 < text.count("▀") + text.count("▄") < 200


def test_zoom_levels():
    m = make_map()
    m.zoom(1)
    assert m.view.half_width == 16.0
    m.zoom(-5)
    assert m.view.half_width == 27.0


def test_header_text():
    engine = {"alive": True, "activity": "reducing 04_21_30", "queue": 2, "status": "running"}
    cal = {"status": "ok", "wave_rms": 0.31, "nspax": 1417, "flat_std": 0.043, "fallback": True,
           "source_night": "20261120", "standard": {"object": "STD-BD+25d4655", "obs_id": "03_02_00"}}
    t = header_text("20261124", "09:41", engine, cal, paused=True, pending=4, readonly=True)
    assert t.plain.startswith(" SEDM  2026-11-24 · UT 09:41 · engine ● reducing 04_21_30 · queue 2 · ⚠ calibration")
    assert "⚠ calibration of 20261120 in use" in t.plain and "std BD+25d4655 03:02" in t.plain
    assert t.plain.index("calibration of") < t.plain.index("λ 0.31")  # before the details a narrow header cuts
    assert "[read-only]" in t.plain and "paused · 4 new" in t.plain
    stale = header_text("20261124", "09:41", {"alive": False, "status": "running", "activity": "x"}, {})
    assert "STALE" in stale.plain and "calibration: waiting" in stale.plain


def test_event_line():
    e = Event(id=1, ts="2026-11-24T05:00:07.000Z", night="20261124", kind="extraction", obs_id="04_21_30",
              frame=None, level="warning", message="04_21_30 ZTF26ccccccc · Q5", payload={})
    t = event_line(e)
    assert t.plain == "05:00:07 04_21_30 ZTF26ccccccc · Q5"


def test_map_axes_label_the_redex_frame():
    """Issue 17 item 2: ticks in the spaxel frame ``redex X Y`` takes, x right and y up."""
    from sedmtui.maprender import AXIS_WIDTH, build_raster, map_axes

    ids, xy = lattice()
    raster = build_raster(SpaxelLayout(xy), 40, 20, View())
    x_line, y_cells = map_axes(raster, 40, 20)
    assert len(y_cells) == 20 and all(len(c) == AXIS_WIDTH for c in y_cells)
    for label in ("-20", "-10", "0", "10", "20"):
        col = x_line.index(f" {label} " if label != "20" else " 20") + 1 - AXIS_WIDTH
        x, _y = raster.to_spaxel(col + 0.5, 0.0)
        assert abs(x - float(label)) < 1.5  # the label sits under its own column
    ticks = {c[:-1].strip(): row for row, c in enumerate(y_cells) if c.endswith("┤")}
    assert ticks["20"] < ticks["0"] < ticks["-20"]  # y grows upwards
    _x, y0 = raster.to_spaxel(0.0, 2 * ticks["0"] + 1.0)
    assert abs(y0) <= 1.0 / raster.scale + 1e-9  # within the cell (two pixels) holding y = 0
