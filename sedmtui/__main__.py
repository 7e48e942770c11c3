"""Entry point of the ``sedmtui`` command.

Engine commands (``--batch``, ``synth``, ``classify``, ``report``, ``redex``, ``status``) are
dispatched before anything imports Textual; only the console and the demo load it.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Run ``sedmtui`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    from engine.threads import one_blas_thread

    one_blas_thread()  # before anything imports numpy (see engine.threads)
    from engine.cli import dispatch, run_engine_command

    cmd, ns = dispatch(argv)
    if cmd == "console":
        from sedmtui.launch import run_console

        return run_console(ns)
    if cmd == "demo":
        from sedmtui.demo import run_demo

        return run_demo(ns)
    if cmd == "serve":
        from sedmtui.serve import run_serve

        return run_serve(ns)
    return run_engine_command(cmd, ns)


if __name__ == "__main__":
    sys.exit(main())
