"""Options validation and template selection; the ``sedmtui classify`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.classify import SnidOptions, template_mask
from engine.classify.cli import main
from engine.errors import ConfigError

from .conftest import SPECTRA_DIR


def test_option_validation():
    assert SnidOptions(avoid="sn1999em,sn2004et").avoid == ("sn1999em", "sn2004et")
    for bad in (dict(wmin=9000, wmax=4000), dict(zmin=0.5, zmax=0.1), dict(medlen=0),
                dict(k3=200), dict(forcez=3.0)):
        with pytest.raises(ConfigError, match="invalid SNID option"):
            SnidOptions(**bad)


def test_engine_config_is_the_snid_options():
    from engine.config import ClassifyConfig

    opts = ClassifyConfig(templates_dir="/x", rlapmin=5.0, medlen=1, avoid="sn1991bg, sn1999em")
    assert isinstance(opts, SnidOptions)
    assert (opts.rlapmin, opts.medlen, opts.wmin, opts.wmax, opts.skyclip, opts.aband) == (
        5.0, 1, 4000.0, 9500.0, True, True)
    assert opts.avoid == ("sn1991bg", "sn1999em")  # template names, as SNID's avoid=
    assert opts.replace(zmax=0.3).zmax == 0.3
    with pytest.raises(ConfigError, match="invalid SNID option"):
        ClassifyConfig(wmin=9000.0, wmax=5000.0)


def test_template_mask(library):
    base = template_mask(library, SnidOptions())
    assert base.sum() == 3754  # SNID drops 6 sn1987A epochs older than 1000 d
    ia = template_mask(library, SnidOptions(usetype=("Ia",)))
    assert set(library.main_type[ia]) == {"Ia"}
    iib = template_mask(library, SnidOptions(usetype=("IIb",)))
    assert set(library.subtype[iib]) == {"IIb"}
    no_em = template_mask(library, SnidOptions(avoid=("sn1999em",)))
    assert not (library.name[no_em] == "sn1999em").any()
    with pytest.raises(ConfigError, match="unknown SNID type 'Iz'"):
        template_mask(library, SnidOptions(usetype=("Iz",)))
    with pytest.raises(ConfigError, match="no SNID template left"):
        template_mask(library, SnidOptions(use=("nothing-like-this",)))


def spectra(n):
    return [str(p) for p in sorted((SPECTRA_DIR / "II").glob("*.txt"))[:n]]


def test_cli_readable(templates_dir, capsys):
    rc = main([*spectra(1), "--templates", str(templates_dir), "--top", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert ": II (IIP)  template sn2004et  rlap 9.84" in out
    assert "zmed 0.0180" in out and out.count("good") >= 2


def test_cli_json_and_bad_files(templates_dir, capsys, tmp_path):
    bad = tmp_path / "broken.txt"
    bad.write_text("not a spectrum\n")
    rc = main([spectra(1)[0], str(bad), str(tmp_path / "missing.txt"), spectra(2)[1], "--json",
               "--templates", str(templates_dir)])
    cap = capsys.readouterr()
    assert rc == 1
    recs = [json.loads(line) for line in cap.out.splitlines()]
    assert len(recs) == 2
    for rec in recs:
        for key in ("file", "type", "subtype", "rlap", "z", "z_err", "age", "template"):
            assert key in rec
    assert recs[0]["type"] == "II" and recs[0]["template"] == "sn2004et"
    errors = cap.err.strip().splitlines()
    assert len(errors) == 2 and "broken.txt: error:" in errors[0] and "missing" in errors[1]


def test_cli_options_and_template_errors(templates_dir, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("SEDMTUI_CLASSIFY_TEMPLATES_DIR", raising=False)
    assert main(spectra(1)) == 2
    assert "no template directory" in capsys.readouterr().err
    assert main([*spectra(1), "--templates", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setenv("SEDMTUI_CLASSIFY_TEMPLATES_DIR", str(templates_dir))
    rc = main([*spectra(1), "--usetype", "Ia", "--json", "--zmax", "0.3"])
    rec = json.loads(capsys.readouterr().out)
    assert rc == 0 and rec["type"] in ("Ia", "NONE") and rec["options"]["usetype"] == ["Ia"]
    assert main([*spectra(1), "--medlen", "0"]) == 2
    assert "medlen" in capsys.readouterr().err


def test_cli_module_entry_point(templates_dir):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "engine.classify.cli", "--help"],
                         capture_output=True, text=True, check=True)
    assert "--templates" in out.stdout and "sedmtui classify" in out.stdout
    assert np.__name__ == "numpy"


def test_cli_parallel_jobs_keep_order(templates_dir, capsys):
    files = spectra(3)
    assert main([*files, "--json", "--jobs", "1", "--templates", str(templates_dir)]) == 0
    serial = capsys.readouterr().out
    assert main([*files, "--json", "--jobs", "2", "--templates", str(templates_dir)]) == 0
    parallel = capsys.readouterr().out
    assert parallel == serial and len(serial.splitlines()) == 3
