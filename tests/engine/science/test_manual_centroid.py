"""A centroid set by hand is obeyed, or the extraction says why not (issue 17 item 3).

On the synthetic neighbour case of :mod:`tests.engine.science.test_neighbour` (a star five times
brighter 2.1 FWHM away): with ``centroid_radius`` the PSF fit may move at most that far from
the hand-set centroid; :func:`engine.science.extract.manual_check` reports how far it moved and
turns a fit that ran off (to the neighbour, or to nothing) into quality 4 with the distance in
the reason, never a good extraction.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import RequestError
from engine.io.inputs import validate_request
from engine.science.adr import Meteo
from engine.science.extract import manual_check
from engine.science.position import Position
from engine.science.psffit import fit_psf
from tests.engine.science.test_neighbour import make_cube


def manual(x: float, y: float) -> Position:
    return Position(x=x, y=y, srcpos="manual", astrom=None, brightest=None, manual=(x, y))


def fit_at(cube, x, y, radius):
    wave, flux, var, xy, _sn = cube
    mask = np.hypot(xy[:, 0] - x, xy[:, 1] - y) <= 10.0
    fit = fit_psf(wave, flux, var, xy, (x, y), n_meta=6, fit_mask=mask, meteo=Meteo(), airmass=1.0,
                  parallactic_deg=0.0, rotation_deg=0.0, guess_err=radius, find_host=False)
    return fit.adr.x_ref, fit.adr.y_ref


def test_a_centroid_set_on_the_target_is_kept_within_a_tenth_of_a_spaxel():
    cube = make_cube(np.random.default_rng(11))
    fitted = fit_at(cube, 0.05, -0.05, 0.5)
    quality, reason, moved = manual_check(manual(0.05, -0.05), fitted, 0, "good", 0.5)
    assert moved < 0.1 and (quality, reason) == (0, "good")


def test_a_fit_that_runs_off_the_hand_set_centroid_is_flagged():
    quality, reason, moved = manual_check(manual(1.0, 1.0), (-1.74, 3.92), 0, "good", 0.5)
    assert quality == 4 and moved == pytest.approx(4.00, abs=0.01)
    assert reason.startswith("PSF fit moved 4.00 spaxels from the hand-set centroid (+1.00, +1.00)")
    assert "0.50 allowed" in reason


def test_quality_3_and_automatic_positions_are_left_alone():
    assert manual_check(manual(30.0, 0.0), (27.0, 0.0), 3, "outside", 0.5)[:2] == (3, "outside")
    auto = Position(0.0, 0.0, "auto", None, (0.0, 0.0), None)
    assert manual_check(auto, (3.0, 0.0), 0, "good", 5.0) == (0, "good", None)


@pytest.mark.parametrize("radius", [0.0, -1.0, 6.0, float("nan"), "1"])
def test_centroid_radius_is_checked_at_the_boundary(radius):
    with pytest.raises(RequestError, match="centroid_radius"):
        validate_request("reextract", "20261124", "04_39_00", {"centroid": [1.0, 1.0], "centroid_radius": radius})
    validate_request("reextract", "20261124", "04_39_00", {"centroid": [1.0, 1.0], "centroid_radius": 0.5})
