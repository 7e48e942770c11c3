"""Small time helpers (UTC everywhere)."""

from __future__ import annotations

import datetime as _dt
import time


def utc_now() -> _dt.datetime:
    """Current time, timezone-aware UTC."""
    return _dt.datetime.now(_dt.UTC)


def utc_now_iso() -> str:
    """Current UTC time as ISO 8601 with milliseconds, e.g. ``2026-11-24T09:41:12.345Z``."""
    return utc_now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def now_s() -> float:
    """Seconds since the epoch (wall clock)."""
    return time.time()


def night_of(dt: _dt.datetime) -> str:
    """UT night directory name ``YYYYMMDD`` of a UTC datetime."""
    return dt.astimezone(_dt.UTC).strftime("%Y%m%d")


def previous_night(night: str) -> str:
    """The UT date before ``night`` (``YYYYMMDD``)."""
    d = _dt.datetime.strptime(night, "%Y%m%d") - _dt.timedelta(days=1)
    return d.strftime("%Y%m%d")
