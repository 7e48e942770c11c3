"""Pure raster, colour, overlay and hex-lookup functions of the maps."""

from __future__ import annotations

import numpy as np
import pytest

from engine.instrument import sedm
from sedmtui import maprender as mr
from tests.sedmtui.fakenight import lattice


def test_viridis_lut_matches_matplotlib_endpoints_and_rises_in_lightness():
    t = mr.lut("viridis")
    assert t.shape == (256, 3) and t.dtype == np.uint8
    assert tuple(t[0]) == (68, 1, 84) and tuple(t[-1]) == (253, 231, 37)
    lum = 0.2126 * t[:, 0] + 0.7152 * t[:, 1] + 0.0722 * t[:, 2]
    assert np.all(np.diff(lum) > -1.0)  # perceptually ordered: never darker upwards
    assert not t.flags.writeable


def test_viridis_lut_agrees_with_matplotlib_everywhere():
    from matplotlib import colormaps

    ref = np.rint(colormaps["viridis"](np.linspace(0, 1, 256))[:, :3] * 255)
    assert np.abs(mr.lut("viridis").astype(int) - ref).max() <= 3


def test_diverging_lut_is_white_in_the_middle_and_unknown_name_fails():
    t = mr.lut("diverging")
    assert t[128].min() > 230
    assert t[0][2] > t[0][0] and t[-1][0] > t[-1][2]  # blue negative, red positive
    with pytest.raises(ValueError):
        mr.lut("jet")


def test_quantise_clips_and_marks_nan():
    lv = mr.quantise(np.array([-1.0, 0.0, 0.5, 1.0, 2.0, np.nan]), 0.0, 1.0)
    assert lv.tolist() == [0, 0, 128, 255, 255, mr.NO_VALUE]
    assert mr.quantise(np.array([0.1]), 0, 1, stretch="asinh")[0] > mr.quantise(np.array([0.1]), 0, 1)[0]


def test_limits():
    v = np.r_[np.arange(100.0), np.nan, 1e9]
    lo, hi = mr.robust_limits(v)
    assert 0 <= lo < 5 and 90 < hi < 1e9
    assert mr.robust_limits(np.array([np.nan])) == (0.0, 1.0)
    assert mr.symmetric_limits(np.array([-3.0, 1.0, 2.0]), pct=100) == (-3.0, 3.0)


def test_hex_lookup_puts_each_spaxel_under_its_own_centre():
    ids, xy = lattice()
    layout = mr.SpaxelLayout(xy)
    r = mr.build_raster(layout, 120, 60, mr.View(0, 0, 25))
    for k in (0, len(xy) // 3, len(xy) - 1):
        c, p = r.to_pixel(*xy[k])
        assert r.idx[int(p), int(c)] == k
    assert r.idx[0, 0] == -1  # corner: outside the footprint
    assert (r.idx >= 0).sum() > 0.5 * r.idx.size


def test_hex_cells_are_hexagons_at_high_zoom():
    """Nearest-centre pixels around one lenslet form its hexagon (flat-to-flat 1.155 units)."""
    ids, xy = lattice()
    layout = mr.SpaxelLayout(xy)
    k = int(np.argmin(np.hypot(*xy.T)))
    r = mr.build_raster(layout, 80, 40, mr.View(*xy[k], 2.0))
    area = (r.idx == k).sum() / r.scale ** 2
    hex_area = 3 * np.sqrt(3) / 2 * sedm.HEX_CIRCUMRADIUS_UNITS ** 2
    assert area == pytest.approx(hex_area, rel=0.1)


def test_raster_round_trip_and_cells():
    ids, xy = lattice()
    r = mr.build_raster(mr.SpaxelLayout(xy), 60, 30, mr.View(1.0, -2.0, 10.0))
    x, y = r.to_spaxel(*r.to_pixel(3.3, -4.4))
    assert (x, y) == pytest.approx((3.3, -4.4))
    col, row, half = r.cell_of(1.0, -2.0)
    assert (col, row) == (30, 15) and half in (0, 1)
    assert r.cell_of(500.0, 0.0) is None


def test_compose_pixels_dims_outside_region_and_marks_excluded_and_cursor():
    ids, xy = lattice()
    layout = mr.SpaxelLayout(xy)
    r = mr.build_raster(layout, 40, 20)
    levels = np.full(len(xy), 255, dtype=np.int16)
    region = np.hypot(*xy.T) < 5
    excluded = np.zeros(len(xy), bool)
    excluded[np.argmin(np.hypot(*xy.T))] = True
    cursor = int(np.argmax(xy[:, 0]))
    rgb, inside = mr.compose_pixels(r, levels, mr.lut("viridis"), mr.Overlay(region=region, excluded=excluded,
                                                                             cursor=cursor))
    top = mr.lut("viridis")[255]
    spax_rgb = {}
    for (py, px), k in np.ndenumerate(r.idx):
        if k >= 0:
            spax_rgb[k] = tuple(rgb[py, px])
    inner = next(k for k in spax_rgb if region[k] and not excluded[k])
    outer = next(k for k in spax_rgb if not region[k] and k != cursor)
    assert spax_rgb[inner] == tuple(top)
    assert spax_rgb[outer] == tuple(np.rint(top * 0.45).astype(int))
    ex = int(np.flatnonzero(excluded)[0])
    if ex in spax_rgb:
        assert spax_rgb[ex] == tuple(mr.EXCLUDED_RGB)
    if cursor in spax_rgb:
        assert spax_rgb[cursor] == (255, 255, 255)
    assert not inside[0, 0] and tuple(rgb[0, 0]) == (0, 0, 0)


def test_markers_land_in_their_cells_and_later_ones_win():
    ids, xy = lattice()
    r = mr.build_raster(mr.SpaxelLayout(xy), 60, 30)
    x, y = r.to_spaxel(30.5, 31.0)  # the middle of cell (30, 15)
    a = mr.Marker(x, y, "×", (255, 0, 0))
    b = mr.Marker(x + 0.1, y + 0.1, "+", (255, 255, 255))
    far = mr.Marker(100.0, 0.0, "○", (0, 0, 0))
    cells = mr.marker_cells(r, [a, b, far])
    assert cells == {(30, 15): b}
    assert mr.marker_cells(r, [a]).keys() == cells.keys()


def test_half_block_rows_and_changed_rows():
    rgb = np.zeros((4, 3, 3), np.uint8)
    inside = np.ones((4, 3), bool)
    inside[0, 1] = False
    inside[0:2, 2] = False
    rgb[1, 0] = (9, 9, 9)
    row = mr.half_block_row(rgb, inside, 0)
    assert [c[0] for c in row] == ["▀", "▄", " "]
    assert row[0] == ("▀", (0, 0, 0), (9, 9, 9))
    new = rgb.copy()
    new[3, 1] = (1, 2, 3)
    assert mr.changed_rows(rgb, new) == [1]
    assert mr.changed_rows(None, new) == [0, 1]


def test_image_grid_keeps_aspect_and_flips_rows():
    g = mr.image_grid((10, 20), 20, 10)
    assert g.ix.tolist() == list(range(20))
    assert g.iy[0] == -1 or g.iy[5] == 9  # image row 0 at the bottom
    assert (g.iy[g.iy >= 0] == np.sort(g.iy[g.iy >= 0])[::-1]).all()
    col, prow = g.to_pixel(0.0, 0.0)
    assert col == pytest.approx(0.5) and g.cell_of(0.0, 0.0)[1] == int(prow) // 2
    rgb, inside = mr.compose_image(np.arange(200.0).reshape(10, 20), g, mr.lut("grey"), 0, 199, stretch="linear")
    assert rgb.shape == (20, 20, 3) and inside.sum() == 200


def test_circle_cells_ring():
    g = mr.image_grid((100, 100), 50, 25)
    cells = mr.circle_cells(g, 50.0, 50.0, 30.0)
    assert 40 < len(cells) < 120 and (25, 12) not in cells
