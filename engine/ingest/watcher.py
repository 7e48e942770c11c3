"""Watching the raw root: watchfiles events nominate files, a sweep decides they are complete.

Events are only hints (a file written in chunks produces one event per chunk; events are
lost on network mounts): a file is promoted when its size and mtime have been stable for
``stable_s`` and its size matches the FITS size arithmetic of its headers. A full rescan at
start and every ``rescan_s`` catches anything the events missed.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.io.inputs import Refusal, is_night, parse_night

log = logging.getLogger(__name__)

NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "lustre", "gpfs"}
NIGHT_DIR = re.compile(r"^\d{8}$")
RAW_FILE = re.compile(r"^(ifu|rc)\d{8}_\d{2}_\d{2}_\d{2}\.fits$")


def is_raw_frame(path: str | os.PathLike) -> bool:
    """True for ``ifuYYYYMMDD_HH_MM_SS.fits`` / ``rc...fits`` directly inside a night directory."""
    p = Path(path)
    return bool(RAW_FILE.match(p.name)) and is_night(p.parent.name)


def filesystem_type(path: str | os.PathLike) -> str:
    """Filesystem type of the mount holding ``path`` (from /proc/mounts; '' if unknown)."""
    try:
        target = os.path.realpath(path)
        best, fstype = "", ""
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")):
                    if len(parts[1]) > len(best):
                        best, fstype = parts[1], parts[2]
        return fstype
    except OSError:
        return ""


def resolve_polling(setting: str, raw_root: str | os.PathLike) -> bool:
    """``auto`` polls on network filesystems (inotify does not see other hosts' writes)."""
    s = str(setting).lower()
    if s == "true":
        return True
    if s == "false":
        return False
    return filesystem_type(raw_root) in NETWORK_FS


def scan_raw(raw_root: str | os.PathLike, nights: Iterable[str] | None = None) -> list[Path]:
    """Every raw frame under ``raw_root/YYYYMMDD/`` (optionally only some nights), sorted.

    Directories whose name is not a real date (``20261399``) are skipped; see
    :func:`ignored_night_dirs` for them and their reasons.
    """
    root = Path(raw_root)
    out: list[Path] = []
    if not root.is_dir():
        return out
    wanted = set(nights) if nights is not None else None
    for d in root.iterdir():
        if d.is_dir() and is_night(d.name) and (wanted is None or d.name in wanted):
            try:
                with os.scandir(d) as it:
                    out.extend(Path(e.path) for e in it if e.is_file() and RAW_FILE.match(e.name))
            except OSError as exc:
                log.warning("cannot list %s: %s", d, exc)
    return sorted(out)


def ignored_night_dirs(raw_root: str | os.PathLike) -> dict[str, str]:
    """``{name: reason}`` of directories under the raw root that look like nights but are not."""
    root = Path(raw_root)
    out: dict[str, str] = {}
    try:
        entries = list(root.iterdir()) if root.is_dir() else []
    except OSError:
        return out
    for d in entries:
        if NIGHT_DIR.match(d.name) and d.is_dir():
            night = parse_night(d.name)
            if isinstance(night, Refusal):
                out[d.name] = night.reason
    return out


class EventWatcher:
    """A daemon thread feeding watchfiles events into a thread-safe set of candidate paths."""

    def __init__(self, raw_root: str | os.PathLike, *, force_polling: bool, poll_delay_ms: int) -> None:
        self.raw_root = Path(raw_root)
        self.force_polling = force_polling
        self.poll_delay_ms = poll_delay_ms
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._paths: set[Path] = set()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> None:
        """Start watching (returns at once)."""
        self.raw_root.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="raw-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from watchfiles import watch

        try:
            for changes in watch(
                self.raw_root,
                watch_filter=lambda _change, path: is_raw_frame(path),
                stop_event=self._stop,
                force_polling=self.force_polling,
                poll_delay_ms=self.poll_delay_ms,
                debounce=400,
                step=50,
                rust_timeout=1000,
                yield_on_timeout=False,
                raise_interrupt=False,
            ):
                with self._lock:
                    self._paths.update(Path(p) for _c, p in changes)
        except Exception as exc:  # noqa: BLE001 - the rescan still finds files
            self.error = f"file watcher stopped ({exc}); relying on periodic rescans"
            log.warning(self.error)

    def drain(self) -> set[Path]:
        """Paths nominated since the last call."""
        with self._lock:
            out, self._paths = self._paths, set()
        return out

    def stop(self) -> None:
        """Stop the thread (within ~1 s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3.0)


@dataclass
class Candidate:
    """A file seen but not yet promoted."""

    size: int
    mtime: float
    stable_since: float
    attempts: int = 0
    next_try: float = 0.0
    recorded_error: str | None = None


@dataclass
class CompletenessSweep:
    """Tracks candidates until their size and mtime are stable; returns the ones to read."""

    stable_s: float
    candidates: dict[Path, Candidate] = field(default_factory=dict)

    def nominate(self, paths: Iterable[Path], now: float | None = None) -> None:
        """Add or refresh candidates."""
        now = time.time() if now is None else now
        for p in paths:
            try:
                st = p.stat()
            except OSError:
                self.candidates.pop(p, None)
                continue
            old = self.candidates.get(p)
            if old is None:
                self.candidates[p] = Candidate(st.st_size, st.st_mtime, now)
            elif (old.size, old.mtime) != (st.st_size, st.st_mtime):
                old.size, old.mtime, old.stable_since = st.st_size, st.st_mtime, now
                old.next_try = 0.0  # new bytes: try again once stable, not after the back-off

    def ready(self, now: float | None = None, *, force: bool = False) -> list[Path]:
        """Candidates stable for ``stable_s`` (all stable-looking ones with ``force``)."""
        now = time.time() if now is None else now
        out = []
        for p, c in list(self.candidates.items()):
            try:
                st = p.stat()
            except OSError:
                del self.candidates[p]
                continue
            if (st.st_size, st.st_mtime) != (c.size, c.mtime):
                c.size, c.mtime, c.stable_since = st.st_size, st.st_mtime, now
                c.next_try = 0.0  # the file changed since the failed attempt: retry once stable
                continue
            if now < c.next_try:
                continue
            if force or now - c.stable_since >= self.stable_s:
                out.append(p)
        return sorted(out)

    def done(self, path: Path) -> None:
        """Forget a promoted (or abandoned) file."""
        self.candidates.pop(path, None)

    def retry_later(self, path: Path, delay_s: float, error: str, now: float | None = None) -> Candidate:
        """Keep a bad file for another attempt after ``delay_s``."""
        now = time.time() if now is None else now
        c = self.candidates[path]
        c.attempts += 1
        c.next_try = now + delay_s
        c.recorded_error = error
        return c
