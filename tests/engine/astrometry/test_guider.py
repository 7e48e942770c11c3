"""Guider-frame selection and the SEDM median stack."""

import shutil

import numpy as np
import pytest
from astropy.io import fits

from engine.astrometry.guider import (
    combine_frames,
    guider_candidates,
    median_combine,
    select_guider_frames,
    stack_guider,
)
from engine.errors import FrameError
from tests.conftest import MINI_NIGHT


def _hdr(**cards):
    h = fits.Header()
    h.update(cards)
    return h


def test_selection_window_and_ifu_frames_excluded():
    ifu = _hdr(JD=2461368.5, EXPTIME=864.0)  # 0.01 day
    cands = [
        ("rc_a.fits", _hdr(JD=2461368.5, CAM_NAME="RC Cam")),  # at start: in
        ("rc_b.fits", _hdr(JD=2461368.51, CAM_NAME="RC Cam")),  # at end: in
        ("rc_c.fits", _hdr(JD=2461368.5101, CAM_NAME="RC Cam")),  # 8.6 s late: out
        ("rc_d.fits", _hdr(JD=2461368.4999, CAM_NAME="RC Cam")),  # before: out
        ("ifu_e.fits", _hdr(JD=2461368.505, CAM_NAME="IFU Cam")),  # IFU frame: out
        ("rc_f.fits", _hdr(CAM_NAME="RC Cam")),  # no JD: out
        ("rc_g.fits", _hdr(JD=2461368.503, CAM_NAME="RC Cam")),
    ]
    assert select_guider_frames(ifu, cands) == ["rc_a.fits", "rc_g.fits", "rc_b.fits"]


def test_selection_needs_the_ifu_jd():
    with pytest.raises(FrameError, match="JD"):
        select_guider_frames(_hdr(EXPTIME=10.0), [])


def test_selection_matches_truth_on_the_mini_night(mini_raw, mini_truth):
    night_dir = mini_raw / MINI_NIGHT
    cands = guider_candidates(night_dir)
    for e in mini_truth["exposures"]:
        header = fits.getheader(night_dir / e["file"])
        names = [p.rsplit("/", 1)[-1] for p in select_guider_frames(header, cands)]
        assert names == e["guider_frames"], e["file"]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_median_combine_is_the_exact_median(n):
    rng = np.random.default_rng(n)
    frames = [rng.normal(size=(7, 9)).astype(np.float32) for _ in range(n)]
    before = [f.copy() for f in frames]
    np.testing.assert_allclose(
        median_combine(frames), np.median(np.stack(frames), axis=0), atol=1e-6
    )
    assert all((a == b).all() for a, b in zip(frames, before))


def test_stack_is_the_sedm_formula():
    rng = np.random.default_rng(3)
    frames = [rng.uniform(100, 2000, (16, 16)).astype(np.float32) * k for k in (1.0, 1.3, 0.8)]
    stack, scale = combine_frames(frames)
    meds = [np.median(f) for f in frames]
    expected = np.median(np.stack([f / m for f, m in zip(frames, meds)]), axis=0) * np.mean(meds)
    np.testing.assert_allclose(stack, expected, rtol=1e-5)
    assert scale == pytest.approx(np.mean(meds))


def test_stack_header_and_corrupt_frame_skipped(mini_raw, mini_truth, tmp_path):
    entry = next(
        e for e in mini_truth["exposures"] if e["guider"] == "ok" and len(e["guider_frames"]) >= 3
    )
    paths = []
    for name in entry["guider_frames"]:
        shutil.copy(mini_raw / MINI_NIGHT / name, tmp_path / name)
        paths.append(str(tmp_path / name))
    with open(paths[1], "r+b") as fh:  # truncate the second frame mid-data
        fh.truncate(2880 * 700)
    (tmp_path / "junk.fits").write_bytes(b"not a fits file at all" * 200)
    stack = stack_guider([*paths, str(tmp_path / "junk.fits")])
    assert stack.n_frames == len(paths) - 1
    assert [p for p, _ in stack.skipped] == [paths[1], str(tmp_path / "junk.fits")]
    assert "truncated" in stack.skipped[0][1]
    h = stack.header
    assert h["NSTACK"] == len(paths) - 1 and h["STACKMTH"] == "median" and h["SCALEMTH"] == "median"
    assert (
        h["STACKSCL"] > 0 and stack.image.shape == (2048, 2048) and stack.image.dtype == np.float32
    )


def test_stack_of_nothing_usable(tmp_path):
    (tmp_path / "rc1.fits").write_bytes(b"")
    stack = stack_guider([str(tmp_path / "rc1.fits"), str(tmp_path / "missing.fits")])
    assert stack.image is None and stack.n_frames == 0 and len(stack.skipped) == 2
