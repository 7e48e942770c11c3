"""The instrument measured from the frames: lattice and dispersion law over wide draws.

Draws span the priors the calibration promises (pitch 40-60 px, q axis within +-30 deg of
nominal, the array's centre anywhere in the central 400 px, dispersion scale +-8 %, a law of
another form), with 5 % of traces missing, spurious traces and a smooth field distortion of
up to ~10 px. Tolerances: the lattice nodes carry ~0.05 px of position noise here, so pitch
and angle are recovered to far better than 0.2 % and 0.1 deg; labels must be exact.
"""

import numpy as np
import pytest

from engine.calib import arclines
from engine.calib.arcid import STACK_SPAN, fit_stacked_law, t_of
from engine.calib.lattice import fit_lattice
from engine.errors import AlgorithmError
from engine.instrument import sedm

EXTENT = (-80.0, 150.0)
"""Dome-lit range of a trace around its 7000-A column [pixel]."""


def _lattice(rng, pitch, angle, origin, drop=0.05, spurious=10, distort=8.0):
    basis = sedm.lattice_basis_px(pitch, angle)
    qq, rr = np.meshgrid(np.arange(-60, 61), np.arange(-60, 61), indexing="ij")
    qq, rr = qq.ravel(), rr.ravel()
    inside = sedm.in_mla(qq, rr)
    qq, rr = qq[inside], rr[inside]
    pos = np.asarray(origin, float) + qq[:, None] * basis[0] + rr[:, None] * basis[1]
    xn, yn = (pos[:, 0] - 1024) / 1024, (pos[:, 1] - 1024) / 1024
    c = rng.normal(0, distort / 3, (2, 5))
    for k in range(2):
        pos[:, k] += c[k, 0] * xn * xn + c[k, 1] * xn * yn + c[k, 2] * yn * yn + c[k, 3] * xn**3 + c[k, 4] * yn**3
    pos += rng.normal(0, 0.05, pos.shape)
    on = (pos[:, 0] + EXTENT[0] > 7) & (pos[:, 0] + EXTENT[1] < 2040) & (pos[:, 1] > 3) & (pos[:, 1] < 2045)
    keep = on & (rng.random(len(pos)) > drop)
    fake = rng.uniform(100, 1900, (spurious, 2))
    points = np.vstack([pos[keep], fake])
    truth = np.vstack([np.stack([qq[keep], rr[keep]], 1), np.full((spurious, 2), 10**6)])
    return points, truth


@pytest.mark.parametrize("pitch, angle, origin", [
    (40.0, 25.3, (1024, 1024)),
    (41.0, -4.0, (840, 1210)),
    (42.5, 54.5, (1220, 860)),
    (47.0, 25.3, (895, 950)),
    (52.0, 0.0, (1100, 1000)),
    (60.0, 50.0, (950, 1180)),
])
def test_lattice_measured_from_the_positions(pitch, angle, origin):
    rng = np.random.default_rng(int(pitch * 10 + angle))
    points, truth = _lattice(rng, pitch, angle, origin)
    grid = fit_lattice(points[:, 0], points[:, 1])
    real = truth[:, 0] != 10**6
    assert abs(grid.pitch_px / pitch - 1) < 0.005  # the median local pitch, distortion included
    assert abs(grid.angle_deg - angle) < 0.1
    assert grid.lattice_rms_px < 0.1
    assert grid.rejected[~real].all() and not grid.rejected[real].any()
    # Lenslet (0, 0) is the node imaged nearest the detector's reference point; every other
    # label follows from it exactly.
    ref = np.array(sedm.CCD_LATTICE_ORIGIN_PX)
    k0 = np.flatnonzero(real)[np.argmin(np.hypot(*(points[real] - ref).T))]
    expected = truth[real] - truth[k0]
    assert (np.stack([grid.q, grid.r], 1)[real] == expected).all()
    assert np.hypot(*(np.array(grid.origin_px) - points[k0])) < 0.2


def test_scattered_points_are_refused_with_what_was_measured():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 2048, (1500, 2))
    with pytest.raises(AlgorithmError, match="pitch"):
        fit_lattice(points[:, 0], points[:, 1])


def _stack(scale, offset, c2, c3=0.0, sigma=1.3):
    groups = arclines.line_groups()
    cols = np.arange(STACK_SPAN[0], STACK_SPAN[1], dtype=float)
    out = {}
    for lamp in ("Hg", "Cd", "Xe"):
        waves = np.concatenate([g.waves for g in groups if g.lamp == lamp])
        amps = np.concatenate([g.amplitudes for g in groups if g.lamp == lamp])
        t = t_of(waves)
        x = offset + scale * sedm.DISPERSION_D_PX * t + c2 * t**2 + c3 * t**3
        prof = amps[:, None] * np.exp(-0.5 * ((cols[None, :] - x[:, None]) / sigma) ** 2)
        s = prof.sum(0)
        out[lamp] = s / s.max()
    return out, groups


@pytest.mark.parametrize("scale, offset, c2, c3", [
    (1.0, 77.0, 2e5, 8e6),
    (0.92, 40.0, 2e5, 8e6),
    (1.08, 115.0, -6e5, 0.0),
    (0.95, 95.0, 1.2e6, -3e7),
])
def test_dispersion_law_identified_on_the_stack(scale, offset, c2, c3):
    stacks, groups = _stack(scale, offset, c2, c3)
    law = fit_stacked_law(stacks, groups)
    waves = np.linspace(3700.0, 9300.0, 30)
    t = t_of(waves)
    truth = offset + scale * sedm.DISPERSION_D_PX * t + c2 * t**2 + c3 * t**3
    got = law.coef[0] + law.shape(waves)
    assert np.max(np.abs(got - truth)) < 1.5  # blends bias stacked peaks; the per-trace fits take over
    assert abs(law.scale - scale) < 0.02


def test_frame_origin_is_the_nearest_image_not_the_rounded_coordinates():
    """The reference point at 0.48 a + 0.42 b of node (0, 0): rounding q and r gives (0, 0),
    but on a hexagonal lattice the node imaged nearest is (1, 0) (0.48 pitch against 0.78)."""
    basis = sedm.lattice_basis_px(47.0, 25.3)
    origin = np.array(sedm.CCD_LATTICE_ORIGIN_PX) - (0.48 * basis[0] + 0.42 * basis[1])
    points, truth = _lattice(np.random.default_rng(5), 47.0, 25.3, origin, drop=0.0, spurious=0, distort=0.0)
    grid = fit_lattice(points[:, 0], points[:, 1])
    k = np.flatnonzero((grid.q == 0) & (grid.r == 0))
    assert k.size == 1 and tuple(truth[k[0]]) == (1, 0)
