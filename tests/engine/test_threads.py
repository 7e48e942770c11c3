"""One BLAS thread per process unless the user says otherwise (issue 19 item 7): set by the
``sedmtui`` command before numpy is imported, kept when the user set it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine.threads import SINGLE_THREAD_ENV, one_blas_thread

REPO = Path(__file__).resolve().parents[2]
PROBE = ("import os, sys\nfrom sedmtui.__main__ import main\n"
         "try:\n    main(['status', '--redux-root', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
         "print(*[os.environ.get(v) for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')])\n")


def test_the_helper_sets_only_what_the_user_left_unset():
    env = {"OPENBLAS_NUM_THREADS": "4"}
    one_blas_thread(env)
    assert env == {"OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert set(env) == set(SINGLE_THREAD_ENV)


def test_the_sedmtui_command_runs_with_one_blas_thread(tmp_path):
    base = {k: v for k, v in os.environ.items() if k not in SINGLE_THREAD_ENV}
    run = lambda env: subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], capture_output=True, text=True,  # noqa: E731
                                     cwd=REPO, env=env, timeout=120)
    out = run(base)
    assert out.stdout.splitlines()[-1] == "1 1 1", out.stderr[-500:]
    mine = run({**base, "OPENBLAS_NUM_THREADS": "2"})
    assert mine.stdout.splitlines()[-1] == "1 2 1", mine.stderr[-500:]
