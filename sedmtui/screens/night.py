"""The night screen: header, live target table, preview, event log."""

from __future__ import annotations

import re

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Input, Static

from sedmtui.messages import TargetLoaded
from sedmtui.safe import clean
from sedmtui.screens.base import ConsoleScreen
from sedmtui.state import Delta, clean_object, quality_severity
from sedmtui.widgets.header import SEVERITY_STYLES, NightHeader
from sedmtui.widgets.log import EventLog
from sedmtui.widgets.preview import PreviewPane
from sedmtui.widgets.targets import TargetTable

PREVIEW_WIDTH = 136
"""From this width on the preview pane is shown (beside the table's key columns)."""


def layout_for(width: int) -> tuple[bool, int]:
    """``(show_preview, column_level)`` for a terminal width.

    Below 92 columns (e.g. 80x24) the table keeps time, object, state, Q, type and z; from 92
    it adds rlap, S/N, extraction and delivered, from 112 every column; from 136 the preview
    pane comes back beside the main columns, and from 160 beside all of them.
    """
    if width >= 160:
        return True, 2
    if width >= PREVIEW_WIDTH:
        return True, 1
    return False, (2 if width >= 112 else 1 if width >= 92 else 0)


def reason_line(row: dict | None) -> Text:
    """The selected exposure's state and quality reason, with the next useful key."""
    if row is None:
        return Text("no exposure yet: they appear here as the engine ingests them", style="grey50")
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(f"{clean(row.get('obs_id'))} {clean_object(row.get('object'))} ", style="bold")
    q = row.get("quality")
    if row.get("state") == "failed":
        t.append(f"failed: {clean(row.get('error'))}", style=SEVERITY_STYLES["bad"])
    elif q is None:
        t.append(f"{clean(row.get('state'))}: {clean(row.get('stage'))}", style="grey62")
    else:
        t.append(f"Q{q} {clean(row.get('quality_reason'))}", style=SEVERITY_STYLES.get(quality_severity(q) or "", ""))
        if q == 5:
            t.append("  → r recover if the brightest object is the target, enter to set the centroid", style="grey62")
    if row.get("delivery_state") == "failed":
        t.append(f"  ✗ delivery {clean(row.get('delivery_detail'))} → D retries", style=SEVERITY_STYLES["bad"])
    return t


class NightScreen(ConsoleScreen):
    """Every exposure of the night as it arrives."""

    BINDINGS = [
        Binding("slash", "filter", "filter", id="night.filter"),
        Binding("s", "sort", "sort", id="night.sort"),
        Binding("r", "recover", "recover Q5", id="night.recover"),
        Binding("R", "request_report", "report", id="night.report"),
        Binding("D", "retry_delivery", "retry delivery", id="night.retry_delivery"),
        Binding("v", "view_report", "view report", show=False, id="night.view_report"),
        Binding("y", "copy", "copy name", id="night.copy"),
        Binding("tab", "focus_next", "next pane", show=False, id="night.next_pane"),
        Binding("escape", "clear_filter", "clear filter", show=False, id="night.clear_filter"),
        Binding("q", "quit_console", "quit", id="night.quit"),
    ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``D`` is shown (and works) only while the night has a failed delivery: at 80 columns
        the footer has no room for a key that has nothing to do."""
        if action == "retry_delivery" and not (getattr(self.app, "warnings", None) or {}).get("delivery_failed"):
            return False
        return super().check_action(action, parameters)

    def __init__(self) -> None:
        super().__init__()
        self._preview_timer = None
        self._preview_seq = 0

    def compose(self) -> ComposeResult:
        yield NightHeader(id="header")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield TargetTable(id="targets", level=layout_for(self.app.size.width)[1])
                yield Input(id="filter", placeholder="filter (regex on time, object, type, state, Q; ! inverts)")
                yield Static(id="reason")
            yield PreviewPane(id="preview")
        yield EventLog(id="log")
        yield Footer()

    def on_mount(self) -> None:
        app = self.app
        table = self.query_one(TargetTable)
        table.load(app.snapshot.targets, app.snapshot.candidates)
        self.query_one(EventLog).add_events(app.snapshot.events)
        self.query_one("#filter", Input).display = False
        table.focus()
        app.refresh_headers()
        self._update_reason()
        self.call_after_refresh(self._schedule_preview, 0.3)

    # ------------------------------------------------------------------ live updates
    def apply_delta(self, delta: Delta) -> None:
        if delta.warnings is not None:
            self.refresh_bindings()
        table = self.query_one(TargetTable)
        if delta.targets:
            table.apply(delta.targets, delta.candidates)
        if delta.events:
            self.query_one(EventLog).add_events(delta.events)
        sel = table.selected_key()
        if sel is not None and sel in delta.targets:
            self._update_reason()
            if any(e.obs_id == sel and e.kind in ("extraction", "observation", "request") for e in delta.events):
                self._schedule_preview()

    def on_resize(self) -> None:
        table = self.query_one(TargetTable)
        show, level = layout_for(self.size.width)
        self.query_one(PreviewPane).display = show
        if level != table.level:
            table.level = level
            table.rebuild()

    # ------------------------------------------------------------------ selection and preview
    def selected(self) -> dict | None:
        key = self.query_one(TargetTable).selected_key()
        return self.app.targets.get(key) if key else None

    def _update_reason(self) -> None:
        self.query_one("#reason", Static).update(reason_line(self.selected()))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._update_reason()
        self._schedule_preview()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def _schedule_preview(self, delay: float = 0.15) -> None:
        if not layout_for(self.size.width)[0]:
            return
        if self._preview_timer is not None:
            self._preview_timer.stop()
        self._preview_timer = self.set_timer(delay, self._load_preview)

    def _load_preview(self) -> None:
        row = self.selected()
        if row is not None:
            self._preview_seq = self.app.load_products(row["obs_id"], "preview")

    def target_loaded(self, message: TargetLoaded) -> None:
        if message.purpose != "preview" or message.seq != self._preview_seq:
            return
        pane = self.query_one(PreviewPane)
        pane.show(message.data, message.error)
        pane.obs_id = message.obs_id

    # ------------------------------------------------------------------ actions
    def action_open(self) -> None:
        """Open the highlighted exposure."""
        row = self.selected()
        if row is not None:
            self.app.open_target(row["obs_id"])

    def action_filter(self) -> None:
        """Show the filter input."""
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.query_one(TargetTable).pattern
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter":
            return
        try:
            self.query_one(TargetTable).set_filter(event.value)
            event.input.remove_class("-invalid")
        except re.error:
            event.input.add_class("-invalid")
        self._update_reason()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            event.input.display = bool(event.value)
            self.query_one(TargetTable).focus()

    def action_clear_filter(self) -> None:
        """Remove the filter."""
        box = self.query_one("#filter", Input)
        table = self.query_one(TargetTable)
        if table.pattern or box.display:
            box.value = ""
            box.display = False
            table.set_filter("")
            table.focus()

    def action_sort(self) -> None:
        """Cycle the sort key."""
        label = self.query_one(TargetTable).cycle_sort()
        self.app.tell(f"sorted by {label}", timeout=2)

    def action_recover(self) -> None:
        """Recover the highlighted quality-5 exposure (confirm first)."""
        from sedmtui.screens.confirm import confirm_recover

        row = self.selected()
        if row is None:
            return
        confirm_recover(self.app, row)

    def action_retry_delivery(self) -> None:
        """Queue the night's failed deliveries again, after a confirmation that lists them."""
        from sedmtui.screens.confirm import confirm_retry_delivery

        confirm_retry_delivery(self.app)

    def action_request_report(self) -> None:
        """Ask the engine for the night report and show it."""
        self.app.open_report(request=True)

    def action_view_report(self) -> None:
        """Show the existing report.txt (no request; works read-only)."""
        self.app.open_report(request=False)

    def action_copy(self) -> None:
        """Copy the highlighted object name."""
        row = self.selected()
        if row is not None:
            self.app.copy(clean_object(row.get("object")), "object name")

    def action_quit_console(self) -> None:
        """Quit (after a confirmation: the engine keeps running)."""
        self.app.ask_quit()


__all__ = ["NightScreen", "layout_for", "reason_line"]
