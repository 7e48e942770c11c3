"""Draw one night's synthetic instrument: narrowly around the nominal constants or from the wide priors."""

from __future__ import annotations

import numpy as np

from engine.synth import priors as pr
from engine.synth.instrument import TrueInstrument, draw_nominal_instrument
from engine.synth.wide import draw_wide_instrument


def draw_instrument(
    rng: np.random.Generator, priors: str = pr.DEFAULT_PRIORS, pin: dict | None = None
) -> TrueInstrument:
    """Draw one night's true instrument state.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random number (the night's seed).
    priors : {"nominal", "wide"}
        ``"nominal"``: the narrow draw around the nominal SEDM constants (unbounded lenslet
        array); ``"wide"``: the ranges of :data:`engine.synth.priors.WIDE_PRIORS` and a finite
        microlens array (see :func:`engine.synth.wide.draw_wide_instrument`).
    pin : dict, optional
        Wide draws only: quantities to set instead of drawing
        (:data:`engine.synth.wide.PIN_KEYS`).
    """
    if pr.check_priors(priors) == "wide":
        return draw_wide_instrument(rng, pin)
    if pin:
        raise ValueError("pin= needs priors='wide'")
    return draw_nominal_instrument(rng)
