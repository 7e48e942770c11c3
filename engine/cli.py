"""Command line of ``sedmtui`` (Textual-free: the console is imported only when it runs).

::

    sedmtui                        console for the newest night (--night, --db, --readonly)
    sedmtui --batch                headless engine: watch the raw root, reduce every night
    sedmtui --batch --night D --once   reduce one night and exit
    sedmtui --demo                 synthesise a night, run the engine on it, open the console
    sedmtui synth OUT [--night D] [--mini] [--seed N] [--camera pixis|andor] [--priors wide|nominal]
    sedmtui classify SPECTRUM...   classify spectra with the built-in SNID
    sedmtui report [--final] [--comment TEXT]
    sedmtui redex HH_MM_SS [X Y] [--recover] [--lstep N] | --accept | --reject
    sedmtui status                 engine status and the night's targets, as text
    sedmtui doctor [--night D]     check the reduction root (database, lease, stuck rows, files)
    sedmtui reprocess FROM TO      re-reduce archive nights on Dask (--scheduler, --local-cluster N, --slurm)
"""

from __future__ import annotations

import argparse
import logging
import sys

SUBCOMMANDS = ("batch", "synth", "classify", "report", "redex", "status", "doctor", "deliver", "serve",
               "reprocess")

EPILOG = """\
configuration: a TOML file (--config or $SEDMTUI_CONFIG, else ./sedmtui.toml), then environment
variables, then flags. Run `sedmtui --settings` to list every setting, its default and its
environment variable. Main ones: [paths] raw_root ($SEDMTUI_RAW_ROOT), redux_root
($SEDMTUI_REDUX_ROOT), db ($SEDMTUI_DB, default <redux_root>/sedm.db); [classify] templates_dir
($SEDMTUI_CLASSIFY_TEMPLATES_DIR); [engine] workers; [watch] force_polling (auto|true|false).
"""


SUBCOMMAND_USAGE = {
    "batch": ("batch [--night D] [--once]", "the headless engine (same as --batch)"),
    "synth": ("synth OUT [--night D] [--mini]", "write a synthetic SEDM raw night"),
    "classify": ("classify SPECTRUM...", "classify spectra with the built-in SNID"),
    "report": ("report [--final] [--comment TEXT]", "ask the engine for the night report"),
    "redex": ("redex HH_MM_SS [X Y] [--recover]", "re-extract (also --accept / --reject)"),
    "status": ("status", "engine status and the night's targets, as text"),
    "doctor": ("doctor [--night D]", "check a reduction root and say what to do"),
    "deliver": ("deliver status|preview|retry|tns|run", "the delivery ledger (Fritz, e-mail, Slack, TNS)"),
    "serve": ("serve [--port 8000] [--write]", "the console in a browser, read-only, on localhost"),
    "reprocess": ("reprocess FROM TO [--scheduler ADDR]", "re-reduce archive nights on Dask (resumable)"),
}
"""One usage line per subcommand for ``sedmtui --help`` (``sedmtui SUBCOMMAND --help`` has the rest)."""


def _subcommand_help() -> str:
    lines = []
    for name in SUBCOMMANDS:
        usage, what = SUBCOMMAND_USAGE.get(name, (name, ""))
        lines.append(f"  sedmtui {usage:<36} {what}".rstrip())
    return "subcommands (sedmtui SUBCOMMAND --help for their options):\n" + "\n".join(lines) + "\n"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML configuration file (default $SEDMTUI_CONFIG or ./sedmtui.toml)")
    p.add_argument("--raw-root", help="directory of raw UT-night directories")
    p.add_argument("--redux-root", help="directory of reduced UT-night directories")
    p.add_argument("--db", help="state database (default <redux-root>/sedm.db)")
    p.add_argument("--night", help="UT night YYYYMMDD (default: the newest)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeatable)")


def main_parser() -> argparse.ArgumentParser:
    """The top-level parser (console, --batch, --demo)."""
    p = argparse.ArgumentParser(
        prog="sedmtui", description="SEDM reduction engine and night console.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG + "\n" + _subcommand_help(),
    )
    _common(p)
    p.add_argument("--batch", action="store_true", help="run the headless engine (no console)")
    p.add_argument("--once", action="store_true", help="with --batch: reduce --night and exit")
    p.add_argument("--workers", type=int, help="frames reduced concurrently (default 2)")
    p.add_argument("--demo", action="store_true", help="synthesise a night, reduce it live, open the console")
    p.add_argument("--demo-dir", default="demo-night", help="working directory of --demo (default ./demo-night)")
    p.add_argument("--demo-full", action="store_true",
                   help="with --demo: a full synthetic night (~25 targets) instead of the mini one")
    p.add_argument("--readonly", action="store_true", help="console: never write anything (not even requests)")
    p.add_argument("--no-mouse", action="store_true", help="console: do not capture the mouse")
    p.add_argument("--colors", choices=["auto", "truecolor", "256", "16"], default="auto", help="console colour depth")
    p.add_argument("--settings", action="store_true", help="list every setting and exit")
    return p


def sub_parser(command: str) -> argparse.ArgumentParser:
    """Parser of one subcommand."""
    p = argparse.ArgumentParser(prog=f"sedmtui {command}")
    if command == "batch":
        _common(p)
        p.add_argument("--once", action="store_true")
        p.add_argument("--workers", type=int)
    elif command == "synth":
        p.description = "Write a synthetic SEDM raw night (frames + truth.json) to OUT/YYYYMMDD/."
        p.add_argument("out", help="raw root to write into")
        p.add_argument("--night", default=None, help="UT night YYYYMMDD (default today)")
        p.add_argument("--mini", action="store_true", help="a small but complete night for tests")
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--noise-seed", type=int, default=None,
                       help="redraw only the detector noise: the same night seen again (noise-floor benchmarks)")
        p.add_argument("--camera", choices=["pixis", "andor"], default=None)
        p.add_argument("--workers", type=int, default=None)
        p.add_argument("--priors", choices=["wide", "nominal"], default=None,
                       help="instrument priors: 'wide' (any SEDM: wide lattice, dispersion, distortion, finite "
                            "lenslet array, detector defects) or 'nominal' (narrow draw); default: "
                            "engine.synth.priors.DEFAULT_PRIORS (wide)")
        p.add_argument("--pin", action="append", default=[], metavar="KEY=VALUE",
                       help="with --priors wide: set a drawn quantity instead of drawing it, e.g. "
                            "--pin pitch_px=40 --pin origin_px=900,1100 (keys: engine.synth.wide.PIN_KEYS)")
    elif command == "report":
        _common(p)
        p.add_argument("--final", action="store_true", help="also produce the final report text")
        p.add_argument("--comment", default=None, help="comment for the final report")
        p.add_argument("--print", action="store_true", dest="print_only", help="print report.txt and exit")
        p.add_argument("--resend", action="store_true", help="with --final: e-mail it again even if it was sent")
    elif command == "redex":
        _common(p)
        p.add_argument("obs_id", help="HH_MM_SS of the exposure")
        p.add_argument("xy", nargs="*", type=float, help="manual centroid X Y [spaxel units]")
        p.add_argument("--radius", type=float, default=None,
                       help="with X Y: how far the PSF fit may move from them [spaxel units] (default 2); "
                            "a fit that moves farther is flagged quality 4, not delivered")
        p.add_argument("--recover", action="store_true", help="quality 5 -> 1 without re-extracting")
        p.add_argument("--lstep", type=int, default=1)
        p.add_argument("--local", action="store_true",
                       help="nothing about this re-extraction leaves the machine (no Fritz, Slack, e-mail)")
        p.add_argument("--user", default=None, help="reducer name (default $SEDM_USER or login)")
        p.add_argument("--no-wait", action="store_true", help="file the request and return at once")
        review = p.add_mutually_exclusive_group()
        review.add_argument("--accept", action="store_true", help="accept the newest re-extraction")
        review.add_argument("--reject", action="store_true", help="reject (delete) the newest re-extraction")
        p.add_argument("--extraction", type=int, default=None,
                       help="with --accept/--reject: the extraction id (default: the newest waiting one)")
        p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the engine")
    elif command == "serve":
        _common(p)
        p.description = ("The console in a browser (textual-serve), read-only unless --write, listening on "
                         "localhost only: colleagues reach it through an SSH tunnel.")
        p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
        p.add_argument("--host", default="localhost", help="loopback address to listen on (default localhost)")
        p.add_argument("--write", action="store_true", help="let the web consoles file requests (default read-only)")
    elif command in ("status", "doctor"):
        _common(p)
    elif command == "deliver":
        from engine.delivery.cli import add_arguments

        _common(p)
        add_arguments(p)
    return p


def _logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_batch(ns: argparse.Namespace) -> int:
    """``sedmtui --batch``."""
    from engine.config import resolve_config
    from engine.errors import EngineError
    from engine.pipeline.engine import Engine

    _logging(max(ns.verbose, 1))
    try:
        config = resolve_config(ns)
        engine = Engine(config, night=ns.night, once=ns.once)
    except EngineError as exc:
        print(f"sedmtui: {exc}", file=sys.stderr)
        return 2
    engine.install_signal_handlers()
    try:
        return engine.run()
    except EngineError as exc:
        print(f"sedmtui: {exc}", file=sys.stderr)
        return 2


def run_synth(ns: argparse.Namespace) -> int:
    """``sedmtui synth``."""
    import time

    from engine.synth.night import write_night
    from engine.timeutil import night_of, utc_now

    night = ns.night or night_of(utc_now())
    t0 = time.perf_counter()
    extra: dict = {"priors": ns.priors} if ns.priors else {}
    try:
        if ns.pin:
            extra["pin"] = {k: (tuple(float(v) for v in val.split(",")) if "," in val else float(val))
                            for k, _, val in (item.partition("=") for item in ns.pin)}
        path = write_night(ns.out, night, mini=ns.mini, seed=ns.seed, camera=ns.camera, workers=ns.workers,
                           noise_seed=ns.noise_seed, **extra)
    except ValueError as exc:
        print(f"sedmtui synth: {exc}", file=sys.stderr)
        return 2
    priors = f", {ns.priors} priors" if ns.priors else ""
    print(f"wrote {path.parent} ({'mini' if ns.mini else 'full'} night, seed {ns.seed}{priors}) "
          f"in {time.perf_counter() - t0:.1f} s")
    print(f"truth: {path}")
    return 0


def dispatch(argv: list[str]) -> tuple[str, argparse.Namespace | list[str]]:
    """Decide what to run: ``(command, namespace)``; command ``console`` or ``demo`` leaves Textual to the caller."""
    if argv and argv[0] in SUBCOMMANDS:
        cmd = argv[0]
        if cmd in ("classify", "reprocess"):
            return cmd, argv[1:]
        ns = sub_parser(cmd).parse_args(argv[1:])
        if cmd == "batch":
            ns.batch = True
        return cmd, ns
    ns = main_parser().parse_args(argv)
    if ns.settings:
        return "settings", ns
    if ns.batch:
        return "batch", ns
    if ns.demo:
        return "demo", ns
    return "console", ns


def run_engine_command(cmd: str, ns) -> int:
    """Run a Textual-free command."""
    if cmd == "settings":
        from engine.config import describe_settings

        print(describe_settings())
        return 0
    if cmd == "batch":
        return run_batch(ns)
    if cmd == "synth":
        return run_synth(ns)
    if cmd == "classify":
        from engine.classify.cli import main as classify_main

        return classify_main(list(ns))
    if cmd == "reprocess":
        from engine.reprocess.cli import main as reprocess_main

        return reprocess_main(list(ns))
    if cmd == "deliver":
        from engine.delivery.cli import run

        return run(ns)
    if cmd in ("report", "redex", "status", "doctor"):
        from engine import commands

        return getattr(commands, f"run_{cmd}")(ns)
    raise SystemExit(f"unknown command {cmd}")
