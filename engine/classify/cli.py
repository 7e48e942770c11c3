"""``sedmtui classify``: classify spectra with the built-in SNID-compatible classifier.

Usage::

    sedmtui classify SPECTRUM... [--templates DIR] [--json] [--wmin A] [--wmax A]
                     [--rlapmin R] [--medlen N] [--zmin Z] [--zmax Z] [--usetype T,..]
                     [--avoid NAME,..] [--extras] [--top N] [--external] [--jobs N]

(also ``python -m engine.classify.cli``; neither imports the console). The template directory
is ``--templates``, else ``$SEDMTUI_CLASSIFY_TEMPLATES_DIR``. Each spectrum gets a readable
summary, or with ``--json`` one JSON object per line. A file that cannot be read or classified
gets a one-line error on stderr; the others still run, and the exit code is then 1 (2 for a
bad template directory or option).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from engine.classify.options import SnidOptions
from engine.classify.result import Classification
from engine.classify.s2n import median_s2n
from engine.classify.skip import should_classify
from engine.classify.snid import classify_spectrum
from engine.classify.spectrum_input import read_spectrum
from engine.classify.templates import TemplateLibrary, load_template_library, split_names
from engine.errors import ConfigError, EngineError

ENV_TEMPLATES = "SEDMTUI_CLASSIFY_TEMPLATES_DIR"
"""Environment variable naming the template directory."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sedmtui classify``."""
    p = argparse.ArgumentParser(
        prog="sedmtui classify",
        description="Classify 1-D spectra as SNID 5.0 does (Blondin & Tonry 2007), built in.")
    p.add_argument("spectra", nargs="+", metavar="SPECTRUM",
                   help="SEDM .txt or FITS spectrum, or a plain 2/3-column text file")
    p.add_argument("--templates", metavar="DIR",
                   help=f"SNID .lnw template directory (default: ${ENV_TEMPLATES})")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    d = SnidOptions()
    p.add_argument("--wmin", type=float, default=d.wmin, help="blue limit [A] (%(default)s)")
    p.add_argument("--wmax", type=float, default=d.wmax, help="red limit [A] (%(default)s)")
    p.add_argument("--rlapmin", type=float, default=d.rlapmin, help="good-match rlap (%(default)s)")
    p.add_argument("--medlen", type=int, default=d.medlen,
                   help="median filter [samples]; production SEDM effectively uses 1 (%(default)s)")
    p.add_argument("--zmin", type=float, default=d.zmin, help="lowest z searched (%(default)s)")
    p.add_argument("--zmax", type=float, default=d.zmax, help="highest z searched (%(default)s)")
    p.add_argument("--usetype", default="", metavar="T,..",
                   help="use only these types/subtypes (Ia, Ib, Ic, II, NotSN, Ia-norm, ...)")
    p.add_argument("--avoid", default="", metavar="NAME,..",
                   help="skip templates whose name contains one of these")
    p.add_argument("--extras", action="store_true",
                   help="also use the non-SN templates SNID 5.0 never loads (QSO, C stars...)")
    p.add_argument("--top", type=int, default=5, help="matches listed per spectrum (%(default)s)")
    p.add_argument("--external", action="store_true",
                   help="also run an installed 'snid' executable and show its answer")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="classify in N forked worker processes (%(default)s; output order kept)")
    return p


def _options(args: argparse.Namespace) -> SnidOptions:
    return SnidOptions(wmin=args.wmin, wmax=args.wmax, rlapmin=args.rlapmin, medlen=args.medlen,
                       zmin=args.zmin, zmax=args.zmax, usetype=split_names(args.usetype),
                       avoid=split_names(args.avoid))


def _fmt(x: float, spec: str) -> str:
    return "nan" if x != x else format(x, spec)


def format_result(path: str, c: Classification, top: int = 5) -> str:
    """Human-readable summary of one classification (a few lines)."""
    if not c.matched:
        return (f"{path}: NONE  (no template with rlap >= {c.options.get('rlapmin', 4):g} "
                f"within {c.options.get('zfilter', 0.02):g} of z={_fmt(c.zinit, '.4f')})")
    fr = "  ".join(f"{k} {v:.2f}" for k, v in c.fractions.items())
    lines = [
        f"{path}: {c.type} ({c.subtype})  template {c.template}  rlap {c.rlap:.2f}  "
        f"z {c.z:.4f} +- {c.z_err:.4f}  age {_fmt(c.age, '.1f')} d  [{c.grade}]",
        f"    zmed {c.zmed:.4f} +- {c.zmed_err:.4f}   age_med {_fmt(c.age_med, '.1f')} +- "
        f"{_fmt(c.age_err, '.1f')} d   {c.n_good} good / {c.n_bad} bad   {fr}",
    ]
    for m in c.matches[:max(top, 0)]:
        lines.append(f"    {m.rank:3d} {m.template:12s} {m.subtype:10s} rlap {m.rlap:6.2f}  "
                     f"z {m.z:.4f}  age {m.age:7.1f}  {m.grade}")
    return "\n".join(lines)


def _json_record(path: str, c: Classification, s2n: float, note: str) -> dict[str, Any]:
    rec: dict[str, Any] = {"file": path}
    rec.update(c.to_json_dict(include_matches=False))
    rec["matches"] = [m.to_json_dict() for m in c.matches[:5]]
    rec["s2n"] = s2n
    if note:
        rec["note"] = note
    return rec


def classify_file(path: str, library: TemplateLibrary, options: SnidOptions, *,
                  as_json: bool, top: int, external: bool, out: TextIO) -> None:
    """Read, classify and print one spectrum (errors propagate to the caller)."""
    wave, flux, err, header = read_spectrum(path)
    name = str(header.get("OBJECT", header.get("NAME", Path(path).stem))).split("[")[0].strip()
    ok, reason = should_classify(name, header, filename=Path(path).name)
    note = "" if ok else f"SEDM would skip this spectrum: {reason}"
    c = classify_spectrum(wave, flux, err, library=library, options=options)
    s2n = median_s2n(wave, flux, err).median
    if as_json:
        out.write(json.dumps(_json_record(path, c, s2n, note)) + "\n")
    else:
        out.write(format_result(path, c, top) + "\n")
        if note:
            out.write(f"    note: {note}\n")
    if external:
        from engine.classify.external import run_external_snid

        e = run_external_snid(wave, flux, options, templates_dir=library.directory)
        if as_json:
            out.write(json.dumps({"file": path, "external": e.to_json_dict(
                include_matches=False)}) + "\n")
        else:
            out.write(format_result(f"{path} [external snid]", e, top) + "\n")


def _run_one(path: str, library: TemplateLibrary, options: SnidOptions,
             args: argparse.Namespace) -> tuple[str, str]:
    """Classify one file; return its stdout text and its stderr line ('' when it worked)."""
    buf = io.StringIO()
    try:
        classify_file(path, library, options, as_json=args.json, top=args.top,
                      external=args.external, out=buf)
    except (EngineError, OSError, ValueError) as exc:
        return buf.getvalue(), f"{path}: error: {' '.join(str(exc).split())}"
    return buf.getvalue(), ""


def _worker(files: list[tuple[int, str]], library: TemplateLibrary, options: SnidOptions,
            args: argparse.Namespace, queue: Any) -> None:
    for i, path in files:
        queue.put((i, *_run_one(path, library, options, args)))


def _run_parallel(paths: list[str], library: TemplateLibrary, options: SnidOptions,
                  args: argparse.Namespace, jobs: int) -> Iterator[tuple[str, str]]:
    """Results of :func:`_run_one` in input order, computed by ``jobs`` forked processes that
    share the loaded library (copy-on-write)."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    indexed = list(enumerate(paths))
    procs = [ctx.Process(target=_worker, args=(indexed[j::jobs], library, options, args, queue),
                         daemon=True) for j in range(jobs)]
    for proc in procs:
        proc.start()
    done: dict[int, tuple[str, str]] = {}
    for i in range(len(paths)):
        while i not in done:
            j, out, err = queue.get()
            done[j] = (out, err)
        yield done.pop(i)
    for proc in procs:
        proc.join()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sedmtui classify``; returns the exit code."""
    args = build_parser().parse_args(argv)
    templates = args.templates or os.environ.get(ENV_TEMPLATES, "")
    if not templates:
        print(f"sedmtui classify: no template directory: use --templates DIR or set "
              f"{ENV_TEMPLATES}", file=sys.stderr)
        return 2
    try:
        options = _options(args)
        library = load_template_library(templates, include_extras=args.extras)
    except ConfigError as exc:
        print(f"sedmtui classify: {exc}", file=sys.stderr)
        return 2
    jobs = max(1, min(args.jobs, len(args.spectra)))
    if jobs > 1 and "fork" in mp.get_all_start_methods():
        results = _run_parallel(args.spectra, library, options, args, jobs)
    else:
        results = (_run_one(p, library, options, args) for p in args.spectra)
    failed = False
    try:
        for out, err in results:
            sys.stdout.write(out)
            sys.stdout.flush()
            if err:
                print(err, file=sys.stderr)
                failed = True
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
