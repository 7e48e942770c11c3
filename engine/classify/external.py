"""Optional: run an installed SNID 5.0 executable and read its answer into a Classification.

The command is SEDM's (``snid wmin=.. wmax=.. skyclip=.. medlen=.. aband=.. rlapmin=..
inter=0 plot=0 <spec>``) plus ``zmin``/``zmax``/``usetype``/``avoid``/``tempdir`` when set, run
in a temporary directory on a two-column text copy of the spectrum.

``<spec>_snid.output`` (SNID ``wfout``) has these sections, each introduced by a ``###``
line; lines starting with ``#`` inside a section are comments:

* ``### initial/user-input redshift ###``: ``zinit <z>`` and ``zuser <z>``;
* ``### median redshift/age and error ###``: ``zmed <z> <sdev>`` and ``agem <age> <sdev>``;
* ``### type fraction/redshift/age ###``: one line per (sub)type
  ``name ntemp fraction slope zmed zsdev agem agesdev`` (Fortran ``a10,i7,f10.2,3f10.4,2f10.3``),
  main types (``Ia Ib Ic II NotSN``) first in their group;
* ``### rlap-ordered template listings ###``: ``no sn type lap rlap z zerr age age_flag grade``
  (``i4,2x,a12,2x,a10,f7.4,f7.2,2f9.4,f9.2,i3,a7``), grade ``good``/``bad``/``cut``, with a
  ``#--- rlap cutoff`` line before the first ``cut`` entry.

SNID writes no output file when no template is good; that reads as ``type == "NONE"``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from engine.classify.options import SnidOptions
from engine.classify.result import Classification, TemplateMatch
from engine.errors import ConfigError, EngineError

SUBTYPE_MAIN: dict[str, str] = {
    **{s: "Ia" for s in ("Ia", "Ia-norm", "Ia-91T", "Ia-91bg", "Ia-csm", "Ia-pec", "Ia-02cx",
                         "Ia-03fg", "Ia-02es", "Ia-Ca-rich")},
    **{s: "Ib" for s in ("Ib", "Ib-norm", "Ib-pec", "IIb", "Ibn", "Ib-Ca-rich", "Ib-csm")},
    **{s: "Ic" for s in ("Ic", "Ic-norm", "Ic-pec", "Ic-broad", "Ic-Broad", "Icn", "Ic-Ca-rich",
                         "Ic-csm")},
    **{s: "II" for s in ("II", "IIP", "II-pec", "IIn", "IIL", "IIn-pec")},
    **{s: "NotSN" for s in ("NotSN", "AGN", "Gal", "LBV", "M-star", "QSO", "C-star",
                            "Afterglow", "Nova", "CV")},
}
"""SNID (sub)type name -> main type (note ``IIb`` belongs to ``Ib`` in SNID)."""


def main_type_of(subtype: str) -> str:
    """Main SNID type of a (sub)type name (``IIb`` -> ``Ib``, ``Gal`` -> ``NotSN``)."""
    if subtype in SUBTYPE_MAIN:
        return SUBTYPE_MAIN[subtype]
    head = subtype.split("-")[0]
    return SUBTYPE_MAIN.get(head, head)


def _sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("###"):
            name = s.strip("# ").strip()
            if name:  # a bare "###" separates type groups inside a section
                current = name
                out.setdefault(current, [])
        elif s and not s.startswith("#"):
            out.setdefault(current, []).append(line.rstrip("\n"))
    return out


def _listing_fields(line: str) -> list[str]:
    """Fields of a template-listing line: whitespace split, else SNID's fixed columns."""
    tok = line.split()
    if len(tok) == 10:
        return tok
    cols = [(0, 4), (6, 18), (20, 30), (30, 37), (37, 44), (44, 53), (53, 62), (62, 71),
            (71, 74), (74, 81)]
    return [line[a:b].strip() for a, b in cols]


def parse_snid_output(text: str, *, options: dict | None = None) -> Classification:
    """Read the text of a ``*_snid.output`` file into a :class:`Classification`.

    Parameters
    ----------
    text : str
        File content (see the module docstring for the format).
    options : dict or None
        Options to record in the result.

    Returns
    -------
    Classification
        ``engine == "external"``; ``type == "NONE"`` when the listing has no good entry.

    Raises
    ------
    EngineError
        If the listing section is missing or a line cannot be read.
    """
    sec = _sections(text)
    values: dict[str, list[float]] = {}
    for name in ("initial/user-input redshift", "median redshift/age and error"):
        for line in sec.get(name, []):
            tok = line.split()
            try:
                values[tok[0]] = [float(v) for v in tok[1:]]
            except (ValueError, IndexError) as exc:
                msg = f"SNID output: cannot read line {line!r} ({exc})"
                raise EngineError(msg) from exc
    fractions = {t: 0.0 for t in ("Ia", "Ib", "Ic", "II", "NotSN")}
    for line in sec.get("type fraction/redshift/age", []):
        tok = line.split()
        if len(tok) >= 3 and tok[0] in fractions:
            fractions[tok[0]] = float(tok[2])
    if "rlap-ordered template listings" not in sec:
        msg = "SNID output: no '### rlap-ordered template listings ###' section"
        raise EngineError(msg)
    matches = []
    for line in sec["rlap-ordered template listings"]:
        f = _listing_fields(line)
        try:
            matches.append(TemplateMatch(
                rank=int(f[0]), template=f[1], main_type=main_type_of(f[2]), subtype=f[2],
                lap=float(f[3]), r=float(f[4]) / float(f[3]) if float(f[3]) else float("nan"),
                rlap=float(f[4]), z=float(f[5]), z_err=float(f[6]), age=float(f[7]),
                age_flag=int(f[8]), grade=f[9]))
        except (ValueError, IndexError) as exc:
            msg = f"SNID output: cannot read listing line {line!r} ({exc})"
            raise EngineError(msg) from exc
    n_good = sum(m.grade == "good" for m in matches)
    n_bad = sum(m.grade == "bad" for m in matches)
    zinit = values.get("zinit", [float("nan")])[0]
    common = dict(zinit=zinit, n_correlated=len(matches), options=options or {},
                  engine="external", n_bad=n_bad)
    if n_good == 0:
        return Classification(type="NONE", **common)
    top = matches[0]
    zmed = values.get("zmed", [float("nan")] * 2)
    agem = values.get("agem", [float("nan")] * 2)
    return Classification(
        type=top.main_type, subtype=top.subtype, template=top.template, rlap=top.rlap, z=top.z,
        z_err=top.z_err, age=top.age, age_flag=top.age_flag, grade=top.grade, zmed=zmed[0],
        zmed_err=zmed[1], age_med=agem[0], age_err=agem[1], fractions=fractions,
        n_good=n_good, matches=tuple(matches[:20]), **common)


def find_snid(executable: str = "snid") -> str | None:
    """Path of an SNID executable on PATH, or None."""
    return shutil.which(executable)


def snid_command(executable: str, spectrum: str, options: SnidOptions,
                 templates_dir: str | None = None) -> list[str]:
    """The SNID command line for ``options`` (SEDM's, plus any non-default search limits)."""
    cmd = [executable, f"wmin={options.wmin:g}", f"wmax={options.wmax:g}",
           f"skyclip={int(options.skyclip)}", f"medlen={int(options.medlen)}",
           f"aband={int(options.aband)}", f"rlapmin={options.rlapmin:g}",
           f"zmin={options.zmin:g}", f"zmax={options.zmax:g}", "inter=0", "plot=0",
           "iquery=0", "verbose=0"]
    if options.usetype:
        cmd.append("usetype=" + ",".join(options.usetype))
    if options.avoid:
        cmd.append("avoid=" + ",".join(options.avoid))
    if templates_dir:
        cmd.append("tempdir=" + str(templates_dir).rstrip("/") + "/")
    return [*cmd, spectrum]


def run_external_snid(wave: np.ndarray, flux: np.ndarray, options: SnidOptions | None = None,
                      *, templates_dir: str | None = None, executable: str = "snid",
                      timeout_s: float = 300.0) -> Classification:
    """Classify with an installed SNID executable (for cross-checks).

    Parameters
    ----------
    wave, flux : numpy.ndarray
        Shape ``(n,)`` spectrum [Angstrom, F_lambda].
    options : SnidOptions or None
    templates_dir : str or None
        Passed as SNID's ``tempdir=``; None uses the executable's built-in directory.
    executable : str
        Name or path of the SNID program.
    timeout_s : float
        Wall-clock limit [s].

    Returns
    -------
    Classification

    Raises
    ------
    ConfigError
        If no executable is found.
    EngineError
        If SNID fails or times out.
    """
    opts = options or SnidOptions()
    exe = find_snid(executable)
    if exe is None:
        msg = f"no SNID executable {executable!r} on PATH (set classify.use_external_snid off)"
        raise ConfigError(msg)
    good = np.isfinite(wave) & np.isfinite(flux)
    with tempfile.TemporaryDirectory(prefix="sedmtui-snid-") as tmp:
        spec = Path(tmp) / "spectrum.dat"
        np.savetxt(spec, np.column_stack([np.asarray(wave)[good], np.asarray(flux)[good]]),
                   fmt="%.3f %.6e")
        cmd = snid_command(exe, spec.name, opts, templates_dir)
        try:
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                                  timeout=timeout_s, stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as exc:
            msg = f"SNID did not finish within {timeout_s:g} s"
            raise EngineError(msg) from exc
        out = Path(tmp) / "spectrum_snid.output"
        if not out.exists():
            if proc.returncode not in (0, None) and "No template meets" not in proc.stdout:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
                msg = f"SNID failed (exit {proc.returncode}): {' '.join(tail)}"
                raise EngineError(msg)
            return Classification(type="NONE", options=opts.to_dict(), engine="external")
        return parse_snid_output(out.read_text(), options=opts.to_dict())
