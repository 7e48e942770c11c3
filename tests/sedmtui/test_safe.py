"""Outside text (sedmtui.safe), the header warnings, the product root of ``--db``, and the
small defects of issue 17 that need no running console."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from textual.content import Content

from sedmtui import safe
from sedmtui.data import SpectrumData
from sedmtui.state import _num
from sedmtui.widgets.header import header_text
from sedmtui.widgets.spectrum import finite_points


@pytest.mark.parametrize("raw, shown", [
    ("ZTF26abc", "ZTF26abc"),
    ("ZTFbad[/nope]", "ZTFbad[/nope]"),
    ("\x1b]0;pwned\x07ZTF\x1b[2J\x1b[31mred", "ZTFred"),
    ("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b", "alinkb"),
    ("bell\x07 bs\x08 nul\x00 del\x7f c1\x9b2J", "bell bs nul del c1"),
    ("two\nlines\tand tab", "two lines and tab"),
    ("rtl\u202eoverride", "rtloverride"),
    (None, ""),
    (3.5, "3.5"),
])
def test_clean_removes_escape_sequences_and_controls(raw, shown):
    assert safe.clean(raw) == shown


def test_clean_keeps_newlines_when_asked():
    assert safe.clean("a\r\nb\x1b[2J\nc", multiline=True) == "a\nb\nc"


@pytest.mark.parametrize("raw", ["ZTFbad[/nope]", "[@click=app.quit]x[/]", "[b]bold", "tail\\"])
def test_text_and_markup_never_obey_markup(raw):
    assert safe.text(raw).plain == raw
    assert Content.from_markup(safe.markup(raw)).plain == raw
    assert "@click" not in str(Content.from_markup(safe.markup(raw)).spans)


def test_negative_zero_never_printed():
    assert _num(-0.04, ".0f") == "0" and _num(-0.04, ".1f") == "0.0" and _num(-0.001, "+.2f") == "+0.00"
    assert _num(-0.6, ".0f") == "-1" and _num(None, ".1f") == "·" and _num("n/a", ".1f") == "n/a"


def test_finite_points_reasons():
    w = np.linspace(4000.0, 9000.0, 10)
    assert finite_points(w, np.full(10, np.nan))[2] == "all 10 flux values are NaN"
    assert finite_points(w[:0], w[:0])[2] == "empty spectrum"
    assert finite_points(w, np.r_[1.0, np.full(9, np.nan)])[2] == "1 finite point of 10"
    ww, ff, why = finite_points(w[::-1], np.arange(10.0))
    assert why == "" and np.all(np.diff(ww) > 0) and ff[0] == 9.0


def test_spectrum_plot_draws_nothing_it_cannot(monkeypatch):
    from sedmtui.widgets.spectrum import COLORS, SpectrumPlot, Trace

    w = np.linspace(3800.0, 9200.0, 50)
    nan = SpectrumData(wave=w, flux=np.full(50, np.nan), err=np.full(50, np.nan), header={}, template=None)
    good = SpectrumData(wave=w, flux=np.ones(50), err=np.full(50, 0.1), header={}, template=None, unit="\x1b[31m")
    plot = SpectrumPlot()
    monkeypatch.setattr(plot, "refresh", lambda *a, **k: None)
    plot.show([Trace("robot", nan, COLORS["current"])], message="x", reason="target outside the IFU")
    plot.plt.plotsize(60, 15)
    plot.plt.build()
    assert plot.title_text() == "no finite flux: robot: all 50 flux values are NaN (target outside the IFU)"
    plot.show([Trace("robot (current)", nan, COLORS["old"]), Trace("redo (new)", good, COLORS["new"])])
    plot.plt.build()
    assert plot.title_text() == "not drawn: robot (current): all 50 flux values are NaN"
    assert [t.label for t in plot.traces] == ["redo (new)"]


def test_header_warns_when_templates_are_missing():
    text = header_text("20261124", "09:41", {"alive": True, "activity": "idle\x1b[2J"}, {"status": "ok"},
                       warnings={"no_templates": 4}).plain
    assert "no SNID templates: 4 unclassified" in text and "\x1b" not in text


def test_header_warning_counts_unclassified_for_want_of_templates(night):
    import sqlite3

    from engine.state.reader import StateReader
    from sedmtui.state import night_warnings

    reader = StateReader(night.db)
    assert night_warnings(reader, night.night) == {}
    conn = sqlite3.connect(night.db)
    with conn:
        conn.execute("""UPDATE extractions SET facts_json='{"classification": "no SNID template directory configured"}'
                        WHERE obs_id IN ('03_06_30', '04_21_30')""")
    conn.close()
    assert night_warnings(reader, night.night) == {"no_templates": 2}
    reader.close()


def test_db_without_redux_root_reads_products_next_to_the_database(night, tmp_path, monkeypatch):
    from sedmtui.launch import build_app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEDMTUI_REDUX_ROOT", raising=False)
    monkeypatch.delenv("SEDMTUI_DB", raising=False)
    ns = argparse.Namespace(db=str(night.db), redux_root=None, raw_root=None, config=None, night=None, readonly=True,
                            workers=None)
    app = build_app(ns)
    assert app.redux_root == night.redux
    assert (app.redux_root / app.night).is_dir()
    app.reader.close()
    ns.redux_root = str(tmp_path / "elsewhere")
    app = build_app(ns)
    assert app.redux_root == Path(ns.redux_root)
    app.reader.close()


def test_request_outcomes_name_the_exposure_not_ids():
    from sedmtui.review import request_status

    text, _ = request_status("reextract", {"id": 41, "status": "done", "target": "04_21_30",
                                           "result_json": '{"extraction_id": 17, "quality": 1}'},
                             tag_of={17: "redo104512"}.get)
    assert text == "re-extraction of 04_21_30 ready: redo104512, Q1"
    assert "41" not in text and "17" not in text
    text, _ = request_status("accept", {"id": 41, "status": "pending", "target": "04_21_30"})
    assert text.startswith("accept of 04_21_30: queued") and "#" not in text


def test_cube_with_non_finite_positions_is_named_not_indexed(tmp_path):
    from astropy.io import fits

    from engine.provenance import Provenance
    from engine.science.cube import Cube, write_cube
    from sedmtui.data import ProductCache, _product, read_cube_data

    xy = np.array([[0.0, 0.0], [1.0, 0.0], [np.nan, 1.0]])
    wave = np.linspace(4000.0, 9000.0, 8)
    flux = np.ones((3, 8), np.float32)
    write_cube(tmp_path / "e3d_x.fits", Cube(wave=wave, flux=flux, var=flux, spaxel_id=np.arange(3), xy=xy),
               fits.Header(), Provenance(schema="test", version=1))
    errors: list[str] = []
    assert _product(tmp_path, "e3d_x.fits", read_cube_data, ProductCache(), errors) is None
    assert errors == ["e3d_x.fits: unreadable (ValueError: 1 of 3 spaxel positions are not finite)"]
    assert _product(tmp_path, "e3d_gone.fits", read_cube_data, ProductCache(), errors) is None
    assert errors[-1] == "e3d_gone.fits: missing"


def test_a_huge_error_band_is_clipped_and_enveloped_before_plotext():
    """A standard's 1-sigma band of 7e-6 beside fluxes of 2e-13 (seen on the mini night) made
    plotext interpolate billions of canvas points: the console ran out of memory."""
    from sedmtui.widgets.spectrum import COLORS, SpectrumPlot, Trace, drawable

    w = np.linspace(3800.0, 9200.0, 2041)
    f = np.full(2041, 2e-13)
    f[100] = 5e-12  # a spike stays visible
    dw, df = drawable(w, f / 1e-13, 0.0, 3.0, 80)
    assert dw.size <= 160 and np.all(np.diff(dw) >= 0)
    assert df.max() == 6.0 and df.min() == 2.0  # clipped to one span above the limits
    err = np.full(2041, 2e-15)
    err[5] = 6.8e-6
    plot = SpectrumPlot()
    plotted = []
    plot.plt.plot = lambda x, y, **kw: plotted.append((np.asarray(x), np.asarray(y)))
    plot.show([Trace("robot", SpectrumData(wave=w, flux=f, err=err, header={}, template=None), COLORS["current"])])
    assert len(plotted) == 3  # band up, band down, flux
    for x, y in plotted:
        assert x.size <= 2 * 100 and np.abs(y).max() < 100


def test_header_warns_when_deliveries_fail(night):
    import sqlite3

    from engine.state.reader import StateReader
    from sedmtui.state import night_warnings
    from sedmtui.widgets.header import header_text

    with sqlite3.connect(night.db) as conn:
        conn.execute("INSERT INTO deliveries (key, night, destination, state, last_error) VALUES "
                     "('k1', ?, 'fritz', 'failed', 'HTTP 401 [b]token[/b]')", [night.night])
    reader = StateReader(night.db)
    warnings = night_warnings(reader, night.night)
    reader.close()
    assert warnings["delivery_failed"] == 1
    text = header_text("20261124", "09:41", {"alive": True}, {"status": "ok"}, warnings=warnings).plain
    assert "⚠ delivery failing: 1 (fritz: HTTP 401 [b]token[/b])" in text
