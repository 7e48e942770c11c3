"""SNID template library: read a directory of ``.lnw`` templates into stacked numpy arrays.

The ``.lnw`` format is described in :mod:`engine.classify.lnw`. The production set is the SN
templates listed in ``templist`` plus the non-SN templates of the SNID 5.0 distribution
(``agn``, the ``kc*`` galaxies, the ``lbv*`` objects and ``mstar``). Any other ``.lnw`` file
(quasars, carbon stars, single M stars, ...) is an optional extra, off by default, because
production SNID never reads it.

The flux block of each file is decoded with array arithmetic on its bytes, which reads the
whole 362-file release in about 0.2 s. The stacked arrays are also kept in a single ``.npz``
file in a user cache directory (no pickles), keyed by the directory and the name, size and
modification time of every file read, so later processes load them in about 0.01 s.
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft as sfft

from engine.classify.lnw import N_BINS, W0_AA, W1_AA, LnwTemplate, parse_lnw
from engine.classify.options import split_names
from engine.classify.trim import SCREEN_STEP, decimated_rows, own_window_transforms
from engine.errors import ConfigError

log = logging.getLogger(__name__)

CACHE_ENV = "SEDMTUI_CLASSIFY_CACHE_DIR"
"""Environment variable naming the template cache directory (empty: no cache)."""
CACHE_VERSION = 1
"""Layout version of the cached arrays (part of the cache key)."""

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
    own_fft : numpy.ndarray
        Shape ``(n_epoch, 513)``, complex64: ``rfft`` of each row trimmed and re-apodised to
        its own non-zero range ``lo..hi`` (:func:`engine.classify.trim.own_window_transforms`):
        the template side of every trimmed correlation that cuts nothing from the template,
        about a fifth of them.
    coarse : numpy.ndarray
        Shape ``(n_epoch, 256)`` float32: the rows band-limited to modes below 128 and sampled
        every fourth bin (:func:`engine.classify.trim.decimated_rows`), from which the
        screening pass takes the template side of the other trimmed correlations.
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
    own_fft: np.ndarray
    coarse: np.ndarray

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
            own_fft=self.own_fft[m],
            coarse=self.coarse[m],
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


def load_template_library(path: str | Path, *, include_extras: bool = False,
                          cache: bool = True) -> TemplateLibrary:
    """Read every production template of a directory into one :class:`TemplateLibrary`.

    Parameters
    ----------
    path : str or Path
        Template directory.
    include_extras : bool
        Also read the non-SN templates that SNID 5.0 production never uses (quasars, carbon
        stars, single M dwarfs, ...). Off by default.
    cache : bool
        Use (and refresh) the array cache of :func:`template_cache_path`; the cache is
        skipped silently when its directory cannot be written.

    Returns
    -------
    TemplateLibrary

    Raises
    ------
    ConfigError
        If the directory is missing or any template file is unreadable or malformed.
    """
    directory = check_template_dir(path)
    files = _production_files(directory, include_extras)
    cached = template_cache_path(directory, files) if cache else None
    if cached is not None and cached.is_file():
        lib = _read_cache(cached, str(directory))
        if lib is not None:
            return lib
    parsed: list[LnwTemplate] = []
    for p in files:
        try:
            data = p.read_bytes()
        except OSError as exc:
            msg = f"cannot read SNID template {p} ({exc})"
            raise ConfigError(msg) from exc
        parsed.append(parse_lnw(data, source=str(p)))
    lib = _stack(str(directory), parsed)
    if cached is not None:
        _write_cache(cached, lib)
    return lib


def template_cache_path(directory: Path, files: list[Path]) -> Path | None:
    """Cache file of the arrays read from ``files``, or None when caching is off.

    The directory is ``$SEDMTUI_CLASSIFY_CACHE_DIR`` (empty: off), else
    ``$XDG_CACHE_HOME/sedmtui`` (``~/.cache/sedmtui``). The name hashes the template
    directory, :data:`CACHE_VERSION` and the name, size and modification time of each file,
    so any change to the templates makes a new cache file.
    """
    root = os.environ.get(CACHE_ENV)
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(base) / "sedmtui")
    if not root.strip():
        return None
    key = hashlib.sha256(f"{CACHE_VERSION}\0{directory.resolve()}".encode())
    try:
        for p in files:
            st = p.stat()
            key.update(f"\0{p.name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    except OSError:
        return None
    return Path(root) / f"snid-templates-{key.hexdigest()[:24]}.npz"


_ROW_FIELDS = ("flux", "name", "main_type", "subtype", "itype", "isubtype", "age", "age_flag",
               "delta", "template_index", "lo", "hi")


def _read_cache(path: Path, directory: str) -> TemplateLibrary | None:
    """The library stored at ``path`` (None, with a log line, when it is unusable)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            rows = {k: z[k] for k in _ROW_FIELDS}
            templates = tuple(str(t) for t in z["templates"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        log.info("ignoring unreadable template cache %s (%s)", path, exc)
        return None
    n = rows["flux"].shape[0]
    if (rows["flux"].ndim != 2 or rows["flux"].shape[1] != N_BINS
            or rows["flux"].dtype != np.float32 or any(v.shape != (n,) for k, v in rows.items()
                                                        if k != "flux")):
        log.info("ignoring malformed template cache %s", path)
        return None
    return _with_transforms(directory=directory, templates=templates, **rows)


def _write_cache(path: Path, lib: TemplateLibrary) -> None:
    """Store the library's arrays at ``path`` (atomically; errors only logged)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(fh, templates=np.array(lib.templates, dtype=str),
                     **{k: getattr(lib, k) for k in _ROW_FIELDS})
        os.replace(tmp, path)
    except OSError as exc:
        log.info("cannot write template cache %s (%s)", path, exc)
        tmp.unlink(missing_ok=True)


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

    return _with_transforms(
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
    )


def _with_transforms(**rows) -> TemplateLibrary:
    """A :class:`TemplateLibrary` from its row arrays plus the transforms derived from them."""
    flux = rows["flux"]
    fft = sfft.rfft(flux, axis=1)
    return TemplateLibrary(fft=fft, own_fft=own_window_transforms(flux, rows["lo"], rows["hi"]),
                           coarse=decimated_rows(fft, flux.shape[1], SCREEN_STEP), **rows)
