"""The pool's fork server dies with the engine that started it (imported by the server first).

The engine exports its PID in ``SEDMTUI_ENGINE_PID`` before starting its process pool. The
fork server imports this module before the heavy preloads: it asks Linux for SIGKILL when
its parent dies (``prctl(PR_SET_PDEATHSIG)``), and exits at once if its parent is already
no longer that engine (killed while the server was starting). Otherwise a ``kill -9`` of the
engine during the server's seconds of preloading leaves it running -- and with it the
resource tracker whose pipe it holds -- until the preloads are done. Importing this module
outside a fork server does nothing.
"""

from __future__ import annotations

import os
import sys

from engine.pipeline.jobs import ENGINE_PID_ENV, parent_death_signal


def _hold_on() -> None:
    engine = os.environ.get(ENGINE_PID_ENV)
    if not engine or "multiprocessing.forkserver" not in sys.modules:
        return
    if str(os.getppid()) == engine:
        parent_death_signal()  # no watch thread here: the server forks the workers
    if str(os.getppid()) != engine:  # the engine died before (or while) asking
        os._exit(1)


_hold_on()
