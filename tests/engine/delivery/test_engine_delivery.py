"""The engine loop with delivery: ``--once`` drains before it exits; requests; never blocked."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from engine.delivery.standins.skyportal import SkyPortalStandin
from engine.pipeline.engine import Engine
from engine.state.requests import submit_request

from .nightfake import NIGHT, TOKEN, config_for, fake_night


def test_once_drains_deliveries_and_says_what_is_left(tmp_path, caplog):
    portal = SkyPortalStandin(token=TOKEN)
    portal.start()
    try:
        config = config_for(tmp_path, portal.url)
        (tmp_path / "raw" / NIGHT).mkdir(parents=True)
        w = fake_night(config)
        w.release_lease()
        # a retry request filed by a console: served by the engine's delivery handlers
        submit_request(w.db.conn, "deliver_retry", night=NIGHT, params={"ids": None})
        caplog.set_level(logging.INFO)
        engine = Engine(dataclasses.replace(config, engine=dataclasses.replace(config.engine, workers=1)),
                        night=NIGHT, once=True, stages=[])
        assert engine.run() == 0
        assert len(portal.spectra) == 3
        assert "deliveries: 10 sent" in caplog.text
        req = w.one("SELECT status FROM requests WHERE kind='deliver_retry'")
        assert req["status"] == "done"
        assert (Path(config.paths.redux_root) / NIGHT / "report_ztf.txt").exists()
    finally:
        portal.stop()


def test_engine_without_delivery_configured_sends_nothing(tmp_path):
    config = config_for(tmp_path, "http://127.0.0.1:9", delivery={"enabled": False})
    (tmp_path / "raw" / NIGHT).mkdir(parents=True)
    w = fake_night(config)
    w.release_lease()
    submit_request(w.db.conn, "deliver_retry", night=NIGHT, params={"ids": None})
    engine = Engine(dataclasses.replace(config, engine=dataclasses.replace(config.engine, workers=1)),
                    night=NIGHT, once=True, stages=[])
    assert engine.delivery is None
    assert engine.run() == 0
    req = w.one("SELECT status, error FROM requests WHERE kind='deliver_retry'")
    assert req["status"] == "failed" and "delivery is off" in req["error"]
    import sqlite3

    with sqlite3.connect(config.paths.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
