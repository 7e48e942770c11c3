"""``?``: the keys that work on the current screen, with their binding ids (for the keymap)."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static


def live_keys(screen: Screen) -> list[tuple[str, str, str, bool]]:
    """``(keys, description, binding id, enabled)`` of the bindings active on ``screen``.

    Keys hidden by ``check_action`` (e.g. every write key in read-only mode) are not listed.
    """
    seen: dict[tuple[str, str], list[str]] = {}
    info: dict[tuple[str, str], tuple[str, bool]] = {}
    for key, active in screen.active_bindings.items():
        b = active.binding
        if not b.id:  # built-in navigation of focused widgets (arrows, page keys): see the notes
            continue
        ident = (b.action, b.description or b.action)
        seen.setdefault(ident, []).append(screen.app.get_key_display(b) if b.key == key else key)
        info[ident] = (b.id or "", active.enabled)
    rows = []
    for (action, desc), keys in seen.items():
        rows.append((" ".join(dict.fromkeys(keys)), desc, info[(action, desc)][0], info[(action, desc)][1]))
    return rows


class HelpScreen(ModalScreen[None]):
    """The live keys of the screen underneath."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 60%;
    }
    HelpScreen > VerticalScroll {
        width: 90;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    """
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close", id="help.close")]

    def __init__(self, under: Screen, *, keymap_source: str | None = None, readonly: bool = False) -> None:
        super().__init__()
        self.under = under
        self.keymap_source = keymap_source
        self.readonly = readonly

    def compose(self) -> ComposeResult:
        table = Table(title=f"keys: {type(self.under).__name__.replace('Screen', '').lower()} screen", expand=True,
                      show_edge=False, title_style="bold")
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("does")
        table.add_column("binding id", style="grey50", no_wrap=True)
        for keys, desc, ident, enabled in live_keys(self.under):
            table.add_row(keys, desc if enabled else f"[grey50]{desc} (not now)[/]", ident)
        notes = [
            "Remap keys in [console.keymap] of the configuration file"
            + (f" ({self.keymap_source})" if self.keymap_source else " (sedmtui.toml, --config or $SEDMTUI_CONFIG)")
            + ', e.g.  "target.accept" = "A".',
            "Arrows, page up/down, home/end move in tables and lists; tab cycles the panes.",
            "ctrl+q quits from anywhere; ctrl+p or : opens the command palette (go to a target).",
        ]
        if self.readonly:
            notes.insert(0, "[b]read-only console[/b]: keys that would file a request are hidden.")
        with VerticalScroll():
            yield Static(table)
            yield Static("\n".join(notes), markup=True)

    async def action_dismiss(self, result=None) -> None:
        self.dismiss(None)
