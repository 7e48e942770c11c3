"""Built-in SNID-compatible supernova classifier (Blondin & Tonry 2007).

Typical use by the pipeline::

    from engine.classify import (classify_spectrum, load_template_library, median_s2n,
                                 should_classify, snid_header_cards, snid_text_lines)

    library = load_template_library(config.classify.templates_dir)   # once, ~0.02 s cached
    options = config.classify                     # a SnidOptions (SEDM defaults) + templates_dir
    ok, reason = should_classify(object_name, header, quality)
    if ok:
        result = classify_spectrum(wave, flux, err, library=library, options=options)
        cards = snid_header_cards(result)       # [(key, value, comment), ...]
        lines = snid_text_lines(result)         # [(key, value), ...]

The names below are loaded on first use (PEP 562), so that importing one submodule
(``engine.classify.options`` for the configuration) does not load the classifier.
"""

import importlib

_EXPORTS = {
    "engine.classify.options": ("SnidOptions",),
    "engine.classify.selection": ("select_templates", "template_mask"),
    "engine.classify.result": ("BestMatchSpectrum", "Classification", "TemplateMatch", "sedm_type_split",
                               "snid_header_cards", "snid_text_lines"),
    "engine.classify.s2n": ("SignalToNoise", "median_s2n", "s2n_header_cards", "s2n_text_lines"),
    "engine.classify.skip": ("should_classify",),
    "engine.classify.snid": ("classify_spectrum",),
    "engine.classify.spectrum_input": ("SpectrumReadError", "read_spectrum"),
    "engine.classify.templates": ("TemplateLibrary", "check_template_dir", "load_template_library"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'engine.classify' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
