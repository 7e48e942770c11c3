"""SEDM product file names (what ztfquery, Fritz and SEDM users already read).

``e3d_crr_b_ifuYYYYMMDD_HH_MM_SS_<NAME>.fits`` for the cube; extraction products replace the
leading ``e3d`` by ``<kind>_auto_<tag>_lstep<N>_`` (hence the double underscore before
``crr``): ``spec_auto_robot_lstep1__crr_b_ifu20261124_03_06_30_ZTF26abc.fits``; a manual
re-extraction's tag is ``redoHHMMSS``.
"""

from __future__ import annotations

import re
from pathlib import Path


def object_name(header) -> str:
    """File-safe object name from NAME (else OBJECT): ``Calib: X`` -> ``X``, spaces -> ``-``."""
    name = str(header.get("NAME") or header.get("OBJECT") or "unknown").strip()
    name = re.sub(r"\s*\[[AB]\]\s*$", "", name)
    if name.lower().startswith("calib:"):
        name = name.split(":", 1)[1].strip()
    name = re.sub(r"\s+", "-", name)
    return re.sub(r"[^A-Za-z0-9+_.\-]", "", name) or "unknown"


def raw_root(raw_name: str) -> str:
    """``ifuYYYYMMDD_HH_MM_SS`` of a raw file name."""
    return Path(raw_name).name.removesuffix(".fits").removesuffix(".gz").removesuffix(".fits")


def debiased(raw_name: str) -> str:
    """``b_ifu....fits``."""
    return f"b_{raw_root(raw_name)}.fits"


def cleaned(raw_name: str) -> str:
    """``crr_b_ifu....fits``."""
    return f"crr_b_{raw_root(raw_name)}.fits"


def cube(raw_name: str, name: str) -> str:
    """``e3d_crr_b_ifu..._<NAME>.fits``."""
    return f"e3d_crr_b_{raw_root(raw_name)}_{name}.fits"


def extraction(kind: str, raw_name: str, name: str, *, tag: str = "robot", lstep: int = 1, ext: str = "fits",
               notfluxcal: bool = False) -> str:
    """``<kind>_auto_<tag>_lstep<N>__crr_b_ifu..._<NAME>[_notfluxcal].<ext>``."""
    suffix = "_notfluxcal" if notfluxcal else ""
    return f"{kind}_auto_{tag}_lstep{lstep}__crr_b_{raw_root(raw_name)}_{name}{suffix}.{ext}"


def guider(raw_name: str) -> str:
    """``guider_crr_b_ifu....fits``."""
    return f"guider_crr_b_{raw_root(raw_name)}.fits"


def redo_tag(hhmmss: str) -> str:
    """``redoHHMMSS`` (local time of the request)."""
    return f"redo{hhmmss.replace(':', '').replace('_', '')}"
