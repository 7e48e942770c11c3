"""``sedmtui reprocess FROM [TO] | --nights-file F``: re-reduce archive nights on a Dask cluster.

Run it again with the same arguments after a kill or a pre-emption: what the state database
records as done with the same inputs and configuration is skipped. Nothing is delivered unless
``--deliver``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path

from engine.io.inputs import Refusal, parse_night


def parser() -> argparse.ArgumentParser:
    """The ``sedmtui reprocess`` parser."""
    p = argparse.ArgumentParser(prog="sedmtui reprocess", description=__doc__.split("\n\n")[0].split(": ", 1)[-1],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    p.add_argument("first", nargs="?", help="first UT night YYYYMMDD")
    p.add_argument("last", nargs="?", help="last UT night YYYYMMDD (default: FROM)")
    p.add_argument("--nights-file", type=Path, help="nights to reduce, one YYYYMMDD per line ('#' comments)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing Dask scheduler")
    where.add_argument("--local-cluster", type=int, metavar="N",
                       help="N single-threaded worker processes on this machine (the default, N = engine.workers)")
    where.add_argument("--slurm", action="store_true", help="SLURM workers through dask-jobqueue ([cluster] table)")
    p.add_argument("--force", action="store_true", help="reduce everything again, even what is done with the same inputs")
    p.add_argument("--retry-failed", action="store_true", help="also exposures that failed with the same inputs")
    p.add_argument("--deliver", action="store_true",
                   help="deliver as the live engine does (Fritz, e-mail, Slack per [delivery]); off by default")
    p.add_argument("--max-worker-deaths", type=int, default=3,
                   help="local cluster: worker deaths a task may cause before it is reported failed (default 3)")
    p.add_argument("--json", type=Path, help="write the summary and the workers' figures as JSON")
    p.add_argument("--config", help="TOML configuration file (default $SEDMTUI_CONFIG or ./sedmtui.toml)")
    p.add_argument("--raw-root", help="directory of raw UT-night directories (shared by every worker)")
    p.add_argument("--redux-root", help="directory of reduced UT-night directories (shared by every worker)")
    p.add_argument("--db", help="state database (default <redux-root>/sedm.db)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (repeatable)")
    return p


EPILOG = """\
Workers read raw frames from --raw-root and write products into --redux-root: on a cluster both
must be the same shared path on every node (NFS, Lustre). Only this process writes the state
database. The [cluster] table of the configuration file sets up --slurm (queue, account, cores,
memory, walltime, jobs, prologue, ...).
"""


def batch_nights(ns: argparse.Namespace, raw_root: Path) -> tuple[list[str], list[str]]:
    """``(nights with a raw directory, notes)`` of the command line's range or file.

    Parameters
    ----------
    ns : argparse.Namespace
        ``first``, ``last`` and ``nights_file`` of the command line.
    raw_root : Path
        The raw root (a night without a directory there is skipped).

    Raises
    ------
    ValueError
        No range or file, a bad night, or TO before FROM.
    """
    notes: list[str] = []
    if ns.nights_file:
        wanted = [ln.split("#", 1)[0].strip() for ln in ns.nights_file.read_text().splitlines()]
        wanted = [w for w in wanted if w]
    else:
        if not ns.first:
            raise ValueError("give FROM [TO] or --nights-file")
        first, last = ns.first, ns.last or ns.first
        for n in (first, last):
            if isinstance(parse_night(n), Refusal):
                raise ValueError(f"{n}: {parse_night(n).reason}")
        d0, d1 = (dt.datetime.strptime(n, "%Y%m%d") for n in (first, last))
        if d1 < d0:
            raise ValueError(f"TO {last} is before FROM {first}")
        wanted = [(d0 + dt.timedelta(days=i)).strftime("%Y%m%d") for i in range((d1 - d0).days + 1)]
    nights = []
    for n in wanted:
        if isinstance(parse_night(n), Refusal):
            notes.append(f"{n}: {parse_night(n).reason}; skipped")
        elif (raw_root / n).is_dir():
            nights.append(n)
        elif ns.nights_file:
            notes.append(f"{n}: no raw directory {raw_root / n}; skipped")
    return sorted(set(nights)), notes


def main(argv: list[str]) -> int:
    """Run ``sedmtui reprocess``; 0 when every night and exposure is reduced, 1 if any failed, 2 on bad usage."""
    from engine.config import config_file_path, read_config_file, resolve_config
    from engine.errors import EngineError
    from engine.pipeline.engine import absolute_paths
    from engine.reprocess.cluster import SlurmSettings, connect
    from engine.reprocess.progress import Progress
    from engine.reprocess.runner import Reprocessor

    ns = parser().parse_args(argv)
    level = logging.WARNING - 10 * min(ns.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = absolute_paths(resolve_config(ns))
        nights, notes = batch_nights(ns, Path(config.paths.raw_root))
        slurm = None
        if ns.slurm:
            slurm = SlurmSettings.from_table(read_config_file(config_file_path(ns.config)).get("cluster", {}))
    except (EngineError, ValueError, OSError) as exc:
        print(f"sedmtui reprocess: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(note)
    if not nights:
        print(f"sedmtui reprocess: no raw night directory in the range under {config.paths.raw_root}", file=sys.stderr)
        return 2
    conn = connect(scheduler=ns.scheduler, local_workers=ns.local_cluster or config.engine.workers, slurm=slurm,
                   allowed_failures=ns.max_worker_deaths, templates_dir=config.classify.templates_dir)
    try:
        print(f"reprocessing {len(nights)} night(s) {nights[0]}..{nights[-1]} on {conn.description}"
              + ("" if ns.deliver else "; nothing is delivered (--deliver to deliver)"), flush=True)
        print(f"dashboard: {conn.dashboard}" if conn.dashboard else
              "dashboard: none (the scheduler serves none; `pip install bokeh` for a local cluster's)", flush=True)
        try:
            rep = Reprocessor(config, nights, conn.client, force=ns.force, retry_failed=ns.retry_failed,
                              deliver=ns.deliver, progress=Progress())
        except EngineError as exc:
            print(f"sedmtui reprocess: {exc}", file=sys.stderr)
            return 2
        rep.install_signal_handlers()
        status = rep.run()
        if ns.json:
            ns.json.write_text(json.dumps(report_json(rep), indent=1, default=str))
        return status
    finally:
        conn.close()


def report_json(rep) -> dict:
    """The summary and the workers' figures of a run (``--json``)."""
    return {"run_id": rep.run_id, "nights": rep.batch, "kept": rep.kept,
            "statuses": [s.__dict__ | {"finished": s.finished} for s in rep.statuses],
            "tasks": rep.task_figures}


__all__ = ["batch_nights", "main", "parser"]
