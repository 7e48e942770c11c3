"""What every console screen shares: the read-only guard and the delta hook."""

from __future__ import annotations

from textual.screen import Screen

from sedmtui.readonly import WRITE_ACTIONS
from sedmtui.state import Delta


class ConsoleScreen(Screen):
    """A screen of the console. Subclasses override :meth:`apply_delta`."""

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide every key that would write when the console is read-only."""
        if getattr(self.app, "readonly", False) and action in WRITE_ACTIONS:
            return False
        return True

    def apply_delta(self, delta: Delta) -> None:
        """React to new engine commits (called by the App, also while hidden)."""

    def on_screen_resume(self) -> None:
        refresh = getattr(self.app, "refresh_headers", None)
        if refresh is not None:
            refresh()
