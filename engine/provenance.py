"""Provenance of every product: engine version, inputs with checksums, configuration, steps.

Written explicitly by the pipeline (never by magic): header cards ``ENGVER``, ``ENGDATE``,
``SCHEMA``/``SCHVER``, one ``S_<STEP>`` status card per step (``COMPLETE``, ``SKIPPED`` or ``FALLBACK``, the comment
saying why), and a ``PROVENANCE`` binary-table
extension with one row per input file (name, SHA-256) and one ``CONFIG`` card holding the
resolved configuration as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits
from astropy.table import Table

from engine import __version__
from engine.timeutil import utc_now_iso

COMPLETE, SKIPPED, FALLBACK = "COMPLETE", "SKIPPED", "FALLBACK"
"""What a step did: ran, did not run (the card's comment says why), ran on a substitute input."""
STATUSES = (COMPLETE, SKIPPED, FALLBACK)


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Provenance:
    """What made a product."""

    schema: str
    version: int
    inputs: list[str] = field(default_factory=list)
    checksums: dict[str, str] = field(default_factory=dict)
    steps: dict[str, str] = field(default_factory=dict)
    """``{step: status}``: ``COMPLETE``, ``SKIPPED`` or ``FALLBACK``."""
    config: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)
    """``{step: reason}`` of the steps that were skipped or fell back (the card's comment)."""

    def record(self, step: str, status: str = COMPLETE, why: str = "") -> None:
        """Record what a step did: ``COMPLETE``, ``SKIPPED`` (``why``) or ``FALLBACK`` (``why``)."""
        if status not in STATUSES:
            raise ValueError(f"step status {status!r} is not one of {STATUSES}")
        self.steps[step] = status
        if why:
            self.why[step] = why

    def add_input(self, path: str | os.PathLike, checksum: str | None = None) -> None:
        """Record an input file (its checksum is computed unless given)."""
        p = str(path)
        if p not in self.inputs:
            self.inputs.append(p)
        self.checksums[p] = checksum or (sha256(p) if os.path.exists(p) else "missing")

    def stamp(self, header: fits.Header) -> None:
        """Write the provenance cards into a header."""
        header["SCHEMA"] = (self.schema, "product schema")
        header["SCHVER"] = (self.version, "product schema version")
        header["ENGVER"] = (__version__, "sedmtui engine version")
        header["ENGDATE"] = (utc_now_iso(), "product written (UTC)")
        for step, status in self.steps.items():
            header[f"S_{step[:6].upper()}"] = (status, self.why.get(step) or f"step {step}")
        for key, value in self.extra.items():
            header[key] = value

    def hdu(self) -> fits.BinTableHDU:
        """The ``PROVENANCE`` extension."""
        names = [Path(p).name for p in self.inputs] or [""]
        sums = [self.checksums.get(p, "") for p in self.inputs] or [""]
        paths = list(self.inputs) or [""]
        hdu = fits.table_to_hdu(Table({"file": names, "sha256": sums, "path": paths}))
        hdu.name = "PROVENANCE"
        hdu.header["CONFIG"] = json.dumps(self.config, sort_keys=True, default=str)[:60000]
        return hdu


def read_provenance(path: str | os.PathLike) -> dict:
    """Schema, version and inputs of a product (for checks and tests)."""
    with fits.open(path) as hdul:
        h = hdul[0].header
        inputs = []
        if "PROVENANCE" in hdul:
            t = Table(hdul["PROVENANCE"].data)
            inputs = [dict(file=str(r["file"]), sha256=str(r["sha256"])) for r in t]
        return {"schema": h.get("SCHEMA"), "version": h.get("SCHVER"), "engine": h.get("ENGVER"), "inputs": inputs}
