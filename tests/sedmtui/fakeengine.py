"""A stand-in engine for console tests: the real request handlers, a fake re-extraction.

It holds the writer lease like the engine, heartbeats, claims requests with the engine's
``claim_next`` and serves them with the engine's own handlers (``accept``, ``reject``,
``recover``, ``report`` and the checks of ``reextract``, e.g. a centroid outside the IFU).
Only the science of a re-extraction is replaced: the new products are written from the fake
night's analytic model (see :mod:`tests.sedmtui.fakenight`) in a few milliseconds, then
recorded with the request stage's real ``record``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.config import load_config
from engine.errors import RequestError
from engine.pipeline.jobs import Job
from engine.pipeline.records import finish_request_in
from engine.pipeline.requests_stage import RequestStage
from engine.pipeline.stage import EngineView
from engine.pipeline.tasks import ExtractionResult, ReextractionTask
from engine.state.db import open_writer
from engine.state.requests import claim_next, validate_shape
from engine.state.writer import StateWriter
from tests.sedmtui import fakenight


class FakeEngine:
    """Serve requests from a thread until :meth:`stop`.

    Parameters
    ----------
    night : FakeNight
        The fake night (database and products).
    poll_s : float
        Loop period.
    delay_s : float
        Pretend work time of a re-extraction.
    """

    def __init__(self, night, *, poll_s: float = 0.05, delay_s: float = 0.0) -> None:
        self.night = night
        self.poll_s = poll_s
        self.delay_s = delay_s
        self.config = load_config(None, env={}, overrides={"paths": {"redux_root": str(night.redux),
                                                                       "raw_root": str(night.raw)}})
        self.stop_event = threading.Event()
        self.served: list[dict] = []
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="fake-engine", daemon=True)
        self._ready = threading.Event()
        self._counter = 0
        self.busy_retries = 0

    def __enter__(self) -> FakeEngine:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        if self.errors and exc[0] is None:
            raise self.errors[0]

    def start(self, timeout: float = 30.0) -> None:
        """Start serving; return once the lease is held and the first heartbeat is committed
        (a command that checks for a live engine right after this sees one, however loaded
        the machine)."""
        self._thread.start()
        if not self._ready.wait(timeout) and not self.errors:
            raise AssertionError(f"fake engine not ready after {timeout} s")
        if self.errors:
            raise self.errors[0]

    def stop(self) -> None:
        self.stop_event.set()
        self._thread.join(timeout=10)

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        db = open_writer(self.night.db)
        writer = StateWriter(db)
        try:
            writer.acquire_lease(30.0)
            writer.heartbeat("idle", 0)
        except BaseException as exc:  # noqa: BLE001 - surfaced by start()
            self.errors.append(exc)
            db.close()
            self._ready.set()
            return
        self._ready.set()
        stage = RequestStage()
        self.view = EngineView(config=self.config, writer=writer, nights={self.night.night}, running=set(), once=False,
                               ingest_idle=True, now_ut_hour=6.0)
        table = stage.request_handlers()
        try:
            while not self.stop_event.is_set():
                try:
                    req = claim_next(db)
                    if req is None:
                        writer.heartbeat("idle", 0)
                        self.stop_event.wait(self.poll_s)
                        continue
                    writer.heartbeat(f"request #{req['id']} {req['kind']} {req['target'] or ''}".strip(), 1)
                except sqlite3.OperationalError as exc:
                    # The engine's read-then-write transactions start with a deferred BEGIN: a
                    # console's commit in between gives SQLITE_BUSY_SNAPSHOT ("database is
                    # locked") at once, whatever the busy timeout (reported as an engine bug).
                    # The transaction was rolled back; try again.
                    self.busy_retries += 1
                    if "locked" not in str(exc):
                        raise
                    continue
                self._serve(stage, table, req)
                self.served.append(req)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the tests
            self.errors.append(exc)
        finally:
            try:
                writer.release_lease()
            finally:
                db.close()

    def _serve(self, stage, table, req) -> None:
        view = self.view
        try:
            validate_shape(req["kind"], req["night"], req["target"], req["params"])
            outcome = table[req["kind"]](view, req)
        except RequestError as exc:
            with view.writer.transaction():
                finish_request_in(view, req, error=str(exc))
            return
        if isinstance(outcome, Job):
            if self.delay_s:
                time.sleep(self.delay_s)
            result = self.fake_reextract(outcome.args[0])
            # the fake's products carry a counter tag (two requests in one second get two names)
            outcome.context["request"] = replace(outcome.context["request"], tag=result.extraction.pop("tag"))
            stage.record(view, outcome, result)
        else:
            with view.writer.transaction():
                finish_request_in(view, req, result=outcome)

    # ------------------------------------------------------------------ the fake science
    def fake_reextract(self, task: ReextractionTask) -> ExtractionResult:
        """New products of a re-extraction, from the fake night's model, shifted to the centroid."""
        self._counter += 1
        r = task.request
        tag = f"redo{100000 + self._counter:06d}"
        exposure = task.exposure
        spec = next(s for s in fakenight.EXPOSURES if s.obs_id == exposure.obs_id)
        cur = self.view.writer.one("""SELECT e.* FROM extractions e JOIN observations o ON o.current_extraction_id=e.id
                                      WHERE o.night=? AND o.obs_id=?""", [exposure.night, exposure.obs_id])
        centroid = r.centroid
        shift = (0.0, 0.0) if centroid is None else (centroid[0] - spec.pos[0], centroid[1] - spec.pos[1])
        spaxel_id, xy = fakenight.lattice()
        p = fakenight._products(self.night, spec, spaxel_id, xy, np.random.default_rng(1), tag=tag, shift=shift)
        quality = 1 if centroid is not None and spec.quality == 5 else (spec.quality if spec.quality != 5 else 5)
        reason = "manual centroid" if quality == 1 else spec.reason
        ext = {"tag": tag, "srcpos": "manual" if centroid else spec.srcpos,
               "centroid_x": p["centre"][0], "centroid_y": p["centre"][1],
               "guess_x": centroid[0] if centroid else cur["guess_x"], "guess_y": centroid[1] if centroid else cur["guess_y"],
               "astrom_x": cur["astrom_x"], "astrom_y": cur["astrom_y"], "bright_x": cur["bright_x"],
               "bright_y": cur["bright_y"],
               "psf_fwhm_arcsec": 1.65, "psf_ell": 0.04, "adr_pa": 41.0, "adr_airmass": spec.airmass, "adr_chi2": 0.3,
               "quality": quality, "quality_reason": reason, "s2n": (spec.s2n or 10.0) * 1.1, "fluxcal": 1,
               "calsrc": cur["calsrc"], "calsrc_dt_h": 1.5, "spec_fits": p["spec"], "spec_txt": p["txt"],
               "psf_file": p["psf"], "verify_png": None, "fluxcal_file": None,
               "facts": {"fluxcal_note": "", "notes": [], "n_fit_spaxels": p["fitted"],
                         "excluded": (r.region or {}).get("exclude", [])}}
        cls = None
        if spec.snid:
            t, sub, z, rlap = spec.snid
            cls = {"classifier": "builtin", "type": t, "subtype": sub, "z": z + 0.001, "rlap": rlap + 1.0,
                   "template": "sn2005am"}
        return ExtractionResult(ext, cls, timing={"total_s": 0.01})

    # ------------------------------------------------------------------ helpers for tests
    def wait_served(self, n: int, timeout: float = 10.0) -> None:
        """Wait until ``n`` requests were served."""
        t_end = time.monotonic() + timeout
        while len(self.served) < n and time.monotonic() < t_end and not self.errors:
            time.sleep(0.02)
        if self.errors:
            raise self.errors[0]
        assert len(self.served) >= n, f"fake engine served {len(self.served)} of {n} requests"


def request_rows(db: Path) -> list[dict]:
    """Every request row, oldest first, with parsed params."""
    import sqlite3

    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute("SELECT * FROM requests ORDER BY id").fetchall()]
    conn.close()
    for r in rows:
        r["params"] = json.loads(r["params_json"] or "{}")
    return rows


__all__ = ["FakeEngine", "request_rows"]
