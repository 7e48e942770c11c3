"""Where a batch stands, for a person at a terminal: progress lines (or a bar) and the summary table."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from engine.state.writer import StateWriter


@dataclass
class NightStatus:
    """One night of a batch, from the state database."""

    night: str
    calibration: str = "waiting"
    source_night: str = ""
    done: int = 0
    failed: int = 0
    waiting: int = 0
    reducing: int = 0
    quality: dict[int, int] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        """Calibration settled and no exposure waiting or being reduced."""
        return self.calibration in ("ok", "fallback", "failed") and not (self.waiting or self.reducing)

    @property
    def calibration_text(self) -> str:
        """``ok``, ``fallback <- NIGHT``, ``failed`` or where it is."""
        return f"fallback <- {self.source_night}" if self.calibration == "fallback" else self.calibration


def night_status(writer: StateWriter, nights: list[str]) -> list[NightStatus]:
    """The status of every night of a batch.

    Parameters
    ----------
    writer : StateWriter
        A connection to the state database.
    nights : list of str
        The batch's nights.
    """
    out = []
    for night in nights:
        st = NightStatus(night)
        row = writer.one("SELECT calib_status FROM nights WHERE night=?", [night])
        st.calibration = (row or {}).get("calib_status") or "waiting"
        if st.calibration == "fallback":
            src = writer.one("SELECT source_night FROM calibrations WHERE night=? AND status='fallback' "
                             "ORDER BY id DESC LIMIT 1", [night])
            st.source_night = (src or {}).get("source_night") or "?"
        for r in writer.all("SELECT state, count(*) AS n FROM observations WHERE night=? GROUP BY state", [night]):
            if r["state"] in ("done", "failed", "waiting", "reducing"):
                setattr(st, r["state"], r["n"])
        for r in writer.all("SELECT quality, count(*) AS n FROM extractions WHERE night=? AND status='current' "
                            "GROUP BY quality", [night]):
            if r["quality"] is not None:
                st.quality[int(r["quality"])] = r["n"]
        out.append(st)
    return out


def _hms(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """Prints a batch's progress: a bar on a terminal, one line per change (at most every
    ``interval_s``) otherwise.

    Parameters
    ----------
    out : file
        Where to print (default ``sys.stdout``).
    interval_s : float
        Least time between two plain lines [s].
    tty : bool, optional
        Force the bar (True) or the lines (False); default: ``out.isatty()``.
    """

    def __init__(self, out: TextIO | None = None, interval_s: float = 5.0, tty: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.interval_s = interval_s
        self.tty = self.out.isatty() if tty is None else tty
        self.t0 = time.monotonic()
        self.done0: int | None = None
        self._last_line = ""
        self._last_time = 0.0

    def line(self, statuses: list[NightStatus], running: int) -> str:
        """The progress text: nights and exposures done/failed, rate, ETA."""
        n_done = sum(s.finished for s in statuses)
        done = sum(s.done for s in statuses)
        failed = sum(s.failed for s in statuses)
        left = sum(s.waiting + s.reducing for s in statuses)
        if self.done0 is None:
            self.done0 = done + failed
        elapsed = time.monotonic() - self.t0
        new = done + failed - self.done0
        rate = new / elapsed * 3600.0 if elapsed > 0 and new else 0.0
        eta = f"ETA {_hms(left / rate * 3600.0)}" if rate > 0 and left else ("ETA -" if left else "")
        return (f"nights {n_done}/{len(statuses)} · exposures {done} done, {failed} failed, {left} to go "
                f"({running} running) · {rate:.0f} exp/h · {_hms(elapsed)} {eta}").rstrip()

    def update(self, statuses: list[NightStatus], running: int, *, force: bool = False) -> None:
        """Print the progress if it changed (a bar redraws in place)."""
        text = self.line(statuses, running)
        now = time.monotonic()
        if self.tty:
            total = sum(s.done + s.failed + s.waiting + s.reducing for s in statuses) or 1
            frac = sum(s.done + s.failed for s in statuses) / total
            bar = "█" * int(24 * frac) + "·" * (24 - int(24 * frac))
            self.out.write(f"\r{bar} {100 * frac:3.0f}% {text}\x1b[K")
            self.out.flush()
            return
        key = text.split(" · ")[:2]
        if force or (str(key) != self._last_line and now - self._last_time >= self.interval_s):
            stamp = time.strftime("%H:%M:%S")
            print(f"[{stamp}] {text}", file=self.out, flush=True)
            self._last_line, self._last_time = str(key), now

    def finish(self) -> None:
        """End the bar's line."""
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def summary_table(statuses: list[NightStatus], kept: dict[str, int] | None = None) -> str:
    """Per night: calibration, exposures done/failed/left, quality counts Q0-Q5; then the totals.

    Parameters
    ----------
    statuses : list of NightStatus
        The batch's nights.
    kept : dict, optional
        What the run kept from earlier runs and what it reduced again (``invalidate``'s counts).
    """
    head = f"{'night':<9} {'calibration':<20} {'done':>5} {'failed':>6} {'left':>5}  " + " ".join(
        f"Q{q:<3}" for q in range(6))
    lines = [head, "-" * len(head)]
    tot = {"done": 0, "failed": 0, "left": 0}
    qtot = dict.fromkeys(range(6), 0)
    for s in statuses:
        left = s.waiting + s.reducing
        q = " ".join(f"{s.quality.get(i, 0):<4}" for i in range(6))
        lines.append(f"{s.night:<9} {s.calibration_text:<20} {s.done:>5} {s.failed:>6} {left:>5}  {q}".rstrip())
        tot["done"] += s.done
        tot["failed"] += s.failed
        tot["left"] += left
        for i in range(6):
            qtot[i] += s.quality.get(i, 0)
    lines.append("-" * len(head))
    q = " ".join(f"{qtot[i]:<4}" for i in range(6))
    lines.append(f"{'total':<9} {f'{len(statuses)} nights':<20} {tot['done']:>5} {tot['failed']:>6} {tot['left']:>5}  {q}"
                 .rstrip())
    if kept:
        lines.append(f"kept from earlier runs (same inputs and configuration): {kept.get('calibrations_kept', 0)} "
                     f"calibration(s), {kept.get('exposures_kept', 0)} exposure(s); reduced again: "
                     f"{kept.get('calibrations_redone', 0)} calibration(s), {kept.get('exposures_redone', 0)} exposure(s)")
    return "\n".join(lines)


__all__ = ["NightStatus", "Progress", "night_status", "summary_table"]
