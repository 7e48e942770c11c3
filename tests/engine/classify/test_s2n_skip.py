"""S/N as SEDM's CalcS2N, and the skip rules."""

from __future__ import annotations

import numpy as np
import pytest

from engine.classify.s2n import median_s2n, s2n_header_cards, s2n_text_lines
from engine.classify.skip import catalogue_name, should_classify


def test_median_s2n_range_and_keys():
    wave = np.arange(3700.0, 9300.0, 25.0)
    flux = np.where(wave < 6000, 10.0, 30.0)
    s = median_s2n(wave, flux, np.ones_like(wave))
    assert (s.wave_start, s.wave_end) == (4000.0, 8000.0)
    assert s.median == pytest.approx(np.median(flux[(wave > 4000) & (wave < 8000)]))
    assert [k for k, _, _ in s2n_header_cards(s)] == ["S2NMED", "S2NWL0", "S2NWHI"]
    assert [k for k, _ in s2n_text_lines(s)] == ["S2N_MEDIAN", "S2N_WL_START", "S2N_WL_END"]
    short = median_s2n(np.arange(5000.0, 7000.0, 25.0), np.ones(80), np.ones(80))
    assert (short.wave_start, short.wave_end) == (5000.0, 6975.0)


def test_non_finite_s2n_is_one():
    wave = np.arange(3700.0, 9300.0, 25.0)
    assert median_s2n(wave, np.ones_like(wave), np.zeros_like(wave)).median == 1.0
    assert median_s2n(wave, np.full_like(wave, np.nan), np.ones_like(wave)).median == 1.0
    assert median_s2n(wave, np.ones_like(wave), None).median == 1.0


@pytest.mark.parametrize("name, cat", [
    ("STD-BD+28d4211", "STD"), ("BD+28d4211", "BD"), ("Feige34", "Feige"), ("Feige 110", "Feige"),
    ("HZ44", "HZ"), ("Hiltner 600", "Hiltner"), ("Kopff 27", "Kopff"), ("LTT 7987", "LTT"),
    ("NGC 1234", "NGC"), ("NGC1234", "NGC"), ("PGC 123456", "PGC"), ("MCG-01-02-003", "MCG"),
    ("2MASXJ01234567+0123456", "2MASX"), ("TYC 1234-567-1", "TYC"), ("SAO 12345", "SAO"),
    ("HD 209458", "HD"), ("hd209458", "HD"), ("Tycho 2", "Tycho"),
    ("ZTF21abHDxyz", None), ("ZTF24abcdefg", None), ("SN2023ixf", None), ("SAOfoo", None),
    ("PTF11kly", None), ("ZTF18abcSTD", None),
])
def test_catalogue_names_use_tokens_not_substrings(name, cat):
    assert catalogue_name(name) == cat


def test_should_classify_rules():
    assert should_classify("ZTF21abHDxyz", {}, 0) == (True, "")
    ok, why = should_classify("STD-Feige34", {}, 0)
    assert not ok and "standard" in why
    ok, why = should_classify("HD 12345", {}, 0)
    assert not ok and "HD" in why
    ok, why = should_classify("ZTF20aaaaaaa", {"RA_RATE": "0.3", "DEC_RATE": "0.0"}, 0)
    assert not ok and "non-sidereal" in why
    assert should_classify("ZTF20aaaaaaa", {"RA_RATE": "0.0", "DEC_RATE": 0}, 0)[0]
    for q, expected in ((0, True), (1, True), (2, True), (3, False), (4, False), (5, True)):
        assert should_classify("ZTF20aaaaaaa", {}, q)[0] is expected
    assert not should_classify("ZTF20aaaaaaa", {"QUALITY": "4"})[0]
    assert should_classify("ZTF20aaaaaaa", {"QUALITY": "4"}, quality=0)[0]
    assert should_classify("ZTF20aaaaaaa")[0]
    assert not should_classify("ZTF20aaaaaaa", filename="spec_auto_notfluxcal_x.txt")[0]
