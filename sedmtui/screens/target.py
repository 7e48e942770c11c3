"""The target screen: spaxel map, PSF data/model/residual, guider view, facts, spectrum; and
the edits (centroid, region, lstep) that become a re-extraction request."""

from __future__ import annotations

import math
import sqlite3
import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Static

from sedmtui.data import TargetData, facts, product_note
from sedmtui.edits import EditState
from sedmtui.maprender import AXIS_WIDTH, MARKER_STYLES, Marker, Overlay, map_axes
from sedmtui.messages import TargetLoaded
from sedmtui.review import (
    extraction_summary,
    marker_positions,
    reextract_text,
    request_status,
    shown_extraction,
)
from sedmtui.safe import clean
from sedmtui.safe import text as safe_text
from sedmtui.screens.base import ConsoleScreen
from sedmtui.screens.target_actions import TargetActions
from sedmtui.screens.target_panels import TargetPanels
from sedmtui.state import Delta, _num, clean_object, quality_severity
from sedmtui.widgets.facts import FactsPanel
from sedmtui.widgets.guider import GuiderView
from sedmtui.widgets.header import SEVERITY_STYLES, NightHeader
from sedmtui.widgets.preview import legend, marker_list
from sedmtui.widgets.spaxel_map import ZOOMS, SpaxelMap
from sedmtui.widgets.spectrum import SpectrumPlot

PANELS: tuple[str, ...] = ("map", "PSF", "guider", "spectrum", "facts")
"""The panels one at a time (``v`` cycles, ``1``-``5`` jump) on a small terminal or with ``f``."""

SOLO_BELOW = (120, 32)
"""Below this width or height the target screen shows one panel at a time (80x24 included)."""


class TargetScreen(TargetActions, TargetPanels, ConsoleScreen):
    """One exposure: judge it, fix it, accept or reject the fix."""

    BINDINGS = [
        Binding("left,h", "nudge('left')", "move", id="target.nudge_left", key_display="hjkl"),
        Binding("right,l", "nudge('right')", show=False, id="target.nudge_right"),
        Binding("up,k", "nudge('up')", show=False, id="target.nudge_up"),
        Binding("down,j", "nudge('down')", show=False, id="target.nudge_down"),
        Binding("shift+left,H", "nudge('left', True)", "move ¼", id="target.fine_left", key_display="HJKL"),
        Binding("shift+right,L", "nudge('right', True)", show=False, id="target.fine_right"),
        Binding("shift+up,K", "nudge('up', True)", show=False, id="target.fine_up"),
        Binding("shift+down,J", "nudge('down', True)", show=False, id="target.fine_down"),
        Binding("enter", "reextract", "re-extract", id="target.reextract"),
        Binding("a", "accept", "accept", id="target.accept"),
        Binding("x", "reject", "reject", id="target.reject"),
        Binding("r", "recover", "recover Q5", id="target.recover"),
        Binding("T", "tns_report", "TNS report", show=False, id="target.tns"),
        Binding("m", "region_mode", "region", id="target.region_mode"),
        Binding("space", "toggle_spaxel", "in/out", id="target.toggle"),
        Binding("left_square_bracket", "grow(-1)", "shrink", id="target.shrink", key_display="["),
        Binding("right_square_bracket", "grow(1)", "grow", id="target.grow", key_display="]"),
        Binding("t", "lstep", "lstep", show=False, id="target.lstep"),
        Binding("w", "wave(1)", "λ range", show=False, id="target.wave"),
        Binding("W", "wave(-1)", "λ range back", show=False, id="target.wave_back"),
        Binding("z", "zoom(1)", "zoom in", show=False, id="target.zoom_in"),
        Binding("Z", "zoom(-1)", "zoom out", show=False, id="target.zoom_out"),
        Binding("v", "cycle_panel", "panel", id="target.panel"),
        Binding("f", "toggle_solo", "one panel", show=False, id="target.solo"),
        Binding("1", "show_panel(0)", "map", show=False, id="target.panel_map"),
        Binding("2", "show_panel(1)", "PSF", show=False, id="target.panel_psf"),
        Binding("3", "show_panel(2)", "guider", show=False, id="target.panel_guider"),
        Binding("n", "finder", "finder chart", show=False, id="target.finder"),
        Binding("4", "show_panel(3)", "spectrum", show=False, id="target.panel_spectrum"),
        Binding("5", "show_panel(4)", "facts", show=False, id="target.panel_facts"),
        Binding("y", "copy", "copy path", show=False, id="target.copy"),
        Binding("full_stop", "step_target(1)", "next exposure", show=False, id="target.next"),
        Binding("comma", "step_target(-1)", "previous exposure", show=False, id="target.previous"),
        Binding("escape", "escape", "reset/back", id="target.escape"),
        Binding("q,backspace", "back", "back", show=False, id="target.back"),
    ]

    def __init__(self, obs_id: str) -> None:
        super().__init__()
        self.obs_id = obs_id
        self.data: TargetData | None = None
        self.edit: EditState | None = None
        self.region_mode = False
        self.cursor: int | None = None
        self.range_index = 0
        self.panel = 0
        """Side panel shown in the full layout: 0 PSF + guider, 1 PSF, 2 guider."""
        self.solo_index = 0
        """Panel shown alone (index into :data:`PANELS`) in the one-panel layout."""
        self.maximised = False
        """``f``: one panel at a time on a large terminal too."""
        self.request: dict | None = None
        self.timings: dict[int, dict[str, float]] = {}
        self._load_seq = 0
        self.loaded = False
        """True once the first load was answered (with data or with the reason it failed)."""
        self._overlay_cache: tuple = (None, None)

    def compose(self) -> ComposeResult:
        yield NightHeader(id="header")
        yield Static(id="title")
        with Horizontal(id="top"):
            with Vertical(id="map-pane"):
                with Horizontal(id="map-row"):
                    yield Static(id="y-axis")
                    yield SpaxelMap(id="map")
                yield Static(id="x-axis")
                yield Static(id="readout")
                yield Static(legend(), id="legend")
            with Vertical(id="side"):
                with Horizontal(id="panels"):
                    with Horizontal(id="psf-pane"):
                        yield SpaxelMap(id="psf-data", nan_outside=True)
                        yield SpaxelMap(id="psf-model", nan_outside=True)
                        yield SpaxelMap(id="psf-resid", table="diverging", nan_outside=True)
                    yield GuiderView(id="guider")
                yield FactsPanel(id="facts")
        yield SpectrumPlot(id="spectrum")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#title", Static).update(Text(f" {self.obs_id} loading…", style="bold"))
        self.query_one("#map", SpaxelMap).focus()
        self._set_panel()
        self.reload()

    # ------------------------------------------------------------------ loading
    def reload(self) -> None:
        """Read the exposure's rows and products again (thread worker)."""
        self._load_seq = self.app.load_products(self.obs_id, "target")

    def target_loaded(self, message: TargetLoaded) -> None:
        if message.purpose != "target" or message.obs_id != self.obs_id or message.seq != self._load_seq:
            return
        self.data = data = message.data
        self.loaded = True
        self._overlay_cache = (None, None)
        if data is None:
            why = clean(message.error) or f"{self.obs_id}: no such exposure"
            self.query_one("#title", Static).update(Text(f" {why}", style="bold red"))
            self.refresh_bindings()
            return
        cur = data.current.row if data.current else {}
        guess = (cur.get("guess_x") or 0.0, cur.get("guess_y") or 0.0)
        if self.edit is None or (not self.edit.dirty and self.edit.guess != guess):
            self.edit = EditState(guess=guess, default_radius=self.app.fit_radius)
        if self.cursor is None and data.cube is not None and data.cube.layout is not None:
            self.cursor = data.cube.layout.nearest(*self.edit.position)
        self._show_all()
        self._mark_shown()
        self.refresh_bindings()

    def _mark_shown(self) -> None:
        if self.request and self.request.get("kind") == "reextract" and self.request.get("status") == "done":
            t = self.timings.setdefault(self.request["id"], {})
            t.setdefault("shown", time.perf_counter())

    # ------------------------------------------------------------------ painting
    def _show_all(self) -> None:
        with self.app.batch_update():
            self._show_title()
            self._show_map()
            self._show_psf()
            self._show_spectrum()
            guider = self.query_one("#guider", GuiderView)
            guider.set_guider(self.data.guider if self.data else None, self.data.finder if self.data else None,
                              show_finder=guider.showing_finder if self.loaded and guider.finder else None)
            guider.border_title = safe_text(guider.title())
            self.query_one(FactsPanel).show(facts(self.data, shown_extraction(self.data)) if self.data else [])
            self._show_status()

    def _show_title(self) -> None:
        d = self.data
        if d is None:
            return
        t = d.target
        q = t.get("quality")
        text = Text(overflow="ellipsis", no_wrap=True)
        text.append(f" {clean_object(t.get('object'))} ", style="bold")
        text.append(f"· {self.obs_id} · ")
        if q is not None:
            reason = f"Q{q} {clean(t.get('quality_reason'))}"
            style = SEVERITY_STYLES.get(quality_severity(q) or "", "")
        else:
            reason, style = f"{clean(t.get('state'))} {clean(t.get('stage'))}", "grey62"
        mode = Text(" [region mode]" if self.region_mode else " [centroid mode]", style="bold cyan")
        hint = self.panel_hint()
        extras = [Text(f" · {_num(t.get('exptime'), '.0f')} s · X {_num(t.get('airmass'), '.2f')}")]
        if hint:
            extras.insert(0, Text(f" [{hint}]", style="bold magenta"))
        # what gives way on a narrow terminal: exposure and airmass, then the panel hint, then
        # the reason's end; the quality and the mode stay on screen (80 columns included)
        width = int(self.size.width or 160) - 1
        while extras and text.cell_len + 16 + sum(e.cell_len for e in extras) + mode.cell_len > width:
            extras.pop()
        room = max(12, width - text.cell_len - sum(e.cell_len for e in extras) - mode.cell_len)
        text.append(reason if len(reason) <= room else reason[: room - 1] + "…", style=style)
        for e in extras:
            text.append_text(e)
        text.append_text(mode)
        self.query_one("#title", Static).update(text)

    def _overlay(self) -> Overlay:
        """The map overlay; the same object while nothing it shows changed (cheap nudges)."""
        edit = self.edit
        psf = self._shown_psf()
        key = (self.region_mode, self.cursor if self.region_mode else None, id(psf), id(self.data.cube),
               None if edit is None else (edit.position if edit.region_changed or self.region_mode else None,
                                          edit.radius, edit.excluded, edit.added))
        if self._overlay_cache[0] != key:
            self._overlay_cache = (key, self._make_overlay(psf))
        return self._overlay_cache[1]

    def _make_overlay(self, psf) -> Overlay:
        cube = self.data.cube
        cursor = self.cursor if self.region_mode else None
        # the pending region is drawn once the region is edited (or in region mode); a centroid
        # nudge only moves the marker, so it repaints a couple of rows (a few kB over SSH)
        if self.edit is not None and (self.edit.region_changed or self.region_mode or psf is None):
            return Overlay(region=self.edit.region_mask(cube.xy, cube.spaxel_id),
                           excluded=self.edit.excluded_mask(cube.spaxel_id), cursor=cursor)
        return Overlay(region=psf.fitted, excluded=psf.excluded, cursor=cursor)

    def _show_map(self) -> None:
        m = self.query_one("#map", SpaxelMap)
        pane = self.query_one("#map-pane")
        if self.data is None or self.data.cube is None:
            m.set_data(None, None)
            obs = self.data.observation if self.data is not None else {}
            pane.border_title = safe_text("spaxels: " + product_note(self.data, obs.get("cube_file"), "cube"))
            return
        label, values = self._map_values()
        if not getattr(self, "_zoom_set", False) and self.edit is not None:
            m.follow_size(self.edit.position)
            self._zoom_set = True
        m.set_data(self.data.cube.layout, values)
        self._refresh_overlays()
        self._map_label = label
        pane.border_title = safe_text(f"spaxels {label} · zoom {ZOOMS[0] / m.view.half_width:.1f}×")

    def _refresh_overlays(self) -> None:
        """Markers and region only (a nudge repaints the rows that changed)."""
        if self.data is None or self.data.cube is None:
            return
        m = self.query_one("#map", SpaxelMap)
        m.set_overlay_and_markers(self._overlay(), self._spike_markers() + marker_list(marker_positions(self.data, self.edit)))
        self._show_readout()

    def _spike_markers(self) -> list[Marker]:
        """Region mode: a ``!`` on every spaxel with a cosmic-ray-like spike (candidates to exclude)."""
        cube = self.data.cube if self.data is not None else None
        if not self.region_mode or cube is None:
            return []
        glyph, rgb = MARKER_STYLES["spike"]
        return [Marker(float(cube.xy[i, 0]), float(cube.xy[i, 1]), glyph, rgb) for i in cube.spikes().index]

    def on_spaxel_map_framed(self, event: SpaxelMap.Framed) -> None:
        if event.map.id != "map":
            return
        x_line, y_cells = map_axes(event.raster, event.cols, event.rows)
        if getattr(self, "_map_label", None) is not None:  # the size may have changed the zoom
            zoom = ZOOMS[0] / event.map.view.half_width
            self.query_one("#map-pane").border_title = safe_text(f"spaxels {self._map_label} · zoom {zoom:.1f}×")
        self.query_one("#x-axis", Static).update(Text(x_line, style="grey62", no_wrap=True))
        self.query_one("#y-axis", Static).update(Text("\n".join(y_cells), style="grey62", no_wrap=True))

    def _show_readout(self) -> None:
        """Where the cursor is, in the frame ``redex X Y`` takes, and what that spaxel holds."""
        readout = self.query_one("#readout", Static)
        cube = self.data.cube if self.data is not None else None
        if cube is None or self.edit is None:
            readout.update("")
            return
        label, lo, hi = self._range()
        if self.region_mode and self.cursor is not None:
            x, y = cube.xy[self.cursor]
            head, index = f"cursor {x:+.2f} {y:+.2f}", self.cursor
        else:
            x, y = self.edit.position
            head, index = f"centroid {x:+.2f} {y:+.2f}", cube.layout.nearest(x, y)
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(" " + head, style="bold")
        if index is not None:
            values = getattr(self, "_map_vals", None)
            flux = float(values[index]) if values is not None and index < len(values) else float("nan")
            snr = cube.spaxel_snr(index, lo, hi)
            fin = lambda v: v if math.isfinite(v) else None  # noqa: E731
            out.append(f" · flux {_num(fin(flux), '.3g')} · S/N {_num(fin(snr), '.0f')} · {label}",
                       style="grey70")
            if self.region_mode:
                excluded = self.edit.excluded_mask(cube.spaxel_id)
                spike = cube.spikes().of(index)
                if excluded is not None and index < len(excluded) and excluded[index]:
                    out.append(" · excluded (space puts it back)", style="magenta")
                elif spike is not None:
                    out.append(f" · spike at {spike[0]:.0f} Å ({spike[1]:.0f}σ): space excludes it", style="yellow")
        readout.update(out)

    def _show_status(self, text: str | None = None, severity: str | None = None) -> None:
        if text is None:
            text, severity = self._status_text()
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append(" " + clean(text), style=SEVERITY_STYLES.get(severity or "", ""))
        self.query_one("#status", Static).update(out)

    def _status_text(self) -> tuple[str, str | None]:
        if self.request is not None and self.request.get("status") in ("pending", "running", "failed"):
            return self.request["text"], self.request["severity"]
        d = self.data
        if d is not None and d.candidate is not None:
            if self.app.readonly:
                return f"{extraction_summary(d.candidate)} waiting for accept/reject (read-only console)", "warn"
            return f"ready: a accept · x reject · enter re-extract again · {extraction_summary(d.candidate)}", "warn"
        if self.request is not None and self.request.get("kind") != "reextract":
            return self.request["text"], self.request["severity"]
        if self.edit is not None and self.edit.dirty:
            if self.app.readonly:
                return reextract_text(self.edit) + "  (read-only console: a preview only; esc resets)", "dim"
            return reextract_text(self.edit) + "  (enter files it, esc resets)", "busy"
        if self.request is not None:
            return self.request["text"], self.request["severity"]
        mode = "region mode: arrows move the spaxel cursor, space toggles it" if self.region_mode else \
            "move the centroid with the arrows (⇧ for ¼), m for region mode, enter to re-extract"
        return mode, "dim"

    @property
    def small_terminal(self) -> bool:
        """Too small for every panel at once (80x24 is)."""
        w, h = self.size
        return w > 0 and (w < SOLO_BELOW[0] or h < SOLO_BELOW[1])

    @property
    def solo(self) -> bool:
        """One panel at a time: a small terminal or ``f``."""
        return self.maximised or self.small_terminal

    def on_resize(self) -> None:
        """Keep the spaxel map about square (a half-block pixel is square)."""
        w, h = self.size
        top_rows = int((h - 4) * 3 / 5)
        width = min(2 * max(6, top_rows - 5) + 2 + AXIS_WIDTH, int(w * 0.42))
        self.query_one("#map-pane").styles.width = width
        self._set_panel()
        self._show_title()  # the reason is cut to the width

    def _set_panel(self) -> None:
        """Show the panels of the layout: all of them, ``v`` cycling PSF + guider / PSF /
        guider beside the map; or one alone (:attr:`solo`), ``v`` cycling :data:`PANELS`."""
        psf, guider = self.query_one("#psf-pane"), self.query_one("#guider", GuiderView)
        guider.border_title = safe_text(guider.title())
        parts = {k: self.query_one(f"#{k}") for k in ("top", "map-pane", "side", "panels", "facts", "spectrum")}
        solo = self.solo
        self.set_class(solo, "-solo")
        if not solo:
            for w in parts.values():
                w.display = True
            choice = self.panel % 3
            psf.display = choice in (0, 1)
            guider.display = choice in (0, 2)
            return
        name = PANELS[self.solo_index % len(PANELS)]
        shown = {"map": {"top", "map-pane"}, "PSF": {"top", "side", "panels", "psf"},
                 "guider": {"top", "side", "panels", "guider"}, "spectrum": {"spectrum"},
                 "facts": {"top", "side", "facts"}}[name]
        for key, w in parts.items():
            w.display = key in shown
        psf.display, guider.display = "psf" in shown, "guider" in shown
        if name == "map":
            parts["map-pane"].styles.width = "1fr"

    def panel_hint(self) -> str:
        """Where the one-panel layout is: ``map 1/5 · v next``; empty in the full layout."""
        if not self.solo:
            return ""
        i = self.solo_index % len(PANELS)
        return f"{PANELS[i]} {i + 1}/{len(PANELS)} · v next"

    # ------------------------------------------------------------------ live updates
    def apply_delta(self, delta: Delta) -> None:
        if self.request is not None and self.request["id"] in delta.requests:
            self._request_update(delta.requests[self.request["id"]])
        if (any(e.obs_id == self.obs_id and e.kind in ("extraction", "observation") for e in delta.events)
                or self.obs_id in delta.targets and self.data is not None and self.data.current is None):
            self.reload()
        if self.request and self.request.get("status") == "running":
            for e in delta.events:
                if e.kind == "engine" and self.obs_id in (e.message or ""):
                    self.request["text"], self.request["severity"] = request_status(
                        self.request["kind"], {"id": self.request["id"], "status": "running"}, e.message,
                        subject=self._subject())
                    self._show_status()

    def track(self, request_id: int, kind: str) -> None:
        """Follow a request filed for this exposure."""
        self.request = {"id": request_id, "kind": kind, "status": "pending"}
        self.timings[request_id] = {"filed": time.perf_counter()}
        self.request["text"], self.request["severity"] = request_status(kind, {"id": request_id, "status": "pending"},
                                                                        subject=self._subject())
        self._show_status()

    def _subject(self) -> str:
        """``04_21_30 ZTF26ccccccc``: what this screen's requests are about, in words."""
        row = self.app.targets.get(self.obs_id) or {}
        return f"{self.obs_id} {clean_object(row.get('object'))}".strip()

    def _tag_of(self, extraction_id) -> str | None:
        try:
            row = self.app.reader.extraction(int(extraction_id))
        except (TypeError, ValueError, sqlite3.Error):
            return None
        return clean(row.get("tag")) if row else None

    def _request_update(self, row: dict) -> None:
        req = self.request
        req["status"] = row["status"]
        req["text"], req["severity"] = request_status(req["kind"], row, self.app.engine.get("activity"),
                                                      subject=self._subject(), tag_of=self._tag_of)
        if row["status"] in ("done", "failed"):
            self.timings.setdefault(req["id"], {})["finished"] = time.perf_counter()
        if row["status"] == "failed":
            self.app.tell(req["text"], severity="error", timeout=10)
        elif row["status"] == "done":
            if req["kind"] in ("accept", "recover"):
                self.edit = None
            self.reload()
        self._show_status()
        self.refresh_bindings()


__all__ = ["TargetScreen"]
