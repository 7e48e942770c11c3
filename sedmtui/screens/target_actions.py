"""The target screen's key actions (a mixin, to keep each file short): edits, requests, view."""

from __future__ import annotations

from textual.widgets import Static

from sedmtui.edits import hex_step, inside_ifu
from sedmtui.review import accept_text, reject_text
from sedmtui.widgets.preview import legend
from sedmtui.widgets.spaxel_map import SpaxelMap


class TargetActions:
    """Actions of :class:`sedmtui.screens.target.TargetScreen`."""

    # ------------------------------------------------------------------ which keys are live
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        allowed = super().check_action(action, parameters)  # type: ignore[misc]
        if allowed is False:
            return False
        d = self.data
        if action in ("accept", "reject"):
            return d is not None and d.candidate is not None
        if action == "recover":
            return d is not None and d.current is not None and d.current.row.get("quality") == 5
        if action in ("toggle_spaxel", "grow"):
            return self.region_mode
        if action == "reextract":
            return d is not None and d.cube is not None
        return True

    # ------------------------------------------------------------------ edits
    def _edited(self) -> None:
        """A new edit: forget a finished request's result line."""
        if self.request is not None and self.request.get("status") in ("done", "failed"):
            self.request = None

    def action_nudge(self, direction: str, fine: bool = False) -> None:
        """Centroid mode: move the centroid (one lenslet, or ¼). Region mode: move the cursor."""
        if self.edit is None or self.data is None or self.data.cube is None:
            return
        self._show_map_panel()
        if self.region_mode:
            self._move_cursor(direction)
            return
        new = self.edit.nudge(direction, fine=fine)
        if not inside_ifu(*new.centroid):
            self.app.tell("that centroid is outside the IFU (the engine would refuse it)", severity="warning", timeout=3)
        self.edit = new
        self._edited()
        self._refresh_overlays()
        self._show_status()

    def _move_cursor(self, direction: str) -> None:
        layout = self.data.cube.layout
        x, y = layout.xy[self.cursor] if self.cursor is not None else self.edit.position
        dx, dy = hex_step(direction)
        for k in (1.0, 1.5, 2.0):  # along x or y to the next spaxel that way (the lattice is tilted)
            nxt = layout.nearest(x + k * dx, y + k * dy)
            if nxt is not None and nxt != self.cursor:
                self.cursor = nxt
                self._refresh_overlays()
                return

    def action_region_mode(self) -> None:
        """Toggle region mode (a spaxel cursor; space toggles spaxels in/out of the region)."""
        if self.data is None or self.data.cube is None or self.edit is None:
            return
        self.region_mode = not self.region_mode
        self.query_one("#legend", Static).update(legend(self.region_mode))
        self._show_map_panel()
        if self.region_mode and self.data is not None and self.data.cube is not None:
            self.cursor = self.data.cube.layout.nearest(*self.edit.position)
        self._show_title()
        self._refresh_overlays()
        self._show_status()
        self.refresh_bindings()

    def action_toggle_spaxel(self) -> None:
        """Put the spaxel under the cursor in or out of the region (a cosmic-ray spaxel...)."""
        if not self.region_mode or self.cursor is None or self.data is None or self.data.cube is None:
            return
        cube = self.data.cube
        sid = int(cube.spaxel_id[self.cursor])
        x, y = cube.xy[self.cursor]
        px, py = self.edit.position
        inside = (x - px) ** 2 + (y - py) ** 2 <= self.edit.effective_radius ** 2
        self.edit = self.edit.toggle(sid, inside)
        self._edited()
        self._refresh_overlays()
        self._show_status()

    def action_grow(self, step: int) -> None:
        """Region mode: grow (``]``) or shrink (``[``) the region's circle by one spaxel unit."""
        if self.edit is None or self.data is None:
            return
        self.edit = self.edit.grow(float(step))
        self._edited()
        self._refresh_overlays()
        self._show_status()

    def action_lstep(self) -> None:
        """Cycle lstep (slices per forced fit) 1-5."""
        if self.edit is not None:
            self.edit = self.edit.next_lstep()
            self._show_status()

    def action_escape(self) -> None:
        """Leave region mode resetting the region; else reset the edit; else go back."""
        if self.region_mode and self.edit is not None:
            self.region_mode = False
            self.edit = self.edit.reset_region()
            self._show_title()
            self._refresh_overlays()
            self._show_status()
            self.refresh_bindings()
        elif self.edit is not None and self.edit.dirty:
            self.edit = self.edit.reset()
            self._refresh_overlays()
            self._show_status()
        else:
            self.action_back()

    def action_back(self) -> None:
        """Back to the night screen."""
        self.app.pop_screen()

    def on_spaxel_map_clicked(self, event: SpaxelMap.Clicked) -> None:
        if event.map.id != "map" or self.edit is None:
            return
        if self.region_mode:
            if event.index is not None:
                self.cursor = event.index
                self.action_toggle_spaxel()
        else:
            self.edit = self.edit.set_centroid(event.x, event.y)
            self._refresh_overlays()
            self._show_status()

    # ------------------------------------------------------------------ requests
    def action_reextract(self) -> None:
        """File a re-extraction with the centroid, region and lstep shown."""
        if self.data is None or self.data.cube is None or self.edit is None:
            return
        if self.request and self.request.get("status") in ("pending", "running"):
            self.app.tell(f"request #{self.request['id']} is still being served", severity="warning")
            return
        cube = self.data.cube
        params = self.edit.params(cube.xy, cube.spaxel_id)
        rid = self.app.submit("reextract", self.obs_id, params)
        if rid is not None:
            self.track(rid, "reextract")

    def _confirm(self, kind: str, texts) -> None:
        from sedmtui.screens.confirm import ConfirmScreen

        cand = self.data.candidate
        title, body = texts(self.data)

        def done(ok: bool | None) -> None:
            if ok:
                rid = self.app.submit(kind, self.obs_id, {"extraction_id": int(cand.row["id"])})
                if rid is not None:
                    self.track(rid, kind)

        self.app.push_screen(ConfirmScreen(title, body, yes=kind), done)

    def action_accept(self) -> None:
        """Accept the waiting re-extraction (after a confirmation)."""
        if self.data is not None and self.data.candidate is not None:
            self._confirm("accept", accept_text)

    def action_reject(self) -> None:
        """Reject the waiting re-extraction (after a confirmation)."""
        if self.data is not None and self.data.candidate is not None:
            self._confirm("reject", reject_text)

    def action_recover(self) -> None:
        """Quality 5 -> 1 (after a confirmation)."""
        from sedmtui.screens.confirm import confirm_recover

        row = self.app.targets.get(self.obs_id)
        if row is not None:
            confirm_recover(self.app, row, lambda rid: self.track(rid, "recover"))

    def action_tns_report(self) -> None:
        """Ask for the TNS name and type, then file a classification report request."""
        from sedmtui.screens.tns import TnsScreen

        row = self.app.targets.get(self.obs_id)
        if row is None:
            return
        q = row.get("quality")
        if q is None or q > 2:
            self.app.tell(f"{self.obs_id} is quality {q}: only quality 0-2 spectra go to TNS", severity="warning")
            return

        def done(params: dict | None) -> None:
            if params:
                rid = self.app.submit("tns_report", self.obs_id, params)
                if rid is not None:
                    self.track(rid, "tns_report")

        self.app.push_screen(TnsScreen(row), done)

    # ------------------------------------------------------------------ view
    def action_finder(self) -> None:
        """Show the finder chart in the guider pane (again: the guider cut-out)."""
        from sedmtui.safe import text as safe_text
        from sedmtui.widgets.guider import GuiderView

        guider = self.query_one("#guider", GuiderView)
        if not guider.toggle():
            note = self.data.finder_note if self.data is not None else ""
            self.app.tell(note or "no finder chart for this exposure", severity="warning", timeout=6)
            return
        guider.border_title = safe_text(guider.title())
        if not guider.display:  # one panel at a time: bring the guider pane
            self.action_show_panel(2)

    def action_wave(self, step: int) -> None:
        """Next/previous wavelength range of the map (5000-7000 Å, all, each metaslice)."""
        self.range_index += step
        if self.data is not None:
            self._show_map()

    def action_zoom(self, step: int) -> None:
        """Zoom the map in (z) or out (Z), centred on the edit position."""
        from sedmtui.maprender import View

        m = self.query_one("#map", SpaxelMap)
        cx, cy = self.edit.position if self.edit is not None else (0.0, 0.0)
        m.set_view(View(cx, cy, m.view.half_width))
        m.zoom(step)
        if m.view.half_width >= 27.0:
            m.set_view(View(0.0, 0.0, 27.0))
        if self.data is not None:
            self._show_map()

    def action_cycle_panel(self) -> None:
        """Next panel: map, PSF, guider, spectrum, facts one at a time (small terminal or
        ``f``); PSF + guider, PSF, guider beside the map otherwise."""
        if self.solo:
            self.solo_index = (self.solo_index + 1) % 5
        else:
            self.panel += 1
        self._set_panel()
        self._show_title()

    def action_show_panel(self, index: int) -> None:
        """Show one panel alone (``1``-``5``: map, PSF, guider, spectrum, facts)."""
        self.solo_index = index
        if not self.solo:
            self.maximised = True
        self._set_panel()
        self._show_title()

    def action_toggle_solo(self) -> None:
        """One panel at a time, or every panel (on a terminal large enough for them)."""
        if self.small_terminal:
            self.app.tell("one panel at a time on a terminal this small: v cycles, 1-5 jump", timeout=3)
            return
        self.maximised = not self.maximised
        self._set_panel()
        self._show_title()

    def _show_map_panel(self) -> None:
        """An edit of the map brings the map forward in the one-panel layout."""
        if self.solo and self.solo_index != 0:
            self.solo_index = 0
            self._set_panel()
            self._show_title()

    def action_copy(self) -> None:
        """Copy the path of the shown spectrum (OSC 52)."""
        from sedmtui.review import shown_extraction

        ext = shown_extraction(self.data)
        if ext is not None and ext.row.get("spec_fits"):
            self.app.copy(str(self.app.redux_root / self.app.night / ext.row["spec_fits"]), "spectrum path")

    def action_step_target(self, step: int) -> None:
        """Open the next/previous exposure."""
        keys = sorted(self.app.targets)
        if self.obs_id in keys:
            nxt = keys[(keys.index(self.obs_id) + step) % len(keys)]
            self.app.open_target(nxt)


__all__ = ["TargetActions"]
