"""Benchmark the science reduction on a synthetic night against its truth.

    python benchmarks/science.py --night RAW/YYYYMMDD --json OUT.json [--redux DIR] [--workers 2]

1. The whole night end to end with the real engine (``--once``: calibration and every
   exposure, ``--workers`` processes): ``night_wall_s``, ``peak_rss_mb`` (largest process).
2. One core: a few science frames re-reduced in this process from the night's calibration:
   ``wall_s_per_frame`` (median).
3. Accuracy against ``truth.json``:
   * ``flux_rms_pct_median``: flux-calibrated spectrum / true SED (seen at the instrument's
     resolution), over 4000-9000 A in 250-A bins, grey scale removed; median over the science
     targets with S/N >= 30 (``flux_scale_median``: the grey factor; ``flux_rms_pct_per_sample``:
     the same without binning, noise included; ``flux_noise_rms_pct_median``: the rms that the
     spectra's own variance predicts for the same bins if samples were independent).
   * with ``--twin`` (the same night synthesised with another ``--noise-seed``): the figure
     split into its noise part, ``flux_rms_pct_noise_twin_median`` (the figure a pipeline
     without any systematic error would get; sample-to-sample noise correlations included),
     and its systematic part, ``flux_rms_pct_systematic_median`` (see :func:`noise_split`).
   * ``std_rms_pct``: standard-star self-check (median over the night's standards).
   * ``centroid_err_spaxel_median``: fitted position at 7000 A vs truth, targets with S/N >= 20.
   * ``jflex_err_px_max``, ``iflex_err_px_max``: flexure vs truth over every exposure.
   * ``quality_agreement``: fraction of exposures whose quality flag equals the expected one.
   * with ``--twin``, ``twin_pull_std_median``: std of the per-sample twin difference over its
     predicted sigma, ``(A - B) / sqrt(var_A + var_B)`` (1 for an honest error column).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.config import load_config  # noqa: E402
from engine.science.fluxcal import _fine_grid, instrument_view  # noqa: E402
from engine.science.products import read_spectrum_fits  # noqa: E402


def templates_dir() -> str:
    env = os.environ.get("SEDMTUI_CLASSIFY_TEMPLATES_DIR")
    cand = Path(env) if env else REPO.parent / "shared" / "snid-templates-2.0"
    return str(cand) if cand.is_dir() else ""


def run_night(raw_root: Path, night: str, redux: Path, workers: int) -> float:
    from engine.pipeline.engine import Engine

    env = {"SEDMTUI_CLASSIFY_TEMPLATES_DIR": templates_dir(), "SEDMTUI_ENGINE_WORKERS": str(workers)}
    cfg = load_config(None, env=env, overrides={"paths": {"raw_root": str(raw_root), "redux_root": str(redux)}})
    t0 = time.perf_counter()
    Engine(cfg, night=night, once=True).run()
    return time.perf_counter() - t0


def per_frame(raw_root: Path, night: str, redux: Path, n: int = 3) -> float:
    """Median wall time of re-reducing ``n`` science frames in this process (one core)."""
    from engine.pipeline.recipes.exposure import reduce_exposure
    from engine.pipeline.tasks import ExposureTask, FluxcalCandidate

    db = sqlite3.connect(redux / "sedm.db")
    db.row_factory = sqlite3.Row
    rows = db.execute("""SELECT o.obs_id, o.kind, f.path FROM observations o JOIN frames f ON f.id=o.frame_id
                         WHERE o.night=? AND o.kind='science' AND o.state='done' ORDER BY o.obs_id LIMIT ?""",
                      [night, n]).fetchall()
    cfg = load_config(None, env={"SEDMTUI_CLASSIFY_TEMPLATES_DIR": templates_dir()},
                      overrides={"paths": {"raw_root": str(raw_root), "redux_root": str(redux)}})
    fluxcal = tuple(FluxcalCandidate(str(p), 0.0, night) for p in sorted((redux / night).glob("fluxcal_*.fits"))[:1])
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in rows:
            task = ExposureTask(raw=r["path"], night=night, obs_id=r["obs_id"], kind=r["kind"], out_dir=tmp,
                                cal_dir=str(redux / night), cal_night=night, catalog_dir=str(raw_root / "catalog"),
                                config=cfg, fluxcal=fluxcal)
            t0 = time.perf_counter()
            reduce_exposure(task)
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) if times else float("nan")


def night_state(raw_root: Path, night: str, redux: Path) -> tuple[dict, dict[str, dict]]:
    """The night's truth and its current extractions by ``obs_id`` (with the observation kind)."""
    truth = json.loads((raw_root / night / "truth.json").read_text())
    db = sqlite3.connect(redux / "sedm.db")
    db.row_factory = sqlite3.Row
    rows = {r["obs_id"]: dict(r) for r in db.execute(
        """SELECT e.*, o.kind FROM extractions e JOIN observations o ON o.id = e.observation_id
           WHERE e.night=? AND e.status='current'""", [night])}
    db.close()
    return truth, rows


def binned_flux_ratios(raw_root: Path, night: str, redux: Path) -> dict[str, dict]:
    """Flux-calibrated spectrum / true SED in 10-sample (~250 A) bins, per science target.

    Targets: science, flux-calibrated, quality <= 2, S/N >= 30. For each: ``binned`` (grey scale
    removed), ``noise`` (what the spectrum's own variance predicts per bin, samples taken as
    independent), ``noise_correlated`` (the same with the product's error correlations),
    ``scale``, ``per_sample_rms`` [%], ``s2n``, ``host``, and the 4000-9000 A samples themselves
    (``wave``, ``flux``, ``var``).
    """
    truth, rows = night_state(raw_root, night, redux)
    out = {}
    for e in truth["exposures"]:
        r = rows.get(e["obs_id"])
        if r is None or r["kind"] != "science" or not r["fluxcal"] or (r["s2n"] or 0.0) < 30 or r["quality"] > 2:
            continue
        wave, flux, var, _h, _t = read_spectrum_fits(redux / night / r["spec_fits"])
        sed = np.loadtxt(raw_root / night / e["sed"])
        fine = _fine_grid(wave)
        true = instrument_view(fine, np.interp(fine, sed[:, 0], sed[:, 1]), wave)
        sel = (wave >= 4000) & (wave <= 9000) & np.isfinite(flux)
        ratio = flux[sel] / true[sel]
        scale = float(np.median(ratio))
        nb = len(ratio) // 10
        binned = np.array([np.mean(ratio[i * 10:(i + 1) * 10]) for i in range(nb)]) / scale
        vs, ts = var[sel], true[sel] * scale
        noise = np.array([np.sqrt(np.sum(vs[i * 10:(i + 1) * 10])) / np.sum(ts[i * 10:(i + 1) * 10]) for i in range(nb)])
        bin_var = binned_variance(var, correlation(redux / night / r["spec_fits"]), np.flatnonzero(sel), nb)
        noise_corr = np.sqrt(bin_var) / np.array([np.sum(ts[i * 10:(i + 1) * 10]) for i in range(nb)])
        out[e["obs_id"]] = {"binned": binned, "noise": noise, "noise_correlated": noise_corr, "scale": scale,
                            "s2n": float(r["s2n"]),
                            "per_sample_rms": float(100 * np.std(ratio / scale - 1)), "host": bool(e.get("host")),
                            "wave": wave[sel], "flux": flux[sel], "var": vs}
    return out


def correlation(path: Path) -> np.ndarray | None:
    """The ``CORREL`` extension of a ``spec_`` product (shape ``(2, n)``: error correlation of
    samples ``i, i+1`` and ``i, i+2``), ``None`` when absent."""
    from astropy.io import fits

    with fits.open(path) as hdul:
        return np.asarray(hdul["CORREL"].data, dtype=float) if "CORREL" in hdul else None


def binned_variance(var: np.ndarray, corr: np.ndarray | None, idx: np.ndarray, n_bins: int, size: int = 10) -> np.ndarray:
    """Variance of sums of ``size`` consecutive samples ``idx[i*size:(i+1)*size]``, as the README
    tells users to bin: the variances plus ``2 rho_1 sigma_i sigma_i+1 + 2 rho_2 sigma_i sigma_i+2``
    for pairs inside the bin (``corr`` from :func:`correlation`; ``None``: independent)."""
    sig = np.sqrt(var)
    out = np.zeros(n_bins)
    for b in range(n_bins):
        k = idx[b * size:(b + 1) * size]
        total = float(np.sum(var[k]))
        if corr is not None:
            for lag in (1, 2):
                pair = k[:-lag][k[lag:] - k[:-lag] == lag]
                rho = np.nan_to_num(corr[lag - 1, pair])
                total += 2.0 * float(np.sum(rho * sig[pair] * sig[pair + lag]))
        out[b] = total
    return out


def twin_pull_std(a: dict, b: dict) -> float | None:
    """Std of ``(flux_a - flux_b) / sqrt(var_a + var_b)`` over the samples both spectra share:
    1 when the error column is honest (the twin difference is pure noise)."""
    _, ia, ib = np.intersect1d(np.round(a["wave"], 3), np.round(b["wave"], 3), return_indices=True)
    pull = (a["flux"][ia] - b["flux"][ib]) / np.sqrt(a["var"][ia] + b["var"][ib])
    pull = pull[np.isfinite(pull)]
    return float(np.std(pull)) if pull.size > 1 else None


def noise_split(main: dict[str, dict], twin: dict[str, dict]) -> dict:
    """Split the flux figure into noise and systematics with a twin night (same scene, new noise).

    Per target, ``d = binned_main - binned_twin`` holds only noise (photon, read, cosmic rays and
    whatever the fits make of them, correlations between samples included): the noise part of
    the figure is ``std(d) / sqrt(2)``; the systematic part is what the mean of the two leaves
    after its own noise, ``sqrt(max(0, var((a + b) / 2) - var(d) / 4))``. The honesty of the
    error column is the std of the per-sample twin difference over its predicted sigma
    (:func:`twin_pull_std`).
    """
    noise, syst, pulls, per = [], [], [], []
    for oid in sorted(set(main) & set(twin)):
        a, b = main[oid]["binned"], twin[oid]["binned"]
        n = min(a.size, b.size)
        d = a[:n] - b[:n]
        nz = float(100 * np.std(d) / np.sqrt(2))
        sy = float(100 * np.sqrt(max(0.0, np.var((a[:n] + b[:n]) / 2) - np.var(d) / 4)))
        pull = twin_pull_std(main[oid], twin[oid])
        noise.append(nz)
        syst.append(sy)
        if pull is not None:
            pulls.append(pull)
        per.append({"obs_id": oid, "noise_pct": round(nz, 3), "systematic_pct": round(sy, 3),
                    "pull_std": None if pull is None else round(pull, 3)})
    return {"flux_rms_pct_noise_twin_median": float(np.median(noise)) if noise else None,
            "flux_rms_pct_systematic_median": float(np.median(syst)) if syst else None,
            "twin_pull_std_median": float(np.median(pulls)) if pulls else None,
            "flux_twin_per_target": per}


def exposure_figures(truth: dict, rows: dict[str, dict], products: Path) -> list[dict]:
    """Per exposure of the truth: quality vs the expected one, centroid error at 7000 A (S/N >= 20,
    quality 0/1/2/5), j/i flexure errors, and a standard's self-check rms (``products``: the
    night's reduction directory)."""
    out = []
    for e in truth["exposures"]:
        r = rows.get(e["obs_id"])
        fig = {"obs_id": e["obs_id"], "kind": r["kind"] if r else e.get("kind"), "host": bool(e.get("host")),
               "quality": r["quality"] if r else None, "expected_quality": e["expected_quality"],
               "s2n": r["s2n"] if r else None,
               "agree": r is not None and r["quality"] == e["expected_quality"],
               "centroid_err_spaxel": None, "jflex_err_px": None, "iflex_err_px": None, "std_selfchk_pct": None}
        out.append(fig)
        if r is None:
            continue
        facts = json.loads(r["facts_json"] or "{}")
        if "jflex_px" in facts:
            fig["jflex_err_px"] = abs(facts["jflex_px"] - e["jflex_px"])
            fig["iflex_err_px"] = abs(facts["iflex_px"] - e["iflex_px"])
        if r["centroid_x"] is not None and (r["s2n"] or 0.0) >= 20 and r["quality"] in (0, 1, 2, 5):
            fig["centroid_err_spaxel"] = float(np.hypot(r["centroid_x"] - e["position"][0],
                                                        r["centroid_y"] - e["position"][1]))
        if r["kind"] == "standard" and r["fluxcal_file"]:
            from astropy.io import fits

            fig["std_selfchk_pct"] = fits.getheader(products / r["fluxcal_file"])["SELFCHK"]
    return out


def flux_figures(flux: dict[str, dict]) -> list[dict]:
    """Per target of :func:`binned_flux_ratios`: binned rms, the rms its variance predicts, scale
    and chi2 of the binned deviations (mean removed) against that prediction: ``chi2_binned``
    with the product's error correlations (``CORREL``, as a user bins), and
    ``chi2_binned_independent`` with the samples taken as independent (the figure before
    2026-12-07, ~1.7 x larger for pure noise)."""
    per_target = []
    for oid, f in flux.items():
        dev = f["binned"] - 1 - np.mean(f["binned"] - 1)
        per_target.append({"obs_id": oid, "s2n": round(f["s2n"], 1), "rms_pct": round(float(100 * np.std(f["binned"] - 1)), 3),
                           "noise_rms_pct": round(float(100 * np.sqrt(np.mean(f["noise"] ** 2))), 3),
                           "scale": round(f["scale"], 4),
                           "chi2_binned": round(float(np.mean(dev**2 / f["noise_correlated"] ** 2)), 2),
                           "chi2_binned_independent": round(float(np.mean(dev**2 / f["noise"] ** 2)), 2),
                           "host": f["host"]})
    return per_target


def accuracy(raw_root: Path, night: str, redux: Path) -> dict:
    truth, rows = night_state(raw_root, night, redux)
    exposures = exposure_figures(truth, rows, redux / night)
    flux = binned_flux_ratios(raw_root, night, redux)
    per_target = flux_figures(flux)

    def values(key):
        return [x[key] for x in exposures if x[key] is not None]

    def med(v):
        return float(np.median(v)) if len(v) else None

    def top(v):
        return float(np.max(v)) if len(v) else None

    return {
        "flux_rms_pct_median": med([t["rms_pct"] for t in per_target]),
        "flux_rms_pct_per_sample": med([f["per_sample_rms"] for f in flux.values()]),
        "flux_noise_rms_pct_median": med([t["noise_rms_pct"] for t in per_target]),
        "flux_scale_median": med([f["scale"] for f in flux.values()]),
        "n_flux_targets": len(per_target),
        "std_rms_pct": med(values("std_selfchk_pct")),
        "centroid_err_spaxel_median": med(values("centroid_err_spaxel")),
        "centroid_err_spaxel_max": top(values("centroid_err_spaxel")),
        "jflex_err_px_max": top(values("jflex_err_px")),
        "iflex_err_px_max": top(values("iflex_err_px")),
        "quality_agreement": float(np.mean([x["agree"] for x in exposures])) if exposures else None,
        "flux_per_target": per_target,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--night", required=True, help="raw night directory RAW/YYYYMMDD (with truth.json)")
    ap.add_argument("--json", required=True)
    ap.add_argument("--redux", help="reduction root (default: a temporary directory)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-night", action="store_true", help="reuse an existing reduction in --redux")
    ap.add_argument("--twin", help="raw night directory of the same night with other noise (sedmtui synth --noise-seed)")
    ap.add_argument("--twin-redux", help="its reduction root (reduced here unless --skip-night)")
    args = ap.parse_args(argv)
    night_dir = Path(args.night)
    raw_root, night = night_dir.parent, night_dir.name
    redux = Path(args.redux) if args.redux else Path(tempfile.mkdtemp(prefix="scibench-"))
    out = {}
    if not args.skip_night:
        out["night_wall_s"] = round(run_night(raw_root, night, redux, args.workers), 2)
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        out["peak_rss_mb"] = round(max(children, own), 1)
    out["wall_s_per_frame"] = round(per_frame(raw_root, night, redux), 2)
    out.update(accuracy(raw_root, night, redux))
    if args.twin:
        twin_dir = Path(args.twin)
        twin_redux = Path(args.twin_redux) if args.twin_redux else Path(tempfile.mkdtemp(prefix="scibench-twin-"))
        if not args.skip_night:
            run_night(twin_dir.parent, twin_dir.name, twin_redux, args.workers)
        out.update(noise_split(binned_flux_ratios(raw_root, night, redux),
                               binned_flux_ratios(twin_dir.parent, twin_dir.name, twin_redux)))
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k not in ("flux_per_target", "flux_twin_per_target")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
