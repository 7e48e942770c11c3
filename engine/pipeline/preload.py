"""Modules the engine's forkserver imports once, so that every worker starts warm.

A worker forked from the server inherits these imports; without them the first job of each
worker (after every engine start) pays ~0.6 s of imports, which is most of a re-extraction's
latency on a freshly started engine. Imported for its side effects only.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot  # noqa: E402, F401
import scipy.optimize  # noqa: E402, F401

import engine.calib.night  # noqa: E402, F401
import engine.classify  # noqa: E402, F401
import engine.science.recalibrate  # noqa: E402, F401
import engine.science.reduce  # noqa: E402, F401
import engine.science.verify  # noqa: E402, F401
