"""``sedmtui serve``: the console in a browser for colleagues (textual-serve).

Every browser that opens the page gets its own console process, started with the same
database and night as ``sedmtui`` would use. The web console is **read-only** unless
``--write`` is given (a PI watching the night files no request), and the server listens on
the loopback interface only: reach it through an SSH tunnel
(``ssh -L 8000:localhost:8000 reduction-host``), never on an open port. ``--host`` accepts
loopback addresses only.
"""

from __future__ import annotations

import argparse
import ipaddress
import shlex
import sys

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.1``, ``::1``)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def console_command(ns: argparse.Namespace, python: str = sys.executable) -> str:
    """The shell command textual-serve runs for each browser: the console, read-only unless
    ``--write``, on the same configuration, database, roots and night."""
    cmd = [python, "-m", "sedmtui"]
    for flag in ("config", "raw_root", "redux_root", "db", "night"):
        value = getattr(ns, flag, None)
        if value:
            cmd += [f"--{flag.replace('_', '-')}", str(value)]
    if not getattr(ns, "write", False):
        cmd.append("--readonly")
    cmd += ["--colors", "truecolor"]
    return shlex.join(cmd)


def run_serve(ns: argparse.Namespace) -> int:
    """Serve the console on ``http://<host>:<port>`` until interrupted."""
    host = ns.host
    if not is_loopback(host):
        print(f"sedmtui serve: {host} is not a loopback address; the web console listens on localhost only "
              "(colleagues reach it through an SSH tunnel: ssh -L 8000:localhost:8000 THIS-HOST)", file=sys.stderr)
        return 2
    try:
        from textual_serve.server import Server
    except ImportError:
        print("sedmtui serve: textual-serve is not installed (pip install textual-serve)", file=sys.stderr)
        return 2
    command = console_command(ns)
    mode = "read-write: requests can be filed" if getattr(ns, "write", False) else "read-only"
    print(f"sedmtui serve: http://{host}:{ns.port} ({mode}); each browser gets its own console; ctrl+c stops",
          flush=True)
    Server(command, host=host, port=ns.port, title="sedmtui").serve()
    return 0


__all__ = ["console_command", "is_loopback", "run_serve"]
