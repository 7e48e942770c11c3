"""Compare two reductions of the same raw night: products and state rows.

``python benchmarks/compare_nights.py A B [--night YYYYMMDD]`` where ``A`` and ``B`` are two
reduction roots (each holding ``sedm.db`` and one directory per night) made from the same raw
root, typically before and after a refactoring. It prints every difference and exits 1 if
there is one.

What may legitimately differ, and is ignored:

* header cards that hold a date or the engine version (``ENGDATE``, ``ENGVER``, ``EXTDATE``,
  ``DATE``...), and the reduction root's own path wherever it appears (``A`` reads as ``B``);
* the ``PROVENANCE`` table's ``path`` and ``sha256`` of files the reduction wrote itself (they
  hold dates); raw inputs' checksums are compared;
* state columns that are clocks or durations (``created``, ``updated``, ``ts``, ``wall_s``,
  ``timing``, the ``*_s`` timings of the calibration figures) and the durations quoted in event
  messages.

The ``CONFIG`` card of ``PROVENANCE`` (the resolved configuration as JSON) is compared as a
flattened ``{key: value}`` mapping; with ``--config-renames OLD=NEW,...`` keys that moved are
matched, and keys present on one side only are listed apart (``--allow-new-config-keys`` lets
settings that only the newer side knows pass, when they hold the defaults the older side used
implicitly).
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits

DATE_CARDS = {"ENGDATE", "ENGVER", "EXTDATE", "DATE", "DATE-RED", "IRAF-TLM"}
"""Header cards that legitimately differ between two runs."""
TIMING_CARDS = {"BIASES_S", "MASTERS_", "TRACES_S", "WAVESOL_", "FLAT_S", "WALL_S", "MASTERS_S", "WAVESOL_S"}
"""Calibration products' step timings (``stats`` cards, truncated and full HIERARCH names) [s]."""
CLOCK_COLUMNS = {"created", "updated", "ts", "claimed_at", "finished_at", "final_report_at", "wall_s", "mtime",
                 "next_retry"}
"""State columns that are clocks or durations."""
TABLES = ("nights", "frames", "calibrations", "observations", "extractions", "classifications", "requests", "events")
DURATION = re.compile(r"\d+(\.\d+)? ?s\b")
PROCESS = re.compile(r"\([\w.-]+:\d+,")
"""``(host:pid,`` in the engine's start event."""


def _flatten(d, prefix: str = "") -> dict:
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


class Comparison:
    """Collects the differences between reduction roots ``a`` and ``b``."""

    def __init__(self, a: Path, b: Path, renames: dict[str, str], allow_new_keys: bool,
                 partial: bool = False) -> None:
        self.a, self.b = a.resolve(), b.resolve()
        self.partial = partial
        self.renames = renames
        self.allow_new_keys = allow_new_keys
        self.diffs: list[str] = []
        self.config_notes: set[str] = set()
        self.counts = {"files": 0, "hdus": 0, "cards": 0, "rows": 0}

    def same_text(self, x, y) -> bool:
        """Equal once root ``a`` reads as root ``b``."""
        if isinstance(x, str) and isinstance(y, str):
            return x.replace(str(self.a), str(self.b)) == y
        return x == y

    # ------------------------------------------------------------------ products
    def products(self, night: str) -> None:
        da, db = self.a / night, self.b / night
        fa = {p.relative_to(da).as_posix() for p in da.rglob("*") if p.is_file()}
        fb = {p.relative_to(db).as_posix() for p in db.rglob("*") if p.is_file()}
        if not self.partial:
            for name in sorted(fa ^ fb):
                self.diffs.append(f"{night}/{name}: only in {'A' if name in fa else 'B'}")
        for name in sorted(fa & fb):
            self.counts["files"] += 1
            pa, pb = da / name, db / name
            if name.endswith(".fits"):
                self.fits(pa, pb, f"{night}/{name}")
            elif name.endswith(".txt"):
                self.text(pa, pb, f"{night}/{name}")
            elif pa.read_bytes() != pb.read_bytes():
                self.diffs.append(f"{night}/{name}: bytes differ")

    def text(self, pa: Path, pb: Path, where: str) -> None:
        def lines(p: Path) -> list[str]:
            keep = []
            for ln in p.read_text().splitlines():
                key = ln[2:].split(":", 1)[0] if ln.startswith("# ") else ""
                if key not in DATE_CARDS and not re.match(r"^(generated|written)\b", ln, re.I):
                    keep.append(ln)
            return keep

        la, lb = lines(pa), lines(pb)
        if len(la) != len(lb):
            self.diffs.append(f"{where}: {len(la)} vs {len(lb)} lines")
            return
        for i, (x, y) in enumerate(zip(la, lb, strict=True)):
            if not self.same_text(x, y):
                self.diffs.append(f"{where}: line {i + 1}: {x[:100]!r} vs {y[:100]!r}")
                return

    def fits(self, pa: Path, pb: Path, where: str) -> None:
        with fits.open(pa) as ha, fits.open(pb) as hb:
            na, nb = [h.name for h in ha], [h.name for h in hb]
            if na != nb:
                self.diffs.append(f"{where}: HDUs {na} vs {nb}")
                return
            for x, y in zip(ha, hb, strict=True):
                self.counts["hdus"] += 1
                self.header(x.header, y.header, f"{where}[{x.name}]")
                if x.name == "PROVENANCE":
                    self.provenance(x, y, f"{where}[PROVENANCE]")
                else:
                    self.data(x.data, y.data, f"{where}[{x.name}]")

    def header(self, ha: fits.Header, hb: fits.Header, where: str) -> None:
        skip = DATE_CARDS | TIMING_CARDS | {"CONFIG"}
        if where.endswith("[PROVENANCE]"):  # the path column's width follows the root's length
            skip = skip | {"NAXIS1"} | {k for k in ha.keys() if k.startswith("TFORM")}
        ka = [k for k in ha.keys() if k not in skip]
        kb = [k for k in hb.keys() if k not in skip]
        if ka != kb:
            only_a, only_b = sorted(set(ka) - set(kb)), sorted(set(kb) - set(ka))
            self.diffs.append(f"{where}: cards only in A {only_a}, only in B {only_b}"
                              + ("" if only_a or only_b else " (order differs)"))
        for k in ka:
            if k not in hb:
                continue
            self.counts["cards"] += 1
            va, vb = ha[k], hb[k]
            both_nan = isinstance(va, float) and isinstance(vb, float) and np.isnan(va) and np.isnan(vb)
            if not both_nan and not self.same_text(va, vb):
                self.diffs.append(f"{where}: {k} = {va!r} vs {vb!r}")
        if "CONFIG" in ha or "CONFIG" in hb:
            self.config(ha.get("CONFIG", "{}"), hb.get("CONFIG", "{}"), where)

    def config(self, ca: str, cb: str, where: str) -> None:
        fa, fb = _flatten(json.loads(ca)), _flatten(json.loads(cb))
        fa = {self.renames.get(k, k): v for k, v in fa.items()}
        for k in sorted(set(fa) | set(fb)):
            if k not in fb:
                self.diffs.append(f"{where}: CONFIG {k} only in A")
            elif k not in fa:
                self.config_notes.add(k)
                if not self.allow_new_keys:
                    self.diffs.append(f"{where}: CONFIG {k} only in B")
            else:
                va, vb = fa[k], fb[k]
                if isinstance(va, list) and isinstance(vb, str):  # a list now spelled as a comma string
                    va = ",".join(map(str, va))
                if not self.same_text(va, vb) and not (va in ("", [], None) and vb in ("", [], None)):
                    self.diffs.append(f"{where}: CONFIG {k} = {va!r} vs {vb!r}")

    def provenance(self, x, y, where: str) -> None:
        ta, tb = x.data, y.data
        if list(ta["file"]) != list(tb["file"]):
            self.diffs.append(f"{where}: inputs {list(ta['file'])} vs {list(tb['file'])}")
            return
        for pa, sa, sb in zip(ta["path"], ta["sha256"], tb["sha256"], strict=True):
            if not str(pa).startswith(str(self.a)) and sa != sb:
                self.diffs.append(f"{where}: checksum of raw input {pa} differs")

    def data(self, a, b, where: str) -> None:
        if a is None or b is None:
            if (a is None) != (b is None):
                self.diffs.append(f"{where}: data present on one side only")
            return
        if isinstance(a, fits.FITS_rec):
            if a.columns.names != b.columns.names:
                self.diffs.append(f"{where}: columns {a.columns.names} vs {b.columns.names}")
                return
            for name in a.columns.names:
                self.array(np.asarray(a[name]), np.asarray(b[name]), f"{where}.{name}")
        else:
            self.array(np.asarray(a), np.asarray(b), where)

    def array(self, a: np.ndarray, b: np.ndarray, where: str) -> None:
        if a.shape != b.shape or a.dtype != b.dtype:
            self.diffs.append(f"{where}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}")
        elif a.dtype.kind in "fc":
            if not np.array_equal(a, b, equal_nan=True):
                n = int(np.count_nonzero(~((a == b) | (np.isnan(a) & np.isnan(b)))))
                self.diffs.append(f"{where}: {n} of {a.size} values differ")
        elif a.dtype.kind in "SU" or a.dtype.kind == "O":
            if any(not self.same_text(str(u), str(v)) for u, v in zip(a.ravel(), b.ravel(), strict=True)):
                self.diffs.append(f"{where}: text values differ")
        elif not np.array_equal(a, b):
            self.diffs.append(f"{where}: {int(np.count_nonzero(a != b))} of {a.size} values differ")

    # ------------------------------------------------------------------ state
    def _clean(self, table: str, row: dict) -> dict:
        out = {}
        for k, v in row.items():
            if k in CLOCK_COLUMNS or (table == "events" and k == "id"):
                continue
            if isinstance(v, str) and v[:1] in "{[":
                try:
                    v = _strip_clocks(json.loads(v))
                except ValueError:
                    pass
            if table == "events" and k == "message":
                v = PROCESS.sub("(<pid>,", DURATION.sub("<t>", v or ""))
            out[k] = v
        return out

    def state(self) -> None:
        ca, cb = sqlite3.connect(self.a / "sedm.db"), sqlite3.connect(self.b / "sedm.db")
        for c in (ca, cb):
            c.row_factory = sqlite3.Row
        for table in TABLES:
            ra = [self._clean(table, dict(r)) for r in ca.execute(f"SELECT * FROM {table} ORDER BY rowid")]
            rb = [self._clean(table, dict(r)) for r in cb.execute(f"SELECT * FROM {table} ORDER BY rowid")]
            if table == "events":  # progress events depend on the executor's timing
                ra = [r for r in ra if r["kind"] != "progress"]
                rb = [r for r in rb if r["kind"] != "progress"]
            if self.partial:  # runs stopped part-way: rows both have, of work both finished
                if table in ("events", "requests"):
                    continue
                if table == "observations":
                    ra = [r for r in ra if r["state"] == "done"]
                    rb = [r for r in rb if r["state"] == "done"]
                n = min(len(ra), len(rb))
                ra, rb = ra[:n], rb[:n]
            if len(ra) != len(rb):
                self.diffs.append(f"state {table}: {len(ra)} vs {len(rb)} rows")
            for i, (x, y) in enumerate(zip(ra, rb, strict=False)):
                self.counts["rows"] += 1
                for k in sorted(set(x) | set(y)):
                    if not self.same_text(json.dumps(x.get(k), default=str), json.dumps(y.get(k), default=str)):
                        self.diffs.append(f"state {table} row {i + 1}: {k} = {str(x.get(k))[:120]!r} "
                                          f"vs {str(y.get(k))[:120]!r}")


def _strip_clocks(v):
    if isinstance(v, dict):
        return {k: _strip_clocks(x) for k, x in v.items()
                if k not in ("timing", "wall_s") and not (k.endswith("_s") and isinstance(x, (int, float)))}
    if isinstance(v, list):
        return [_strip_clocks(x) for x in v]
    return v


def main(argv: list[str] | None = None) -> int:
    """Compare two reduction roots; print the differences; 0 when there are none."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("a", type=Path, help="reduction root before")
    p.add_argument("b", type=Path, help="reduction root after")
    p.add_argument("--night", action="append", help="nights to compare (default: every night directory of A)")
    p.add_argument("--config-renames", default="", help="OLD=NEW,... configuration keys that moved")
    p.add_argument("--partial", action="store_true",
                   help="both runs were stopped part-way: compare the files both wrote and the rows of finished work")
    p.add_argument("--allow-new-config-keys", action="store_true",
                   help="settings only B records are listed, not counted as differences")
    args = p.parse_args(argv)
    renames = dict(r.split("=", 1) for r in args.config_renames.split(",") if r)
    cmp = Comparison(args.a, args.b, renames, args.allow_new_config_keys, args.partial)
    nights = args.night or sorted(d.name for d in args.a.iterdir() if d.is_dir() and d.name.isdigit())
    for night in nights:
        cmp.products(night)
    cmp.state()
    c = cmp.counts
    print(f"compared {c['files']} files, {c['hdus']} HDUs, {c['cards']} header cards, {c['rows']} state rows "
          f"(nights {', '.join(nights)})")
    if cmp.config_notes:
        print(f"settings recorded only by B ({len(cmp.config_notes)}): {', '.join(sorted(cmp.config_notes))}")
    for d in cmp.diffs[:200]:
        print("DIFF", d)
    print(f"{len(cmp.diffs)} difference(s)")
    return 1 if cmp.diffs else 0


if __name__ == "__main__":
    sys.exit(main())
