"""Parser of SNID's ``*_snid.output`` and the external-run wrapper."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.classify import SnidOptions, snid_header_cards
from engine.classify.external import main_type_of, parse_snid_output, run_external_snid, snid_command
from engine.errors import ConfigError, EngineError

SAMPLE = Path(__file__).parent / "data" / "sample_snid.output"


def test_parse_sample_output():
    c = parse_snid_output(SAMPLE.read_text())
    assert c.engine == "external"
    assert (c.type, c.subtype, c.template, c.grade) == ("Ia", "Ia-norm", "sn2003W", "bad")
    assert (c.rlap, c.z, c.z_err, c.age) == (22.17, 0.0943, 0.0041, 3.2)
    assert (c.zmed, c.zmed_err, c.age_med, c.age_err, c.zinit) == (0.0713, 0.0058, 5.2, 4.31,
                                                                    0.0709)
    assert dict(c.fractions) == {"Ia": 0.99, "Ib": 0.0, "Ic": 0.01, "II": 0.0, "NotSN": 0.0}
    assert (c.n_good, c.n_bad, len(c.matches)) == (3, 1, 5)
    assert c.matches[3].main_type == "Ic" and c.matches[4].grade == "cut"
    assert c.matches[4].main_type == "NotSN" and c.matches[4].age_flag == 2
    assert dict((k, v) for k, v, _ in snid_header_cards(c))["SNIDSUBT"] == "norm"


def test_no_good_template_is_none():
    text = SAMPLE.read_text().replace("  good", "   bad")
    assert parse_snid_output(text).type == "NONE"


def test_broken_output_is_an_engine_error():
    with pytest.raises(EngineError, match="rlap-ordered"):
        parse_snid_output("### SNID output file ###\nzmed 0.1 0.01\n")
    bad = SAMPLE.read_text().replace("22.17", "xx.yy")
    with pytest.raises(EngineError, match="listing line"):
        parse_snid_output(bad)


def test_main_types():
    assert [main_type_of(s) for s in ("IIb", "IIP", "Gal", "Ic-broad", "Ia-91bg", "LBV")] == [
        "Ib", "II", "NotSN", "Ic", "Ia", "NotSN"]


def test_command_line():
    cmd = snid_command("snid", "spectrum.dat", SnidOptions(usetype=("Ia", "Ib"), avoid=("sn1",)),
                       "/t")
    assert cmd[:7] == ["snid", "wmin=4000", "wmax=9500", "skyclip=1", "medlen=1", "aband=1",
                       "rlapmin=4"]
    assert "usetype=Ia,Ib" in cmd and "avoid=sn1" in cmd and "tempdir=/t/" in cmd
    assert cmd[-1] == "spectrum.dat" and "inter=0" in cmd


def test_missing_executable(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="no SNID executable"):
        run_external_snid(np.arange(10.0), np.ones(10))


def test_fake_executable_round_trip(monkeypatch, tmp_path):
    exe = tmp_path / "snid"
    cp = shutil.which("cp")
    exe.write_text(f"#!/bin/sh\n{cp} {SAMPLE} spectrum_snid.output\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    c = run_external_snid(np.linspace(4000, 9000, 50), np.ones(50))
    assert c.template == "sn2003W" and c.engine == "external"
