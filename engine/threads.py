"""One BLAS/OpenMP thread per process: the engine's parallelism is its processes.

OpenBLAS (numpy's and scipy's) starts as many threads as there are cores at import, and on a
busy machine they spin against each other and against the other processes: ``sedmtui
classify`` on 50 real SEDM spectra used 16.3 s of CPU for 16.7 s of wall with the default two
threads on this 2-core machine while a sweep ran beside it, and 8.0 s of CPU for 8.6 s of wall
with one. The variables only act before numpy is first imported, so they are set at the very
start of the ``sedmtui`` command, in the engine's pool before its fork server starts, and on
every Dask worker; a user's own setting wins.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

SINGLE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Variables that hold BLAS/OpenMP to one thread."""


def one_blas_thread(environ: MutableMapping[str, str] | None = None) -> None:
    """Set :data:`SINGLE_THREAD_ENV` to 1 where the user has not set them.

    Parameters
    ----------
    environ : mapping, optional
        The environment to change (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    for var in SINGLE_THREAD_ENV:
        env.setdefault(var, "1")


__all__ = ["SINGLE_THREAD_ENV", "one_blas_thread"]
