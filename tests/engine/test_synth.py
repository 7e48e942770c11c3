"""The synthetic instrument: complete truth, physically consistent frames, determinism."""


import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from engine.instrument import sedm
from engine.synth.night import render_frame
from engine.synth.plan import plan_night
from tests.conftest import MINI_NIGHT


def test_truth_is_complete_and_matches_the_files(mini_raw, mini_truth):
    t = mini_truth
    assert t["night"] == MINI_NIGHT and "doc" in t
    on_disk = {p.name for p in mini_raw.glob("2*/*.fits")}
    assert on_disk == {f["file"] for f in t["frames"]}
    kinds = {f["kind"] for f in t["frames"]}
    assert kinds == {"bias", "dome", "arc", "standard", "science", "guider", "skip"}
    assert {f["lamp"] for f in t["frames"] if f["kind"] == "arc"} == {"Hg", "Cd", "Xe"}
    dirs = {f["dir"] for f in t["frames"]}
    assert dirs == {"20261123", MINI_NIGHT}, "calibrations split over the previous UT day"
    for e in t["exposures"]:
        for key in ("file", "object", "kind", "sed", "position", "jflex_px", "iflex_px", "expected_quality",
                    "sn_type", "redshift"):
            assert key in e, key
        sed = np.loadtxt(mini_raw / MINI_NIGHT / e["sed"])
        assert sed.shape[1] == 2 and sed[0, 0] <= 3700 and sed[-1, 0] >= 9300 and np.all(sed[:, 1] > 0)
    quality = sorted(e["expected_quality"] for e in t["exposures"])
    assert quality == [0, 0, 0, 0, 3, 4, 5, 5]
    traces = Table.read(mini_raw / MINI_NIGHT / t["instrument"]["traces"], hdu="TRACES")
    assert 1300 <= traces["usable"].sum() <= 2300
    assert {"q", "r", "x_ref", "y_ref", "disp", "tilt", "flat", "flat_5000_8500", "x_at_wave"} <= set(traces.colnames)


def _overscan_corrected(path):
    data = fits.getdata(path).astype(float)
    h = fits.getheader(path)
    lo, hi = h["OSCANX0"], h["OSCANX1"]
    img = data[:, h["PSCANX1"] : h["OSCANX0"]] - np.median(data[:, lo:hi], axis=1, keepdims=True)
    return img * h["GAIN"]


def test_dome_traces_fall_where_the_truth_says(mini_raw, mini_truth):
    dome = next(f for f in mini_truth["frames"] if f["kind"] == "dome")
    img = _overscan_corrected(mini_raw / dome["dir"] / dome["file"])
    tr = Table.read(mini_raw / MINI_NIGHT / "truth" / "traces.fits", hdu="TRACES")
    rng = np.random.default_rng(0)
    errs = []
    for k in rng.choice(np.flatnonzero(tr["usable"]), 40, replace=False):
        x = int(round(tr["x_ref"][k]))
        yc = tr["y_ref"][k] + tr["tilt"][k] * (x - tr["x_ref"][k]) + tr["curv"][k] * (x - tr["x_ref"][k]) ** 2
        rows = np.arange(int(yc) - 2, int(yc) + 4)
        prof = img[rows, x]
        errs.append(np.sum(rows * prof) / np.sum(prof) - yc)
    # A 6-row centroid of a sigma-1.2 Gaussian beside neighbours 6.7 px away: bias < 0.1 px.
    assert np.median(np.abs(errs)) < 0.1


def test_arc_lines_fall_where_the_truth_says(mini_raw, mini_truth):
    hg = next(f for f in mini_truth["frames"] if f.get("lamp") == "Hg")
    img = _overscan_corrected(mini_raw / hg["dir"] / hg["file"])
    tr = Table.read(mini_raw / MINI_NIGHT / "truth" / "traces.fits", hdu="TRACES")
    t = 5462.268**-0.5 - 7000**-0.5
    errs = []
    for k in np.flatnonzero(tr["usable"])[::60]:
        d = tr["disp"][k]
        x = tr["x_ref"][k] + d[0] * t + d[1] * t**2 + d[2] * t**3 + d[3] * t**4
        yc = tr["y_ref"][k] + tr["tilt"][k] * (x - tr["x_ref"][k])
        cols = np.arange(int(x) - 3, int(x) + 5)
        rows = np.arange(int(round(yc)) - 2, int(round(yc)) + 3)
        prof = img[np.ix_(rows, cols)].sum(axis=0)
        errs.append(np.sum(cols * prof) / np.sum(prof) - x)
    assert np.median(np.abs(errs)) < 0.1


def test_science_target_is_brightest_near_its_position(mini_raw, mini_truth):
    e = next(e for e in mini_truth["exposures"] if e["trick"] == "normal")
    img = _overscan_corrected(mini_raw / MINI_NIGHT / e["file"])
    tr = Table.read(mini_raw / MINI_NIGHT / "truth" / "traces.fits", hdu="TRACES")
    near = np.hypot(tr["sky_x"] - e["position"][0], tr["sky_y"] - e["position"][1])
    flux = []
    for k in np.flatnonzero(tr["usable"]):
        x = int(tr["x_ref"][k] - 40 + e["iflex_px"])
        y = int(round(tr["y_ref"][k] + tr["tilt"][k] * -40 + e["jflex_px"]))
        flux.append((np.median(img[y - 1 : y + 2, x - 20 : x + 20].sum(axis=0)), near[k]))
    flux.sort(reverse=True)
    assert flux[0][1] < 1.2  # the brightest lenslet is next to the target


def test_guider_stars_follow_the_true_wcs(mini_raw, mini_truth):
    from astropy.wcs import WCS

    e = next(e for e in mini_truth["exposures"] if e["trick"] == "normal")
    data = fits.getdata(mini_raw / MINI_NIGHT / e["guider_frames"][0]).astype(float)
    cat = Table.read(mini_raw / "catalog" / f"refcat_{MINI_NIGHT}.fits")
    w = e["guider_wcs"]
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = e["ifu_centre_radec"]
    wcs.wcs.crpix = [w["crpix"][0] + 1, w["crpix"][1] + 1]
    s, rho = w["scale_arcsec"] / 3600, np.radians(w["rotation_deg"])
    assert w["parity"] == "neg"  # mirrored like the Rainbow Camera's frames: det CD > 0
    wcs.wcs.cd = [[s * np.cos(rho), s * np.sin(rho)], [-s * np.sin(rho), s * np.cos(rho)]]
    bright = cat[(cat["mag"] < 16)]
    x, y = wcs.all_world2pix(bright["ra"], bright["dec"], 0)
    inside = (x > 20) & (x < 2028) & (y > 20) & (y < 2028)
    sky = np.median(data)
    for xi, yi in zip(x[inside][:10], y[inside][:10]):
        assert data[int(round(yi)), int(round(xi))] > sky + 500


def test_rendering_is_deterministic(tmp_path):
    plans = plan_night(MINI_NIGHT, mini=True, seed=7, camera="pixis")
    dome = next(p for p in plans if p.kind == "dome")
    bias = next(p for p in plans if p.kind == "bias")
    for sub in ("a", "b"):
        for p in (dome, bias):
            (tmp_path / sub / p.dir_night).mkdir(parents=True, exist_ok=True)
            render_frame(p, MINI_NIGHT, "pixis", 7, str(tmp_path / sub))
    for p in (dome, bias):
        a = fits.getdata(tmp_path / "a" / p.dir_night / p.file)
        b = fits.getdata(tmp_path / "b" / p.dir_night / p.file)
        assert np.array_equal(a, b)
    h = fits.getheader(tmp_path / "a" / dome.dir_night / dome.file)
    assert fits.getdata(tmp_path / "a" / dome.dir_night / dome.file).shape == sedm.CCD_SHAPE  # PIXIS: untrimmed
    assert h["ADCSPEED"] == 2.0 and "PSCANX0" not in h


@pytest.mark.parametrize("mini", [True, False])
def test_plans_cover_the_night(mini):
    plans = plan_night(MINI_NIGHT, mini=mini, seed=3, camera="pixis")
    kinds = [p.kind for p in plans]
    if mini:
        assert kinds.count("science") == 7 and kinds.count("standard") == 1
    else:
        assert kinds.count("bias") >= 20 and kinds.count("dome") == 5 and kinds.count("arc") == 15
        assert 20 <= kinds.count("science") <= 30 and 2 <= kinds.count("standard") <= 3
    starts = [p.start for p in plans]
    assert starts == sorted(starts) and len({p.file for p in plans}) == len(plans)


def _ifu_xy():
    q, r = np.meshgrid(np.arange(-23, 24), np.arange(-23, 24))
    xy = sedm.hex_to_spaxel_xy(q.ravel(), r.ravel())
    return xy[np.hypot(*xy.T) < 26]


def test_host_light_goes_through_the_psf_and_the_refraction_track():
    """A galaxy's light is refracted and blurred like a point source's: its flux centroid follows
    the ADR track, its spread grows with the PSF towards the blue, and the numerical convolution
    has converged (grid 0.15 vs 0.08 spaxel units)."""
    from engine.synth.scene import Psf, extended_source_fractions, point_source_fractions

    xy = _ifu_xy()
    psf = Psf(fwhm_arcsec=1.6)
    wave = np.array([3800.0, 6000.0, 9200.0])
    track = np.array([[1.3, -0.7]]) + np.array([[-0.9, 0.6], [0.0, 0.0], [0.4, -0.3]])
    frac = extended_source_fractions(xy, track, 2.7, 0.7, 0.4, psf, wave)
    fine = extended_source_fractions(xy, track, 2.7, 0.7, 0.4, psf, wave, step=0.08)
    assert np.abs(fine - frac).max() / fine.max() < 0.005
    centroid = (frac[:, :, None] * xy[:, None, :]).sum(0) / frac.sum(0)[:, None]
    assert np.abs(centroid - track).max() < 0.02  # the IFU edge clips a little light
    assert np.all((frac.sum(0) > 0.97) & (frac.sum(0) < 1.0))
    spread = [np.sum(frac[:, j] * np.sum((xy - track[j]) ** 2, 1)) / frac[:, j].sum() for j in range(3)]
    assert spread[0] > spread[1] > spread[2]
    # the blur is the PSF's: second moments add, so the excess over a point source's is the disk's
    # own (to 10 %: the IFU edge and the PSF kernel's +-9 unit truncation cut the Moffat wings)
    point = point_source_fractions(xy, track, psf, wave)
    point_spread = [np.sum(point[:, j] * np.sum((xy - track[j]) ** 2, 1)) / point[:, j].sum() for j in range(3)]
    assert np.ptp(np.array(spread) - np.array(point_spread)) < 0.1 * (spread[1] - point_spread[1])


def test_a_noise_twin_is_the_same_scene_with_new_noise(tmp_path):
    """``noise_seed`` redraws only the detector noise: same truth, same guider frames, a raw frame
    whose difference from the original is zero-mean noise of the expected size."""
    plans = plan_night(MINI_NIGHT, mini=True, seed=7, camera="pixis")
    sci = next(p for p in plans if p.kind == "science" and p.exposure is not None and p.exposure.guider != "none")
    runs = {}
    for sub, noise_seed in (("a", None), ("b", 11)):
        (tmp_path / sub / sci.dir_night).mkdir(parents=True, exist_ok=True)
        runs[sub] = render_frame(sci, MINI_NIGHT, "pixis", 7, str(tmp_path / sub), noise_seed)
    assert runs["a"]["exposure"] == runs["b"]["exposure"]
    for g in runs["a"]["guider_frames"]:
        assert np.array_equal(fits.getdata(tmp_path / "a" / g["dir"] / g["file"]),
                              fits.getdata(tmp_path / "b" / g["dir"] / g["file"]))
    a = fits.getdata(tmp_path / "a" / sci.dir_night / sci.file).astype(float)
    b = fits.getdata(tmp_path / "b" / sci.dir_night / sci.file).astype(float)
    d = (a - b)[192:1792, 192:1792]
    d = d - np.median(d)  # the bias level is drawn per read too
    assert not np.array_equal(a, b)
    clipped = np.where(np.abs(d) < 5 * np.std(d), d, 0.0)  # the cosmic rays move
    # no change of the scene: 64 x 64 block means of the difference are pure noise
    blocks = clipped.reshape(25, 64, 25, 64).mean(axis=(1, 3))
    blocks -= blocks.mean()  # the bias offset is fractional, the median of integers is not
    assert np.abs(blocks).max() < 6 * np.std(clipped) / 64
    good = clipped != 0
    # noise of a difference of two reads: sqrt(2) x (read noise and photon noise) >= sqrt(2) x read noise
    assert np.std(d[good]) > np.sqrt(2) * 2.0
