"""Replay a raw night into a watched directory in time order, as the telescope would write it.

The demo uses it to make a synthetic night *live*: calibrations first, then each exposure
(its guider frames, then the IFU frame) every couple of seconds. Files are hard-linked (or
copied) under a hidden temporary name and renamed into place, so the engine's watcher only
ever sees complete files. Textual-free.
"""

from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FeedStep:
    """Files that appear together."""

    label: str
    files: tuple[Path, ...]
    """Source files, relative to the source raw root (``YYYYMMDD/name.fits``)."""


def _kind(path: Path) -> str:
    """Planned kind of a raw IFU frame (``bias``, ``dome``, ``arc``, ``standard``, ``science``…)."""
    from engine.ingest.planner import classify_frame
    from engine.io.fitsio import read_header

    return classify_frame(read_header(path), path.name).kind


def feed_plan(src_root: Path, night: str) -> list[FeedStep]:
    """Steps replaying the raw frames of ``night`` (and the previous day's calibrations).

    The first step holds every frame before the night's first standard or science exposure
    (biases, domes, arcs...); then one step per exposure: its guider (``rc``) frames, then the
    IFU frame; frames after the last exposure come in a final step.
    """
    src_root = Path(src_root)
    files = sorted(p.relative_to(src_root) for d in sorted(src_root.iterdir()) if d.is_dir() and d.name.isdigit()
                   and d.name <= night for p in d.glob("*.fits"))
    ifu = [f for f in files if f.name.startswith("ifu")]
    exposures = [f for f in ifu if f.parent.name == night and _kind(src_root / f) in ("standard", "science")]
    if not exposures:
        return [FeedStep("all frames", tuple(files))]
    first = exposures[0]
    steps = [FeedStep("calibrations", tuple(f for f in files if (f.parent.name, f.name[-13:]) < (night, first.name[-13:])
                                            and f.name.startswith("ifu")))]
    stamp = lambda f: (f.parent.name, f.name[-13:])
    for i, exp in enumerate(exposures):
        nxt = stamp(exposures[i + 1]) if i + 1 < len(exposures) else (night, "99")
        guider = [f for f in files if f.name.startswith("rc") and stamp(exp) <= stamp(f) < nxt]
        others = [f for f in ifu if f not in exposures and stamp(exp) < stamp(f) < nxt]
        steps.append(FeedStep(f"exposure {exp.name[-13:-5]}", tuple(guider + [exp] + others)))
    done = {f for s in steps for f in s.files}
    rest = tuple(f for f in files if f not in done)
    if rest:
        steps.append(FeedStep("remaining frames", rest))
    return steps


def place(src: Path, dst: Path) -> None:
    """Make ``dst`` appear complete at once: hard link (or copy) to a hidden name, then rename."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and os.path.samefile(src, dst):
        return
    tmp = dst.with_name(f".{dst.name}.part")
    try:
        if tmp.exists():
            tmp.unlink()
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


class Feeder:
    """Replays a plan into ``dst_root`` from a background thread.

    Parameters
    ----------
    src_root, dst_root : Path
        Source raw root (the synthetic night) and the watched raw root.
    steps : list of FeedStep
        What to place, in order.
    interval_s : float
        Wait between exposures.
    on_step : callable, optional
        Called with each step after it is placed (progress messages).
    """

    def __init__(self, src_root: Path, dst_root: Path, steps: list[FeedStep], *, interval_s: float = 2.0,
                 on_step=None) -> None:
        self.src_root, self.dst_root = Path(src_root), Path(dst_root)
        self.steps = list(steps)
        self.interval_s = interval_s
        self.on_step = on_step
        self.stop_event = threading.Event()
        self.placed = 0
        self._thread: threading.Thread | None = None

    def place_step(self, step: FeedStep) -> None:
        """Place one step's files now."""
        for rel in step.files:
            place(self.src_root / rel, self.dst_root / rel)
        self.placed += 1
        if self.on_step is not None:
            self.on_step(step)

    def run(self, start: int = 0) -> None:
        """Place steps ``start..`` with ``interval_s`` between them (returns when done or stopped)."""
        for i, step in enumerate(self.steps[start:]):
            if i and self.stop_event.wait(self.interval_s):
                return
            self.place_step(step)

    def start(self, start: int = 0) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self.run, args=(start,), name="feeder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop placing files."""
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


__all__ = ["FeedStep", "Feeder", "feed_plan", "place"]
