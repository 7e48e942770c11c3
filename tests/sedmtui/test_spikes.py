"""Region mode marks cosmic-ray spaxels: a spike in one or two slices of one spaxel is found; an
emission line the PSF spreads over several spaxels, smooth noise and a cube without variance are
not; on screen the marks appear in region mode, the readout names the spike, and the cursor on
an excluded spaxel keeps showing the exclusion."""

from __future__ import annotations

import numpy as np

from sedmtui.maprender import CURSOR_EXCLUDED_RGB, CURSOR_RGB, EXCLUDED_RGB, Overlay, SpaxelLayout, build_raster, compose_pixels
from sedmtui.spikes import Spikes, find_spikes
from tests.sedmtui.conftest import wait_for
from tests.sedmtui.fakenight import lattice


def _cube(seed: int = 1):
    _ids, xy = lattice()
    wave = np.linspace(3800.0, 9200.0, 200)
    rng = np.random.default_rng(seed)
    r2 = (xy ** 2).sum(1)
    model = 5.0 + 200.0 * np.exp(-0.5 * r2 / 2.0 ** 2)[:, None] * (wave / 6000.0)[None, :] ** -1
    var = model + 4.0
    return wave, model, var, xy, rng


def test_a_one_slice_spike_is_found_and_noise_is_not():
    wave, model, var, xy, rng = _cube()
    flux = model + rng.normal(size=model.shape) * np.sqrt(var)
    assert find_spikes(wave, flux, var, xy).index.size == 0
    hit = flux.copy()
    far = int(np.argmax((xy ** 2).sum(1)))  # a sky spaxel at the edge
    core = int(np.argmin((xy ** 2).sum(1)))  # the star's peak
    hit[far, 80] += 40 * np.sqrt(var[far, 80])
    hit[core, 150:152] += 30 * np.sqrt(var[core, 150])  # two slices wide
    found = find_spikes(wave, hit, var, xy)
    assert sorted(found.index.tolist()) == sorted([far, core])
    assert found.of(far) == (wave[80], found.sigma[list(found.index).index(far)])
    assert found.sigma.max() > 30 and found.of(core)[0] in (wave[150], wave[151])
    assert find_spikes(wave, hit, None, xy).index.size == 0


def test_an_emission_line_of_the_scene_is_not_a_spike():
    wave, model, var, xy, rng = _cube(2)
    r2 = (xy ** 2).sum(1)
    line = 300.0 * np.exp(-0.5 * r2 / 2.0 ** 2)  # H-alpha of the target: one slice, every spaxel of the PSF
    flux = model + rng.normal(size=model.shape) * np.sqrt(var)
    flux[:, 100] += line
    assert find_spikes(wave, flux, var, xy).index.size == 0


def test_the_cursor_on_an_excluded_spaxel_keeps_the_exclusion_visible():
    _ids, xy = lattice()
    layout = SpaxelLayout(xy)
    raster = build_raster(layout, 40, 20)
    levels = np.full(len(xy), 100, dtype=np.int32)
    table = np.zeros((256, 3), np.uint8)
    excluded = np.zeros(len(xy), bool)
    excluded[[3, 7]] = True
    pick = lambda rgb, i: rgb[raster.idx == i][0]  # noqa: E731
    rgb, _ = compose_pixels(raster, levels, table, Overlay(excluded=excluded, cursor=3))
    visible = [i for i in (3, 7) if (raster.idx == i).any()]
    if 3 in visible:
        assert tuple(pick(rgb, 3)) == tuple(CURSOR_EXCLUDED_RGB) != tuple(CURSOR_RGB)
    if 7 in visible:
        assert tuple(pick(rgb, 7)) == tuple(EXCLUDED_RGB)
    assert visible


async def test_region_mode_marks_spikes_and_the_readout_names_them(make_app):
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        app.open_target("03_06_30")
        await wait_for(pilot, lambda: getattr(app.screen, "data", None) is not None)
        screen = app.screen
        await pilot.press("m")
        cube = screen.data.cube
        cursor = screen.cursor
        cube._spikes = Spikes(np.array([cursor]), np.array([6820.0]), np.array([14.2]))
        screen._refresh_overlays()
        await pilot.pause()
        marks = [(m.x, m.y, m.glyph) for m in screen.query_one("#map").markers]
        assert (float(cube.xy[cursor, 0]), float(cube.xy[cursor, 1]), "!") in marks
        assert "spike at 6820 Å (14σ): space excludes it" in str(screen.query_one("#readout").render())
        assert "spike" in str(screen.query_one("#legend").render())
        await pilot.press("space")
        await pilot.pause()
        assert "excluded (space puts it back)" in str(screen.query_one("#readout").render())
        await pilot.press("m")
        await pilot.pause()
        assert not any(m.glyph == "!" for m in screen.query_one("#map").markers)


def test_spectrum_axes_use_round_wavelengths_and_readable_units():
    from sedmtui.widgets.spectrum import flux_label, wave_ticks

    assert wave_ticks(3776.7, 9223.3, 120) == [4000.0 + 500 * i for i in range(11)]
    assert wave_ticks(3776.7, 9223.3, 60) == [4000.0 + 1000 * i for i in range(6)]
    assert wave_ticks(3776.7, 9223.3, 34) == [4000.0, 6000.0, 8000.0]
    assert all(t % 250 == 0 for w in (20, 45, 200) for t in wave_ticks(3650.0, 9450.0, w))
    assert flux_label("erg/s/A/cm^2", -16) == "×10⁻¹⁶ erg s⁻¹ cm⁻² Å⁻¹"
    assert flux_label("electron/s/A", 0) == "e⁻ s⁻¹ Å⁻¹" and flux_label("", 3) == "×10³ flux"


async def test_the_mode_and_quality_stay_in_the_title_at_80_columns(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.open_target("04_21_30")
        await wait_for(pilot, lambda: getattr(app.screen, "data", None) is not None)
        title = lambda: str(app.screen.query_one("#title").render())  # noqa: E731
        # the whole title fits the 80 columns: nothing of it is cut off the right edge
        assert "[centroid mode]" in title() and "Q5 guider" in title() and len(title()) <= 80
        await pilot.press("m")
        await pilot.pause()
        assert "[region mode]" in title() and "Q5" in title() and len(title()) <= 80
