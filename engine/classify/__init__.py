"""Built-in SNID-compatible supernova classifier (Blondin & Tonry 2007).

Typical use by the pipeline::

    from engine.classify import (classify_spectrum, load_template_library, median_s2n,
                                 options_from_config, should_classify, snid_header_cards,
                                 snid_text_lines)

    library = load_template_library(config.classify.templates_dir)   # once, ~0.02 s cached
    options = options_from_config(config.classify)                    # SEDM defaults
    ok, reason = should_classify(object_name, header, quality)
    if ok:
        result = classify_spectrum(wave, flux, err, library=library, options=options)
        cards = snid_header_cards(result)       # [(key, value, comment), ...]
        lines = snid_text_lines(result)         # [(key, value), ...]
"""

from engine.classify.options import (SnidOptions, options_from_config, select_templates,
                                     template_mask)
from engine.classify.result import (BestMatchSpectrum, Classification, TemplateMatch,
                                    sedm_type_split, snid_header_cards, snid_text_lines)
from engine.classify.s2n import SignalToNoise, median_s2n, s2n_header_cards, s2n_text_lines
from engine.classify.skip import should_classify
from engine.classify.snid import classify_spectrum
from engine.classify.spectrum_input import SpectrumReadError, read_spectrum
from engine.classify.templates import TemplateLibrary, check_template_dir, load_template_library

__all__ = [
    "BestMatchSpectrum", "Classification", "SignalToNoise", "SnidOptions", "SpectrumReadError",
    "TemplateLibrary", "TemplateMatch", "check_template_dir", "classify_spectrum",
    "load_template_library", "median_s2n", "options_from_config", "read_spectrum", "s2n_header_cards",
    "s2n_text_lines", "select_templates", "sedm_type_split", "should_classify",
    "snid_header_cards", "snid_text_lines", "template_mask",
]
