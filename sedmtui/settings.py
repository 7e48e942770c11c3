"""Console settings: the ``[console]`` table of the configuration file (Textual-free).

The configuration file is the engine's (``--config``, ``$SEDMTUI_CONFIG`` or ``./sedmtui.toml``);
the console reads its own table from it::

    [console]
    poll_s = 0.1           # how often the console looks for engine commits [s]
    stale_s = 30.0         # an engine heartbeat older than this shows the engine as stale [s]

    [console.keymap]       # binding id = "key[,key...]" (ids are listed by `?` in the console)
    "target.accept" = "A"
    "night.filter" = "slash,f"

Every binding of the console has an id (``night.open``, ``target.nudge_left``, ...); the
help screen (``?``) lists the ids of the live keys and the file the keymap was read from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ConfigError


@dataclass(frozen=True)
class ConsoleSettings:
    """The console's options."""

    poll_s: float = 0.1
    """Period of the ``PRAGMA data_version`` poll [s] (about 50 µs each)."""
    stale_s: float = 30.0
    """Heartbeat age after which the engine is shown as stale [s]."""
    keymap: dict[str, str] = field(default_factory=dict)
    """Binding id -> key(s), overriding the defaults."""
    source: str | None = None
    """The file the settings were read from (shown by the help screen)."""


def console_settings(table: dict | None, source: Path | None = None) -> ConsoleSettings:
    """Settings from a ``[console]`` table.

    Raises
    ------
    ConfigError
        Unknown key or a value of the wrong type.
    """
    table = dict(table or {})
    keymap = table.pop("keymap", {}) or {}
    if not isinstance(keymap, dict) or not all(isinstance(v, str) for v in keymap.values()):
        raise ConfigError(f"[console.keymap] in {source} must map binding ids to key strings")
    known = {"poll_s", "stale_s"}
    bad = set(table) - known
    if bad:
        raise ConfigError(f"unknown key(s) {sorted(bad)} in [console] of {source}; known: {sorted(known | {'keymap'})}")
    try:
        values = {k: float(v) for k, v in table.items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[console] values in {source} must be numbers: {exc}") from exc
    return ConsoleSettings(keymap={str(k): v for k, v in keymap.items()},
                           source=str(source) if source else None, **values)


__all__ = ["ConsoleSettings", "console_settings"]
