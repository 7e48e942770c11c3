"""Fault injection by property-based fuzzing (issue 15): FITS headers, file names, night
directory names and request parameters go through ingest and the request API.

Whatever the input, no exception escapes, and every refusal carries a reason. Examples are
bounded so the file runs in well under a minute.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import WatchConfig
from engine.errors import FrameError, RequestError
from engine.ingest.watcher import ignored_night_dirs, scan_raw
from engine.io.inputs import REQUEST_KINDS, RawName, Refusal, clean_text, parse_night, parse_raw_name
from engine.pipeline.ingest import Ingestor, read_raw_file
from engine.state.db import open_writer
from engine.state.requests import submit_request
from engine.state.writer import StateWriter
from tests.engine.reliability_helpers import card, engine_config, science_cards, write_raw

NIGHT = "20261124"
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])

latin1 = st.characters(min_codepoint=0, max_codepoint=255)
HEADER_KEYS = ["OBJECT", "NAME", "JD", "EXPTIME", "AIRMASS", "ADCSPEED", "LAMPCUR", "DOMEST", "CAM_NAME", "IMGTYPE",
               "BITPIX", "NAXIS", "NAXIS1", "GCOUNT", "PCOUNT"]
card_values = st.one_of(
    st.text(latin1, max_size=70),
    st.sampled_from(["NaN", "nan", "inf", "-inf", "1e999", "-5", "0", "T", "F", "''", "'", "' '", "-2880", "99999999999"]),
    st.builds(lambda s: f"'{s}'", st.text(latin1, max_size=60)),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def clean(text: str) -> bool:
    return text == clean_text(text)


@pytest.fixture(scope="module")
def scratch():
    d = Path(tempfile.mkdtemp(prefix="sedm-fuzz-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def assert_refusal_or_row(path: Path) -> None:
    try:
        row = read_raw_file(path)
    except FrameError as exc:
        assert str(exc).strip(), "a refusal without a reason"
        assert clean(str(exc))
        return
    assert row["kind"] in {"bias", "dome", "arc", "standard", "science", "guider", "skip"}
    json.loads(row["header_json"])
    assert all(clean(row[k]) for k in ("object", "name", "imgtype", "reason"))


@FUZZ
@given(key=st.sampled_from(HEADER_KEYS), value=card_values, extra=st.lists(st.text(latin1, min_size=1, max_size=80), max_size=3))
def test_fuzzed_header_cards_are_refused_with_a_reason_or_ingested(scratch, key, value, extra):
    cards = [c for c in science_cards() if c[:8].strip() != key] + [card(key, value)] + extra
    if key == "BITPIX":  # keep SIMPLE first and structural cards in order
        cards = [cards[0], card(key, value)] + [c for c in cards[1:] if c[:8].strip() != key]
    path = write_raw(scratch / NIGHT / "ifu20261124_03_00_00.fits", cards=cards)
    assert_refusal_or_row(path)


@FUZZ
@given(data=st.binary(max_size=3 * 2880), prefix=st.booleans())
def test_fuzzed_file_bytes_are_refused_with_a_reason_or_ingested(scratch, data, prefix):
    path = scratch / NIGHT / "ifu20261124_03_00_01.fits"
    path.parent.mkdir(parents=True, exist_ok=True)
    head = card("SIMPLE", "T").encode() if prefix else b""
    path.write_bytes(head + data)
    assert_refusal_or_row(path)


@settings(max_examples=300, deadline=None)
@given(name=st.one_of(st.text(max_size=40), st.from_regex(r"(ifu|rc)\d{8}_\d{2}_\d{2}_\d{2}\.fits", fullmatch=True)))
def test_fuzzed_file_names_parse_or_are_refused(name):
    parsed = parse_raw_name(name)
    if isinstance(parsed, Refusal):
        assert parsed.reason and clean(parsed.reason)
        return
    assert isinstance(parsed, RawName)
    hh, mm, ss = (int(x) for x in parsed.obs_id.split("_"))
    assert hh < 24 and mm < 60 and ss <= 60
    assert 2400000 < parsed.jd < 2600000


@FUZZ
@given(names=st.lists(st.from_regex(r"\d{8}", fullmatch=True), min_size=1, max_size=4, unique=True))
def test_fuzzed_night_directories_are_scanned_or_ignored_with_a_reason(scratch, names):
    raw = scratch / "raw-nights"
    shutil.rmtree(raw, ignore_errors=True)
    for n in names:
        write_raw(raw / n / f"ifu{n}_03_00_00.fits")
    ignored = ignored_night_dirs(raw)
    found = {p.parent.name for p in scan_raw(raw)}
    for n in names:
        assert (n in found) != (n in ignored)
        assert (n in found) == (not isinstance(parse_night(n), Refusal))
        if n in ignored:
            assert ignored[n]
    w = StateWriter(open_writer(scratch / "nights.db"))
    try:
        ing = Ingestor(w, WatchConfig(stable_s=0.0))
        ing.nominate(scan_raw(raw) + [raw / n / f"ifu{n}_03_00_00.fits" for n in names])
        ing.sweep()
        nights = {r["night"] for r in w.all("SELECT night FROM frames")}
        assert nights <= found
    finally:
        w.db.close()
        (scratch / "nights.db").unlink()


# --------------------------------------------------------------------------------------------- requests
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
param_dicts = st.one_of(
    st.dictionaries(st.sampled_from(["centroid", "region", "lstep", "extraction_id", "comment", "junk"]), json_values,
                    max_size=4),
    st.fixed_dictionaries({"centroid": st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=3)}),
    st.fixed_dictionaries({"region": st.dictionaries(st.sampled_from(["radius", "include", "exclude", "x"]),
                                                     json_values, max_size=2)}),
)
targets = st.one_of(st.none(), st.from_regex(r"\d{2}_\d{2}_\d{2}", fullmatch=True), st.text(max_size=12))
nights = st.one_of(st.none(), st.just(NIGHT), st.from_regex(r"\d{8}", fullmatch=True), st.text(max_size=10))


@pytest.fixture(scope="module")
def engine(scratch):
    from engine.pipeline.engine import Engine

    (scratch / "raw").mkdir(exist_ok=True)
    cfg = engine_config(scratch / "raw", scratch / "redux", stages="all")
    eng = Engine(cfg, night=NIGHT, once=True)
    eng.start()
    yield eng
    eng.close()


def _serve_and_check(engine, rid: int) -> None:
    engine._serve_requests()
    with sqlite3.connect(engine.config.paths.db_path) as c:
        status, error = c.execute("SELECT status, error FROM requests WHERE id=?", [rid]).fetchone()
        messages = [m for (m,) in c.execute("SELECT message FROM events WHERE kind='request'")]
    assert status in ("done", "failed")
    if status == "failed":
        assert error and error.strip()
    assert all(clean(m) for m in messages)


@FUZZ
@given(kind=st.one_of(st.sampled_from(REQUEST_KINDS), st.text(max_size=8)), night=nights, target=targets,
       params=param_dicts)
def test_fuzzed_requests_are_refused_with_a_reason_or_served(engine, kind, night, target, params):
    conn = sqlite3.connect(engine.config.paths.db_path, timeout=10)
    try:
        try:
            rid = submit_request(conn, kind, night=night, target=target, params=params, user="fuzz")
        except RequestError as exc:
            assert str(exc).strip() and clean(str(exc))
            return
    finally:
        conn.close()
    _serve_and_check(engine, rid)


@FUZZ
@given(kind=st.one_of(st.sampled_from(REQUEST_KINDS), st.text(max_size=8)), night=nights, target=targets,
       params_json=st.one_of(st.text(max_size=60), json_values.map(lambda v: json.dumps(v))))
def test_fuzzed_stored_requests_never_stop_the_engine(engine, kind, night, target, params_json):
    """A client that writes the table directly, bypassing the API."""
    with sqlite3.connect(engine.config.paths.db_path, timeout=10) as conn:
        rid = conn.execute("INSERT INTO requests (created, user, kind, night, target, params_json, status) "
                           "VALUES ('t', 'fuzz', ?, ?, ?, ?, 'pending')", [kind, night, target, params_json]).lastrowid
    conn.close()
    _serve_and_check(engine, rid)
