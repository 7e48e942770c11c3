"""The built-in WCS solver (pure, on synthetic star lists) and the astrometry.net backend."""

import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from engine.astrometry.catalog import RefCatalog
from engine.astrometry.options import AstrometryOptions
from engine.astrometry.solve import cd_parity, cd_scale_rotation, nominal_cd, solve_wcs, tan_wcs
from engine.astrometry.solvefield import (
    read_solution,
    solve_field_command,
    solve_with_astrometry_net,
)
from engine.errors import AlgorithmError, ConfigError
from engine.instrument.sky import sky_to_standard, standard_to_sky

CRPIX = (1039.5, 968.5)
SHAPE = (2048, 2048)
IFU = (210.3, 34.7)


def _field(seed=0, n=220, rotation=0.7, scale=0.3779, noise_px=0.05, spurious=30, drop=0.2,
           parity="neg"):
    """Catalogue + detections of a true WCS with centroid noise, missing and spurious stars."""
    rng = np.random.default_rng(seed)
    r = 500.0 * np.sqrt(rng.uniform(0, 1, n))
    phi = rng.uniform(0, 2 * math.pi, n)
    ra, dec = standard_to_sky(r * np.cos(phi), r * np.sin(phi), *IFU)
    mag = rng.uniform(12, 20, n)
    true = tan_wcs(IFU, CRPIX, nominal_cd(scale, rotation, parity))
    x, y = true.all_world2pix(ra, dec, 0)
    xy = np.column_stack([x, y]) + rng.normal(0, noise_px, (n, 2))
    inside = (xy > 10).all(1) & (xy < 2038).all(1) & (rng.uniform(0, 1, n) > drop)
    det = np.vstack([xy[inside][np.argsort(mag[inside])], rng.uniform(0, 2048, (spurious, 2))])
    order = np.argsort(mag)
    return det, RefCatalog(ra[order], dec[order], mag[order])


@pytest.mark.parametrize(
    "offset_arcsec, rot_guess",
    [((0.0, 0.0), 0.0), ((11.0, -7.0), 0.0), ((-8.0, 9.0), 1.3), ((9.0, 6.0), -0.5)],
)
def test_solver_recovers_the_wcs(offset_arcsec, rot_guess):
    """Up to ~30 px (11 arcsec) pointing error and ~1 deg rotation error (0.7 true vs guess)."""
    det, cat = _field()
    pointing = tuple(float(v) for v in standard_to_sky(*offset_arcsec, *IFU))
    sol = solve_wcs(
        det, cat, CRPIX, pointing, SHAPE, AstrometryOptions(rotation_guess_deg=rot_guess)
    )
    err = math.hypot(*sky_to_standard(*sol.crval, *IFU))
    assert err < 0.01  # arcsec: 0.05 px noise over ~150 stars
    assert sol.scale_arcsec == pytest.approx(0.3779, abs=2e-5)
    assert sol.rotation_deg == pytest.approx(0.7, abs=0.01)
    assert sol.n_matched >= 100 and sol.rms_arcsec < 0.05


def test_solver_fails_cleanly_on_the_wrong_field():
    det, _ = _field(seed=0)
    _, other = _field(seed=1)
    with pytest.raises(AlgorithmError, match="catalogue") as info:
        solve_wcs(det, other, CRPIX, IFU, SHAPE)
    assert "n_matched" in info.value.metadata


def test_solver_reports_too_few_matches():
    det, cat = _field(n=40, drop=0.9, spurious=0)
    with pytest.raises(AlgorithmError, match=r"catalogue (matches|offset)"):
        solve_wcs(det, cat, CRPIX, IFU, SHAPE)


@pytest.mark.parametrize("parity", ["neg", "pos"])
def test_cd_helpers_round_trip(parity):
    cd = nominal_cd(0.38, -1.2, parity)
    assert cd_scale_rotation(cd) == pytest.approx((0.38, -1.2))
    assert cd_parity(cd) == parity
    assert (np.linalg.det(cd) > 0) == (parity == "neg")  # mirrored: East on the right


def test_the_rainbow_camera_is_mirrored_by_default():
    """SEDM solves its guider frames with negative parity; so do both backends by default."""
    assert AstrometryOptions().parity == "neg"
    assert cd_parity(nominal_cd(0.378, 0.0)) == "neg"


def test_a_frame_of_the_other_parity_fails_clearly_unless_both_are_allowed():
    det, cat = _field(parity="pos")
    with pytest.raises(AlgorithmError, match="catalogue"):
        solve_wcs(det, cat, CRPIX, IFU, SHAPE)  # the default: mirrored frames only
    for parity in ("pos", "both"):
        sol = solve_wcs(det, cat, CRPIX, IFU, SHAPE, AstrometryOptions(parity=parity))
        assert sol.parity == "pos" and sol.rotation_deg == pytest.approx(0.7, abs=0.01)
        assert math.hypot(*sky_to_standard(*sol.crval, *IFU)) < 0.01
    det, cat = _field(parity="neg")
    sol = solve_wcs(det, cat, CRPIX, IFU, SHAPE, AstrometryOptions(parity="both"))
    assert sol.parity == "neg" and sol.n_matched >= 100


def test_unknown_parity_is_a_config_error():
    with pytest.raises(ConfigError, match="parity"):
        AstrometryOptions(parity="flipped")


def test_solve_field_command_is_sedm_like(tmp_path):
    cfg = AstrometryOptions()
    cmd = solve_field_command(tmp_path / "s.fits", tmp_path, (123.456789, -5.5), CRPIX, cfg)
    args = {
        k: v for k, v in zip(cmd, cmd[1:] + [""]) if k.startswith("--") and not v.startswith("--")
    }
    assert cmd[0] == "solve-field" and cmd[1] == str(tmp_path / "s.fits")
    assert "--overwrite" in cmd and "--no-plots" in cmd
    assert (
        args["--ra"] == "123.456789" and args["--dec"] == "-5.500000" and args["--radius"] == "0.2"
    )
    assert (args["--scale-units"], args["--scale-low"], args["--scale-high"]) == (
        "arcsecperpix",
        "0.35",
        "0.41",
    )
    assert args["--cpulimit"] == "5" and args["--tweak-order"] == "3" and args["--nsigma"] == "12"
    assert args["--parity"] == "neg" and "--config" not in cmd
    both = solve_field_command(
        tmp_path / "s.fits", tmp_path, IFU, CRPIX,
        AstrometryOptions(parity="both", solve_field_config="/opt/an/astrometry.cfg"),
    )
    assert "--parity" not in both  # solve-field's default: either parity
    assert both[both.index("--config") + 1] == "/opt/an/astrometry.cfg"
    assert (args["--crpix-x"], args["--crpix-y"]) == ("1040.500", "969.500")  # 1-based
    assert args["--wcs"] == str(tmp_path / "guider.wcs") and args["--dir"] == str(tmp_path)


def test_solve_field_not_installed_is_said_clearly():
    with pytest.raises(ConfigError, match="not installed"):
        solve_with_astrometry_net(
            np.zeros((8, 8)), IFU, CRPIX, executable="solve-field-definitely-absent"
        )


def _fake_outputs(d, true):
    d.mkdir()
    fits.PrimaryHDU(header=true.to_header()).writeto(d / "guider.wcs")
    ra = np.array([IFU[0], IFU[0] + 0.01])
    dec = np.array([IFU[1], IFU[1] - 0.01])
    Table({"field_ra": ra + 1e-5, "field_dec": dec, "index_ra": ra, "index_dec": dec}).write(
        d / "guider.corr", format="fits"
    )
    (d / "guider.solved").write_bytes(b"\x01")


def test_solve_field_backend_with_a_fake_binary(tmp_path, monkeypatch):
    """The subprocess path, with a stand-in script that copies prepared outputs."""
    true = tan_wcs(IFU, (1000.0, 1000.0), nominal_cd(0.378, 0.5))  # CRPIX elsewhere: CRVAL != IFU
    _fake_outputs(tmp_path / "prepared", true)
    script = tmp_path / "bin" / "solve-field"
    script.parent.mkdir()
    script.write_text(
        "#!/bin/sh\n"
        f'SRC="{tmp_path / "prepared"}"\n'
        'while [ $# -gt 0 ]; do case "$1" in\n'
        '  --wcs) cp "$SRC/guider.wcs" "$2";; --corr) cp "$SRC/guider.corr" "$2";;\n'
        '  --solved) cp "$SRC/guider.solved" "$2";; esac; shift; done\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    sol = solve_with_astrometry_net(np.zeros((64, 64), np.float32), IFU, CRPIX)
    expect = true.all_pix2world([CRPIX[0]], [CRPIX[1]], 0)
    assert sol.backend == "solve-field" and sol.n_matched == 2
    assert sol.crval == pytest.approx((float(expect[0][0]), float(expect[1][0])))
    assert 0.01 < sol.rms_arcsec < 0.03  # 1e-5 deg in RA at dec 34.7 on one of two stars


def test_solve_field_without_solution(tmp_path):
    with pytest.raises(AlgorithmError, match="no solution"):
        read_solution(tmp_path, CRPIX)


def test_a_chance_alignment_of_a_few_stars_is_not_a_solution():
    """Regression: a full synthetic night (seed 2) rendered with unmirrored guider frames, solved
    for mirrored ones, gave one false solution: 6 of 171 detections matched with 0.19-arcsec rms,
    the IFU centre 27 arcsec off (the target then looked 50 spaxels away: "outside the IFU").
    The detections and catalogue field of that exposure are kept in ``data/``."""
    case = np.load(Path(__file__).parent / "data" / "chance_alignment.npz")
    cat = RefCatalog(case["ra"], case["dec"], case["mag"])
    args = (case["det"], cat, tuple(case["crpix"]), tuple(case["pointing"]), SHAPE)
    with pytest.raises(AlgorithmError, match=r"only 6 of 171 stars matched") as info:
        solve_wcs(*args)
    assert info.value.metadata["n_expected"] == 171
    sol = solve_wcs(*args, AstrometryOptions(parity="both"))  # the frame's true parity: pos
    assert sol.parity == "pos" and sol.n_matched >= 0.9 * 171
    false = solve_wcs(*args, AstrometryOptions(min_match_fraction=0.0))  # without the check
    assert false.n_matched == 6 and math.hypot(*sky_to_standard(*false.crval, *sol.crval)) > 20
