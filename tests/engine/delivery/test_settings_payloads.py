"""Delivery settings (secrets never from a readable file, never shown) and the pure payload builders."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from engine.config import describe_settings, load_config
from engine.delivery import payloads as pl
from engine.delivery.service import enabled
from engine.errors import ConfigError


def test_nothing_is_sent_by_default():
    cfg = load_config(None, env={})
    assert not cfg.delivery.enabled and not enabled(cfg)
    assert not enabled(load_config(None, env={"SEDMTUI_DELIVERY_ENABLED": "1"}))  # no destination
    assert enabled(load_config(None, env={"SEDMTUI_DELIVERY_ENABLED": "1", "SEDMTUI_FRITZ_TOKEN": "t"}))


def test_a_secret_in_a_readable_file_is_refused(tmp_path):
    f = tmp_path / "sedmtui.toml"
    f.write_text('[fritz]\ntoken = "abc123secret"\n')
    os.chmod(f, 0o644)
    with pytest.raises(ConfigError, match="readable by others.*chmod 600") as exc:
        load_config(f, env={})
    assert "abc123secret" not in str(exc.value)
    os.chmod(f, 0o600)
    assert load_config(f, env={}).fritz.token == "abc123secret"


def test_secrets_file(tmp_path):
    s = tmp_path / "secrets.toml"
    s.write_text('[fritz]\ntoken = "tok-from-file"\n[smtp]\npassword = "pw-from-file"\n')
    os.chmod(s, 0o600)
    cfg = load_config(None, env={"SEDMTUI_DELIVERY_SECRETS_FILE": str(s)})
    assert cfg.fritz.token == "tok-from-file" and cfg.smtp.password == "pw-from-file"
    assert cfg.to_dict()["fritz"]["token"] == "***" and "tok-from-file" not in repr(cfg)
    env = {"SEDMTUI_DELIVERY_SECRETS_FILE": str(s), "SEDMTUI_FRITZ_TOKEN": "tok-env"}
    assert load_config(None, env=env).fritz.token == "tok-env"  # the environment wins
    s.write_text('[fritz]\ntoken = "x"\nbase_url = "https://evil"\n')
    with pytest.raises(ConfigError, match="only secret settings"):
        load_config(None, env={"SEDMTUI_DELIVERY_SECRETS_FILE": str(s)})
    os.chmod(s, 0o640)
    with pytest.raises(ConfigError, match="readable by others"):
        load_config(None, env={"SEDMTUI_DELIVERY_SECRETS_FILE": str(s)})


def test_settings_listing_masks_secrets():
    text = describe_settings()
    for var in ("SEDMTUI_FRITZ_TOKEN", "SEDMTUI_SMTP_PASSWORD", "SEDMTUI_SLACK_WEBHOOK_URL", "SEDMTUI_TNS_API_KEY",
                "SEDMTUI_DELIVERY_ENABLED", "SEDMTUI_FRITZ_GROUP_IDS", "SEDMTUI_REPORT_RECIPIENTS"):
        assert var in text
    assert "[delivery]" in text and "never shown" in text


def test_observed_at_comes_from_mjd_obs():
    assert pl.observed_at(61368.0 + (3 * 3600 + 6 * 60 + 30) / 86400) == "2026-11-24T03:06:30.000"
    with pytest.raises(pl.PayloadError, match="MJD_OBS"):
        pl.observed_at(float("nan"))


def test_a_variance_column_is_never_sent_as_the_error():
    old = "# OBJECT: ZTF\n4000 1e-15 1e-34\n"  # SEDM's old file: no COLUMNS line, variance third
    with pytest.raises(pl.PayloadError, match="flux_err"):
        pl.spectrum_ascii_body(obj_id="ZTF26aaaaaaa", ascii_text=old, filename="x.txt", mjd_obs=61368.1,
                               instrument_id=2)
    new = "# COLUMNS: wavelength flux flux_err  [A]\n4000 1e-15 1e-17\n4025 nan 1e-17\n"
    body = pl.spectrum_ascii_body(obj_id="ZTF26aaaaaaa", ascii_text=new, filename="x.txt", mjd_obs=61368.1,
                                  instrument_id=2, group_ids=(41,), followup_request_id=7)
    assert body["fluxerr_column"] == 2 and body["group_ids"] == [41] and body["followup_request_id"] == 7
    assert "nan" not in body["ascii"]


def test_names_annotations_and_status_texts():
    pattern = r"^ZTF\d{2}[a-z]{7}$"
    assert pl.fritz_obj_id("", "ZTF26aaaaaaa [A]", pattern) == "ZTF26aaaaaaa"
    assert pl.fritz_obj_id("SN2026xyz", "SN2026xyz", pattern) is None
    ann = pl.snid_annotation({"type": "Ia", "subtype": "Ia-norm", "z": "0.05", "rlap": 9.5, "template": "sn94D"})
    assert ann == {"type": "Ia", "subtype": "Ia-norm", "z": 0.05, "rlap": 9.5, "template": "sn94D"}
    assert pl.snid_annotation({"type": "NONE"}) is None and pl.s2n_annotation(None) is None
    when = dt.datetime(2026, 11, 24, 3, 20, tzinfo=dt.UTC)
    assert pl.followup_status("manual", when) == "Completed Manually 2026-11-24T03:20:00"
    assert pl.followup_status("failed", when).startswith("Failed 2026-11-24")
