"""Fixtures of the classifier tests: the SNID template directory, the loaded library, and the
built-in classifier's answers on the 52 real SEDM spectra (computed once per session)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SPECTRA_DIR = REPO / "engine" / "synth" / "data" / "sedm_spectra"
REFERENCE_CSV = REPO / "tests" / "data" / "snid-reference.csv"


def find_templates_dir() -> Path | None:
    """``$SEDMTUI_CLASSIFY_TEMPLATES_DIR`` or ``<repo>/../shared/snid-templates-2.0``."""
    env = os.environ.get("SEDMTUI_CLASSIFY_TEMPLATES_DIR")
    for cand in (env, REPO.parent / "shared" / "snid-templates-2.0"):
        if cand and (Path(cand) / "templist").is_file():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def templates_dir() -> Path:
    path = find_templates_dir()
    if path is None:
        pytest.skip("SNID templates-2.0 not found: set SEDMTUI_CLASSIFY_TEMPLATES_DIR or place "
                    "them at <repo>/../shared/snid-templates-2.0")
    return path


@pytest.fixture(scope="session")
def library(templates_dir):
    from engine.classify import load_template_library

    return load_template_library(templates_dir)


@pytest.fixture(scope="session")
def reference_rows() -> list[dict]:
    with open(REFERENCE_CSV) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def reference_results(library, reference_rows):
    """``[(csv row, Classification)]`` for every reference spectrum."""
    from engine.classify import SnidOptions, classify_spectrum, read_spectrum

    out = []
    for row in reference_rows:
        wave, flux, err, _ = read_spectrum(SPECTRA_DIR / row["folder"] / row["file"])
        out.append((row, classify_spectrum(wave, flux, err, library=library,
                                           options=SnidOptions())))
    return out
