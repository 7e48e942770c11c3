"""The real products of a reduced synthetic night, delivered to the SkyPortal stand-in."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from engine.delivery.payloads import observed_at
from engine.delivery.service import DeliveryService
from engine.delivery.standins.skyportal import SkyPortalStandin
from engine.state.db import open_writer
from engine.state.writer import StateWriter
from tests.conftest import MINI_NIGHT, copy_reduced

from .nightfake import TOKEN, config_for


@pytest.mark.slow
def test_the_reduced_mini_night_is_delivered(tmp_path, mini_reduced):
    redux = copy_reduced(mini_reduced, tmp_path / "redux", link=True)
    portal = SkyPortalStandin(token=TOKEN)
    portal.start()
    try:
        config = config_for(tmp_path, portal.url)
        config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, redux_root=str(redux)))
        w = StateWriter(open_writer(redux / "sedm.db"))  # the ledger's migration on an existing database
        w.acquire_lease(30.0)
        expected = w.all(
            """SELECT o.name, e.spec_txt, e.spec_fits, f.header_json FROM observations o
               JOIN extractions e ON e.id = o.current_extraction_id JOIN frames f ON f.id = o.frame_id
               WHERE o.kind='science' AND e.quality <= 2 AND o.name LIKE 'ZTF%'""")
        assert expected, "the mini night has acceptable ZTF targets"
        counts = DeliveryService(config, w).drain([MINI_NIGHT], timeout_s=60.0)
        assert counts.get("failed", 0) == 0 and counts.get("pending", 0) == 0
        stored = {s["original_file_filename"]: s for s in portal.spectra.values()}
        assert sorted(stored) == sorted(r["spec_txt"] for r in expected)
        for r in expected:
            s = stored[r["spec_txt"]]
            with fits.open(redux / MINI_NIGHT / r["spec_fits"]) as hdul:
                var = np.asarray(hdul["VARIANCE"].data, dtype=float)
            ok = np.isfinite(var) & (var >= 0)
            assert len(s["errors"]) == ok.sum()
            np.testing.assert_allclose(np.square(s["errors"]), var[ok], rtol=3e-6)
            assert s["observed_at"] == observed_at(json.loads(r["header_json"])["MJD_OBS"])
        assert (Path(redux) / MINI_NIGHT / "report_ztf.txt").exists()
    finally:
        portal.stop()
