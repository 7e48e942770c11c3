"""SNID template library: read a directory of ``.lnw`` templates into stacked numpy arrays.

The ``.lnw`` format is described in :mod:`engine.classify.lnw`. The production set is the SN
templates listed in ``templist`` plus the non-SN templates of the SNID 5.0 distribution
(``agn``, the ``kc*`` galaxies, the ``lbv*`` objects and ``mstar``). Any other ``.lnw`` file
(quasars, carbon stars, single M stars, ...) is an optional extra, off by default, because
production SNID never reads it.

The flux block of each file is decoded with array arithmetic on its bytes, which reads the
whole 362-file release in about 0.2 s; no on-disk cache is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft as sfft

from engine.classify.lnw import N_BINS, W0_AA, W1_AA, LnwTemplate, parse_lnw
from engine.errors import ConfigError

__all__ = ["MAIN_TYPES", "N_BINS", "SNID50_NON_SN", "W0_AA", "W1_AA", "LnwTemplate",
           "TemplateLibrary", "check_template_dir", "load_template_library", "parse_lnw",
           "split_names"]

MAIN_TYPES: tuple[str, ...] = ("Ia", "Ib", "Ic", "II", "NotSN")
"""SNID 5.0 main types, indexed by ``itype - 1``."""

SNID50_NON_SN: frozenset[str] = frozenset(
    {"agn", "mstar", "kcE", "kcS0", "kcSa", "kcSb", "kcSc"}
    | {f"kcSB{i}" for i in range(1, 7)}
)
"""Non-SN templates of the SNID 5.0 distribution (plus every ``lbv*`` file)."""


@dataclass(frozen=True, eq=False)
class TemplateLibrary:
    """All epochs of all templates, stacked; one row per template epoch.

    Attributes
    ----------
    directory : str
        Where the templates were read.
    flux : numpy.ndarray
        Shape ``(n_epoch, 1024)``, float32 (the files carry 3 decimals; SNID itself works in
        single precision): flattened template flux on the SNID log grid.
    name : numpy.ndarray
        Shape ``(n_epoch,)``, str: template name (e.g. ``sn2006ax``).
    main_type : numpy.ndarray
        Shape ``(n_epoch,)``, str: ``Ia``, ``Ib``, ``Ic``, ``II`` or ``NotSN``.
    subtype : numpy.ndarray
        Shape ``(n_epoch,)``, str: SNID (sub)type name (``Ia-norm``, ``IIP``, ``Gal``, ...).
    itype, isubtype : numpy.ndarray
        Shape ``(n_epoch,)``, int: SNID type and subtype indices.
    age : numpy.ndarray
        Shape ``(n_epoch,)``, float: epoch [days from maximum light; meaning set by ``age_flag``].
    age_flag : numpy.ndarray
        Shape ``(n_epoch,)``, int: 0 = days from maximum, 1 = from first spectrum, 2 = n/a.
    delta : numpy.ndarray
        Shape ``(n_epoch,)``, float: template decline-rate parameter (-9.99 if unknown).
    template_index : numpy.ndarray
        Shape ``(n_epoch,)``, int: index into ``templates``.
    lo, hi : numpy.ndarray
        Shape ``(n_epoch,)``, int: first and last bin with non-zero flux (0-based).
    templates : tuple of str
        Template names in reading order.
    fft : numpy.ndarray
        Shape ``(n_epoch, 513)``, complex64: ``rfft`` of ``flux`` (computed once at load; the
        first, untrimmed correlation pass runs in SNID's single precision).
    """

    directory: str
    flux: np.ndarray
    name: np.ndarray
    main_type: np.ndarray
    subtype: np.ndarray
    itype: np.ndarray
    isubtype: np.ndarray
    age: np.ndarray
    age_flag: np.ndarray
    delta: np.ndarray
    template_index: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    templates: tuple[str, ...]
    fft: np.ndarray

    @property
    def n_epochs(self) -> int:
        """Number of template spectra (rows)."""
        return int(self.flux.shape[0])

    @property
    def dwlog(self) -> float:
        """Log-wavelength bin width ``ln(w1/w0)/1024`` [dimensionless]."""
        return float(np.log(W1_AA / W0_AA) / N_BINS)

    def select(self, mask: np.ndarray) -> TemplateLibrary:
        """A library holding only the rows where ``mask`` is true (shape ``(n_epoch,)``)."""
        m = np.asarray(mask, dtype=bool)
        keep = sorted({int(i) for i in self.template_index[m]})
        remap = np.full(len(self.templates), -1, dtype=int)
        remap[keep] = np.arange(len(keep))
        return TemplateLibrary(
            directory=self.directory,
            flux=self.flux[m],
            name=self.name[m],
            main_type=self.main_type[m],
            subtype=self.subtype[m],
            itype=self.itype[m],
            isubtype=self.isubtype[m],
            age=self.age[m],
            age_flag=self.age_flag[m],
            delta=self.delta[m],
            template_index=remap[self.template_index[m]],
            lo=self.lo[m],
            hi=self.hi[m],
            templates=tuple(self.templates[i] for i in keep),
            fft=self.fft[m],
        )


def _production_files(directory: Path, include_extras: bool) -> list[Path]:
    """The ``.lnw`` files to read, in SNID's order (``templist`` first)."""
    all_lnw = sorted(directory.glob("*.lnw"))
    templist = directory / "templist"
    if templist.is_file():
        listed = [ln.split()[0] for ln in templist.read_text().splitlines()
                  if ln.strip() and not ln.lstrip().startswith("#")]
        missing = [n for n in listed if not (directory / n).is_file()]
        if missing:
            msg = (f"template directory {directory}: templist names {len(missing)} missing "
                   f"file(s), e.g. {missing[0]}")
            raise ConfigError(msg)
        files = [directory / n for n in listed]
    else:
        files = [p for p in all_lnw if p.stem.startswith("sn")]
    chosen = {p.name for p in files}
    for p in all_lnw:
        if p.name in chosen:
            continue
        if include_extras or p.stem in SNID50_NON_SN or p.stem.startswith("lbv"):
            files.append(p)
            chosen.add(p.name)
    return files


def check_template_dir(path: str | Path) -> Path:
    """Cheap start-up check that ``path`` holds usable SNID templates.

    Verifies that the directory exists, lists its templates (``templist`` or ``*.lnw``) and
    that the first template's header describes SNID's 1024-bin grid. Does not read fluxes.

    Parameters
    ----------
    path : str or Path
        Template directory (``classify.templates_dir``).

    Returns
    -------
    Path
        The resolved directory.

    Raises
    ------
    ConfigError
        Naming the path and the problem.
    """
    if not str(path).strip():
        msg = ("no SNID template directory configured: set classify.templates_dir or "
               "SEDMTUI_CLASSIFY_TEMPLATES_DIR")
        raise ConfigError(msg)
    directory = Path(path).expanduser()
    if not directory.exists():
        msg = f"SNID template directory {directory} does not exist"
        raise ConfigError(msg)
    if not directory.is_dir():
        msg = f"SNID template directory {directory} is not a directory"
        raise ConfigError(msg)
    files = _production_files(directory, include_extras=False)
    if not files:
        msg = f"SNID template directory {directory} holds no .lnw templates"
        raise ConfigError(msg)
    try:
        with open(files[0], "rb") as fh:
            head = fh.readline()
    except OSError as exc:
        msg = f"SNID template directory {directory}: cannot read {files[0].name} ({exc})"
        raise ConfigError(msg) from exc
    tok = head.split()
    if len(tok) < 10 or tok[1] != b"1024":
        msg = (f"SNID template directory {directory}: {files[0].name} does not start with an "
               f"SNID .lnw header (got {head[:60]!r})")
        raise ConfigError(msg)
    return directory


def load_template_library(path: str | Path, *, include_extras: bool = False) -> TemplateLibrary:
    """Read every production template of a directory into one :class:`TemplateLibrary`.

    Parameters
    ----------
    path : str or Path
        Template directory.
    include_extras : bool
        Also read the non-SN templates that SNID 5.0 production never uses (quasars, carbon
        stars, single M dwarfs, ...). Off by default.

    Returns
    -------
    TemplateLibrary

    Raises
    ------
    ConfigError
        If the directory is missing or any template file is unreadable or malformed.
    """
    directory = check_template_dir(path)
    parsed: list[LnwTemplate] = []
    for p in _production_files(directory, include_extras):
        try:
            data = p.read_bytes()
        except OSError as exc:
            msg = f"cannot read SNID template {p} ({exc})"
            raise ConfigError(msg) from exc
        parsed.append(parse_lnw(data, source=str(p)))
    return _stack(str(directory), parsed)


def _main_type(itype: int, source: str) -> str:
    if not 1 <= itype <= len(MAIN_TYPES):
        msg = f"template {source}: SNID type index {itype} is not 1-5 (Ia, Ib, Ic, II, NotSN)"
        raise ConfigError(msg)
    return MAIN_TYPES[itype - 1]


def _stack(directory: str, parsed: list[LnwTemplate]) -> TemplateLibrary:
    """Stack parsed templates into row arrays."""
    counts = [t.flux.shape[0] for t in parsed]
    flux = np.concatenate([t.flux for t in parsed], axis=0).astype(np.float32)
    nz = flux != 0.0
    has = nz.any(axis=1)
    lo = np.where(has, nz.argmax(axis=1), 0)
    hi = np.where(has, flux.shape[1] - 1 - nz[:, ::-1].argmax(axis=1), -1)

    def rep(values: list) -> np.ndarray:
        return np.repeat(np.array(values), counts)

    return TemplateLibrary(
        directory=directory,
        flux=flux,
        name=rep([t.name for t in parsed]),
        main_type=rep([_main_type(t.itype, t.name) for t in parsed]),
        subtype=rep([t.subtype for t in parsed]),
        itype=rep([t.itype for t in parsed]).astype(int),
        isubtype=rep([t.isubtype for t in parsed]).astype(int),
        age=np.concatenate([t.ages for t in parsed]),
        age_flag=rep([t.age_flag for t in parsed]).astype(int),
        delta=rep([t.delta for t in parsed]).astype(float),
        template_index=np.repeat(np.arange(len(parsed)), counts),
        lo=lo.astype(int),
        hi=hi.astype(int),
        templates=tuple(t.name for t in parsed),
        fft=sfft.rfft(flux, axis=1),
    )


_NAME_RE = re.compile(r"[,\s]+")


def split_names(value: str | tuple[str, ...] | list[str] | None) -> tuple[str, ...]:
    """Split a comma/space separated list of names (SNID's ``avoid=a,b`` syntax)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v for v in _NAME_RE.split(value) if v)
    return tuple(v for item in value for v in _NAME_RE.split(str(item)) if v)
