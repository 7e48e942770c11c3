"""Classification -> SEDM FITS cards, text-header lines and JSON."""

from __future__ import annotations

import json
import math

import pytest

from engine.classify.result import Classification, TemplateMatch, sedm_type_split, snid_header_cards, snid_text_lines


def sample(subtype="Ia-norm", typ="Ia") -> Classification:
    m = TemplateMatch(rank=1, template="sn2006ax", main_type=typ, subtype=subtype, lap=0.79,
                      r=17.1, rlap=13.5123, z=0.075234, z_err=0.0045, age=2.2, age_flag=0,
                      grade="good", row=10)
    return Classification(type=typ, subtype=subtype, template="sn2006ax", rlap=13.5123,
                          z=0.075234, z_err=0.0045, age=2.2, age_flag=0, grade="good",
                          zmed=0.07741, zmed_err=0.00534, age_med=4.216, age_err=5.118,
                          zinit=0.0769, fractions={"Ia": 0.98, "Ib": 0.0, "Ic": 0.02, "II": 0.0,
                                                   "NotSN": 0.0},
                          n_good=45, n_bad=2, n_correlated=3700, matches=(m,))


def test_fits_cards():
    cards = snid_header_cards(sample())
    keys = [k for k, _, _ in cards]
    assert keys == ["SNIDTYPE", "SNIDSUBT", "SNIDRLAP", "SNIDZMAT", "SNIDAMAT", "SNIDTEMP",
                    "SNIDZMED", "SNIDZERR", "SNIDAMED", "SNIDAERR", "SNIDFIA", "SNIDFIB",
                    "SNIDFIC", "SNIDFII", "SNIDFNOT"]
    d = {k: v for k, v, _ in cards}
    assert d["SNIDTYPE"] == "Ia" and d["SNIDSUBT"] == "norm" and d["SNIDTEMP"] == "sn2006ax"
    assert d["SNIDRLAP"] == 13.51 and d["SNIDZMAT"] == 0.0752 and d["SNIDZMED"] == 0.0774
    assert d["SNIDZERR"] == 0.0053 and d["SNIDAMED"] == 4.22 and d["SNIDAERR"] == 5.12
    assert d["SNIDFIA"] == 0.98 and d["SNIDFIC"] == 0.02 and d["SNIDFNOT"] == 0.0
    assert all(len(k) <= 8 and c for k, _, c in cards)


def test_text_lines_and_production_type_split():
    lines = dict(snid_text_lines(sample("IIP", "II")))
    assert lines["SNIDMATCHTYPE"] == "IIP" and lines["SNIDMATCHSUBTYPE"] == "-"
    assert lines["SNIDMATCHREDSHIFT"] == "0.0752" and lines["SNIDFRAC_IA"] == "0.98"
    assert list(lines)[-5:] == ["SNIDFRAC_IA", "SNIDFRAC_IB", "SNIDFRAC_IC", "SNIDFRAC_II",
                                "SNIDFRAC_NOTSN"]
    assert sedm_type_split("Ic-broad") == ("Ic", "broad")
    assert sedm_type_split("II-pec") == ("II", "pec")


def test_none():
    c = Classification(type="NONE", zinit=0.02)
    assert not c.matched
    assert snid_header_cards(c) == [("SNIDTYPE", "NONE", "SNID match type")]
    assert snid_text_lines(c) == [("SNIDMATCHTYPE", "NONE")]
    d = c.to_json_dict()
    assert d["type"] == "NONE" and d["rlap"] is None and d["zinit"] == 0.02


def test_json_round_trip_and_immutability():
    c = sample()
    d = json.loads(json.dumps(c.to_json_dict()))
    assert d["template"] == "sn2006ax" and d["fractions"]["Ia"] == 0.98
    assert d["matches"][0]["rlap"] == pytest.approx(13.5123)
    with pytest.raises(TypeError):
        c.fractions["Ia"] = 0.0  # read-only mapping
    with pytest.raises(AttributeError):
        c.rlap = 1.0  # frozen
    assert math.isnan(Classification(type="NONE").z)
