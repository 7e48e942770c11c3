"""The sweep benchmark's aggregation over hand-made night records (no synthesis, no reduction)."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from sweep import empty_record, night_line, plan, summarise, summary_table  # noqa: E402


def target(obs_id, *, syst, chi2, scale, host=False, pull=1.0, cen=0.01):
    return {"obs_id": obs_id, "host": host, "quality": 0, "expected_quality": 0, "s2n": 50.0,
            "flux_rms_pct": syst + 1.0, "flux_noise_twin_pct": 1.0, "flux_systematic_pct": syst,
            "twin_pull_std": pull, "chi2_binned": chi2, "scale": scale, "centroid_err_spaxel": cen}


def night(seed, kind="mini", status="ok", *, wave=0.3, bias=0.001, agree=(3, 3), targets=()):
    rec = empty_record(seed, kind, "20261124")
    rec.update({"calibration_status": status, "wave_median_abs_err_aa": wave, "wave_blue_median_abs_err_aa": 2 * wave,
                "trace_bias_px": bias, "trace_scatter_px": 0.002, "flat_rms_pct": 0.25,
                "jflex_err_px_max": 0.01, "iflex_err_px_max": 0.02,
                "quality_agreement": agree[0] / agree[1], "quality_matched": agree[0], "quality_n": agree[1],
                "targets": list(targets), "timing_s": {"total": 100.0 + seed}})
    return rec


@pytest.fixture
def nights():
    failed = empty_record(13, "full", "20261124")
    failed.update({"calibration_status": "failed", "quality_agreement": 0.0, "quality_matched": 0, "quality_n": 4,
                   "calibration_reason": "AlgorithmError: trace positions do not fit the lenslet lattice (rms 2.79 px)",
                   "timing_s": {"total": 50.0}})
    return [
        night(1, wave=0.2, bias=-0.05, targets=[target("a", syst=0.2, chi2=1.1, scale=1.01),
                                                target("b", syst=0.4, chi2=9.0, scale=0.95, host=True, pull=1.4)]),
        night(2, wave=0.4, agree=(2, 3), targets=[target("a", syst=0.3, chi2=1.3, scale=1.002)]),
        night(3, wave=0.6, bias=0.01, targets=[target("a", syst=1.5, chi2=2.0, scale=1.03, pull=0.8)]),
        failed,
    ]


def test_status_counts_and_failures(nights):
    s = summarise(nights)
    assert s["n_nights"] == 4 and s["n_targets"] == 4
    assert s["calibration"] == {"ok": 3, "fallback": 0, "failed": 1}
    assert s["not_ok"] == [{"seed": 13, "kind": "full", "status": "failed",
                            "reason": nights[3]["calibration_reason"]}]
    assert (s["quality_matched"], s["quality_n"]) == (8, 13)
    assert s["wall_s_per_night_median"] == pytest.approx(101.5)


def test_night_figures_skip_missing_values(nights):
    s = summarise(nights)
    w = s["wave_median_abs_err_aa"]
    assert w["n"] == 3 and w["p50"] == pytest.approx(0.4) and w["p90"] == pytest.approx(0.56)
    assert w["worst"] == pytest.approx(0.6) and w["worst_cases"][0] == {"seed": 3, "kind": "mini", "value": 0.6}
    bias = s["trace_bias_px"]  # judged on |bias|
    assert bias["worst"] == pytest.approx(0.05) and bias["worst_cases"][0]["value"] == -0.05


def test_low_is_bad_for_quality_agreement(nights):
    q = summarise(nights)["quality_agreement"]
    assert q["worst"] == 0.0 and q["worst_cases"][0]["seed"] == 13
    assert q["p90"] == pytest.approx(0.2, abs=1e-4)  # the 10th percentile of 0, 2/3, 1, 1
    assert q["p50"] == pytest.approx((2 / 3 + 1) / 2, abs=1e-4)


def test_target_figures_name_seed_and_target(nights):
    s = summarise(nights)
    assert s["flux_systematic_pct"]["worst_cases"][0] == {"seed": 3, "kind": "mini", "obs_id": "a", "value": 1.5}
    assert s["scale"]["worst"] == pytest.approx(0.05)  # |scale - 1|
    assert s["scale"]["worst_cases"][0] == {"seed": 1, "kind": "mini", "obs_id": "b", "value": 0.95}
    assert s["twin_pull_std"]["worst"] == pytest.approx(0.4)
    assert s["chi2_binned"]["worst"] == 9.0
    assert s["chi2_binned_isolated"]["n"] == 3 and s["chi2_binned_isolated"]["worst"] == 2.0


def test_text_output(nights):
    table = summary_table(summarise(nights))
    assert "not ok: full seed 13: failed: AlgorithmError" in table
    assert "flux_systematic_pct" in table
    line = night_line(nights[3])
    assert "seed   13  failed" in line and "lenslet lattice" in line
    assert "error" in night_line(empty_record(5, "mini", "20261124"))


def test_empty_sweep():
    s = summarise([])
    assert s["n_nights"] == 0 and s["wave_median_abs_err_aa"] is None
    assert "(no values)" in summary_table(s)


def test_plan_full_nights_from_range_start():
    class Args:
        seeds, full, full_seeds = "100:103", 2, None

    assert plan(Args) == [(100, "mini"), (101, "mini"), (102, "mini"), (100, "full"), (101, "full")]
    Args.full_seeds = "11,13"
    assert plan(Args)[-2:] == [(11, "full"), (13, "full")]


def test_quality_mismatches_of_calibrated_nights_only(nights):
    nights[1]["targets"][0]["quality"] = 4
    nights[3]["targets"] = [dict(target("z", syst=0.1, chi2=1.0, scale=1.0), quality=None)]
    s = summarise(nights)
    assert s["quality_mismatches"] == [{"seed": 2, "kind": "mini", "obs_id": "a", "quality": 4, "expected_quality": 0}]
    assert "quality: mini seed 2 a: Q4, truth Q0" in summary_table(s)


@pytest.mark.parametrize("takes_priors", [True, False])
def test_priors_passed_only_when_write_night_takes_them(monkeypatch, tmp_path, takes_priors):
    import engine.synth.night as synth_night

    seen = {}

    def with_priors(out, night, *, mini=False, seed=1, noise_seed=None, priors="nominal"):
        seen.update(mini=mini, seed=seed, noise_seed=noise_seed, priors=priors)

    def without(out, night, *, mini=False, seed=1, noise_seed=None):
        seen.update(mini=mini, seed=seed, noise_seed=noise_seed)

    monkeypatch.setattr(synth_night, "write_night", with_priors if takes_priors else without)
    from sweep import synthesise

    synthesise(tmp_path, "20261124", mini=True, seed=5, noise_seed=7, priors="wide")
    assert seen == dict(mini=True, seed=5, noise_seed=7, **({"priors": "wide"} if takes_priors else {}))
