"""The night header: UT night and clock, engine status, calibration health, pause badge."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from sedmtui.safe import clean

SEVERITY_STYLES = {"ok": "green", "warn": "bold #ffaf00", "bad": "bold red", "dim": "grey50", "busy": "yellow"}
"""Rich styles of the severity tags used across the console."""


def header_text(night: str, clock: str, engine: dict, calibration: dict, *, paused: bool = False,
                pending: int = 0, readonly: bool = False, warnings: dict | None = None) -> Text:
    """The header line as Rich text (pure: tested without an app).

    ``warnings`` (:func:`sedmtui.state.night_warnings`) come before the calibration details,
    so a narrow terminal cuts the details, not the warning.
    """
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" SEDM ", style="bold reverse")
    t.append(f" {night[:4]}-{night[4:6]}-{night[6:]} · UT {clock} · ")
    if engine.get("alive"):
        t.append("engine ● ", style="bold green")
        t.append(clean(engine.get("activity")) or "idle")
    elif engine.get("status") == "stopped":
        t.append("engine ○ stopped", style="grey50")
    elif engine.get("status") in (None, "absent"):
        t.append("engine ○ none", style="grey50")
    else:
        t.append("engine ✖ STALE", style="bold red")
        if engine.get("activity"):
            t.append(f" (last: {clean(engine['activity'])})", style="grey50")
    t.append(f" · queue {engine.get('queue', 0)} · ")
    n = (warnings or {}).get("no_templates")
    if n:
        t.append(f"⚠ no SNID templates: {n} unclassified", style=SEVERITY_STYLES["warn"])
        t.append(" · ")
    failed = (warnings or {}).get("delivery_failed")
    if failed:
        t.append(f"⚠ delivery failing: {failed} ({clean(warnings.get('delivery_error'))})", style=SEVERITY_STYLES["bad"])
        t.append(" · ")
    if calibration.get("fallback"):
        t.append(f"⚠ calibration of {clean(calibration.get('source_night'))} in use", style=SEVERITY_STYLES["warn"])
        t.append(" · ")
    _calibration(t, calibration)
    if readonly:
        t.append("  [read-only]", style="bold cyan")
    if paused:
        t.append(f"  ⏸ paused · {pending} new", style="bold reverse #ffaf00")
    return t


def _calibration(t: Text, cal: dict) -> None:
    status = cal.get("status")
    if status in (None, "waiting"):
        t.append("calibration: waiting", style="grey50")
        return
    if status == "running":
        t.append("calibrating…", style="yellow")
        return
    if status in ("failed", "error"):
        t.append("calibration FAILED", style="bold red")
        return
    rms = cal.get("wave_rms")
    if rms is not None:
        t.append(f"λ {rms:.2f} Å ", style=None)
        t.append("✓" if rms < 1.0 else "!", style="green" if rms < 1.0 else SEVERITY_STYLES["warn"])
    if cal.get("nspax"):
        t.append(f" · {cal['nspax']} spx")
    if cal.get("flat_std") is not None:
        ok = cal["flat_std"] < 0.10
        t.append(f" · flat {100 * cal['flat_std']:.1f}% ")
        t.append("✓" if ok else "!", style="green" if ok else SEVERITY_STYLES["warn"])
    std = cal.get("standard")
    if std:
        other = f" ({std['night']})" if std.get("night") and std["night"] != cal.get("night", std["night"]) else ""
        t.append(f" · std {clean(std.get('object')).replace('STD-', '')} {clean(std.get('obs_id'))[:5].replace('_', ':')}"
                 f"{clean(other)}")
    else:
        t.append(" · no standard yet", style=SEVERITY_STYLES["warn"])


class NightHeader(Static):
    """One line; repainted only when its text changes."""

    DEFAULT_CSS = """
    NightHeader {
        height: 1;
        width: 1fr;
        background: $panel;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._plain: str | None = None

    def show(self, text: Text) -> None:
        """Update the header if the text changed."""
        key = text.plain + repr(text.spans)
        if key != self._plain:
            self._plain = key
            self.update(text)
