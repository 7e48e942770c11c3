"""Synthetic SED Machine: renders complete raw nights with their truth.

Used by tests, benchmarks and the demo; the reduction code never imports it.
"""

SYNTH_FORMAT = 3
"""What a seed renders, numbered: raised whenever the same seed gives other frames, so that a
cached night (``sedmtui --demo``) is made again (2: mirrored Rainbow Camera frames; 3: wide
instrument draws by default)."""
