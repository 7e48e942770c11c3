"""Benchmark the built-in SNID-compatible classifier against SNID 5.0's own answers.

Usage::

    python benchmarks/classify.py --json OUT.json [--templates DIR] [--reference CSV]

Measures, on the 52 real SEDM spectra of ``snid-reference.csv`` (SNID 5.0 with the 349
production templates and SEDM's options): agreement of the rank-1 main type and subtype,
``|z - z_snid| <= 0.005``, ``|zmed - zmed_snid| <= zmed_err_snid``, rlap within 10 %; the time
per spectrum (one core, after one warm-up), the template loading time (from the array cache,
as every process after the first loads it, and parsing the ``.lnw`` files), the median redshift
error on synthetic spectra built from templates excluded from the library, and the wall time
of ``python -m engine.classify.cli --json`` on 50 spectra (process start to exit; one
process, and ``--jobs 2``). Prints the per-spectrum comparison table and writes the summary
JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.classify import SnidOptions, classify_spectrum, load_template_library  # noqa: E402
from engine.classify.external import main_type_of  # noqa: E402
from engine.classify.spectrum_input import read_spectrum  # noqa: E402
from engine.classify.synthetic import inject_template, template_row  # noqa: E402

SPECTRA_DIR = REPO / "engine" / "synth" / "data" / "sedm_spectra"
SYNTHETIC_CASES = (("sn2006ax", 0.0), ("sn2002bo", 5.0), ("sn1991bg", 0.0), ("sn1999ex", 0.0),
                   ("sn1994I", 0.0), ("sn1999em", 10.0), ("sn2004et", 20.0),
                   ("sn1998bw", 10.0), ("sn1993J", 20.0))
SYNTHETIC_Z = (0.01, 0.03, 0.06, 0.1, 0.15)


def default_templates() -> str:
    """``$SEDMTUI_CLASSIFY_TEMPLATES_DIR`` or ``<repo>/../shared/snid-templates-2.0``."""
    return os.environ.get("SEDMTUI_CLASSIFY_TEMPLATES_DIR",
                          str(REPO.parent / "shared" / "snid-templates-2.0"))


def compare(rows: list[dict], library, opts: SnidOptions) -> tuple[list[dict], list[float]]:
    """Classify every reference spectrum; return comparison records and timings [s]."""
    out, times = [], []
    first = rows[0]
    w, f, e, _ = read_spectrum(SPECTRA_DIR / first["folder"] / first["file"])
    classify_spectrum(w, f, e, library=library, options=opts)
    for row in rows:
        w, f, e, _ = read_spectrum(SPECTRA_DIR / row["folder"] / row["file"])
        t0 = time.perf_counter()
        c = classify_spectrum(w, f, e, library=library, options=opts)
        times.append(time.perf_counter() - t0)
        snid_sub = row["snid_type"]
        snid_main = main_type_of(snid_sub)
        out.append({
            "file": row["file"], "snid_type": snid_main, "snid_subtype": snid_sub,
            "snid_template": row["snid_template"], "snid_rlap": float(row["rlap"]),
            "snid_z": float(row["z_best"]), "snid_zmed": float(row["zmed"]),
            "snid_zmed_err": float(row["zmed_err"]), "type": c.type, "subtype": c.subtype,
            "template": c.template, "rlap": c.rlap, "z": c.z, "zmed": c.zmed,
            "zmed_err": c.zmed_err})
    return out, times


def summary(recs: list[dict]) -> dict[str, float]:
    """Agreement fractions of the comparison records."""
    def frac(key) -> float:
        return float(np.mean([key(r) for r in recs]))
    return {
        "type_agreement": frac(lambda r: r["type"] == r["snid_type"]),
        "subtype_agreement": frac(lambda r: r["subtype"] == r["snid_subtype"]),
        "template_agreement": frac(lambda r: r["template"] == r["snid_template"]),
        "z_within_005": frac(lambda r: abs(r["z"] - r["snid_z"]) <= 0.005),
        "zmed_within_err": frac(lambda r: abs(r["zmed"] - r["snid_zmed"]) <= r["snid_zmed_err"]),
        "rlap_within_10pct": frac(
            lambda r: abs(r["rlap"] - r["snid_rlap"]) <= 0.1 * r["snid_rlap"]),
    }


def synthetic_dz(library) -> tuple[float, list[tuple]]:
    """Median ``|z - z_true|`` over template-injection cases (template excluded)."""
    rng = np.random.default_rng(1)
    dz, cases = [], []
    for name, age in SYNTHETIC_CASES:
        row = template_row(library, name, age)
        for z in SYNTHETIC_Z:
            w, f, e = inject_template(library, row, z, snr=20.0, rng=rng)
            c = classify_spectrum(w, f, e, library=library, options=SnidOptions(avoid=(name,)))
            d = abs(c.z - z) if c.matched else float("inf")
            dz.append(d)
            cases.append((name, z, c.type, c.template, c.z))
    return float(np.median(dz)), cases


def batch50(files: list[Path], templates: str, jobs: int = 1) -> float:
    """Wall time of one ``python -m engine.classify.cli --json --jobs N`` run on ``files`` [s]
    (single-threaded BLAS; ``jobs`` worker processes)."""
    env = {**os.environ, "SEDMTUI_CLASSIFY_TEMPLATES_DIR": templates,
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "engine.classify.cli", "--json", "--jobs", str(jobs),
                    *map(str, files)],
                   cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def print_table(recs: list[dict]) -> None:
    """The per-spectrum comparison, SNID's answer then ours."""
    print(f"{'file':44s} {'SNID type':9s} {'template':10s} {'rlap':>6s} {'z':>7s} {'zmed':>7s}"
          f" | {'ours':9s} {'template':10s} {'rlap':>6s} {'z':>7s} {'zmed':>7s}")
    for r in recs:
        name = r["file"].replace("spec_auto_", "").replace("hgspec_target_crr_b_", "")[-44:]
        print(f"{name:44s} {r['snid_subtype']:9s} {r['snid_template']:10s} {r['snid_rlap']:6.2f}"
              f" {r['snid_z']:7.4f} {r['snid_zmed']:7.4f} | {r['subtype']:9s} {r['template']:10s}"
              f" {r['rlap']:6.2f} {r['z']:7.4f} {r['zmed']:7.4f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", required=True, metavar="OUT", help="summary JSON to write")
    p.add_argument("--templates", default=default_templates(), metavar="DIR")
    p.add_argument("--reference", default=str(REPO / "tests" / "data" / "snid-reference.csv"))
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    load_template_library(args.templates)
    first_load = time.perf_counter() - t0
    loads, parses = [], []
    for _ in range(3):
        t0 = time.perf_counter()
        load_template_library(args.templates, cache=False)
        parses.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        library = load_template_library(args.templates)
        loads.append(time.perf_counter() - t0)
    rows = list(csv.DictReader(open(args.reference)))
    recs, times = compare(rows, library, SnidOptions())
    print_table(recs)
    med_dz, _ = synthetic_dz(library)
    files = [SPECTRA_DIR / r["folder"] / r["file"] for r in rows][:50]
    out = {"s_per_spectrum": float(np.mean(times)),
           "s_per_spectrum_median": float(np.median(times)),
           "load_s": float(min(loads)), "load_s_parse": float(min(parses)),
           "load_s_first": first_load, **summary(recs),
           "synthetic_median_dz": med_dz, "batch50_s": batch50(files, args.templates),
           "batch50_s_jobs2": batch50(files, args.templates, jobs=2), "n_spectra": len(recs)}
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
