"""Benchmark the guider astrometry (stack + detect + solve) on a synthetic night against its truth.

    python benchmarks/astrometry.py --night RAW/YYYYMMDD --json OUT.json [--catalog DIR]
        [--backend builtin|solve-field] [--solve-field-config FILE] [--parity neg|pos|both]
        [--repeat N]

Guider frames are selected by the engine from the raw headers; the truth (``truth.json``) is
only used for the comparison. Per exposure::

    {"file", "guider" (truth: ok/none/nostars), "ok", "reason", "status_as_expected",
     "n_frames", "n_stars", "n_matched", "rms_arcsec", "stack_s", "detect_s", "solve_s", "wall_s",
     "x", "y", "err_spaxel"            (|(x, y) - truth position|),
     "err_recoverable_spaxel"          (vs the true WCS evaluated at the table pixel),
     "table_error_spaxel"              (|true IFU-centre pixel - table pixel| in spaxels),
     "ifu_centre_err_arcsec"           (vs truth ifu_centre_radec),
     "ifu_centre_recoverable_err_arcsec"}

Summary: median/max of the errors over solved exposures, median/max wall per exposure (wall
is the median over ``--repeat`` runs), the catalogue load time, and whether every exposure
ended as its truth says (ok -> solved; none/nostars -> not solved).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.astrometry import guider_candidates, load_catalog, locate_target, select_guider_frames
from engine.astrometry.options import AstrometryOptions
from engine.instrument.sedm import SPAXEL_UNIT_ARCSEC, ifu_centre_for
from engine.instrument.sky import sky_to_standard, standard_to_spaxel
from engine.synth.guider import wcs_from_truth


def truth_wcs(entry: dict) -> WCS:
    """The jitter-free guider WCS of a truth exposure entry."""
    return wcs_from_truth(entry["ifu_centre_radec"], entry["guider_wcs"])


def compare(entry: dict, loc, night: str) -> dict:
    """Errors of a solved location against the truth entry."""
    ep = ifu_centre_for(night)
    ra0, dec0 = (float(v[0]) for v in truth_wcs(entry).all_pix2world([ep.x_px], [ep.y_px], 0))
    ref = standard_to_spaxel(*sky_to_standard(*entry["target_radec"], ra0, dec0), ep.rotation_deg)
    g = entry["guider_wcs"]
    table_px = math.hypot(g["crpix"][0] - ep.x_px, g["crpix"][1] - ep.y_px)
    return {
        "err_spaxel": math.hypot(loc.x - entry["position"][0], loc.y - entry["position"][1]),
        "err_recoverable_spaxel": math.hypot(loc.x - ref[0], loc.y - ref[1]),
        "table_error_spaxel": table_px * g["scale_arcsec"] / SPAXEL_UNIT_ARCSEC,
        "ifu_centre_err_arcsec": float(
            math.hypot(*sky_to_standard(*loc.ifu_radec, *entry["ifu_centre_radec"]))
        ),
        "ifu_centre_recoverable_err_arcsec": float(
            math.hypot(*sky_to_standard(*loc.ifu_radec, ra0, dec0))
        ),
    }


def run_exposure(entry, night_dir, cands, catalog, night, backend, repeat, options) -> dict:
    header = fits.getheader(night_dir / entry["file"])
    paths = select_guider_frames(header, cands)
    walls, loc = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        loc = locate_target(header, paths, catalog, night, backend=backend, config=options)
        walls.append(time.perf_counter() - t0)
    timing = dict(loc.timing_s)
    row = {
        "file": entry["file"],
        "guider": entry["guider"],
        "ok": loc.ok,
        "reason": loc.reason,
        "status_as_expected": loc.ok == (entry["guider"] == "ok"),
        "n_frames": loc.n_frames,
        "n_stars": loc.n_stars,
        "n_matched": loc.n_matched,
        "rms_arcsec": None if math.isnan(loc.rms_arcsec) else round(loc.rms_arcsec, 4),
        **{f"{k}_s": round(timing.get(k, 0.0), 4) for k in ("stack", "detect", "solve")},
        "wall_s": round(float(np.median(walls)), 4),
    }
    if loc.ok:
        row.update(x=round(loc.x, 4), y=round(loc.y, 4))
        if entry.get("guider_wcs"):
            row.update({k: round(v, 4) for k, v in compare(entry, loc, night).items()})
    return row


def summarise(rows: list[dict], catalog_s: float) -> dict:
    solved = [r for r in rows if "err_spaxel" in r]
    run = [r for r in rows if r["n_frames"] > 0]

    def stat(key, fn):
        vals = [r[key] for r in solved]
        return round(float(fn(vals)), 4) if vals else None

    return {
        "n_exposures": len(rows),
        "n_solved": len(solved),
        "all_as_expected": all(r["status_as_expected"] for r in rows),
        "median_err_spaxel": stat("err_spaxel", np.median),
        "max_err_spaxel": stat("err_spaxel", np.max),
        "median_err_recoverable_spaxel": stat("err_recoverable_spaxel", np.median),
        "max_err_recoverable_spaxel": stat("err_recoverable_spaxel", np.max),
        "max_ifu_centre_err_arcsec": stat("ifu_centre_err_arcsec", np.max),
        "max_ifu_centre_recoverable_err_arcsec": stat("ifu_centre_recoverable_err_arcsec", np.max),
        "median_wall_s": round(float(np.median([r["wall_s"] for r in run])), 4) if run else None,
        "max_wall_s": round(float(np.max([r["wall_s"] for r in run])), 4) if run else None,
        "catalog_load_s": round(catalog_s, 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--night", required=True, help="raw night directory RAW/YYYYMMDD (with truth.json)"
    )
    ap.add_argument("--json", required=True, help="output JSON")
    ap.add_argument("--catalog", help="reference catalogue directory (default: RAW/catalog)")
    ap.add_argument("--backend", default="builtin", choices=("builtin", "solve-field"))
    ap.add_argument("--solve-field-config", default="",
                    help="astrometry.net configuration file naming the index files")
    ap.add_argument("--parity", default="neg", choices=("neg", "pos", "both"))
    ap.add_argument("--repeat", type=int, default=1, help="runs per exposure; wall = median")
    args = ap.parse_args(argv)
    options = AstrometryOptions(parity=args.parity, solve_field_config=args.solve_field_config)
    night_dir = Path(args.night)
    night = night_dir.name
    truth = json.loads((night_dir / "truth.json").read_text())
    t0 = time.perf_counter()
    catalog = load_catalog(Path(args.catalog) if args.catalog else night_dir.parent / "catalog")
    catalog_s = time.perf_counter() - t0
    cands = guider_candidates(night_dir)
    rows = [
        run_exposure(e, night_dir, cands, catalog, night, args.backend, max(1, args.repeat), options)
        for e in truth["exposures"]
    ]
    out = {
        "night": night,
        "backend": args.backend,
        "parity": args.parity,
        "summary": summarise(rows, catalog_s),
        "exposures": rows,
    }
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(json.dumps(out["summary"], indent=1))
    for r in rows:
        print(
            f"{r['file']}  {r['guider']:8s} ok={r['ok']!s:5s} frames={r['n_frames']} stars={r['n_stars']:3d} "
            f"matched={r['n_matched']:3d} err={r.get('err_spaxel', float('nan')):.3f} "
            f"(recoverable {r.get('err_recoverable_spaxel', float('nan')):.3f}, "
            f"table {r.get('table_error_spaxel', float('nan')):.3f}) spaxel  wall={r['wall_s']:.3f}s  {r['reason']}"
        )
    return 0 if out["summary"]["all_as_expected"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
