"""Benchmark the night calibration on a synthetic night against its truth.

    python benchmarks/calibration.py --night RAW/YYYYMMDD --json OUT.json [--out DIR]

The calibration frames are selected by the engine's own planner from the raw headers (the
truth is only used for the comparison). Writes::

    {"wall_s", "peak_rss_mb", "n_traces", "n_traces_truth", "n_missing", "n_spurious",
     "trace_bias_px", "trace_scatter_px", "wave_median_abs_err_aa", "wave_blue_median_abs_err_aa",
     "wave_p90_abs_err_aa", "flat_rms_pct", "flat_chromatic_rms_pct", "stats"}

Trace centre: for every matched usable trace, the mean of (model - truth) over its 3700-9300 A
columns; bias = median over traces, scatter = standard deviation over traces.
Wavelength: per trace, the median |lambda_model - lambda_true| over 4000-9000 A (blue:
3700-4000 A), then the median over traces. Flat: rms of (model/truth) - 1 over usable traces,
achromatic (5000-8500 A mean) and chromatic (all cube wavelengths).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.calib.products import NightCalibration  # noqa: E402
from engine.ingest.planner import belongs_to_night, calibration_set, classify_frame  # noqa: E402
from engine.ingest.watcher import scan_raw  # noqa: E402
from engine.instrument import sedm  # noqa: E402
from engine.io.fitsio import read_header  # noqa: E402
from engine.pipeline.recipes.calibration import calibrate_night  # noqa: E402
from engine.pipeline.tasks import CalibrationFrames, CalibrationTask  # noqa: E402
from engine.timeutil import previous_night  # noqa: E402


def select_frames(raw_root: Path, night: str) -> dict:
    """Calibration frames of a night chosen with the engine's planner."""
    rows = []
    for path in scan_raw(raw_root, [previous_night(night), night]):
        if path.name.startswith("rc"):
            continue
        h = read_header(path)
        prev = int(path.name[12:14]) >= 20
        cls = classify_frame(h, path.name, previous_day=prev)
        if belongs_to_night(path.parent.name, path.name, cls.kind, night):
            rows.append({"file": path.name, "kind": cls.kind, "lamp": cls.lamp, "adcspeed": h.get("ADCSPEED"),
                         "path": str(path)})
    cal = calibration_set(rows)
    return {"biases": cal.biases, "domes": cal.domes, "arcs": cal.arcs}


def true_x(tr: Table, k: np.ndarray, wave: np.ndarray) -> np.ndarray:
    t = wave**-0.5 - sedm.REFERENCE_WAVELENGTH_AA**-0.5
    c = np.asarray(tr["disp"])[k]
    return np.asarray(tr["x_ref"])[k, None] + c[:, 0:1] * t + c[:, 1:2] * t**2 + c[:, 2:3] * t**3 + c[:, 3:4] * t**4


def true_usable(tr: Table) -> np.ndarray:
    """Traces whose true 3700 and 9300 A ends lie in the usable region (the engine's rule, on
    the true trace: the nominal draw's truth table judged them with the nominal law)."""
    k = np.arange(len(tr))
    xe = true_x(tr, k, np.array([sedm.CUBE_WAVE_AA[0], sedm.CUBE_WAVE_AA[-1]]))
    dx = xe - np.asarray(tr["x_ref"])[:, None]
    ye = np.asarray(tr["y_ref"])[:, None] + np.asarray(tr["tilt"])[:, None] * dx + np.asarray(tr["curv"])[:, None] * dx**2
    return np.all(sedm.inside_usable_region(xe, ye), axis=1)


def compare(cal: NightCalibration, tr: Table) -> dict:
    """Figures of merit of a calibration against the truth table."""
    key = {(int(q), int(r)): i for i, (q, r) in enumerate(zip(tr["q"], tr["r"]))}
    ours = np.flatnonzero(cal.usable)
    match = np.array([key.get((int(cal.grid.q[k]), int(cal.grid.r[k])), -1) for k in ours])
    t_usable = true_usable(tr)
    good = match >= 0
    spurious = int((~good).sum() + (~t_usable[match[good]]).sum())
    mine = set(match[good & t_usable[np.maximum(match, 0)]].tolist())
    missing = int(t_usable.sum() - len(mine))
    ok = good & t_usable[np.maximum(match, 0)]
    k_ours, k_true = ours[ok], match[ok]
    wave_mid = np.linspace(3700.0, 9300.0, 40)
    x = true_x(tr, k_true, wave_mid)
    dx = x - np.asarray(tr["x_ref"])[k_true, None]
    y_true = (np.asarray(tr["y_ref"])[k_true, None] + np.asarray(tr["tilt"])[k_true, None] * dx
              + np.asarray(tr["curv"])[k_true, None] * dx**2)
    y_est = cal.traces.y_at(x, k_ours)
    per_trace = np.mean(y_est - y_true, axis=1)
    out = {"n_traces": int(cal.usable.sum()), "n_traces_truth": int(t_usable.sum()), "n_missing": missing,
           "n_spurious": spurious, "trace_bias_px": float(np.median(per_trace)),
           "trace_scatter_px": float(np.std(per_trace)),
           "trace_rms_along_px": float(np.sqrt(np.mean((y_est - y_true) ** 2)))}
    for name, lo, hi in (("wave", 4000.0, 9000.0), ("wave_blue", 3700.0, 4000.0)):
        w = np.linspace(lo, hi, 60)
        x_true = true_x(tr, k_true, w)
        lam = cal.wave.wave_of_x(x_true, k_ours)
        err = np.median(np.abs(lam - w[None, :]), axis=1)
        out[f"{name}_median_abs_err_aa"] = float(np.median(err))
        out[f"{name}_p90_abs_err_aa"] = float(np.percentile(err, 90))
    truth_flat = np.asarray(tr["flat_5000_8500"])[k_true]
    ratio = cal.flat.achromatic[k_ours] / truth_flat
    out["flat_rms_pct"] = float(100 * np.std(ratio / np.median(ratio) - 1))
    wv = sedm.CUBE_WAVE_AA
    thr = np.asarray(tr["flat"])[k_true, None] * (1 + np.asarray(tr["flat_chroma"])[k_true, None] * (wv - 6500) / 3000)
    thr /= np.median(thr.mean(axis=1))
    cr = cal.flat.chromatic[k_ours] / thr
    out["flat_chromatic_rms_pct"] = float(100 * np.nanstd(cr / np.nanmedian(cr) - 1))
    return out


def calibration_figures(night_dir: Path, products_dir: Path) -> dict:
    """:func:`compare` of the calibration products in ``products_dir`` with the truth of the raw
    night directory ``night_dir`` (RAW/YYYYMMDD), floats rounded to 4 decimals."""
    cal = NightCalibration.load(products_dir, night_dir.name)
    tr = Table.read(night_dir / "truth" / "traces.fits", hdu="TRACES")
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in compare(cal, tr).items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--night", required=True, help="raw night directory RAW/YYYYMMDD (with truth.json)")
    ap.add_argument("--json", required=True, help="output JSON")
    ap.add_argument("--out", help="products directory (default: a temporary directory)")
    args = ap.parse_args(argv)
    night_dir = Path(args.night)
    night = night_dir.name
    frames = select_frames(night_dir.parent, night)
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="calbench-"))
    t0 = time.perf_counter()
    result = calibrate_night(CalibrationTask(night, CalibrationFrames.from_lists(frames), str(out_dir)))
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    figures = {"wall_s": round(wall, 2), "peak_rss_mb": round(peak, 1)}
    figures.update(calibration_figures(night_dir, out_dir))
    figures["stats"] = result["stats"]
    Path(args.json).write_text(json.dumps(figures, indent=1))
    print(json.dumps({k: v for k, v in figures.items() if k != "stats"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
