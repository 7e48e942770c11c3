"""Hostile inputs for the reliability tests: raw FITS files written card by card."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from engine.config import load_config

BLOCK = 2880


def card(key: str, value: str) -> str:
    """An 80-character card image ``KEY     = value`` (value written verbatim)."""
    return f"{key:<8}= {value}"[:80].ljust(80)


def header_block(cards: list[str]) -> bytes:
    """Cards plus END, padded to whole 2880-byte blocks (latin-1, so any byte can be planted)."""
    text = "".join(c[:80].ljust(80) for c in cards) + "END".ljust(80)
    raw = text.encode("latin-1", errors="replace")
    return raw + b" " * (-len(raw) % BLOCK)


def science_cards(**values: str) -> list[str]:
    """A minimal on-sky IFU primary header (no data unit); ``values`` override or add cards."""
    base = {
        "SIMPLE": "T", "BITPIX": "16", "NAXIS": "0", "OBJECT": "'ZTF26abc'", "NAME": "'ZTF26abc'",
        "IMGTYPE": "'Science'", "EXPTIME": "300.0", "ADCSPEED": "1.0", "AIRMASS": "1.2", "DOMEST": "'open'",
        "CAM_NAME": "'IFU'",
    }
    base.update(values)
    return [card(k, v) for k, v in base.items()]


def write_raw(path: Path, cards: list[str] | None = None, extra: bytes = b"", **values: str) -> Path:
    """Write a raw frame made of ``cards`` (default :func:`science_cards` with ``values``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header_block(cards if cards is not None else science_cards(**values)) + extra)
    return path


def engine_config(raw, redux, **engine):
    """Ingest-only, in-process engine settings with a short stability wait."""
    env = {"SEDMTUI_ENGINE_STAGES": "none", "SEDMTUI_ENGINE_WORKERS": "1", "SEDMTUI_WATCH_STABLE_S": "0.2"}
    env.update({f"SEDMTUI_ENGINE_{k.upper()}": str(v) for k, v in engine.items()})
    return load_config(None, env=env, overrides={"paths": {"raw_root": str(raw), "redux_root": str(redux)}})


def rows(db, sql: str, params=()) -> list[dict]:
    """Query a database with a fresh connection."""
    with sqlite3.connect(db) as c:
        c.row_factory = sqlite3.Row
        return [dict(r) for r in c.execute(sql, list(params)).fetchall()]


def descendants(pid: int) -> set[int]:
    """Process ids descending from ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
