"""Fritz delivery against the SkyPortal stand-in on loopback: exactly once, through its errors."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from engine.delivery.service import DeliveryService
from engine.delivery.standins.base import Fault
from engine.delivery.standins.skyportal import SkyPortalStandin

from .nightfake import NIGHT, TOKEN, add_extraction, config_for, fake_night

ACCEPTABLE = {"ZTF26aaaaaaa", "ZTF26bbbbbbb", "ZTF26ccccccc"}
"""Quality <= 2 and a ZTF name (ZTF26ddddddd is Q4; SN2026xyz is not a ZTF name)."""


@pytest.fixture
def portal():
    sp = SkyPortalStandin(token=TOKEN)
    sp.start()
    yield sp
    sp.release.set()
    sp.stop()


def deliver(config, writer, timeout_s: float = 20.0) -> dict:
    return DeliveryService(config, writer).drain([NIGHT], timeout_s=timeout_s)


def rows(writer, destination: str | None = None) -> list[dict]:
    sql = "SELECT * FROM deliveries" + (" WHERE destination=?" if destination else "") + " ORDER BY id"
    return writer.all(sql, [destination] if destination else [])


def posts(portal, path="/api/spectrum/ascii") -> int:
    return sum(1 for m, p in portal.calls if m == "POST" and p == path)


def test_a_night_is_delivered_once_with_errors_time_annotations_and_status(tmp_path, portal):
    config = config_for(tmp_path, portal.url)
    w = fake_night(config)
    counts = deliver(config, w)
    assert counts == {"sent": 10}  # 3 spectra, 5 annotations, 2 statuses
    assert sorted(s["obj_id"] for s in portal.spectra.values()) == sorted(ACCEPTABLE)
    # the stored error column squared is the product's variance
    redux = Path(config.paths.redux_root) / NIGHT
    for s in portal.spectra.values():
        with fits.open(redux / s["original_file_filename"].replace(".txt", ".fits")) as hdul:
            var = hdul["VARIANCE"].data
        np.testing.assert_allclose(np.square(s["errors"]), var, rtol=3e-6)
        # observed_at is the file name's UT, not the header's local OBSDATE/OBSTIME
        ut = s["original_file_filename"].split(f"ifu{NIGHT}_")[1][:8]
        assert s["observed_at"] == f"2026-11-24T{ut.replace('_', ':')}.000"
    origins = sorted((portal.spectra[a["spectrum_id"]]["obj_id"], a["origin"]) for a in portal.annotations.values())
    assert origins == [("ZTF26aaaaaaa", "sedm:S2N"), ("ZTF26aaaaaaa", "sedm:SNID"), ("ZTF26bbbbbbb", "sedm:S2N"),
                       ("ZTF26bbbbbbb", "sedm:SNID"), ("ZTF26ccccccc", "sedm:S2N")]
    snid = next(a["data"] for a in portal.annotations.values() if a["origin"] == "sedm:SNID"
                and portal.spectra[a["spectrum_id"]]["obj_id"] == "ZTF26aaaaaaa")
    assert snid["type"] == "Ia" and snid["z"] == pytest.approx(0.0512) and isinstance(snid["rlap"], float)
    assert sorted(s["followup_request_id"] for s in portal.statuses) == [1001, 1002]
    assert all(s["new_status"].startswith("Completed Automatically 20") for s in portal.statuses)
    ztf = (redux / "report_ztf.txt").read_text()
    assert all(name in ztf for name in ACCEPTABLE) and "ZTF26ddddddd" not in ztf
    # a second run sends nothing
    n_calls = len(portal.calls)
    assert deliver(config, w) == {"sent": 10}
    assert len(portal.calls) == n_calls and len(portal.spectra) == 3


def test_a_400_fails_the_row_and_sets_no_status(tmp_path, portal):
    portal.inject(Fault("POST", "/api/spectrum/ascii", "status", status=400))
    config = config_for(tmp_path, portal.url)
    w = fake_night(config)
    counts = deliver(config, w, timeout_s=3.0)
    failed = [r for r in rows(w, "fritz_spectrum") if r["state"] == "failed"]
    assert len(failed) == 1 and "HTTP 400" in failed[0]["last_error"]
    assert counts["failed"] == 1 and len(portal.spectra) == 2
    # the failed spectrum's status and annotations stay pending: never "Completed"
    waiting = [r for r in rows(w) if r["depends_on"] == failed[0]["id"]]
    assert waiting and all(r["state"] == "pending" for r in waiting)
    assert failed[0]["target"] not in {portal.spectra[s]["obj_id"] for s in portal.spectra}
    assert len(portal.statuses) == 2 - any(r["destination"] == "fritz_status" for r in waiting)


@pytest.mark.parametrize("fault", [
    Fault("POST", "/api/spectrum/ascii", "after", status=500),          # 500 after the spectrum was stored
    Fault("POST", "/api/spectrum/ascii", "drop_after"),                 # stored, connection dropped
    Fault("POST", "/api/spectrum/ascii", "slow", delay_s=0.6),          # stored after the client timed out
    Fault("POST", "/api/spectrum/ascii", "drop"),                       # dropped before storing
    Fault("POST", "/api/spectrum/ascii", "status", status=503),         # unavailable
    Fault("POST", "/api/spectrum/ascii", "status", status=429, retry_after="0.2"),
], ids=["500-after-store", "drop-after-store", "slow", "drop", "503", "429"])
def test_uncertain_replies_never_store_twice(tmp_path, portal, fault):
    portal.inject(fault)
    config = config_for(tmp_path, portal.url)
    config = dataclasses.replace(config, fritz=dataclasses.replace(config.fritz, timeout_s=0.3, recheck_s=0.6))
    w = fake_night(config)
    assert deliver(config, w) == {"sent": 10}
    assert sorted(s["obj_id"] for s in portal.spectra.values()) == sorted(ACCEPTABLE)
    if fault.status != 429:  # a 429 is waited out inside the call
        assert any(r["attempts"] > 1 for r in rows(w, "fritz_spectrum"))


def test_rate_limit_and_burst(tmp_path):
    from engine.delivery.http import call

    # The burst: a bucket that refills too slowly to matter however slow the machine is (the
    # assertion must not depend on how fast 12 calls are made).
    slow = SkyPortalStandin(token=TOKEN, rate=1e-4, burst=10)
    slow.start()
    try:
        auth = {"Authorization": f"token {TOKEN}"}
        replies = [call("GET", f"{slow.url}/api/sources/ZTF26aaaaaaa/spectra", headers=auth) for _ in range(12)]
        assert [r.status for r in replies] == [200] * 10 + [429] * 2
        limited = replies[10]
        assert limited.json()["status"] == "error" and limited.retry_after_s() is not None
    finally:
        slow.stop()
    portal = SkyPortalStandin(token=TOKEN, rate=5.0, burst=10)
    portal.start()
    try:
        config = config_for(tmp_path, portal.url)
        w = fake_night(config)
        assert deliver(config, w) == {"sent": 10}  # paced by Retry-After, nothing lost
    finally:
        portal.stop()


def test_bad_token_fails_and_the_token_is_never_shown(tmp_path, portal, caplog):
    caplog.set_level(logging.DEBUG)
    config = config_for(tmp_path, portal.url)
    wrong = "wrong-" + TOKEN
    config = dataclasses.replace(config, fritz=dataclasses.replace(config.fritz, token=wrong))
    w = fake_night(config)
    deliver(config, w, timeout_s=3.0)
    spectra = rows(w, "fritz_spectrum")
    assert all(r["state"] == "failed" and "check fritz.token" in r["last_error"] for r in spectra)
    assert not portal.spectra
    text = caplog.text + repr(w.all("SELECT * FROM deliveries")) + repr(w.all("SELECT * FROM events"))
    assert wrong not in text and TOKEN not in text
    assert wrong not in repr(config) and "***" == config.to_dict()["fritz"]["token"]


def test_a_server_that_is_down_leaves_rows_pending_then_they_drain(tmp_path):
    portal = SkyPortalStandin(token=TOKEN)
    url = portal.start()
    port = portal.server.server_address[1]
    portal.stop()  # connection refused
    config = config_for(tmp_path, url)
    w = fake_night(config)
    counts = deliver(config, w, timeout_s=0.5)
    assert counts.get("sent", 0) == 0 and counts.get("pending", 0) >= 3
    spec = rows(w, "fritz_spectrum")
    assert all(r["state"] == "pending" and "cannot connect" in r["last_error"] for r in spec)
    portal.start(port)
    try:
        assert deliver(config, w) == {"sent": 10}
        assert len(portal.spectra) == 3
    finally:
        portal.stop()


def test_delivery_never_blocks_the_engine_loop(tmp_path, portal):
    """A send the server holds does not hold the caller: step() returns with the send in flight."""
    portal.inject(Fault("GET", "/api/sources/", "hold", delay_s=30.0, times=99))
    config = config_for(tmp_path, portal.url)
    config = dataclasses.replace(config, fritz=dataclasses.replace(config.fritz, timeout_s=30.0))
    w = fake_night(config)
    svc = DeliveryService(config, w)
    svc.step([NIGHT], live=True)
    assert len(svc.inflight) == 2  # both delivery threads busy on the held server
    assert svc.step([NIGHT], live=True) is False  # and the loop goes on
    assert {r["state"] for r in rows(w, "fritz_spectrum")} == {"sending", "pending"}
    portal.release.set()
    assert svc.drain([NIGHT], timeout_s=20.0) == {"sent": 10}


def test_ascii_over_10_mb_is_refused_before_sending(tmp_path, portal):
    config = config_for(tmp_path, portal.url)
    w = fake_night(config, exposures=[("03_06_30", "ZTF26aaaaaaa", 0, None, None)])
    txt = Path(config.paths.redux_root) / NIGHT / rows_txt(w)
    txt.write_text(txt.read_text() + "# PAD: " + "x" * (10 * 1024 * 1024) + "\n")
    deliver(config, w, timeout_s=2.0)
    spec = rows(w, "fritz_spectrum")[0]
    assert spec["state"] == "failed" and "10 MB" in spec["last_error"] and posts(portal) == 0
    # and the stand-in itself enforces the limit
    from engine.delivery.fritz import FritzClient

    reply = FritzClient(config.fritz).api("POST", "/api/spectrum/ascii", {
        "obj_id": "x", "instrument_id": 2, "observed_at": "2026-11-24T00:00:00", "ascii": "1 2 3\n" * 2_000_000})
    assert reply.status == 400 and reply.json()["status"] == "error"


def rows_txt(w) -> str:
    return w.one("SELECT spec_txt FROM extractions")["spec_txt"]


def test_an_accepted_redo_replaces_the_robot_spectrum(tmp_path, portal):
    config = config_for(tmp_path, portal.url)
    w = fake_night(config, exposures=[("03_06_30", "ZTF26aaaaaaa", 0, 1001, "Ia")])
    deliver(config, w)
    (sid, robot), = portal.spectra.items()
    robot_flux = list(robot["fluxes"])
    obs = w.one("SELECT * FROM observations")
    old = obs["current_extraction_id"]
    w.update("extractions", old, {"status": "superseded"})
    add_extraction(w, Path(config.paths.redux_root), NIGHT, "03_06_30", obs["id"], "ZTF26aaaaaaa", 0, "II",
                   tag="redo231500", seed=7)
    counts = deliver(config, w)
    assert counts == {"sent": 8}
    assert list(portal.spectra) == [sid]  # replaced in place, not stored beside it
    assert portal.spectra[sid]["fluxes"] != robot_flux
    assert [a["data"]["type"] for a in portal.annotations.values() if a["origin"] == "sedm:SNID"] == ["II"]
    assert len(portal.annotations) == 2
    assert [s["new_status"].split(" 20")[0] for s in portal.statuses] == ["Completed Automatically",
                                                                          "Completed Manually"]
    assert sum(1 for m, p in portal.calls if m == "PUT" and p == f"/api/spectra/{sid}") == 1


def test_dry_run_records_and_sends_nothing(tmp_path, portal):
    config = config_for(tmp_path, portal.url, delivery={"dry_run": True})
    w = fake_night(config)
    deliver(config, w, timeout_s=1.0)
    assert not portal.calls
    assert {r["state"] for r in rows(w)} == {"skipped"} and all(r["key"].endswith("#dry") for r in rows(w))


def test_a_local_redo_never_leaves_the_machine_and_the_report_lists_deliveries(tmp_path, portal):
    import json

    from engine.report import build_report
    from engine.timeutil import utc_now_iso

    config = config_for(tmp_path, portal.url)
    w = fake_night(config, exposures=[("03_06_30", "ZTF26aaaaaaa", 0, 1001, "Ia")])
    deliver(config, w)
    obs = w.one("SELECT * FROM observations")
    w.update("extractions", obs["current_extraction_id"], {"status": "superseded"})
    rid = w.insert("requests", {"created": utc_now_iso(), "kind": "reextract", "night": NIGHT, "target": "03_06_30",
                                "status": "done", "params_json": json.dumps({"centroid": None, "local": True})})
    eid = add_extraction(w, Path(config.paths.redux_root), NIGHT, "03_06_30", obs["id"], "ZTF26aaaaaaa", 0, "II",
                         tag="redo231500", seed=7)
    w.update("extractions", eid, {"request_id": rid})
    n_calls = len(portal.calls)
    assert deliver(config, w) == {"sent": 4}
    assert len(portal.calls) == n_calls
    text = build_report(w.all, NIGHT, str(tmp_path))
    assert "Deliveries: 4 sent" in text and "spectrum spec_auto_robot" in text and f"{portal.url}/source/" in text


def test_a_redo_accepted_before_the_robot_went_out_supersedes_it(tmp_path, portal):
    url = portal.url
    portal.stop()  # Fritz down while the robot's rows are planned
    config = config_for(tmp_path, url)
    w = fake_night(config, exposures=[("03_06_30", "ZTF26aaaaaaa", 0, 1001, "Ia")])
    svc = DeliveryService(config, w)
    svc.plan([NIGHT], live=False)
    obs = w.one("SELECT * FROM observations")
    w.update("extractions", obs["current_extraction_id"], {"status": "superseded"})
    add_extraction(w, Path(config.paths.redux_root), NIGHT, "03_06_30", obs["id"], "ZTF26aaaaaaa", 0, "II",
                   tag="redo231500", seed=7)
    svc.plan([NIGHT], live=False)
    skipped = [r for r in rows(w) if r["state"] == "skipped"]
    assert sorted(r["destination"] for r in skipped) == ["fritz_annotation", "fritz_annotation", "fritz_spectrum",
                                                         "fritz_status"]
    svc.close()
    portal.start(int(url.rsplit(":", 1)[1]))
    assert deliver(config, w)["sent"] == 4
    (only,) = portal.spectra.values()
    assert "redo231500" in only["original_file_filename"]
    assert [s["new_status"].split(" 20")[0] for s in portal.statuses] == ["Completed Manually"]
