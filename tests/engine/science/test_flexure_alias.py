"""The j-flexure does not lock onto the next overlapping trace of a dense lattice.

The scores are the measured correlations of a wide draw (seed 101: pitch 43 px, overlapping
traces 5.7 px apart) for an exposure whose true shift is -0.50 px: the pattern shifted by one
trace step (+5 px) scores higher than the truth, and the edge of a +-4 px search (+4) higher
still than the true peak; the engine took +4.8 px and extracted every spaxel from its neighbour.
"""

import numpy as np

from engine.science.flexure import choose_jshift

SHIFTS = np.arange(-4, 5)
SCORES = np.array([0.327, 0.425, 0.667, 0.881, 0.892, 0.726, 0.603, 0.685, 0.897])


def test_the_true_peak_wins_over_the_search_edge():
    assert abs(choose_jshift(SHIFTS, SCORES) - (-0.44)) < 0.05


def test_an_interior_alias_loses_to_the_prior():
    shifts = np.arange(-6, 7)
    score = np.array([0.37, 0.387, 0.333, 0.359, 0.553, 0.814, 0.936, 0.832, 0.654, 0.633, 0.813, 1.0, 0.981])
    assert abs(choose_jshift(shifts, score)) < 0.2


def test_a_clear_large_shift_is_kept():
    shifts = np.arange(-4, 5)
    score = np.exp(-0.5 * ((shifts - 3.0) / 0.8) ** 2)
    assert abs(choose_jshift(shifts, score) - 3.0) < 0.1
