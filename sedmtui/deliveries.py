"""An exposure's deliveries for the console: its ledger rows and the facts lines that say where
each went or why it failed (the engine's ledger: :mod:`engine.delivery.ledger`)."""

from __future__ import annotations


def deliveries_of(reader, night: str, obs_id: str) -> list[dict]:
    """The exposure's delivery-ledger rows (not dry runs, not skipped), oldest first; ``[]`` for a
    database without the ledger.

    Parameters
    ----------
    reader : engine.state.reader.StateReader
        A reader owned by the calling thread.
    night, obs_id : str
        The exposure.
    """
    from engine.delivery.status import ledger_rows

    return [r for r in ledger_rows(reader.query, night)
            if r.get("obs_id") == obs_id and not r.get("dry_run") and r.get("state") != "skipped"]


def delivery_facts(rows: list[dict]) -> list[tuple[str, str, str | None]]:
    """``(label, value, severity)`` facts lines of an exposure's deliveries (one per destination and
    extraction: the newest row of each)."""
    from engine.delivery.status import SHORT

    newest: dict[tuple, dict] = {}
    for r in rows:
        newest[(r.get("destination"), r.get("extraction_id"))] = r
    out = []
    for r in newest.values():
        label = SHORT.get(r.get("destination") or "", r.get("destination") or "delivery")
        tries = int(r.get("attempts") or 0)
        if r["state"] == "sent":
            where = r.get("remote_url") or (f"id {r['remote_id']}" if r.get("remote_id") else "")
            out.append((label, f"sent {where}".strip(), "ok"))
        elif r["state"] == "failed":
            out.append((label, f"failed after {tries} tr{'y' if tries == 1 else 'ies'}: {r.get('last_error') or '?'}"
                               " → D on the night screen retries", "bad"))
        else:
            note = r.get("last_error") or ""
            out.append((label, f"{r['state']}" + (f" ({tries} tries; last: {note})" if tries and note else ""), "dim"))
    return out


__all__ = ["deliveries_of", "delivery_facts"]
