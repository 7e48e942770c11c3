"""E-mail through a real SMTP server on loopback (aiosmtpd); Slack and TNS through their stand-ins."""

from __future__ import annotations

import asyncio
import email
import json
import socket
from pathlib import Path

import pytest

from engine.delivery.service import DeliveryService
from engine.delivery.standins.base import Fault
from engine.delivery.standins.slack import SlackStandin
from engine.delivery.standins.tns import TnsStandin
from engine.errors import RequestError
from engine.timeutil import utc_now_iso

from .nightfake import NIGHT, config_for, fake_night

aiosmtpd = pytest.importorskip("aiosmtpd.controller")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler keeping every message; ``delay_s`` stalls the reply to DATA."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.messages: list[tuple[list[str], email.message.Message]] = []
        self.delay_s = delay_s

    async def handle_DATA(self, server, session, envelope):
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp():
    inbox = Inbox()
    ctl = aiosmtpd.Controller(inbox, hostname="127.0.0.1", port=free_port())
    ctl.start()
    yield ctl, inbox
    ctl.stop()


def mail_config(tmp_path, port: int, **smtp):
    return config_for(tmp_path, "http://127.0.0.1:9", fritz={"token": ""},
                      smtp={"host": "127.0.0.1", "port": port, "starttls": False, "timeout_s": 2.0, **smtp},
                      report={"recipients": "sedm-team@example.org, observer@example.org"})


def final_report(w, config, *, resend: bool = False, text: str = "Comment:\nclear night\n\nUTStart Object\n") -> None:
    (Path(config.paths.redux_root) / NIGHT / "report_final.txt").write_text(text)
    w.insert("requests", {"created": utc_now_iso(), "kind": "final_report", "night": NIGHT, "status": "done",
                          "params_json": json.dumps({"comment": "clear night", "resend": resend})})
    w.update_night(NIGHT, final_report_at=utc_now_iso())


def drain(config, w, timeout_s: float = 10.0) -> dict:
    return DeliveryService(config, w).drain([NIGHT], timeout_s=timeout_s)


def test_the_final_report_is_mailed_once_with_its_figures(tmp_path, smtp):
    ctl, inbox = smtp
    config = mail_config(tmp_path, ctl.port)
    w = fake_night(config)
    assert drain(config, w, 1.0) == {}  # nothing before the final report
    final_report(w, config)
    assert drain(config, w) == {"sent": 1}
    (rcpts, msg), = inbox.messages
    assert rcpts == ["sedm-team@example.org", "observer@example.org"]
    assert msg["Subject"] == f"SEDM DRP Report for {NIGHT}"
    parts = list(msg.walk())
    body = next(p for p in parts if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
    assert "clear night" in body and "UTStart" in body
    assert sum(p.get_content_type() == "image/png" for p in parts) == 5  # the five verification figures
    assert drain(config, w) == {"sent": 1} and len(inbox.messages) == 1  # a rerun does not resend
    final_report(w, config, resend=True)
    assert drain(config, w) == {"sent": 2} and len(inbox.messages) == 2  # --resend does


def test_a_mail_server_that_is_down_is_retried_then_delivers(tmp_path):
    port = free_port()
    config = mail_config(tmp_path, port)
    w = fake_night(config)
    final_report(w, config)
    assert drain(config, w, 0.5) == {"pending": 1}
    row = w.one("SELECT * FROM deliveries")
    assert "cannot connect to the mail server" in row["last_error"]
    inbox = Inbox()
    ctl = aiosmtpd.Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        assert drain(config, w) == {"sent": 1} and len(inbox.messages) == 1
    finally:
        ctl.stop()


def test_no_reply_after_the_message_is_never_resent(tmp_path):
    inbox = Inbox(delay_s=1.5)
    ctl = aiosmtpd.Controller(inbox, hostname="127.0.0.1", port=free_port())
    ctl.start()
    try:
        config = mail_config(tmp_path, ctl.port, timeout_s=0.5)
        w = fake_night(config)
        final_report(w, config)
        assert drain(config, w, 3.0) == {"failed": 1}
        row = w.one("SELECT * FROM deliveries")
        assert "may have been delivered" in row["last_error"] and row["attempts"] == 1
    finally:
        ctl.stop()


def slack_config(tmp_path, slack: SlackStandin, **changes):
    values = {"token": slack.token, "channel_id": "C0SEDM", "api_url": f"{slack.url}/api", "timeout_s": 1.0}
    values.update(changes)
    return config_for(tmp_path, "http://127.0.0.1:9", fritz={"token": ""}, slack=values)


@pytest.fixture
def slack():
    s = SlackStandin()
    s.start()
    yield s
    s.stop()


def test_slack_gets_every_verification_figure_once(tmp_path, slack):
    config = slack_config(tmp_path, slack)
    w = fake_night(config)
    assert drain(config, w) == {"sent": 5}
    assert len(slack.shared) == 5 and all(s["channel"] == "C0SEDM" and s["data"] for s in slack.shared)
    assert any("ZTF26aaaaaaa" in s["title"] and "Q0" in s["title"] for s in slack.shared)
    assert drain(config, w) == {"sent": 5} and len(slack.shared) == 5


@pytest.mark.parametrize("changes, reason", [({"token": "xoxb-wrong"}, "invalid_auth"),
                                             ({"channel_id": "C0NOPE"}, "channel_not_found")])
def test_slack_refusals_fail_with_the_reason(tmp_path, slack, changes, reason):
    config = slack_config(tmp_path, slack, **changes)
    w = fake_night(config)
    assert drain(config, w, 2.0) == {"failed": 5}
    assert all(reason in r["last_error"] for r in w.all("SELECT last_error FROM deliveries"))
    assert "xoxb-wrong" not in repr(w.all("SELECT * FROM events"))


def test_slack_rate_limit_is_retried_and_a_lost_share_is_not_repeated(tmp_path, slack):
    slack.inject(Fault("POST", "/api/files.getUploadURLExternal", "status", status=429, retry_after="0.1"),
                 Fault("POST", "/api/files.completeUploadExternal", "drop_after"))
    config = slack_config(tmp_path, slack)
    w = fake_night(config)
    counts = drain(config, w)
    assert counts == {"sent": 4, "failed": 1}
    assert len(slack.shared) == 5  # the dropped reply's figure was shared, once
    failed = w.one("SELECT * FROM deliveries WHERE state='failed'")
    assert "may have been delivered" in failed["last_error"]


def test_slack_webhook_message(tmp_path, slack):
    config = slack_config(tmp_path, slack, token="", webhook_url=f"{slack.url}{slack.webhook_path}")
    w = fake_night(config)
    assert drain(config, w) == {"sent": 5}
    assert len(slack.messages) == 5 and all(m.startswith(f"SEDM {NIGHT}:") for m in slack.messages)
    assert "standinsecret" not in repr(w.all("SELECT * FROM deliveries")) + repr(w.all("SELECT * FROM events"))


@pytest.fixture
def tns():
    t = TnsStandin()
    t.start()
    yield t
    t.stop()


def tns_config(tmp_path, tns: TnsStandin, **changes):
    values = {"enabled": True, "base_url": f"{tns.url}/api", "bot_id": 1234, "bot_name": "SEDM_bot",
              "api_key": tns.api_key, "timeout_s": 2.0}
    values.update(changes)
    return config_for(tmp_path, "http://127.0.0.1:9", fritz={"token": ""}, tns=values)


def tns_request(obs_id: str = "03_06_30", name: str = "2026abc") -> dict:
    return {"id": 1, "night": NIGHT, "target": obs_id, "params": {"tns_name": name}}


def test_tns_report_on_request_and_its_reply(tmp_path, tns):
    config = tns_config(tmp_path, tns)
    w = fake_night(config)
    svc = DeliveryService(config, w)
    assert drain(config, w, 1.0) == {}  # nothing is reported unless asked
    assert svc.request_handlers()["tns_report"](None, tns_request())["type"] == "SN Ia"
    assert svc.drain([NIGHT], timeout_s=10.0) == {"sent": 3}  # the spectrum, the report, its reply
    (report,) = tns.reports.values()
    entry = report["classification_report"]["0"]
    assert entry["name"] == "2026abc" and entry["objtypeid"] == 3 and entry["redshift"] == pytest.approx(0.0512)
    assert entry["spectra"]["spectra-group"]["0"]["obsdate"] == "2026-11-24 03:06:30.000"
    # the report names the file as TNS stored it, and that file is the product, byte for byte
    upload = w.one("SELECT * FROM deliveries WHERE destination='tns_upload'")
    stored = entry["spectra"]["spectra-group"]["0"]["ascii_file"]
    assert stored == upload["remote_id"] and stored != json.loads(upload["payload_json"])["filename"]
    txt = Path(config.paths.redux_root) / NIGHT / json.loads(upload["payload_json"])["filename"]
    assert tns.files[stored] == txt.read_bytes() and len(tns.files) == 1
    assert all(h["User-Agent"].startswith('tns_marker{"tns_id": 1234') for h in tns.headers_seen)
    svc2 = DeliveryService(config, w)
    with pytest.raises(RequestError, match="already in the ledger"):
        svc2.request_handlers()["tns_report"](None, tns_request())
    with pytest.raises(RequestError, match="quality 4"):
        svc2.request_handlers()["tns_report"](None, tns_request("04_39_00", "2026abd"))


def test_a_lost_upload_reply_is_retried_and_the_report_goes_once(tmp_path, tns):
    """The upload's reply is dropped after TNS stored the file: the upload is repeated (a second,
    unreferenced file), and the report, sent after the upload that answered, goes exactly once."""
    tns.inject(Fault("POST", "/api/set/file-upload", "drop_after"))
    config = tns_config(tmp_path, tns)
    w = fake_night(config)
    svc = DeliveryService(config, w)
    svc.request_handlers()["tns_report"](None, tns_request())
    assert svc.drain([NIGHT], timeout_s=20.0) == {"sent": 3}
    assert len(tns.files) == 2 and len(tns.reports) == 1
    (report,) = tns.reports.values()
    assert report["classification_report"]["0"]["spectra"]["spectra-group"]["0"]["ascii_file"] in tns.files
    assert w.one("SELECT attempts FROM deliveries WHERE destination='tns_upload'")["attempts"] == 2


def test_tns_bad_key_and_switched_off(tmp_path, tns):
    config = tns_config(tmp_path, tns, api_key="nope-key")
    w = fake_night(config)
    svc = DeliveryService(config, w)
    svc.request_handlers()["tns_report"](None, tns_request())
    counts = svc.drain([NIGHT], timeout_s=3.0)
    assert counts == {"failed": 1, "pending": 2}  # the upload is refused; the report and reply wait behind it
    assert "check tns.api_key" in w.one("SELECT last_error FROM deliveries WHERE destination='tns_upload'")["last_error"]
    assert tns.reports == {} and tns.files == {}
    off = tns_config(tmp_path / "off", tns, enabled=False)
    w2 = fake_night(off)
    with pytest.raises(RequestError, match="TNS reports are off"):
        DeliveryService(off, w2).request_handlers()["tns_report"](None, tns_request())


def test_requesters_get_their_spectra_when_asked(tmp_path, smtp):
    ctl, inbox = smtp
    config = mail_config(tmp_path, ctl.port)
    w = fake_night(config)
    assert drain(config, w, 1.0) == {}  # off by default
    import dataclasses

    config = dataclasses.replace(config, report=dataclasses.replace(config.report, email_requesters=True))
    assert drain(config, w) == {"sent": 4}  # Q <= 2 science exposures (any name), once each
    assert drain(config, w) == {"sent": 4} and len(inbox.messages) == 4
    _rcpts, msg = next(m for m in inbox.messages if m[0] == ["pi-ztf26aaaaaaa@example.org"])
    assert "ZTF26aaaaaaa" in msg["Subject"]
    names = sorted(p.get_filename() for p in msg.walk() if p.get_filename())
    assert names[0].startswith("spec_auto_robot") and names[1].startswith("verify_auto_robot")
