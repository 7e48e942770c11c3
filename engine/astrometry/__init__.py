"""Target position from the guider (Rainbow Camera) frames: stack, stars, WCS, spaxel frame.

Public entry points: :func:`locate_target` (does the I/O), :func:`write_guider_product`,
:func:`select_guider_frames`, :func:`stack_guider`; the algorithm modules
(:mod:`~engine.astrometry.detect`, :mod:`~engine.astrometry.solve`) are pure functions.
"""

from engine.astrometry.catalog import RefCatalog, load_catalog
from engine.astrometry.guider import (
    GuiderStack,
    guider_candidates,
    select_guider_frames,
    stack_guider,
)
from engine.astrometry.locate import TargetLocation, locate_target
from engine.astrometry.options import AstrometryConfig
from engine.astrometry.product import guider_product_name, write_guider_product

__all__ = [
    "AstrometryConfig",
    "GuiderStack",
    "RefCatalog",
    "TargetLocation",
    "guider_candidates",
    "guider_product_name",
    "load_catalog",
    "locate_target",
    "select_guider_frames",
    "stack_guider",
    "write_guider_product",
]
