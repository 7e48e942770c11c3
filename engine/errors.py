"""Domain errors of the engine.

Every error carries a message an operator can act on. ``AlgorithmError`` also carries the
facts of the failed fit (number of lines matched, rms, ...) in ``metadata``.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every engine error."""


class ConfigError(EngineError):
    """A configuration value is missing or invalid."""


class FrameError(EngineError):
    """A raw frame cannot be used (corrupt, truncated, missing header keyword)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class CalibrationNotFoundError(EngineError):
    """No usable calibration product exists for a frame."""


class CalibrationMismatchError(EngineError):
    """A calibration product does not match the frame it is applied to."""


class AlgorithmError(EngineError):
    """A fit or measurement failed; ``metadata`` holds the facts of the failure."""

    def __init__(self, message: str, metadata: dict | None = None) -> None:
        super().__init__(message)
        self.metadata = dict(metadata or {})


class RequestError(EngineError):
    """A console request is invalid (unknown target, centroid outside the IFU, empty region)."""


class LeaseError(EngineError):
    """Another engine holds the write lease on the state database."""


class SchemaError(EngineError):
    """The state database schema is newer than this program understands."""
