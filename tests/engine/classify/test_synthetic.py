"""Inject templates at known redshifts (the template itself excluded) and recover z."""

from __future__ import annotations

import numpy as np

from engine.classify import SnidOptions, classify_spectrum
from engine.classify.synthetic import inject_template, sedm_wave_grid, template_row

CASES = [("sn2006ax", 0.0, 0.03), ("sn2006ax", 0.0, 0.12), ("sn1991bg", 0.0, 0.05),
         ("sn1999em", 10.0, 0.02), ("sn2004et", 20.0, 0.08), ("sn1994I", 0.0, 0.1),
         ("sn1999ex", 0.0, 0.06)]


def test_injected_templates_recover_redshift(library):
    rng = np.random.default_rng(11)
    dz, types = [], []
    for name, age, z in CASES:
        row = template_row(library, name, age)
        wave, flux, err = inject_template(library, row, z, snr=20.0, rng=rng)
        assert wave.shape == (214,) and np.allclose(wave, sedm_wave_grid())
        c = classify_spectrum(wave, flux, err, library=library,
                              options=SnidOptions(avoid=(name,)))
        assert c.template != name
        dz.append(abs(c.z - z) if c.matched else np.inf)
        types.append(c.type == library.main_type[row])
    assert np.median(dz) <= 0.005
    assert np.mean(types) >= 0.7


def test_forced_redshift_and_usetype(library):
    row = template_row(library, "sn2006ax", 0.0)
    wave, flux, err = inject_template(library, row, 0.05, snr=30.0)
    c = classify_spectrum(wave, flux, err, library=library,
                          options=SnidOptions(avoid=("sn2006ax",), forcez=0.05, usetype=("Ia",)))
    assert c.zinit == 0.05 and c.type == "Ia" and abs(c.zmed - 0.05) < 0.01
    assert all(abs(m.z - 0.05) < 0.02 for m in c.matches if m.grade == "good")
    assert set(c.fractions) == {"Ia", "Ib", "Ic", "II", "NotSN"} and c.fractions["Ia"] == 1.0
