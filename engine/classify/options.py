"""Options of the SNID-compatible classifier, with SNID's names and SEDM's defaults."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class SnidOptions:
    """SNID 5.0 options (same names and meanings); defaults are SEDM production's.

    SEDM runs ``snid wmin=4000 wmax=9500 skyclip=1 medlen=20 aband=1 rlapmin=4``; SNID's
    command-line parser silently ignores ``medlen=20``, so the effective (and default here)
    median width is 1.
    """

    wmin: float = 4000.0
    """Blue limit of the input spectrum used [Angstrom]."""
    wmax: float = 9500.0
    """Red limit of the input spectrum used [Angstrom]."""
    skyclip: bool = True
    """Drop +- ``emwid`` around the 5577, 6300.2 and 6364 A sky lines."""
    aband: bool = True
    """Keep the telluric A band (SNID ``aband=1``)."""
    medlen: int = 1
    """Running-median width [input samples]; 1 = none (what production really does)."""
    emclip_z: float | None = None
    """Drop galaxy emission lines at this redshift (SNID ``emclip``); None = off."""
    emwid: float = 40.0
    """Half-width of clipped lines [Angstrom]."""
    rlapmin: float = 4.0
    """Smallest rlap of a "good" match."""
    lapmin: float = 0.4
    """Smallest overlap of data and template [ln lambda]."""
    zmin: float = -0.01
    """Lowest redshift searched."""
    zmax: float = 1.2
    """Highest redshift searched."""
    zfilter: float = 0.02
    """Good matches are within this of the initial redshift."""
    forcez: float | None = None
    """Skip the first pass and trim all templates at this redshift."""
    agemin: float = -90.0
    """Youngest template epoch used [days] (NotSN and age-flag-1 epochs always kept)."""
    agemax: float = 1000.0
    """Oldest template epoch used [days]."""
    use: tuple[str, ...] = ()
    """Use only templates whose name contains one of these strings."""
    avoid: tuple[str, ...] = ()
    """Skip templates whose name contains one of these strings."""
    usetype: tuple[str, ...] = ()
    """Use only these types or subtypes (``Ia``, ``Ib-norm``, ``IIP``, ``Gal``...)."""
    avoidtype: tuple[str, ...] = ()
    """Skip these types or subtypes."""
    k1: int = 1
    """Band-pass: lowest Fourier mode kept."""
    k2: int = 4
    """Band-pass: end of the rising cosine."""
    k3: int = 85
    """Band-pass: start of the falling cosine (SNID: nw // 12)."""
    k4: int = 102
    """Band-pass: highest Fourier mode kept (SNID: nw // 10)."""
    npeaks: int = 10
    """Correlation peaks tried per template in the first pass."""
    screen_factor: float = 0.8
    """Speed-up: a trimmed correlation gets SNID's full peak fit only when a quick estimate of
    its rlap reaches this fraction of the threshold that matters (rlap > 4 to vote for zinit
    in the first pass, ``rlapmin`` in the second); 0 fits every one, exactly as SNID. On the
    52 SEDM reference spectra the estimate is never below 0.85 of the fitted rlap where that
    rlap exceeds 4, so the answers are the same as with 0. On 300 synthetic spectra (random
    template epochs at z 0-0.25, S/N 3-60) 2 differ: each misses one good match just above
    ``rlapmin`` (rlap 4.1 and 4.3), so ``n_good`` is one lower and ``zmed`` moves by at most
    2.4e-4; type, subtype, template, rlap and z are the same."""
    single_precision: bool = True
    """Correlate in single precision, as SNID itself does (faster); False runs the second pass
    in double precision (same answers on the SEDM reference set)."""
    n_matches: int = 20
    """Length of the match list kept in the result."""

    def __post_init__(self) -> None:
        for name in ("use", "avoid", "usetype", "avoidtype"):
            object.__setattr__(self, name, split_names(getattr(self, name)))
        checks = [
            (self.wmin < self.wmax, f"wmin={self.wmin} must be below wmax={self.wmax}"),
            (self.zmin < self.zmax, f"zmin={self.zmin} must be below zmax={self.zmax}"),
            (self.zmin > -1.0, f"zmin={self.zmin} must exceed -1"),
            (self.medlen >= 1, f"medlen={self.medlen} must be >= 1"),
            (self.rlapmin >= 0, f"rlapmin={self.rlapmin} must be >= 0"),
            (self.lapmin >= 0, f"lapmin={self.lapmin} must be >= 0"),
            (self.zfilter > 0, f"zfilter={self.zfilter} must be > 0"),
            (self.agemin <= self.agemax, f"agemin={self.agemin} exceeds agemax={self.agemax}"),
            (0 < self.k1 < self.k2 < self.k3 < self.k4 <= 512,
             f"band-pass k1..k4 = {self.k1},{self.k2},{self.k3},{self.k4} must increase"),
            (self.npeaks >= 1, f"npeaks={self.npeaks} must be >= 1"),
            (self.emwid >= 0, f"emwid={self.emwid} must be >= 0"),
            (0 <= self.screen_factor <= 1, f"screen_factor={self.screen_factor} not in [0, 1]"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"invalid SNID option: {msg}")
        if self.forcez is not None and not self.zmin <= self.forcez <= self.zmax:
            msg = f"invalid SNID option: forcez={self.forcez} outside [{self.zmin}, {self.zmax}]"
            raise ConfigError(msg)

    def replace(self, **changes: Any) -> SnidOptions:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the options."""
        return dataclasses.asdict(self)


_NAME_RE = re.compile(r"[,\s]+")


def split_names(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """Split a comma/space separated list of names (SNID's ``avoid=a,b`` syntax)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v for v in _NAME_RE.split(value) if v)
    return tuple(v for item in value for v in _NAME_RE.split(str(item)) if v)
