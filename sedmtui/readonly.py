"""What ``--readonly`` hides: every console action that would write."""

from __future__ import annotations

WRITE_ACTIONS = frozenset({"reextract", "accept", "reject", "recover", "report", "final_report", "request_report",
                           "comment", "retry_delivery",
                           "tns_report"})
"""Actions hidden and disabled with ``--readonly`` (every key that would write a request, and the
report comment, which only a request carries)."""
