"""Messages of the console (one place, as toolong's ``messages.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from sedmtui.data import TargetData
from sedmtui.state import Delta


@dataclass
class StateChanged(Message):
    """The tail thread saw commits: new events and the rows they touched."""

    delta: Delta


@dataclass
class TargetLoaded(Message):
    """Products of an exposure were read (by a thread worker)."""

    obs_id: str
    data: TargetData | None
    purpose: str = "target"
    """``target`` (the target screen) or ``preview`` (the night screen's preview pane)."""
    seq: int = 0
    """Load number: a screen ignores the answers to loads it no longer waits for."""
    error: str = ""
    """Why ``data`` is None when the exposure exists but could not be read."""


__all__ = ["StateChanged", "TargetLoaded"]
