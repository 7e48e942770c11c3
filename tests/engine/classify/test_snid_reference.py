"""The built-in classifier against SNID 5.0's own answers on 52 real SEDM spectra."""

from __future__ import annotations

import numpy as np
import pytest

from engine.classify.external import main_type_of

from .conftest import SPECTRA_DIR


def _fraction(results, ok) -> float:
    return float(np.mean([ok(row, c) for row, c in results]))


def test_rank1_main_type_equals_snid_on_every_spectrum(reference_results):
    bad = [(row["file"], main_type_of(row["snid_type"]), c.type)
           for row, c in reference_results if c.type != main_type_of(row["snid_type"])]
    assert not bad
    assert len(reference_results) == 52


def test_subtype_agreement(reference_results):
    assert _fraction(reference_results, lambda r, c: c.subtype == r["snid_type"]) >= 0.9


def test_best_redshift_within_0005(reference_results):
    assert _fraction(reference_results, lambda r, c: abs(c.z - float(r["z_best"])) <= 0.005) >= 0.9


def test_median_redshift_within_snid_error(reference_results):
    frac = _fraction(reference_results,
                     lambda r, c: abs(c.zmed - float(r["zmed"])) <= float(r["zmed_err"]))
    assert frac >= 0.9


def test_rlap_within_10_percent(reference_results):
    frac = _fraction(reference_results,
                     lambda r, c: abs(c.rlap - float(r["rlap"])) <= 0.1 * float(r["rlap"]))
    assert frac >= 0.9


def test_fractions_and_grades_are_consistent(reference_results):
    for row, c in reference_results:
        assert sum(c.fractions.values()) == pytest.approx(1.0)
        assert c.n_good > 0 and c.matches[0].rlap == c.rlap
        assert [m.rlap for m in c.matches] == sorted((m.rlap for m in c.matches), reverse=True)
        assert c.grade == ("bad" if row["rank1_graded_bad"] == "1" else "good")
        for t in ("Ia", "Ib", "Ic", "II", "NotSN"):
            assert c.fractions[t] == pytest.approx(float(row[f"frac_{t}"]), abs=0.02)


def test_best_match_spectrum_on_input_grid(reference_results):
    _, c = reference_results[0]
    b = c.best
    assert b.wave.shape == b.template_flat.shape == b.template_flux.shape == b.data_flat.shape
    inside = np.isfinite(b.template_flat) & np.isfinite(b.data_flat)
    assert inside.sum() > 100
    assert np.corrcoef(b.template_flat[inside], b.data_flat[inside])[0, 1] > 0.5
    assert np.all(np.isfinite(b.template_flux[inside]))


def test_screened_path_equals_exact_path(library, reference_rows):
    """The quick-estimate screen (default) against SNID's full fit of every correlation
    (``screen_factor=0``) on a few reference spectra: same answer and same good matches."""
    from engine.classify import SnidOptions, classify_spectrum, read_spectrum

    for row in reference_rows[::13]:
        wave, flux, err, _ = read_spectrum(SPECTRA_DIR / row["folder"] / row["file"])
        fast, exact = (classify_spectrum(wave, flux, err, library=library,
                                         options=SnidOptions(screen_factor=f, n_matches=5000))
                       for f in (0.8, 0.0))
        assert (fast.type, fast.subtype, fast.template, fast.n_good, fast.n_bad) == (
            exact.type, exact.subtype, exact.template, exact.n_good, exact.n_bad)
        for key in ("rlap", "z", "zmed", "zmed_err", "zinit"):
            assert getattr(fast, key) == pytest.approx(getattr(exact, key), rel=1e-5), key
        good = [(m.row, m.grade) for m in fast.matches if m.rlap >= 4.0]
        assert good == [(m.row, m.grade) for m in exact.matches if m.rlap >= 4.0]
