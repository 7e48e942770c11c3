"""The pending edit: hex steps, the region the engine will fit, request parameters."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import RequestError
from engine.instrument import sedm
from engine.science.cube import Cube
from engine.science.position import fit_region
from engine.state.requests import validate_shape
from sedmtui.edits import EditState, hex_step, inside_ifu
from tests.sedmtui.fakenight import lattice


@pytest.mark.parametrize("direction,step", [("right", (1, 0)), ("up", (0, 1)), ("left", (-1, 0)),
                                            ("down", (0, -1))])
def test_arrows_step_along_x_and_y_of_the_redex_frame(direction, step):
    """Issue 17 item 2: arrows move along the axes the map shows, not along the tilted lattice."""
    assert hex_step(direction) == pytest.approx(step)
    assert hex_step(direction, fine=True) == pytest.approx((0.25 * step[0], 0.25 * step[1]))


def test_nudges_accumulate_from_the_guess_and_reset():
    e = EditState(guess=(1.0, 2.0))
    assert not e.dirty and e.params()["centroid"] is None
    e2 = e.nudge("right").nudge("left")
    assert e2.centroid == pytest.approx((1.0, 2.0), abs=1e-3) and e2.dirty
    assert e2.reset() == e


@pytest.mark.parametrize("edit", [
    EditState(guess=(1.0, 2.0)),
    EditState(guess=(1.0, 2.0), radius=4.0),
    EditState(guess=(1.0, 2.0), centroid=(3.0, -1.0), excluded=frozenset({5, 6})),
])
def test_region_mask_mirrors_the_engine(edit):
    ids, xy = lattice()
    cube = Cube(wave=np.zeros(2), flux=np.zeros((len(xy), 2)), var=np.zeros((len(xy), 2)), spaxel_id=ids, xy=xy)
    excl = sorted(edit.excluded)
    mask_console = edit.region_mask(xy, ids)
    params = edit.params(xy, ids)
    mask_engine, _ = fit_region(cube, edit.position, params["region"], edit.default_radius)
    assert (mask_console == mask_engine).all()
    if excl:
        assert not mask_console[excl].any()
    validate_shape("reextract", "20261124", "04_21_30", params)


def test_toggle_in_and_out_and_explicit_include():
    ids, xy = lattice()
    e = EditState(guess=(0.0, 0.0), default_radius=3.0)
    far = int(np.argmax(np.hypot(*xy.T)))
    near = int(np.argmin(np.hypot(*xy.T)))
    e = e.toggle(near, inside_circle=True).toggle(far, inside_circle=False)
    assert e.excluded == {near} and e.added == {far}
    p = e.params(xy, ids)
    assert set(p["region"]) == {"include"} and far in p["region"]["include"] and near not in p["region"]["include"]
    with pytest.raises(ValueError):
        e.params()
    assert e.toggle(near, True).excluded == frozenset() and e.toggle(far, False).added == frozenset()
    assert e.reset_region().region_changed is False


def test_grow_lstep_describe_and_validation():
    e = EditState(guess=(0.0, 0.0)).grow(2.0).grow(-50.0)
    assert e.radius == pytest.approx(sedm.LENSLET_PITCH_UNITS, abs=1e-3)
    e = e.next_lstep().next_lstep()
    assert e.lstep == 3 and "lstep 3" in e.describe()
    assert EditState(guess=(0, 0), lstep=5).next_lstep().lstep == 1
    assert "→ (+2.00, +1.00)" in EditState(guess=(0, 0)).set_centroid(2, 1).describe()
    with pytest.raises(RequestError):
        validate_shape("reextract", "20261124", "04_21_30", {"region": {"include": []}})


def test_inside_ifu():
    assert inside_ifu(3.0, 4.0) and not inside_ifu(30.0, 0.0)
