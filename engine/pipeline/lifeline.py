"""The pool's fork server dies with the engine that started it (imported by the server first).

The engine exports its PID in ``SEDMTUI_ENGINE_PID`` before starting its process pool. The
fork server imports this module before the heavy preloads: if its parent is that engine it
asks Linux for SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``). Otherwise a
``kill -9`` of the engine during the server's seconds of preloading leaves it running, and
the server only notices its parent is gone once the preloads are done. Importing this module
anywhere else does nothing.
"""

from __future__ import annotations

import os

from engine.pipeline.jobs import ENGINE_PID_ENV, parent_death_signal

if os.environ.get(ENGINE_PID_ENV) == str(os.getppid()):
    parent_death_signal()  # no watch thread here: the server forks the workers
