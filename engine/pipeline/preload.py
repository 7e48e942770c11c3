"""Modules the engine's forkserver imports once, so that every worker starts warm.

A worker forked from the server inherits these imports; without them the first job of each
worker (after every engine start) pays ~0.6 s of imports, which is most of a re-extraction's
latency on a freshly started engine. Imported for its side effects only.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot  # noqa: E402, F401
import scipy.optimize  # noqa: E402, F401

import engine.classify.snid  # noqa: E402, F401
import engine.pipeline.recipes.calibration  # noqa: E402, F401
import engine.pipeline.recipes.exposure  # noqa: E402, F401
import engine.science.verify  # noqa: E402, F401
