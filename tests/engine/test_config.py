"""Configuration: defaults < TOML < environment < flags, with clear errors."""

import pytest

from engine.config import describe_settings, load_config
from engine.errors import ConfigError


def test_precedence(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('[paths]\nraw_root = "/file/raw"\nredux_root = "/file/redux"\n[engine]\nworkers = 3\n')
    env = {"SEDMTUI_REDUX_ROOT": "/env/redux", "SEDMTUI_ENGINE_WORKERS": "4"}
    cfg = load_config(toml, env=env, overrides={"engine": {"workers": 1}, "paths": {"raw_root": None}})
    assert cfg.paths.raw_root == "/file/raw"
    assert cfg.paths.redux_root == "/env/redux"
    assert cfg.engine.workers == 1
    assert str(cfg.paths.db_path) == "/env/redux/sedm.db"


def test_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[paths]\nraw_rot = 'x'\n")
    with pytest.raises(ConfigError, match="unknown key.*raw_rot"):
        load_config(bad, env={})
    with pytest.raises(ConfigError, match="is not a valid int"):
        load_config(None, env={"SEDMTUI_ENGINE_WORKERS": "many"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml", env={})
    with pytest.raises(ConfigError, match="force_polling"):
        load_config(None, env={"SEDMTUI_WATCH_FORCE_POLLING": "sometimes"})
    bad.write_text("[pathz]\nraw_root = 'x'\n")
    with pytest.raises(ConfigError, match="unknown table.*pathz"):
        load_config(bad, env={})


def test_console_table_is_left_to_the_console(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('[paths]\nraw_root = "/file/raw"\n[console]\nkeys = {accept = "A"}\n')
    assert load_config(toml, env={}).paths.raw_root == "/file/raw"


def test_every_setting_is_documented():
    text = describe_settings()
    assert "SEDMTUI_RAW_ROOT" in text and "SEDMTUI_CLASSIFY_TEMPLATES_DIR" in text
