"""Target position from the guider (Rainbow Camera) frames: stack, stars, WCS, spaxel frame.

Public entry points: :func:`locate_target` (does the I/O), :func:`write_guider_product`,
:func:`select_guider_frames`, :func:`stack_guider`; the algorithm modules
(:mod:`~engine.astrometry.detect`, :mod:`~engine.astrometry.solve`) are pure functions.

The names below are loaded on first use (PEP 562): importing ``engine.astrometry.options``
(the configuration does) does not load the solver.
"""

import importlib

_EXPORTS = {
    "engine.astrometry.catalog": ("RefCatalog", "load_catalog"),
    "engine.astrometry.guider": ("GuiderStack", "guider_candidates", "select_guider_frames", "stack_guider"),
    "engine.astrometry.locate": ("TargetLocation", "locate_target"),
    "engine.astrometry.options": ("AstrometryOptions",),
    "engine.astrometry.product": ("guider_product_name", "write_guider_product"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.astrometry' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
