"""Sweep benchmark: synthesise and reduce one night per seed, report distributions over nights.

    python benchmarks/sweep.py --seeds A:B [--full N | --full-seeds S,S,...] [--priors wide|nominal]
                               [--no-twin] [--workdir DIR] [--keep] --json OUT

Mini nights for seeds ``A..B-1``; ``--full N`` adds N full nights (seeds from the start of the
range, or ``--full-seeds``). For every night, in sequence:

1. ``engine.synth.night.write_night`` (``priors`` passed when it accepts it), and its twin: the
   same seed with ``noise_seed`` (same instrument and scene, other detector noise).
2. ``sedmtui --batch --night D --once`` on each, as a subprocess. The calibration outcome is read
   from the state database (``calibrations``: ok / fallback / failed and the error). A failed
   calibration is a result, not an error: the sweep goes on.
3. Figures against the truth with the single-night benchmarks' code: calibration.py (trace bias
   and scatter, lambda error 4000-9000 A and 3700-4000 A, flat rms) and science.py (per target:
   flux rms, systematic part from the twin, twin (A-B)/sigma std, chi2_binned (bins with the
   product's error correlations; chi2_binned_independent without), scale, centroid error;
   per night: flexure errors, quality agreement).

The JSON holds ``{"nights": [...], "summary": {...}}``. ``summary[figure]`` gives p50, p90 and
worst over nights (night figures) or over targets (target figures) of a badness measure
(``of``: e.g. ``|scale - 1|``, ``|trace_bias_px|``), with the worst cases and their seeds.
Replay one of them with ``--seeds S:S+1`` (or ``--seeds S:S --full-seeds S`` for a full night)
and ``--keep`` (each reduction's log is ``<workdir>/<kind>-<seed>/redux.log``).

The sweep measures the engine of the tree it runs from (``meta.code`` records the commit and
any uncommitted engine files); while the tree is being edited, run it from a clean checkout
(``git worktree add /tmp/sweep-tree HEAD``), or a night and its twin may see different code.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import calibration as calbench  # noqa: E402
import science as scibench  # noqa: E402

MIN_FREE_GB = 3.0

# (figure, the measure summarised, its function of the value); "low": small values are bad, and
# p90 is then the 10th percentile (the value 90 % of the records reach).
NIGHT_FIGURES = [
    ("wave_median_abs_err_aa", "value", None),
    ("wave_blue_median_abs_err_aa", "value", None),
    ("trace_bias_px", "|value|", abs),
    ("trace_scatter_px", "value", None),
    ("flat_rms_pct", "value", None),
    ("jflex_err_px_max", "value", None),
    ("iflex_err_px_max", "value", None),
    ("quality_agreement", "value, low=bad", "low"),
]
TARGET_FIGURES = [
    ("flux_rms_pct", "value", None),
    ("flux_systematic_pct", "value", None),
    ("twin_pull_std", "|value-1|", lambda v: abs(v - 1.0)),
    ("chi2_binned", "value", None),
    ("chi2_binned_independent", "value", None),
    ("scale", "|value-1|", lambda v: abs(v - 1.0)),
    ("centroid_err_spaxel", "value", None),
]
N_WORST = 3


# --------------------------------------------------------------------------- one night


def synthesise(raw: Path, night: str, *, mini: bool, seed: int, noise_seed: int | None, priors: str | None) -> float:
    """Write a night with ``write_night``; ``priors`` only when it takes that keyword."""
    from engine.synth.night import write_night

    kwargs = {"mini": mini, "seed": seed, "noise_seed": noise_seed}
    if priors is not None and "priors" in inspect.signature(write_night).parameters:
        kwargs["priors"] = priors
    t0 = time.perf_counter()
    write_night(raw, night, **kwargs)
    return time.perf_counter() - t0


def reduce_night(raw: Path, redux: Path, night: str, workers: int, timeout: float) -> tuple[float, int, str]:
    """``sedmtui --batch --night D --once`` in its own process group (its workers die with it);
    the log goes to ``<redux>.log``. Return (wall s, exit status, the log's last lines)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEDMTUI_")}
    env.update({"SEDMTUI_CLASSIFY_TEMPLATES_DIR": scibench.templates_dir(), "SEDMTUI_ENGINE_WORKERS": str(workers),
                "PYTHONPATH": str(REPO)})
    cmd = [sys.executable, "-m", "sedmtui", "--batch", "--once", "--night", night,
           "--raw-root", str(raw), "--redux-root", str(redux)]
    redux.mkdir(parents=True, exist_ok=True)
    log = redux.parent / f"{redux.name}.log"
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=redux, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = -1
            fh.write(f"\nsweep: timed out after {timeout:.0f} s\n")
        finally:
            if proc.poll() is None:
                _kill_group(proc)
    tail = "\n".join(log.read_text(errors="replace").strip().splitlines()[-5:])
    return time.perf_counter() - t0, code, tail


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def calibration_outcome(redux: Path, night: str) -> tuple[str, str | None]:
    """The night's newest terminal row of ``calibrations``: (status, error or None)."""
    db = redux / "sedm.db"
    if not db.exists():
        return "failed", "engine wrote no state database"
    con = sqlite3.connect(db)
    try:
        row = con.execute("""SELECT status, error, source_night FROM calibrations
                             WHERE night=? AND status IN ('ok','fallback','failed') ORDER BY id DESC LIMIT 1""",
                          [night]).fetchone()
    finally:
        con.close()
    if row is None:
        return "failed", "no calibration recorded"
    status, error, source = row
    if status == "fallback":
        error = f"{error} (using {source})"
    return status, error


def night_targets(exposures: list[dict], flux: list[dict], split: dict | None) -> list[dict]:
    """One record per science exposure, joining the per-exposure, flux and twin figures."""
    by_flux = {t["obs_id"]: t for t in flux}
    by_twin = {t["obs_id"]: t for t in (split or {}).get("flux_twin_per_target", [])}
    out = []
    for x in exposures:
        if x["kind"] != "science":
            continue
        f, t = by_flux.get(x["obs_id"], {}), by_twin.get(x["obs_id"], {})
        out.append({"obs_id": x["obs_id"], "host": x["host"], "quality": x["quality"],
                    "expected_quality": x["expected_quality"], "s2n": _round(x["s2n"], 1),
                    "flux_rms_pct": f.get("rms_pct"), "flux_noise_twin_pct": t.get("noise_pct"),
                    "flux_systematic_pct": t.get("systematic_pct"), "twin_pull_std": t.get("pull_std"),
                    "chi2_binned": f.get("chi2_binned"), "chi2_binned_independent": f.get("chi2_binned_independent"),
                    "scale": f.get("scale"),
                    "centroid_err_spaxel": _round(x["centroid_err_spaxel"])})
    return out


def _round(v, nd: int = 4):
    return round(float(v), nd) if v is not None else None


def science_figures(raw: Path, redux: Path, night: str, twin: tuple[Path, Path] | None) -> dict:
    """Per-night and per-target science figures (science.py's functions)."""
    truth, rows = scibench.night_state(raw, night, redux)
    exposures = scibench.exposure_figures(truth, rows, redux / night)
    flux = scibench.binned_flux_ratios(raw, night, redux)
    split = None
    if twin is not None:
        split = scibench.noise_split(flux, scibench.binned_flux_ratios(twin[0], night, twin[1]))

    def top(key):
        v = [x[key] for x in exposures if x[key] is not None]
        return _round(max(v)) if v else None

    agree = [x["agree"] for x in exposures]
    return {"quality_agreement": _round(np.mean(agree)) if agree else None,
            "quality_matched": int(sum(agree)), "quality_n": len(agree),
            "jflex_err_px_max": top("jflex_err_px"), "iflex_err_px_max": top("iflex_err_px"),
            "targets": night_targets(exposures, scibench.flux_figures(flux), split)}


def empty_record(seed: int, kind: str, night: str) -> dict:
    rec = {"seed": seed, "kind": kind, "night": night, "calibration_status": None, "calibration_reason": None,
           "error": None, "timing_s": {}, "targets": []}
    for key, _, _ in NIGHT_FIGURES:
        rec[key] = None
    return rec


def run_one(seed: int, kind: str, args: argparse.Namespace, work: Path) -> dict:
    """Synthesise, reduce and score one night (and its twin); never raises."""
    rec = empty_record(seed, kind, args.night)
    t_all = time.perf_counter()
    raw, redux = work / "raw", work / "redux"
    twin = (work / "twin-raw", work / "twin-redux") if not args.no_twin else None
    mini = kind == "mini"
    try:
        rec["timing_s"]["synth"] = round(synthesise(raw, args.night, mini=mini, seed=seed, noise_seed=None,
                                                    priors=args.priors), 1)
        wall, code, tail = reduce_night(raw, redux, args.night, args.workers, args.timeout)
        rec["timing_s"]["reduce"] = round(wall, 1)
        status, reason = calibration_outcome(redux, args.night)
        if code != 0:
            reason = f"{reason or ''}; engine exit {code}: {tail}".lstrip("; ")
        rec["calibration_status"], rec["calibration_reason"] = status, reason
        if status == "ok":
            cal = calbench.calibration_figures(raw / args.night, redux / args.night)
            rec.update({k: cal[k] for k in ("wave_median_abs_err_aa", "wave_blue_median_abs_err_aa", "trace_bias_px",
                                            "trace_scatter_px", "flat_rms_pct", "n_missing", "n_spurious")})
        if status != "ok" or not (redux / "sedm.db").exists():
            twin = None
        if twin is not None:
            rec["timing_s"]["twin_synth"] = round(synthesise(twin[0], args.night, mini=mini, seed=seed,
                                                             noise_seed=args.noise_seed, priors=args.priors), 1)
            wall, _, _ = reduce_night(twin[0], twin[1], args.night, args.workers, args.timeout)
            rec["timing_s"]["twin_reduce"] = round(wall, 1)
            rec["twin_calibration_status"], rec["twin_calibration_reason"] = calibration_outcome(twin[1], args.night)
        if (redux / "sedm.db").exists():
            rec.update(science_figures(raw, redux, args.night, twin))
    except Exception as exc:  # noqa: BLE001 - a broken night is recorded, the sweep goes on
        rec["error"] = f"{type(exc).__name__}: {exc}"
        rec["traceback"] = traceback.format_exc(limit=6)
    rec["timing_s"]["total"] = round(time.perf_counter() - t_all, 1)
    return rec


# --------------------------------------------------------------------------- aggregation


def _percentiles(items: list[tuple[float, float, dict]], low: bool) -> dict:
    """p50, p90 and worst of (measure, value, case) triples; the worst cases with their values."""
    vals = np.array([m for m, _, _ in items])
    if low:
        p50, p90 = np.percentile(vals, 50), np.percentile(vals, 10)
    else:
        p50, p90 = np.percentile(vals, 50), np.percentile(vals, 90)
    order = sorted(items, key=lambda it: it[0], reverse=not low)[:N_WORST]
    return {"n": len(items), "p50": _round(p50), "p90": _round(p90), "worst": _round(order[0][0]),
            "worst_cases": [dict(case, value=_round(v)) for _, v, case in order]}


def _figure_summary(records: list[dict], key: str, of: str, fn) -> dict | None:
    low = fn == "low"
    items = []
    for r in records:
        v = r.get(key)
        if v is None or not np.isfinite(v):
            continue
        case = {"seed": r["seed"], "kind": r["kind"]}
        if "obs_id" in r:
            case["obs_id"] = r["obs_id"]
        items.append((fn(v) if callable(fn) else float(v), float(v), case))
    if not items:
        return None
    return {"of": of, **_percentiles(items, low)}


def summarise(nights: list[dict]) -> dict:
    """p50/p90/worst of every figure over the nights (night figures) and their targets."""
    status = {"ok": 0, "fallback": 0, "failed": 0}
    for n in nights:
        if n.get("calibration_status") in status:
            status[n["calibration_status"]] += 1
    targets = [dict(t, seed=n["seed"], kind=n["kind"]) for n in nights for t in n.get("targets", [])]
    isolated = [t for t in targets if not t.get("host")]
    out: dict = {
        "n_nights": len(nights), "n_targets": len(targets), "calibration": status,
        "not_ok": [{"seed": n["seed"], "kind": n["kind"], "status": n.get("calibration_status"),
                    "reason": n.get("calibration_reason") or n.get("error")}
                   for n in nights if n.get("calibration_status") != "ok" or n.get("error")],
        "quality_matched": sum(n.get("quality_matched", 0) for n in nights),
        "quality_n": sum(n.get("quality_n", 0) for n in nights),
    }
    for key, of, fn in NIGHT_FIGURES:
        out[key] = _figure_summary(nights, key, of, fn)
    for key, of, fn in TARGET_FIGURES:
        out[key] = _figure_summary(targets, key, of, fn)
    out["chi2_binned_isolated"] = _figure_summary(isolated, "chi2_binned", "value, no host", None)
    calibrated = {(n["seed"], n["kind"]) for n in nights if n.get("calibration_status") in ("ok", "fallback")}
    out["quality_mismatches"] = [
        {k: t[k] for k in ("seed", "kind", "obs_id", "quality", "expected_quality")} for t in targets
        if (t["seed"], t["kind"]) in calibrated and t["quality"] != t["expected_quality"]]
    walls = [n["timing_s"].get("total") for n in nights if n.get("timing_s", {}).get("total") is not None]
    out["wall_s_per_night_median"] = _round(np.median(walls), 1) if walls else None
    return out


def night_line(rec: dict) -> str:
    """One line per finished night."""
    def fmt(v, spec):
        return "—" if v is None else format(v, spec)

    tg = rec.get("targets", [])
    syst = [t["flux_systematic_pct"] for t in tg if t.get("flux_systematic_pct") is not None]
    chi2 = [t["chi2_binned"] for t in tg if t.get("chi2_binned") is not None]
    line = (f"{rec['kind']:4s} seed {rec['seed']:>4}  {rec.get('calibration_status') or 'error':8s} "
            f"λ {fmt(rec.get('wave_median_abs_err_aa'), '.3f')}/{fmt(rec.get('wave_blue_median_abs_err_aa'), '.3f')} Å  "
            f"trace {fmt(rec.get('trace_bias_px'), '+.4f')} px  flat {fmt(rec.get('flat_rms_pct'), '.2f')} %  "
            f"syst med {fmt(float(np.median(syst)) if syst else None, '.2f')} %  "
            f"χ² max {fmt(max(chi2) if chi2 else None, '.2f')}  "
            f"Q {rec.get('quality_matched', 0)}/{rec.get('quality_n', 0)}  "
            f"{rec.get('timing_s', {}).get('total', 0):.0f} s")
    reason = rec.get("error") or (rec.get("calibration_reason") if rec.get("calibration_status") != "ok" else None)
    return line + (f"\n      {reason}" if reason else "")


def summary_table(summary: dict) -> str:
    """The summary as a text table: figure, measure, n, p50, p90, worst and where."""
    lines = [f"{summary['n_nights']} nights, {summary['n_targets']} targets; calibration "
             + ", ".join(f"{k} {v}" for k, v in summary["calibration"].items())
             + f"; quality flags as truth {summary['quality_matched']}/{summary['quality_n']}"
             + f"; wall per night median {summary['wall_s_per_night_median']} s",
             f"{'figure':30s} {'of':15s} {'n':>4s} {'p50':>9s} {'p90':>9s} {'worst':>9s}  worst cases"]
    for key in [k for k, _, _ in NIGHT_FIGURES + TARGET_FIGURES] + ["chi2_binned_isolated"]:
        s = summary.get(key)
        if not s:
            lines.append(f"{key:30s} (no values)")
            continue
        where = ", ".join(f"{c['kind']} {c['seed']}" + (f" {c['obs_id']}" if "obs_id" in c else "") + f" ({c['value']:g})"
                          for c in s["worst_cases"])
        lines.append(f"{key:30s} {s['of']:15s} {s['n']:>4d} {s['p50']:>9.4g} {s['p90']:>9.4g} "
                     f"{s['worst']:>9.4g}  {where}")
    for m in summary["quality_mismatches"]:
        lines.append(f"quality: {m['kind']} seed {m['seed']} {m['obs_id']}: Q{m['quality']}, truth Q{m['expected_quality']}")
    for n in summary["not_ok"]:
        lines.append(f"not ok: {n['kind']} seed {n['seed']}: {n['status']}: {n['reason']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def code_version() -> dict:
    """The commit of the tree the sweep runs from and its uncommitted engine files (the sweep
    measures whatever engine the tree holds: run it from a clean checkout while others edit)."""
    def git(*a):
        r = subprocess.run(["git", "--no-optional-locks", *a], cwd=REPO, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    status = git("status", "--porcelain", "--", "engine")
    return {"repo": str(REPO), "commit": git("rev-parse", "HEAD"),
            "engine_modified": None if status is None else [ln[3:] for ln in status.splitlines()]}


def parse_seeds(text: str) -> list[int]:
    a, _, b = text.partition(":")
    return list(range(int(a), int(b) if b else int(a) + 1))


def plan(args: argparse.Namespace) -> list[tuple[int, str]]:
    """(seed, kind) of every night: the mini range, then the full nights."""
    seeds = parse_seeds(args.seeds)
    if args.full_seeds:
        full = [int(s) for s in args.full_seeds.split(",") if s.strip()]
    else:
        start = int(args.seeds.partition(":")[0])
        full = list(range(start, start + args.full))
    return [(s, "mini") for s in seeds] + [(s, "full") for s in full]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", required=True, help="mini-night seeds A:B (A..B-1)")
    ap.add_argument("--full", type=int, default=0, help="add N full nights (seeds from the start of the range)")
    ap.add_argument("--full-seeds", help="comma-separated seeds of the full nights (instead of the range's)")
    ap.add_argument("--priors", choices=("wide", "nominal"), help="instrument priors of the synthesis")
    ap.add_argument("--night", default="20261124", help="UT night of the synthetic nights")
    ap.add_argument("--noise-seed", type=int, default=7, help="detector-noise seed of the twin nights")
    ap.add_argument("--no-twin", action="store_true", help="no twin nights (no flux systematic, no pull)")
    ap.add_argument("--workers", type=int, default=2, help="engine worker processes")
    ap.add_argument("--timeout", type=float, default=3600.0, help="per reduction [s]")
    ap.add_argument("--workdir", help="where nights are written (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep every night's raw and reduced data")
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    from engine.synth.night import write_night

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds: the running engine is stopped
    params = inspect.signature(write_night).parameters
    takes_priors = "priors" in params
    if args.priors and not takes_priors:
        print(f"note: write_night takes no priors keyword; --priors {args.priors} ignored", file=sys.stderr)
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="sweep-"))
    root.mkdir(parents=True, exist_ok=True)
    nights = []
    priors = (args.priors or params["priors"].default) if takes_priors else None
    meta = {"night": args.night, "priors": priors, "noise_seed": args.noise_seed,
            "twin": not args.no_twin, "workers": args.workers, "code": code_version()}
    for seed, kind in plan(args):
        free_gb = shutil.disk_usage(root).free / 1e9
        if free_gb < MIN_FREE_GB:
            print(f"stopping: {free_gb:.1f} GB free in {root}", file=sys.stderr)
            break
        work = root / f"{kind}-{seed}"
        rec = run_one(seed, kind, args, work)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        nights.append(rec)
        print(night_line(rec), flush=True)
        summary = summarise(nights)
        Path(args.json).write_text(json.dumps({"meta": meta, "nights": nights, "summary": summary}, indent=1))
    summary = summarise(nights)
    print(summary_table(summary))
    if not args.keep and not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
