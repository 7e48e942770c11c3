"""Template library: .lnw parsing, production selection, error messages."""

from __future__ import annotations

import numpy as np
import pytest

from engine.classify.templates import check_template_dir, load_template_library, parse_lnw, split_names
from engine.errors import ConfigError


def write_lnw(path, name="snfake", subtype="Ia-norm", itype=1, isub=2, ages=(-5.0, 10.0),
              lo=100, hi=900, flag=0, fmt_fixed=True):
    """A tiny but complete SNID .lnw file: 2 knots, len(ages) epochs, 1024 log bins."""
    n = len(ages)
    lines = [f"{n:5d} 1024   2500.00  10000.00      2     {name:12s}  -9.99  {subtype:10s}"
             f"{itype:3d}{isub:3d}"]
    lines.append("      2" + "".join(f"{2:3d} {0.5:12.5f}" for _ in ages))
    for k in (1, 2):
        lines.append(f"{k:7d}" + "".join(f" {3.4 + 0.1 * k:7.4f} {0.2 * k:7.4f}" for _ in ages))
    lines.append(f"{flag:8d}" + "".join(f" {a:8.3f}" for a in ages))
    dwlog = np.log(4.0) / 1024
    for i in range(1024):
        w = 2500.0 * np.exp((i + 0.5) * dwlog)
        vals = [0.0 if not lo <= i <= hi else round(0.1 * np.sin(i / 7.0 + j) - 0.05 * j, 3)
                for j in range(n)]
        if fmt_fixed:
            lines.append(f"{w:8.2f}" + "".join(f"{v:9.3f}" for v in vals))
        else:
            lines.append(f" {w:.2f} " + " ".join(f"{v:.3f}" for v in vals))
    path.write_text("\n".join(lines) + "\n")
    return path


def make_dir(tmp_path, names=("sna", "snb"), extras=("qso",), with_templist=True):
    for n in names:
        write_lnw(tmp_path / f"{n}.lnw", name=n)
    write_lnw(tmp_path / "agn.lnw", name="agn", subtype="AGN", itype=5, isub=2, ages=(0.0,),
              flag=2)
    for n in extras:
        write_lnw(tmp_path / f"{n}.lnw", name=n, subtype="QSO", itype=5, isub=6, ages=(0.0,),
                  flag=2)
    if with_templist:
        (tmp_path / "templist").write_text("".join(f"{n}.lnw\n" for n in names))
    return tmp_path


@pytest.mark.parametrize("fixed", [True, False])
def test_parse_tiny_lnw(tmp_path, fixed):
    p = write_lnw(tmp_path / "snfake.lnw", fmt_fixed=fixed)
    t = parse_lnw(p.read_bytes(), source=str(p))
    assert (t.name, t.subtype, t.itype, t.isubtype, t.age_flag) == ("snfake", "Ia-norm", 1, 2, 0)
    assert t.ages.tolist() == [-5.0, 10.0]
    assert t.flux.shape == (2, 1024)
    assert t.flux[0, 99] == 0.0 and t.flux[0, 901] == 0.0
    assert t.flux[1, 500] == pytest.approx(round(0.1 * np.sin(500 / 7.0 + 1) - 0.05, 3))
    assert t.wave[0] == pytest.approx(2501.69, abs=0.01)


def test_library_stacks_epochs_and_keeps_extras_off(tmp_path):
    lib = load_template_library(make_dir(tmp_path))
    assert lib.templates == ("sna", "snb", "agn")
    assert lib.n_epochs == 5
    assert lib.name.tolist() == ["sna", "sna", "snb", "snb", "agn"]
    assert lib.main_type.tolist() == ["Ia"] * 4 + ["NotSN"]
    assert lib.subtype[-1] == "AGN"
    assert lib.lo.tolist() == [100] * 5 and lib.hi.tolist() == [900] * 5
    assert lib.flux.shape == (5, 1024) and lib.fft.shape == (5, 513)
    full = load_template_library(tmp_path, include_extras=True)
    assert full.templates[-1] == "qso" and full.n_epochs == 6
    sub = lib.select(lib.main_type == "Ia")
    assert sub.templates == ("sna", "snb") and sub.template_index.tolist() == [0, 0, 1, 1]


def test_missing_directory(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        check_template_dir(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no SNID template directory configured"):
        check_template_dir("")


def test_not_a_directory_and_empty(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is not a directory"):
        load_template_library(f)
    with pytest.raises(ConfigError, match="holds no .lnw templates"):
        load_template_library(tmp_path)


def test_templist_naming_missing_file(tmp_path):
    make_dir(tmp_path)
    (tmp_path / "templist").write_text("sna.lnw\nsnmissing.lnw\n")
    with pytest.raises(ConfigError, match="snmissing.lnw"):
        check_template_dir(tmp_path)


@pytest.mark.parametrize("damage, message", [
    (lambda s: "garbage header\n" + s.split("\n", 1)[1], "malformed .lnw header"),
    (lambda s: s.replace(" 1024 ", " 512 ", 1), "not SNID's 1024 bins"),
    (lambda s: "\n".join(s.split("\n")[:-200]) + "\n", "flux block"),
    (lambda s: s.replace("  -5.000", "  abc   ", 1), "age line"),
])
def test_malformed_template_names_file_and_problem(tmp_path, damage, message):
    make_dir(tmp_path)
    p = tmp_path / "snb.lnw"
    p.write_text(damage(p.read_text()))
    with pytest.raises(ConfigError, match=message) as err:
        load_template_library(tmp_path)
    assert "snb" in str(err.value)


def test_split_names():
    assert split_names("sn1999em, sn2004et sn1987A") == ("sn1999em", "sn2004et", "sn1987A")
    assert split_names(["Ia,Ib", "II"]) == ("Ia", "Ib", "II")
    assert split_names(None) == ()


def test_production_set(library, templates_dir):
    assert len(library.templates) == 349
    assert library.n_epochs == 3760
    assert {"agn", "kcE", "kcSB6", "mstar", "lbv1999bw"} <= set(library.templates)
    assert not {"qso", "carbonstar1", "L1", "m1", "magneticWD"} & set(library.templates)
    counts = dict(zip(*np.unique(library.main_type, return_counts=True)))
    assert counts["NotSN"] == 38
    extras = load_template_library(templates_dir, include_extras=True)
    assert len(extras.templates) == 362


def test_loading_is_fast(templates_dir):
    import time

    t0 = time.perf_counter()
    load_template_library(templates_dir)
    assert time.perf_counter() - t0 < 1.5  # 0.2 s typical; generous for loaded CI machines


def _same_library(a, b):
    for f in ("flux", "name", "main_type", "subtype", "itype", "isubtype", "age", "age_flag",
              "delta", "template_index", "lo", "hi", "fft"):
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and np.array_equal(x, y), f
    assert a.templates == b.templates and a.directory == b.directory


def test_array_cache_round_trip_and_invalidation(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEDMTUI_CLASSIFY_CACHE_DIR", str(cache))
    tdir = tmp_path / "t"
    tdir.mkdir()
    make_dir(tdir)
    parsed = load_template_library(tdir, cache=False)
    assert not cache.exists()
    first = load_template_library(tdir)
    files = list(cache.glob("*.npz"))
    assert len(files) == 1
    _same_library(first, parsed)
    _same_library(load_template_library(tdir), parsed)
    write_lnw(tdir / "snb.lnw", name="snb", ages=(-5.0, 10.0, 20.0))
    changed = load_template_library(tdir)
    assert changed.n_epochs == 6
    newer = [p for p in cache.glob("*.npz") if p != files[0]]
    assert len(newer) == 1
    newer[0].write_bytes(b"not a zip file")
    _same_library(load_template_library(tdir), load_template_library(tdir, cache=False))


def test_array_cache_off_with_empty_directory_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("SEDMTUI_CLASSIFY_CACHE_DIR", "")
    monkeypatch.chdir(tmp_path)
    tdir = tmp_path / "t"
    tdir.mkdir()
    lib = load_template_library(make_dir(tdir))
    assert lib.n_epochs == 5 and not list(tmp_path.rglob("*.npz"))
