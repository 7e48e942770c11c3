"""A TNS API stand-in: ``set/file-upload``, ``set/bulk-report`` and ``get/bulk-report-reply``.

The bot must send its ``User-Agent: tns_marker{...}`` and a valid ``api_key`` form field (else
401); an upload is stored under a new name (``<n>_<file name>``, as TNS renames), a report whose
spectrum names an ``ascii_file`` that was not uploaded is refused (400), and a report's reply is
"not processed yet" (``id_code`` 404) on the first read, then OK.
"""

from __future__ import annotations

import json
from typing import Any

from engine.delivery.standins.base import Request, Standin


class TnsStandin(Standin):
    """The stand-in: ``reports`` holds every report received."""

    def __init__(self, api_key: str = "tns-standin-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.reports: dict[int, dict] = {}
        self.files: dict[str, bytes] = {}
        self.reads: dict[int, int] = {}
        self._n = 500

    def error_body(self, message: str) -> Any:
        return {"id_code": 500, "id_message": message}

    def route(self, req: Request) -> tuple[int, Any, dict]:
        fields, files = req.multipart()
        form = fields if fields or files else req.form()
        if not str(req.headers.get("User-Agent", "")).startswith("tns_marker{"):
            return 403, {"id_code": 403, "id_message": "Forbidden: no tns_marker"}, {}
        if form.get("api_key") != self.api_key:
            return 401, {"id_code": 401, "id_message": "Unauthorized"}, {}
        p = req.path.split("?")[0]
        if p.endswith("/set/file-upload"):
            if not files:
                return 400, {"id_code": 400, "id_message": "Bad request: no files"}, {}
            stored = []
            for _field, (name, data) in sorted(files.items()):
                self._n += 1
                stored.append(f"{self._n}_{name}")
                self.files[stored[-1]] = data
            return 200, {"id_code": 200, "id_message": "OK", "data": stored}, {}
        if p.endswith("/set/bulk-report"):
            try:
                data = json.loads(form.get("data", ""))
                assert "classification_report" in data
            except (ValueError, AssertionError):
                return 400, {"id_code": 400, "id_message": "Bad request: no classification_report"}, {}
            for entry in data["classification_report"].values():
                for spectrum in entry.get("spectra", {}).get("spectra-group", {}).values():
                    if spectrum.get("ascii_file") and spectrum["ascii_file"] not in self.files:
                        return 400, {"id_code": 400, "id_message": f"ascii_file {spectrum['ascii_file']} was not "
                                     "uploaded"}, {}
            self._n += 1
            self.reports[self._n] = data
            return 200, {"id_code": 200, "id_message": "OK", "data": {"report_id": self._n}}, {}
        if p.endswith("/get/bulk-report-reply"):
            rid = int(form.get("report_id", "0") or 0)
            if rid not in self.reports:
                return 400, {"id_code": 400, "id_message": "unknown report_id"}, {}
            self.reads[rid] = self.reads.get(rid, 0) + 1
            if self.reads[rid] == 1:
                return 404, {"id_code": 404, "id_message": "Report not yet processed"}, {}
            feedback = {"classification_report": [{"100": {"message": "OK", "objname": "x"}}]}
            return 200, {"id_code": 200, "id_message": "OK", "data": {"feedback": feedback}}, {}
        return 404, {"id_code": 404, "id_message": "no such endpoint"}, {}
