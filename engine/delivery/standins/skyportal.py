"""A SkyPortal (Fritz) stand-in on loopback: the calls SEDM delivery makes, with SkyPortal's rules.

``Authorization: token <token>`` (else 401); success ``200 {"status": "success", "data": ...}``;
errors ``400 {"status": "error", "message": ...}``; 429 beyond 5 requests/s (burst 10); an
``ascii`` body over 10 MB refused; **no duplicate check** on spectra; one annotation per origin
(a second POST is a 400). State is in memory: ``spectra``, ``annotations``, ``statuses``.
"""

from __future__ import annotations

import re
from typing import Any

from engine.delivery.standins.base import Request, Standin

MAX_ASCII = 10 * 1024 * 1024


def parse_ascii(text: str, wave_col: int, flux_col: int, err_col: int | None) -> tuple[list, list, list | None]:
    """Columns of an ASCII spectrum as SkyPortal reads it (``#`` lines are metadata)."""
    w, f, e = [], [], []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        w.append(float(parts[wave_col]))
        f.append(float(parts[flux_col]))
        if err_col is not None:
            e.append(float(parts[err_col]))
    return w, f, (e if err_col is not None else None)


class SkyPortalStandin(Standin):
    """The stand-in server.

    Parameters
    ----------
    token : str
        The one valid API token.
    rate, burst : float, int
        Rate limit (SkyPortal: 5 per second, burst 10).
    """

    def __init__(self, token: str = "standin-token", *, rate: float | None = 5.0, burst: int = 10) -> None:
        super().__init__(rate=rate, burst=burst)
        self.token = token
        self.spectra: dict[int, dict] = {}
        self.annotations: dict[int, dict] = {}
        self.statuses: list[dict] = []
        self.followup: dict[int, str] = {}
        """Status of each follow-up request set through ``/api/facility``."""
        self._next = 100

    def _id(self) -> int:
        self._next += 1
        return self._next

    def ok(self, data: Any = None) -> tuple[int, Any, dict]:
        """A success reply."""
        return 200, {"status": "success", "data": data if data is not None else {}}, {}

    def bad(self, message: str) -> tuple[int, Any, dict]:
        """A 400 reply."""
        return 400, self.error_body(message), {}

    def route(self, req: Request) -> tuple[int, Any, dict]:
        if req.headers.get("Authorization") != f"token {self.token}":
            return 401, self.error_body("Unauthorized: bad or missing token"), {}
        m, p = req.method, req.path.split("?")[0]
        if m == "POST" and p == "/api/spectrum/ascii":
            return self.post_ascii(req.json() or {})
        if (hit := re.fullmatch(r"/api/sources/([^/]+)/spectra", p)) and m == "GET":
            obj = hit.group(1)
            return self.ok({"obj_id": obj, "spectra": [s for s in self.spectra.values() if s["obj_id"] == obj]})
        if hit := re.fullmatch(r"/api/spectra/(\d+)", p):
            return self.spectrum(m, int(hit.group(1)), req.json() or {})
        if hit := re.fullmatch(r"/api/spectra/(\d+)/annotations(?:/(\d+))?", p):
            return self.annotation(m, int(hit.group(1)), hit.group(2), req.json() or {})
        if m == "POST" and p == "/api/facility":
            body = req.json() or {}
            if not isinstance(body.get("followup_request_id"), int) or not body.get("new_status"):
                return self.bad("followup_request_id and new_status are required")
            self.statuses.append(body)
            self.followup[body["followup_request_id"]] = body["new_status"]
            return self.ok()
        if (hit := re.fullmatch(r"/api/followup_request/(\d+)", p)) and m == "GET":
            rid = int(hit.group(1))
            return self.ok({"id": rid, "status": self.followup.get(rid, "submitted")})
        return 404, self.error_body(f"no route {m} {p}"), {}

    def post_ascii(self, body: dict) -> tuple[int, Any, dict]:
        """``POST /api/spectrum/ascii`` (no duplicate check, as SkyPortal)."""
        missing = [k for k in ("obj_id", "instrument_id", "observed_at", "ascii") if k not in body]
        if missing:
            return self.bad(f"Invalid/missing parameters: {missing}")
        if len(body["ascii"].encode()) > MAX_ASCII:
            return self.bad("The ascii file is larger than 10MB")
        try:
            w, f, e = parse_ascii(body["ascii"], body.get("wave_column", 0), body.get("flux_column", 1),
                                  body.get("fluxerr_column"))
        except (ValueError, IndexError) as exc:
            return self.bad(f"Unable to parse the ascii file: {exc}")
        sid = self._id()
        self.spectra[sid] = {"id": sid, "obj_id": body["obj_id"], "instrument_id": body["instrument_id"],
                             "observed_at": body["observed_at"], "original_file_filename": body.get("filename"),
                             "wavelengths": w, "fluxes": f, "errors": e, "group_ids": body.get("group_ids", []),
                             "followup_request_id": body.get("followup_request_id")}
        return self.ok({"id": sid})

    def spectrum(self, method: str, sid: int, body: dict) -> tuple[int, Any, dict]:
        """``GET``/``PUT``/``DELETE /api/spectra/<id>``."""
        if sid not in self.spectra:
            return self.bad(f"Could not load spectrum with ID {sid}")
        if method == "GET":
            return self.ok(self.spectra[sid])
        if method == "DELETE":
            del self.spectra[sid]
            for aid in [a for a, ann in self.annotations.items() if ann["spectrum_id"] == sid]:
                del self.annotations[aid]
            return self.ok()
        if method == "PUT":
            allowed = {"obj_id", "instrument_id", "observed_at", "wavelengths", "fluxes", "errors", "group_ids",
                       "followup_request_id", "label", "origin"}
            if set(body) - allowed:
                return self.bad(f"Invalid/missing parameters: unknown {sorted(set(body) - allowed)}")
            self.spectra[sid].update(body)
            return self.ok()
        return 404, self.error_body("method not allowed"), {}

    def annotation(self, method: str, sid: int, aid: str | None, body: dict) -> tuple[int, Any, dict]:
        """Annotations of a spectrum: one per origin."""
        if sid not in self.spectra:
            return self.bad(f"Could not access spectrum {sid}")
        mine = {a: ann for a, ann in self.annotations.items() if ann["spectrum_id"] == sid}
        if method == "GET" and aid is None:
            return self.ok(list(mine.values()))
        if method == "POST" and aid is None:
            if not body.get("origin") or not isinstance(body.get("data"), dict):
                return self.bad("origin and a data dict are required")
            if any(ann["origin"] == body["origin"] for ann in mine.values()):
                return self.bad(f"Annotation origin {body['origin']} already exists on this spectrum; "
                                "use PUT to update it")
            new = self._id()
            self.annotations[new] = {"id": new, "spectrum_id": sid, "origin": body["origin"], "data": body["data"]}
            return self.ok({"annotation_id": new})
        if aid is not None and int(aid) in mine and method == "PUT":
            self.annotations[int(aid)].update({k: body[k] for k in ("origin", "data") if k in body})
            return self.ok()
        if aid is not None and int(aid) in mine and method == "DELETE":
            del self.annotations[int(aid)]
            return self.ok()
        return self.bad(f"Could not find annotation {aid}")
