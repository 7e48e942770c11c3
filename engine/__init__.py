"""sedmtui engine: a headless reduction engine for the SED Machine (SEDM) IFU spectrograph.

The engine never imports Textual or Rich; the console (:mod:`sedmtui`) reads the state the
engine writes to SQLite.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
