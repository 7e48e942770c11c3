"""Which templates SNID reads: the age range and the ``use``/``avoid``/``usetype``/``avoidtype`` options."""

from __future__ import annotations

import numpy as np

from engine.classify.options import SnidOptions
from engine.classify.templates import MAIN_TYPES, TemplateLibrary
from engine.errors import ConfigError


def _type_mask(library: TemplateLibrary, names: tuple[str, ...]) -> np.ndarray:
    """Rows whose main type or (sub)type equals one of ``names`` (case-insensitive)."""
    known_main = {t.lower() for t in MAIN_TYPES}
    known_sub = {s.lower() for s in np.unique(library.subtype)}
    mask = np.zeros(library.n_epochs, dtype=bool)
    main = np.char.lower(library.main_type.astype(str))
    sub = np.char.lower(library.subtype.astype(str))
    for name in names:
        key = name.lower()
        if key not in known_main and key not in known_sub:
            msg = (f"unknown SNID type {name!r}: use one of {', '.join(MAIN_TYPES)} or a "
                   f"subtype of the library ({', '.join(sorted(np.unique(library.subtype)))})")
            raise ConfigError(msg)
        mask |= (main == key) | (sub == key)
    return mask


def _name_mask(library: TemplateLibrary, names: tuple[str, ...]) -> np.ndarray:
    """Rows whose template name contains one of ``names`` (SNID's substring rule)."""
    mask = np.zeros(library.n_epochs, dtype=bool)
    for name in names:
        mask |= np.char.find(library.name.astype(str), name) >= 0
    return mask


def template_mask(library: TemplateLibrary, options: SnidOptions) -> np.ndarray:
    """Rows (template epochs) SNID would read with these options, shape ``(n_epoch,)`` bool.

    Applies the age range (NotSN and age-flag-1 epochs exempt), ``use``, ``avoid``,
    ``usetype`` and ``avoidtype``.

    Raises
    ------
    ConfigError
        For an unknown type name, or when no template is left.
    """
    keep = ((library.age >= options.agemin) & (library.age <= options.agemax)) \
        | (library.age_flag == 1) | (library.main_type == "NotSN")
    if options.use:
        keep &= _name_mask(library, options.use)
    if options.avoid:
        keep &= ~_name_mask(library, options.avoid)
    if options.usetype:
        keep &= _type_mask(library, options.usetype)
    if options.avoidtype:
        keep &= ~_type_mask(library, options.avoidtype)
    if not keep.any():
        msg = "no SNID template left after the use/avoid/usetype/avoidtype/age options"
        raise ConfigError(msg)
    return keep


def select_templates(library: TemplateLibrary, options: SnidOptions) -> TemplateLibrary:
    """The sub-library of :func:`template_mask` (a copy; the classifier itself uses the mask)."""
    keep = template_mask(library, options)
    return library if keep.all() else library.select(keep)
