"""The event log pane: recent engine events, newest at the bottom."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

from engine.state.reader import Event
from sedmtui.safe import clean

KIND_STYLES = {"progress": "grey50", "frame": "grey50", "engine": "grey62", "extraction": "default",
               "request": "cyan", "report": "cyan", "calibration": "magenta", "observation": "grey70",
               "frame_failed": "#ffaf00", "night": "default"}
LEVEL_STYLES = {"warning": "#ffaf00", "error": "bold red"}


def event_line(e: Event) -> Text:
    """One log line: UT time, exposure and message (cleaned: event text is not the console's)."""
    t = Text(no_wrap=True, overflow="ellipsis")
    obs_id = clean(e.obs_id)
    t.append(f"{clean(e.ts)[11:19]} ", style="grey50")
    t.append(f"{obs_id.ljust(8)} ", style="bold" if e.kind == "extraction" else "grey62")
    msg = clean(e.message or e.kind)
    if obs_id and msg.startswith(obs_id):
        msg = msg[len(obs_id):].lstrip(" :")
    t.append(msg, style=LEVEL_STYLES.get(e.level) or KIND_STYLES.get(e.kind, "default"))
    return t


class EventLog(RichLog):
    """A bounded log of events (no markup, no wrapping, newest last)."""

    DEFAULT_CSS = """
    EventLog {
        height: 1fr;
        scrollbar-size-vertical: 1;
    }
    """

    def __init__(self, *, id: str | None = None, max_lines: int = 500) -> None:
        super().__init__(id=id, max_lines=max_lines, wrap=False, markup=False, highlight=False, auto_scroll=True)

    def add_events(self, events: list[Event]) -> None:
        """Append events."""
        for e in events:
            self.write(event_line(e))
