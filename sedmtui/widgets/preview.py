"""The night screen's preview of the highlighted exposure: map, spectrum and key facts.

The spectrum widget (plotext) is mounted on the first preview, not at start-up, so the first
frame of the console does not wait for its import.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from sedmtui.data import TargetData, facts, markers_of, spectrum_note
from sedmtui.maprender import MARKER_STYLES, Marker, Overlay, View
from sedmtui.safe import clean
from sedmtui.state import _num, clean_object
from sedmtui.widgets.facts import FactsPanel
from sedmtui.widgets.spaxel_map import SpaxelMap


def legend(region_mode: bool = False) -> Text:
    """The marker legend under a spaxel map (wraps to a second line in a narrow pane); region
    mode adds the spike mark."""
    t = Text(overflow="fold")
    keys = (("astrom", "astrom"), ("brightest", "bright"), ("manual", "yours"), ("fitted", "fit"))
    for key, label in keys + ((("spike", "spike"),) if region_mode else ()):
        glyph, rgb = MARKER_STYLES[key]
        t.append(f"{glyph} ", style=f"bold rgb({rgb[0]},{rgb[1]},{rgb[2]})")
        t.append(f"{label} ", style="grey62")
    t.append("■ ", style="bold rgb(255,40,140)")
    t.append("excluded ", style="grey62")
    t.append("dim:\u00a0outside\u00a0region", style="grey62")
    return t


def marker_list(positions: dict[str, tuple[float, float]]) -> list[Marker]:
    """Markers from ``{kind: (x, y)}`` in drawing order (fitted on top)."""
    order = ("brightest", "astrom", "manual", "fitted")
    return [Marker(*positions[k], *MARKER_STYLES[k]) for k in order if k in positions]


class PreviewPane(Vertical):
    """Compact view of one exposure."""

    DEFAULT_CSS = """
    PreviewPane {
        width: 1fr;
        height: 1fr;
    }
    PreviewPane #preview-map { height: 1fr; min-height: 6; }
    PreviewPane #preview-spectrum { height: 1fr; min-height: 6; }
    PreviewPane #preview-title { height: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.obs_id: str | None = None
        self._spectrum = None

    def compose(self) -> ComposeResult:
        yield Static("select an exposure", id="preview-title")
        yield SpaxelMap(id="preview-map")
        yield FactsPanel(id="preview-facts")

    def show(self, data: TargetData | None, error: str = "") -> None:
        """Fill the preview (None: the exposure vanished, or ``error`` says why it is unreadable)."""
        title = self.query_one("#preview-title", Static)
        m = self.query_one("#preview-map", SpaxelMap)
        if data is None:
            title.update(Text(clean(error) or "no such exposure (removed from the state?)", style="bold red"))
            m.set_data(None, None)
            self.query_one("#preview-facts", FactsPanel).show([])
            if self._spectrum is not None:
                self._spectrum.show([], message="no data")
            return
        t = data.target
        self.obs_id = t["obs_id"]
        title.update(Text.assemble((f"{clean(t['obs_id'])} ", "bold"), clean_object(t.get("object")),
                                   (f" · {_num(t.get('exptime'), '.0f')} s · X {_num(t.get('airmass'), '.2f')}",
                                    "grey62")))
        ext = data.current
        if data.cube is not None:
            m.set_view(View(half_width=27.0))
            m.set_data(data.cube.layout, data.cube.slice_mean(5000.0, 7000.0))
            fitted = ext.psf.fitted if ext is not None and ext.psf is not None else None
            m.set_overlay(Overlay(region=fitted, excluded=ext.psf.excluded if ext and ext.psf else None))
            m.set_markers(marker_list(markers_of(ext.row if ext else None)))
        else:
            m.set_data(None, None)
        self.query_one("#preview-facts", FactsPanel).show(facts(data)[:6])
        self._show_spectrum(data)

    def _show_spectrum(self, data: TargetData) -> None:
        from sedmtui.widgets.spectrum import COLORS, SpectrumPlot, Trace

        if self._spectrum is None:
            self._spectrum = SpectrumPlot(id="preview-spectrum")
            self.mount(self._spectrum, before=self.query_one("#preview-facts"))
        ext = data.current
        traces = []
        tmpl = None
        if ext is not None and ext.spectrum is not None:
            traces.append(Trace(str(ext.row.get("tag") or "spectrum"), ext.spectrum, COLORS["current"]))
            if ext.spectrum.template is not None and ext.classification:
                tmpl = dict(ext.spectrum.template, label=ext.classification.get("template") or "template")
        reason = (ext.row.get("quality_reason") or "") if ext is not None else ""
        self._spectrum.show(traces, tmpl, message=spectrum_note(data, ext), reason=reason)


__all__ = ["PreviewPane", "legend", "marker_list"]
