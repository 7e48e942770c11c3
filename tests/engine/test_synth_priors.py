"""The generator's instrument priors: wide draws stay in their documented ranges, keep overlapping
traces apart, carry a finite microlens array and detector defects; nominal draws are unchanged."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from astropy.io import fits

from engine.instrument import sedm
from engine.synth import priors as pr
from engine.synth.draw import draw_instrument
from engine.synth.wide import _draw_accepted_geometry, measured_min_trace_separation
from tests.conftest import MINI_NIGHT

P = pr.PRIORS
SEEDS = range(50)


def _draw(seed: int, priors: str):
    return draw_instrument(np.random.default_rng(np.random.SeedSequence([seed, 3])), priors)


@pytest.fixture(scope="module")
def wide_draws():
    return [_draw(s, "wide") for s in SEEDS]


def _within(name: str, value: float, slack: float = 1e-9) -> bool:
    return P[name].lo - slack <= value <= P[name].hi + slack


def test_wide_draws_stay_within_the_documented_priors(wide_draws):
    centre = np.array(pr.DETECTOR_CENTRE_PX)
    outline_n = pr.mla_outline()["n_lenslets"]
    for ins in wide_draws:
        d = ins.draw
        assert d["priors"] == "wide"
        assert _within("pitch_px", d["pitch_px"]) and _within("angle_deg", d["angle_deg"])
        assert np.all(np.abs(np.array(d["origin_px"]) - centre) <= 200.0)
        assert _within("disp_scale", d["dispersion"]["scale"])
        for name, f in zip(("disp_c_factor", "disp_e_factor", "disp_f_factor"), d["dispersion"]["c_e_f_factors"]):
            assert _within(name, f)
        assert d["distortion"]["max_px"] <= P["distortion_px"].hi + 1e-6
        assert np.abs(ins.tilt).max() <= 0.02 + 5e-4  # + the per-lenslet 1e-4 scatter
        assert _within("curv_per_px", d["curv_mean_per_px"])
        for name in ("sigma_y_px", "sigma_field", "sigma_chroma", "lsf_sigma_px", "lsf_field"):
            assert _within(name, d["widths"][name]), name
        for name in ("flat_scatter", "vignetting", "flat_chroma_scatter", "pixel_flat_rms"):
            assert _within(name, d["throughput"][name]), name
        assert 0.8 < ins.sigma_y.min() and ins.sigma_y.max() < 1.6 * 1.25
        # the finite microlens array: only lenslets inside the outline (around its centre) exist
        cq, cr = d["mla_centre_lenslet"]
        assert np.all(pr.inside_mla_outline(ins.q - cq, ins.r - cr)) and ins.n <= outline_n
        # the spaxel frame's (0, 0) is the lenslet imaged nearest the detector's reference point
        k0 = np.flatnonzero((ins.q == 0) & (ins.r == 0))
        dist = np.hypot(ins.x_ref - sedm.CCD_LATTICE_ORIGIN_PX[0], ins.y_ref - sedm.CCD_LATTICE_ORIGIN_PX[1])
        assert k0.size == 1 and k0[0] == np.argmin(dist)
        assert 0.9 < np.median(ins.flat[ins.usable]) < 1.1 and ins.usable.sum() > 800
        json.dumps(d)  # the record is JSON-ready


def test_wide_draws_cover_the_ranges():
    geo = [_draw_accepted_geometry(np.random.default_rng(s)) for s in range(200)]
    pitch = np.array([g["pitch_px"] for g in geo])
    angle = np.array([g["angle_deg"] for g in geo])
    origin = np.array([g["origin_px"] for g in geo])
    assert pitch.min() < 42.0 and pitch.max() > 58.0
    assert np.histogram(pitch, bins=4, range=(40, 60))[0].min() > 25  # near uniform
    # rotations within +-30 deg, less the windows the rule excludes (lattice rows near +x: -5..+5 deg)
    assert angle.min() < sedm.CCD_LATTICE_ANGLE_DEG - 15 and angle.max() > sedm.CCD_LATTICE_ANGLE_DEG + 25
    assert np.ptp(origin[:, 0]) > 300 and np.ptp(origin[:, 1]) > 300
    scales = np.array([g["disp_scale"] for g in geo])
    assert scales.min() < 0.94 and scales.max() > 1.06
    c = np.array([g["disp_factors"][0] for g in geo])
    assert (c < 0).any() and (c > 3).any()  # the law's form changes, sign included


def test_overlapping_traces_stay_separated(wide_draws):
    for ins in wide_draws:
        d = ins.draw
        sep, _ = pr.min_trace_y_separation(d["pitch_px"], d["angle_deg"], d["tilt_mean"],
                                           d["trace_length_px"] * pr.TRACE_LENGTH_MARGIN)
        assert sep >= pr.TRACE_SEPARATION_MIN_PX
        assert sep == pytest.approx(d["min_trace_y_separation_px"])
        assert measured_min_trace_separation(ins) >= pr.TRACE_SEPARATION_MEASURED_MIN_PX


def test_the_separation_rule_excludes_pairs():
    """Not every pitch and angle is allowed: a lattice row along x is rejected, the nominal passes."""
    assert pr.separation_ok(47.0, 25.3, 0.0, 240.0)
    assert not pr.separation_ok(47.0, 0.0, 0.0, 240.0)  # same-row neighbours overlap at dy = 0
    assert not pr.separation_ok(40.0, 25.3, 0.0, 260.0)
    sep, vec = pr.min_trace_y_separation(47.0, 25.3, 0.0, 230.0)
    assert sep == pytest.approx(6.67, abs=0.01) and abs(vec[0]) < 230.0


def test_the_array_centre_is_recorded(wide_draws):
    """The array's centre lenslet sits at the drawn origin (its label in the spaxel frame is
    recorded: the frame is referenced to the detector, not to the array)."""
    for ins in wide_draws:
        d = ins.draw
        cq, cr = d["mla_centre_lenslet"]
        k = np.flatnonzero((ins.q == cq) & (ins.r == cr))
        if k.size:  # the centre lenslet's trace may fall off the detector
            assert np.hypot(ins.x_ref[k[0]] - d["origin_px"][0], ins.y_ref[k[0]] - d["origin_px"][1]) < 0.3


def _instrument_hash(ins) -> str:
    h = hashlib.sha256()
    for f in dataclasses.fields(ins):
        if f.name != "draw":
            h.update(np.ascontiguousarray(getattr(ins, f.name)).tobytes())
    return h.hexdigest()[:16]


def test_nominal_draws_are_unchanged():
    """``priors="nominal"`` reproduces the generator's draw from before the wide priors, bit for
    bit (hashes taken from that code); the default is the wide draw."""
    assert _instrument_hash(_draw(1, "nominal")) == "41248f84e004397e"
    assert _instrument_hash(_draw(7, "nominal")) == "46fa0e6712577e41"
    assert pr.DEFAULT_PRIORS == "wide"
    ins = draw_instrument(np.random.default_rng(np.random.SeedSequence([7, 3])), priors="nominal")
    assert _instrument_hash(ins) == "46fa0e6712577e41" and ins.draw["priors"] == "nominal"
    assert draw_instrument(np.random.default_rng(np.random.SeedSequence([7, 3]))).draw["priors"] == "wide"
    with pytest.raises(ValueError):
        _draw(1, "narrow")


def test_nominal_bias_frame_is_unchanged(tmp_path):
    from engine.synth.night import render_frame
    from engine.synth.plan import plan_night

    plans = plan_night(MINI_NIGHT, mini=True, seed=7, camera="pixis", priors="nominal")
    bias = next(p for p in plans if p.kind == "bias")
    (tmp_path / bias.dir_night).mkdir()
    render_frame(bias, MINI_NIGHT, "pixis", 7, str(tmp_path), priors="nominal")
    data = fits.getdata(tmp_path / bias.dir_night / bias.file)
    assert hashlib.sha256(data.tobytes()).hexdigest()[:16] == "90d3731b812d7cda"


def test_wide_plan_draws_psf_seeing_and_flexure():
    from engine.synth.plan import draw_night_conditions, plan_night

    nominal = plan_night(MINI_NIGHT, mini=True, seed=4, camera="andor")
    wide = plan_night(MINI_NIGHT, mini=True, seed=4, camera="andor", priors="wide")
    cond = draw_night_conditions(4)
    for name, value in cond.items():
        assert _within(name, value), name
    assert [p.file for p in nominal] == [p.file for p in wide]
    for a, b in zip(nominal, wide):
        if a.exposure is None:
            assert a == b
            continue
        e = b.exposure
        assert 0.8 <= e.seeing_fwhm <= 3.0 and e.psf_beta == cond["psf_beta"] and e.psf_eta == cond["psf_eta"]
        assert abs(e.jflex) <= 2.5 * cond["jflex_sigma_px"] + 1e-9
        assert (a.exposure.psf_beta, a.exposure.psf_eta) == (2.5, 0.6)  # the nominal PSF family


def test_synth_command_takes_priors():
    from engine.cli import sub_parser

    assert sub_parser("synth").parse_args(["out", "--priors", "wide"]).priors == "wide"
    assert sub_parser("synth").parse_args(["out"]).priors is None
    ns = sub_parser("synth").parse_args(["out", "--priors", "wide", "--pin", "pitch_px=60", "--pin", "origin_px=900,1100"])
    assert ns.pin == ["pitch_px=60", "origin_px=900,1100"]
    with pytest.raises(SystemExit):
        sub_parser("synth").parse_args(["out", "--priors", "odd"])


def _overscan_corrected(path):
    data = fits.getdata(path).astype(float)
    h = fits.getheader(path)
    img = data[:, h["PSCANX1"] : h["OSCANX0"]] - np.median(data[:, h["OSCANX0"] : h["OSCANX1"]], axis=1, keepdims=True)
    return img * h["GAIN"], data[:, h["PSCANX1"] : h["OSCANX0"]]


def test_wide_frames_carry_the_recorded_defects(tmp_path):
    """A wide night's bias and dome show its bad columns, hot pixels and bleed where truth says;
    truth.json's instrument_draw records them (the same on every frame)."""
    from engine.synth.night import _context, render_frame
    from engine.synth.plan import plan_night
    from engine.synth.truth import instrument_draw

    seed = 3
    plans = plan_night(MINI_NIGHT, mini=True, seed=seed, camera="andor", priors="wide")
    frames = {}
    for kind in ("bias", "dome"):
        p = next(p for p in plans if p.kind == kind)
        (tmp_path / p.dir_night).mkdir(exist_ok=True)
        render_frame(p, MINI_NIGHT, "andor", seed, str(tmp_path), priors="wide")
        frames[kind] = (p, *_overscan_corrected(tmp_path / p.dir_night / p.file))
    ctx = _context(MINI_NIGHT, "andor", seed, str(tmp_path), "wide")
    record = json.loads(json.dumps(instrument_draw(ctx)))
    assert record["priors"] == "wide" and record["mla_outline"]["shape"] == pr.MLA_OUTLINE_SHAPE
    defects = record["defects"]
    dome_plan, dome, dome_raw = frames["dome"]
    _, bias, _ = frames["bias"]
    ins = ctx.instrument
    for k, col in enumerate(defects["bad_columns"]):
        x, y0, y1 = col["x"], col["y0"], col["y1"]
        rows = np.arange(max(y0, 50), min(y1, 1998))
        if col["kind"] == "dead" and k < 2:  # the first two cross the lit traces
            lit = dome[rows, x - 3 : x + 4]
            neighbours = np.delete(lit, 3, axis=1).mean()
            assert lit[:, 3].mean() < (col["response"] + 0.15) * neighbours
        elif col["kind"] == "hot":
            assert np.median(bias[rows, x]) - np.median(bias[rows, x + 2]) == pytest.approx(col["offset_e"], rel=0.3)
    # the first two columns cross the lit traces
    lit_cols = [c for c in defects["bad_columns"][:2]]
    for c in lit_cols:
        assert ins.x_ref.min() < c["x"] < ins.x_ref.max() + 200
    hot = np.array(defects["hot_pixels"]["rows"])
    strong = hot[hot[:, 2] * dome_plan.exptime > 20000]
    assert strong.size and np.median(dome[strong[:, 1].astype(int), strong[:, 0].astype(int)]) > 15000
    b = defects["bleed"]
    n = min(int(np.ceil(b["rate_e_s"] * dome_plan.exptime / b["full_well_e"])), b["max_rows"])
    y0 = b["y"] - n // 2
    assert np.all(dome_raw[y0 : y0 + n, b["x"]] == sedm.SATURATION_ADU)
    assert (dome_raw == sedm.SATURATION_ADU).sum() < 5 * n + 200  # the dome is not ruined
    # the wide dome's traces lie where the truth says (away from the bad columns)
    bad_x = np.array([c["x"] for c in defects["bad_columns"]] + [b["x"]])
    errs = []
    for k in np.random.default_rng(0).choice(np.flatnonzero(ins.usable), 60, replace=False):
        x = int(round(ins.x_ref[k]))
        if np.abs(bad_x - x).min() < 2:
            continue
        yc = ins.y_of_x(np.array([[float(x)]]), np.array([k]))[0, 0]
        rows = np.arange(int(round(yc)) - 2, int(round(yc)) + 3)
        prof = dome[rows, x]
        errs.append(np.sum(rows * prof) / np.sum(prof) - yc)
    # a 5-row centroid (neighbouring traces 5.5 px away add a little light): a coarse check,
    # the calibration benchmark measures trace positions to 0.01 px
    assert np.median(np.abs(errs)) < 0.15
    sl = defects["scattered_light"]
    assert _within("scatter_fraction", sl["fraction"]) and 1 <= len(sl["blobs"]) <= 3
    assert ctx.defects.scatter.shape == sedm.CCD_SHAPE and ctx.defects.scatter.mean() == pytest.approx(1.0, 1e-3)


def test_describe_priors_is_a_table():
    rows = pr.describe_priors()
    names = {r["name"] for r in rows}
    assert {"pitch_px", "angle_deg", "origin_x_px", "disp_scale", "tilt", "sigma_y_px", "flat_scatter",
            "psf_beta", "seeing_median_arcsec", "jflex_sigma_px", "n_bad_columns", "scatter_fraction"} <= names
    assert all(r["lo"] < r["hi"] for r in rows)
    assert pr.priors_table_markdown().count("\n") == len(rows) + 1


@pytest.mark.parametrize("pin", [
    {"pitch_px": 40.0},
    {"pitch_px": 60.0, "origin_px": (1223.5, 823.5)},
    {"disp_scale": 0.92, "disp_c_factor": -2.0, "angle_deg": 10.0},
])
def test_pinned_draws_at_the_edges_of_the_priors(pin):
    """Cases at the edge of the priors can be asked for (calibration tests); the rule still holds."""
    ins = draw_instrument(np.random.default_rng(5), "wide", pin)
    d = ins.draw
    for key, value in pin.items():
        got = {"disp_c_factor": d["dispersion"]["c_e_f_factors"][0], "disp_scale": d["dispersion"]["scale"]}.get(key, d.get(key))
        assert np.allclose(got, value), key
    assert d["pinned"] == {k: list(v) if isinstance(v, tuple) else v for k, v in pin.items()}
    assert d["min_trace_y_separation_px"] >= pr.TRACE_SEPARATION_MIN_PX
    assert measured_min_trace_separation(ins) >= pr.TRACE_SEPARATION_MEASURED_MIN_PX


def test_a_forbidden_pin_is_refused():
    with pytest.raises(ValueError, match="trace-separation rule"):
        draw_instrument(np.random.default_rng(0), "wide", {"pitch_px": 47.0, "angle_deg": 0.0, "tilt_mean": 0.0,
                                                            "disp_scale": 1.0})
    with pytest.raises(ValueError, match="cannot pin"):
        draw_instrument(np.random.default_rng(0), "wide", {"sigma": 1.0})
    with pytest.raises(ValueError):
        draw_instrument(np.random.default_rng(0), "nominal", {"pitch_px": 50.0})
