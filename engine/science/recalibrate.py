"""Flux-calibrate an exposure after the fact (a standard arrived after the science frame).

The exposure is extracted again from its cube, with the inputs of the uncalibrated extraction
(position source, manual centroid, region, lstep, tag), now that a sensitivity exists: the
spectrum is flux calibrated and telluric corrected at its own airmass, classified, and its PSF
fitted with the standard's profile-family prior - the spectrum the robot would have written had
the standard come first. The ``_notfluxcal`` files it replaces are removed.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.science.reduce import reextract


def recalibrate(task: dict) -> dict:
    """Re-extract ``task["spec_fits"]``'s exposure with ``task["fluxcal"]`` available.

    Parameters
    ----------
    task : dict
        A re-extraction task (:func:`engine.science.reduce.reextract`: cube, astrometry and
        ``request`` with the extraction's own inputs) plus ``spec_fits``, the uncalibrated
        spectrum's file name in ``out_dir``.

    Returns
    -------
    dict
        The re-extraction's result (``extraction``, ``classification``, ``timing``).
    """
    result = reextract(task)
    out_dir = Path(task["out_dir"])
    new = result["extraction"]
    old_fits = task["spec_fits"]
    for old in (old_fits, old_fits[:-5] + ".txt"):
        if old not in (new["spec_fits"], new["spec_txt"]) and (out_dir / old).exists():
            os.unlink(out_dir / old)
    return result
